// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/caller_agent.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "helper/process.h"
#include "shared/fd_io.h"

namespace fr::helper {

namespace {

using Op = CallerAgent::Op;
constexpr std::size_t kMaxRequest = 4200;
constexpr std::uint64_t kOpenFlags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
// An open on the caller's own FUSE mount could block for ever.
constexpr int kReplyTimeoutMs = 30000;

int listenAt(const char *path) noexcept
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	const std::size_t length = std::strlen(path);
	if (length >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	std::memcpy(addr.sun_path, path, length + 1);
	const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	const mode_t old = ::umask(0177);
	const int rc = ::bind(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr));
	const int bindErrno = errno;
	::umask(old);
	if (rc != 0 || ::listen(fd, 4) != 0) {
		const int err = rc != 0 ? bindErrno : errno;
		if (rc == 0)
			::unlink(path);
		::close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

// The agent's life: serve requests until "keep" (exit, leaving everything)
// or EOF/error (the helper failed or died: undo, then exit).
// Serves requests until Keep (exit, leaving everything) or EOF/error (the
// helper failed or died: undo, then exit).
[[noreturn]] void serve(int sock) noexcept
{
	char socketPath[sizeof(sockaddr_un::sun_path)] = {};
	int watched = -1;
	std::uint8_t buf[kMaxRequest + 1];
	for (;;) {
		int fd = -1;
		const ssize_t n = receiveWithFd(sock, {buf, kMaxRequest}, fd);
		if (n <= 0)
			break;
		buf[n] = '\0';
		const char *path = reinterpret_cast<const char *>(buf + 1);
		int out = -1;
		errno = 0;
		switch (static_cast<Op>(buf[0])) {
		case Op::OpenImage:
			out = openAt2(AT_FDCWD, path, kOpenFlags, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
			break;
		case Op::OpenFile:
			out = openAt2(AT_FDCWD, path, kOpenFlags, RESOLVE_NO_MAGICLINKS);
			break;
		case Op::Listen:
			if ((out = listenAt(path)) >= 0) // listenAt() refused longer paths
				std::memcpy(socketPath, path, std::strlen(path) + 1);
			break;
		case Op::ForkOnce:
			if (const pid_t probe = ::fork(); probe == 0)
				::_exit(0);
			else if (probe > 0)
				::waitpid(probe, nullptr, 0);
			break;
		case Op::Watch:
			std::swap(watched, fd);
			break;
		case Op::Keep:
			::_exit(0);
		default:
			errno = EPROTO;
		}
		if (fd >= 0)
			::close(fd);
		const int reply = errno;
		const bool sent = sendWithFd(sock, {reinterpret_cast<const std::uint8_t *>(&reply), sizeof(reply)}, out).hasValue();
		if (out >= 0)
			::close(out);
		if (!sent)
			break;
	}
	if (watched >= 0 && ::syscall(SYS_pidfd_send_signal, watched, SIGKILL, nullptr, 0) == 0) {
		// Until it is gone: whoever looks next must not find it running.
		pollfd exited{watched, POLLIN, 0};
		(void)::poll(&exited, 1, 5000);
	}
	if (socketPath[0] != '\0')
		::unlink(socketPath);
	::_exit(0);
}

} // namespace

Result<CallerAgent> CallerAgent::start(const Identity &caller)
{
	int pair[2];
	if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
		return Error(errno, "socketpair", "caller agent");
	UniqueFd mine(pair[0]), theirs(pair[1]);
	const pid_t pid = ::fork();
	if (pid < 0)
		return Error(errno, "fork", "caller agent");
	if (pid == 0) {
		mine.reset();
		// Nothing of the helper's: not its stdout (the client waits for
		// its EOF), not the ticket or log fds.
		const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
		for (int fd = 0; fd <= 2; ++fd)
			if (null < 0 || ::dup2(null, fd) != fd)
				::_exit(127);
		int keep = theirs.get();
		closeFdsExcept(3, &keep, 1);
		::setsid();
		for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE})
			(void)::signal(sig, SIG_IGN);
		if (caller.uid != 0 && !dropPrivileges(caller))
			::_exit(127);
		if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
			::_exit(127);
		serve(keep);
	}
	return CallerAgent(std::move(mine), pid);
}

CallerAgent::CallerAgent(CallerAgent &&other) noexcept
	: channel_(std::move(other.channel_)), pid_(std::exchange(other.pid_, -1))
{
}

Result<UniqueFd> CallerAgent::request(Op op, const std::string &path, int fd)
{
	if (!channel_.isValid())
		return Error(EPIPE, "caller agent");
	std::string message(1, static_cast<char>(op));
	message += path;
	if (Status ok = sendWithFd(channel_.get(), {reinterpret_cast<const std::uint8_t *>(message.data()), message.size()}, fd); !ok)
		return ok.error();
	pollfd pfd{channel_.get(), POLLIN, 0};
	int ready;
	while ((ready = ::poll(&pfd, 1, kReplyTimeoutMs)) < 0 && errno == EINTR) {
	}
	if (ready == 0)
		return Error::invalid(ETIMEDOUT, "caller agent", path, "no answer within 30 s");
	int reply = 0, received = -1;
	const ssize_t n = receiveWithFd(channel_.get(), {reinterpret_cast<std::uint8_t *>(&reply), sizeof(reply)}, received);
	UniqueFd out(received);
	if (n != static_cast<ssize_t>(sizeof(reply)))
		return Error(n < 0 ? errno : EPIPE, "recvmsg", "caller agent");
	if (reply != 0)
		return Error(reply, op == Op::Listen ? "bind" : op == Op::ForkOnce ? "fork" : "open", path);
	if ((op == Op::OpenImage || op == Op::OpenFile || op == Op::Listen) && !out.isValid())
		return Error(EPROTO, "recvmsg", "caller agent");
	return out;
}

void CallerAgent::finish(bool success) noexcept
{
	if (pid_ < 0)
		return;
	const std::uint8_t keep = static_cast<std::uint8_t>(Op::Keep);
	if (success)
		(void)sendWithFd(channel_.get(), {&keep, 1}, -1);
	channel_.reset();
	while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
	}
	pid_ = -1;
}

} // namespace fr::helper
