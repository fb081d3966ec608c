// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
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

Status restrictToReadOnly(const std::vector<std::string> &readable)
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
	for (const std::string &path : readable) {
		UniqueFd dir(::open(path.c_str(), O_PATH | O_CLOEXEC | O_DIRECTORY));
		if (!dir.isValid())
			return Error(errno, "landlock", escapeForDisplay(path));
		const PathBeneathAttr rule{kFsReadFile | kFsReadDir, dir.get()};
		if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule,
			      0) != 0)
			return Error(errno, "landlock_add_rule", escapeForDisplay(path));
	}
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
		// nbdkit's per-connection quit pipe and fd flags
		SCMP_SYS(pipe2), SCMP_SYS(fcntl),
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
	// openat: read-only opens only (Landlock confines where).
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ,
					      O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, 0));
	// Threads only: clone with CLONE_THREAD. clone3 passes its flags in
	// memory that a filter cannot read, so it answers ENOSYS and glibc
	// falls back to clone.
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
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
