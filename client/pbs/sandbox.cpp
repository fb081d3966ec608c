// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "shared/display.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

namespace {

// Landlock's values, spelled out: Debian 12's headers predate some of them
// and the kernel tells at run time which it knows.
constexpr std::uint64_t kFsExecute = 1ULL << 0;
constexpr std::uint64_t kFsWriteFile = 1ULL << 1;
constexpr std::uint64_t kFsReadFile = 1ULL << 2;
constexpr std::uint64_t kFsReadDir = 1ULL << 3;
constexpr std::uint64_t kFsAbi1 = (1ULL << 13) - 1; // execute .. make_sym
constexpr std::uint64_t kFsRefer = 1ULL << 13;      // ABI 2
constexpr std::uint64_t kFsTruncate = 1ULL << 14;   // ABI 3
constexpr std::uint64_t kFsIoctlDev = 1ULL << 15;   // ABI 5
constexpr std::uint64_t kNetBindTcp = 1ULL << 0;    // ABI 4
constexpr std::uint64_t kNetConnectTcp = 1ULL << 1; // ABI 4
constexpr std::uint64_t kScopeAbstractUnix = 1ULL << 0; // ABI 6
constexpr std::uint64_t kScopeSignal = 1ULL << 1;       // ABI 6

struct RulesetAttr {
	std::uint64_t handledAccessFs;
	std::uint64_t handledAccessNet;
	std::uint64_t scoped;
};

struct PathBeneathAttr {
	std::uint64_t allowedAccess;
	std::int32_t parentFd;
} __attribute__((packed));

long landlockCreateRuleset(const RulesetAttr *attr, std::size_t size, std::uint32_t flags)
{
	return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

} // namespace

int landlockAbi()
{
	const long abi = landlockCreateRuleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : static_cast<int>(abi);
}

Status restrictFilesystem(const std::vector<std::string> &readable,
			  const std::vector<std::string> &writableFiles)
{
	const int abi = landlockAbi();
	if (abi <= 0)
		return Error(errno == 0 ? ENOSYS : errno, "landlock_create_ruleset");
	RulesetAttr attr{kFsAbi1, 0, 0};
	std::size_t attrSize = sizeof(std::uint64_t);
	if (abi >= 2)
		attr.handledAccessFs |= kFsRefer;
	if (abi >= 3)
		attr.handledAccessFs |= kFsTruncate;
	if (abi >= 4) {
		attr.handledAccessNet = kNetBindTcp | kNetConnectTcp;
		attrSize = 2 * sizeof(std::uint64_t);
	}
	if (abi >= 5)
		attr.handledAccessFs |= kFsIoctlDev;
	if (abi >= 6) {
		attr.scoped = kScopeAbstractUnix | kScopeSignal;
		attrSize = sizeof(RulesetAttr);
	}
	UniqueFd ruleset(static_cast<int>(landlockCreateRuleset(&attr, attrSize, 0)));
	if (!ruleset.isValid())
		return Error(errno, "landlock_create_ruleset");
	const auto addRule = [&](const std::string &path, bool writable) -> Status {
		UniqueFd object(::open(path.c_str(), O_PATH | O_CLOEXEC));
		struct stat st {};
		if (!object.isValid() || ::fstat(object.get(), &st) != 0)
			return Error(errno, "landlock", escapeForDisplay(path));
		// A file gets file rights only (the kernel refuses directory
		// rights on a file).
		std::uint64_t access = S_ISDIR(st.st_mode) ? kFsReadFile | kFsReadDir : kFsReadFile;
		if (writable) {
			if (S_ISDIR(st.st_mode))
				return Error::invalid(EINVAL, "landlock", escapeForDisplay(path),
						      "only files may be writable");
			access |= kFsWriteFile;
		}
		const PathBeneathAttr rule{access, object.get()};
		if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule,
			      0) != 0)
			return Error(errno, "landlock_add_rule", escapeForDisplay(path));
		return {};
	};
	for (const std::string &path : readable)
		if (Status s = addRule(path, false); !s)
			return s;
	for (const std::string &path : writableFiles)
		if (Status s = addRule(path, true); !s)
			return s;
	static_assert(kFsExecute == 1, "execution is among the handled (denied) rights");
	if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return Error(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0)
		return Error(errno, "landlock_restrict_self");
	return {};
}

Status loadServerSeccomp()
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == nullptr)
		return Error(ENOMEM, "seccomp_init");
	struct Release {
		scmp_filter_ctx ctx;
		~Release() { seccomp_release(ctx); }
	} release{ctx};

	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	// Every call below is one an nbdkit serving its single connection,
	// glibc's allocator and threads, or our chunk reader make:
	static constexpr int kAllowed[] = {
		// the NBD socket (stdin/stdout) and the log (stderr)
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
		SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
		SCMP_SYS(getsockopt), SCMP_SYS(shutdown), SCMP_SYS(poll), SCMP_SYS(ppoll),
		// nbdkit's per-connection quit pipe and fd flags; nbdkit -s
		// moves the socket off fds 0 and 1 and fills them with copies
		// of stderr when /dev/null cannot be opened (it cannot here)
		SCMP_SYS(pipe2), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3),
		// chunk files: open read-only (filtered below), stat, read, close
		SCMP_SYS(pread64), SCMP_SYS(lseek), SCMP_SYS(close), SCMP_SYS(fstat),
		SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(fadvise64),
		// memory
		SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
		SCMP_SYS(mprotect), SCMP_SYS(madvise),
		// threads (clone is filtered below) and their synchronisation
		SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(exit),
		SCMP_SYS(exit_group), SCMP_SYS(sched_yield), SCMP_SYS(gettid), SCMP_SYS(getpid),
		SCMP_SYS(prctl), // PR_SET_NAME for worker threads
		// signals: nbdkit blocks them in its threads; abort() raises SIGABRT
		SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
		SCMP_SYS(sigaltstack), SCMP_SYS(tgkill),
		// time (the vDSO covers most; the fallbacks are syscalls)
		SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(nanosleep),
		SCMP_SYS(clock_nanosleep),
		// glibc's allocator seeds itself from getrandom
		SCMP_SYS(getrandom),
	};
	for (const int call : kAllowed)
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, call, 0);
	// openat: read-only, or write-only to an existing file; Landlock
	// confines which files (the datastore to read; /dev/null, which
	// nbdkit -s reopens its stdout on, to write). Creating, truncating,
	// appending or read-write answers EACCES.
	constexpr unsigned kWriteFlags[] = {O_RDWR, O_CREAT, O_TRUNC, O_APPEND};
	constexpr unsigned kAnyWrite = O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, kAnyWrite, 0));
	for (const unsigned flag : kWriteFlags)
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
					      SCMP_A2(SCMP_CMP_MASKED_EQ, flag, flag));
	// Threads only: clone with CLONE_THREAD. clone3 passes its flags in
	// memory that a filter cannot read, so it answers ENOSYS and glibc
	// falls back to clone.
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	// nbdkit's error messages ask isatty(2) (whether to colour them).
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_EQ, TCGETS));
	if (rc != 0)
		return Error(-rc, "seccomp_rule_add");
	if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return Error(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	rc = seccomp_load(ctx);
	if (rc != 0)
		return Error(-rc, "seccomp_load");
	return {};
}

} // namespace fr::pbs
