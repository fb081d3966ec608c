// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "helper/landlock.h"
#include "shared/fd_io.h"
#include "shared/unique_fd.h"

namespace fr::helper {

Status checkStdFds() noexcept
{
	for (int fd = 0; fd <= 2; ++fd) {
		const int flags = ::fcntl(fd, F_GETFL);
		const int mode = flags & O_ACCMODE;
		const bool ok = flags >= 0 && (fd == 0 ? mode != O_WRONLY : mode != O_RDONLY);
		if (!ok)
			return Error::invalid(EBADF, "fd", fd == 0 ? "0" : fd == 1 ? "1" : "2",
					      "closed or opened with the wrong access mode");
	}
	return {};
}

Status markInheritedFdsCloexec() noexcept
{
	if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
		return Error(errno, "close_range", "CLOSE_RANGE_CLOEXEC");
	return {};
}

void closeFdsExcept(int from, const int *keep, std::size_t count) noexcept
{
	// Close the gaps between the kept fds, in ascending order.
	for (;;) {
		int next = -1;
		for (std::size_t i = 0; i < count; ++i)
			if (keep[i] >= from && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0) {
			::close_range(static_cast<unsigned>(from), ~0U, 0);
			return;
		}
		if (next > from)
			::close_range(static_cast<unsigned>(from), static_cast<unsigned>(next - 1), 0);
		from = next + 1;
	}
}

void resetSignals() noexcept
{
	struct sigaction dfl {};
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; ++sig)
		if (sig != SIGKILL && sig != SIGSTOP)
			::sigaction(sig, &dfl, nullptr); // EINVAL for the reserved ones: fine
	sigset_t none;
	sigemptyset(&none);
	::sigprocmask(SIG_SETMASK, &none, nullptr);
	(void)::signal(SIGXFSZ, SIG_IGN);
	(void)::signal(SIGPIPE, SIG_IGN);
}

namespace {

// In the child: report `error` to the parent and exit.
[[noreturn]] void childFail(int pipeFd, const Error &error) noexcept
{
	// The parent is the same program image: the Error's static `call`
	// pointer stays meaningful on the other side.
	(void)writeAll(pipeFd, std::string_view(reinterpret_cast<const char *>(&error), sizeof(Error)),
		       "launch error pipe");
	::_exit(127);
}

struct ChildPipes {
	int error; // write end: an Error, or EOF at exec
	int go;    // read end: one byte from the parent, EOF if it died
};

[[noreturn]] void child(const Launch &l, char *const *argv, char *const *envp, ChildPipes p,
			pid_t parent) noexcept
{
	if (::setsid() < 0)
		childFail(p.error, Error(errno, "setsid"));
	// First every wanted fd goes above the final layout (so no dup2 below
	// can clobber a source), then down into place; the pipes and the
	// ruleset stay close-on-exec above it all.
	const int count = static_cast<int>(l.fds.size());
	int temps[128];
	if (l.fds.size() > sizeof(temps) / sizeof(temps[0]))
		childFail(p.error, Error(E2BIG, "fd layout"));
	for (int i = 0; i < count; ++i) {
		temps[i] = ::fcntl(l.fds[static_cast<std::size_t>(i)], F_DUPFD_CLOEXEC, count + 1);
		if (temps[i] < 0)
			childFail(p.error, Error(errno, "fcntl(F_DUPFD_CLOEXEC)"));
	}
	int keep[3] = {::fcntl(p.error, F_DUPFD_CLOEXEC, count + 1), ::fcntl(p.go, F_DUPFD_CLOEXEC, count + 1),
		       l.landlockRuleset >= 0 ? ::fcntl(l.landlockRuleset, F_DUPFD_CLOEXEC, count + 1) : -1};
	if (keep[0] < 0)
		::_exit(127);
	p = {keep[0], keep[1]};
	if (p.go < 0 || (l.landlockRuleset >= 0 && keep[2] < 0))
		childFail(p.error, Error(errno, "fcntl(F_DUPFD_CLOEXEC)"));
	for (int i = 0; i < count; ++i)
		if (::dup2(temps[i], i) != i) // dup2 clears FD_CLOEXEC on the copy
			childFail(p.error, Error(errno, "dup2"));
	for (int i = 0; i < count; ++i)
		::close(temps[i]);
	closeFdsExcept(count, keep, 3);

	if (Status dropped = dropPrivileges(l.identity); !dropped)
		childFail(p.error, dropped.error());
	// Dies with the helper until the go (set after the identity change,
	// which clears it); the helper may already be gone.
	if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent)
		::_exit(127);
	if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		childFail(p.error, Error(errno, "prctl(PR_SET_NO_NEW_PRIVS)"));
	if (keep[2] >= 0) {
		if (Status ok = restrictToRuleset(keep[2]); !ok)
			childFail(p.error, ok.error());
		::close(keep[2]);
	}
	char go = 0;
	while (::read(p.go, &go, 1) < 0 && errno == EINTR) {
	}
	if (go != 'g')
		::_exit(127); // the parent failed or died
	::close(p.go);
	// From here the caller agent, holding QEMU's pidfd, undoes the start
	// if the helper dies before it reports.
	(void)::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	(void)::signal(SIGXFSZ, SIG_DFL);
	(void)::signal(SIGPIPE, SIG_DFL);
	// Seccomp last: nothing after it but execve.
	sock_fprog prog{};
	prog.len = static_cast<unsigned short>(l.filterLength);
	prog.filter = const_cast<sock_filter *>(static_cast<const sock_filter *>(l.filter));
	if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		childFail(p.error, Error(errno, "seccomp(SECCOMP_SET_MODE_FILTER)"));
	::execve(l.binary.c_str(), argv, envp);
	childFail(p.error, Error(errno, "execve", l.binary));
}

} // namespace

