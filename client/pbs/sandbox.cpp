// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <cerrno>

#include "shared/display.h"
#include "shared/landlock.h"

namespace fr::pbs {

Status restrictFilesystem(const std::vector<std::string> &readable,
			  const std::vector<std::string> &writableFiles)
{
	// A file gets file rights only: the kernel refuses directory rights
	// on a file. shared/landlock skips a missing path; here a missing path
	// is an error, as a sandbox without the datastore would be useless.
	std::vector<landlock::Rule> rules;
	for (const std::string &path : readable) {
		struct stat st {};
		if (::stat(path.c_str(), &st) != 0)
			return Error(errno, "landlock", escapeForDisplay(path));
		rules.push_back({path.c_str(), S_ISDIR(st.st_mode)
						       ? landlock::kReadFile | landlock::kReadDir
						       : landlock::kReadFile});
	}
	for (const std::string &path : writableFiles) {
		struct stat st {};
		if (::stat(path.c_str(), &st) != 0)
			return Error(errno, "landlock", escapeForDisplay(path));
		if (S_ISDIR(st.st_mode))
			return Error::invalid(EINVAL, "landlock", escapeForDisplay(path),
					      "only files may be writable");
		rules.push_back({path.c_str(), landlock::kWriteFile});
	}
	Result<UniqueFd> ruleset = landlock::createRuleset(rules);
	if (!ruleset)
		return ruleset.error();
	if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return Error(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	return landlock::restrictSelf(ruleset->get());
}

namespace {

// Every call below is one an nbdkit serving its single connection,
// glibc's allocator and threads, or our chunk reader make:
constexpr int kAllowed[] = {
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

// The calls allowed only with some arguments; libseccomp's rc (0: all added).
int addFilteredCalls(scmp_filter_ctx ctx)
{
	// openat: read-only, or write-only to an existing file; Landlock
	// confines which files (the datastore to read; /dev/null, which
	// nbdkit -s reopens its stdout on, to write). Creating, truncating,
	// appending or read-write answers EACCES.
	constexpr unsigned kWriteFlags[] = {O_RDWR, O_CREAT, O_TRUNC, O_APPEND};
	constexpr unsigned kAnyWrite = O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
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
	return rc;
}

} // namespace

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
	for (const int call : kAllowed)
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, call, 0);
	if (rc == 0)
		rc = addFilteredCalls(ctx);
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