Result<pid_t> launch(const Launch &l)
{
	std::vector<char *> argv;
	for (const std::string &a : l.argv)
		argv.push_back(const_cast<char *>(a.c_str()));
	argv.push_back(nullptr);
	std::vector<char *> envp;
	for (const std::string &e : l.env)
		envp.push_back(const_cast<char *>(e.c_str()));
	envp.push_back(nullptr);

	int errorPipe[2], goPipe[2];
	if (::pipe2(errorPipe, O_CLOEXEC) != 0)
		return Error(errno, "pipe2");
	UniqueFd readEnd(errorPipe[0]);
	UniqueFd writeEnd(errorPipe[1]);
	if (::pipe2(goPipe, O_CLOEXEC) != 0)
		return Error(errno, "pipe2");
	UniqueFd goRead(goPipe[0]);
	UniqueFd goWrite(goPipe[1]);
	const pid_t parent = ::getpid();
	const pid_t pid = ::fork();
	if (pid < 0)
		return Error(errno, "fork");
	if (pid == 0)
		child(l, argv.data(), envp.data(), {writeEnd.get(), goRead.get()}, parent);
	writeEnd.reset();
	goRead.reset();
	Status forked = l.forked ? l.forked(pid) : Status();
	if (forked && ::write(goWrite.get(), "g", 1) != 1)
		forked = Error(errno, "write", "launch go");
	goWrite.reset();
	if (!forked) {
		::kill(pid, SIGKILL);
		while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
		}
		return forked.error();
	}

	// EOF without data: the exec happened (the pipe closed on exec).
	const Result<std::string> report = readAll(readEnd.get(), sizeof(Error), "launch error pipe");
	if (report && report->empty())
		return pid;
	while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
	}
	if (report && report->size() == sizeof(Error)) {
		Error error(0, "");
		std::memcpy(static_cast<void *>(&error), report->data(), sizeof(Error));
		return error;
	}
	return Error(EIO, "launch", "child failed before reporting");
}

} // namespace fr::helper
