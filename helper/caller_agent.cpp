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

namespace fr::helper {

namespace {

// Requests: one op byte and a path; replies: an errno (0: success) and,
// for the opens, the fd as SCM_RIGHTS.
constexpr char kOpImage = 'i', kOpFile = 'f', kOpListen = 'l', kOpNproc = 'n', kOpWatch = 'w',
	       kOpKeep = 'k';
constexpr std::size_t kMaxRequest = 4200;
// An open on the caller's own FUSE mount could block for ever.
constexpr int kReplyTimeoutMs = 30000;

Status sendMessage(int sock, const void *data, std::size_t size, int fd) noexcept
{
	iovec iov{const_cast<void *>(data), size};
	msghdr msg{};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	if (fd >= 0) {
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		return Error(errno, "sendmsg", "caller agent");
	return {};
}

// One datagram, and the fd it carries (or -1). 0 bytes: the peer is gone.
ssize_t receiveMessage(int sock, void *data, std::size_t size, int &fd) noexcept
{
	fd = -1;
	iovec iov{data, size};
	msghdr msg{};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	msg.msg_control = control;
	msg.msg_controllen = sizeof(control);
	ssize_t n;
	do
		n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return n;
}

int openAs(const char *path, std::uint64_t resolve) noexcept
{
	open_how how{};
	how.flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
	how.resolve = resolve;
	return static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how)));
}

int listenAt(const char *path) noexcept
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (std::strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	std::strcpy(addr.sun_path, path);
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
[[noreturn]] void serve(int sock) noexcept
{
	char socketPath[sizeof(sockaddr_un::sun_path)] = {};
	int watched = -1;
	char buf[kMaxRequest + 1];
	for (;;) {
		int fd = -1;
		const ssize_t n = receiveMessage(sock, buf, kMaxRequest, fd);
		if (n <= 0)
			break;
		buf[n] = '\0';
		const char *path = buf + 1;
		int reply = 0, out = -1;
		errno = 0;
		switch (buf[0]) {
		case kOpImage:
			out = openAs(path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
			break;
		case kOpFile:
			out = openAs(path, RESOLVE_NO_MAGICLINKS);
			break;
		case kOpListen:
			out = listenAt(path);
			if (out >= 0) // listenAt() refused longer paths
				std::memcpy(socketPath, path, std::strlen(path) + 1);
			break;
		case kOpNproc: {
			const pid_t probe = ::fork();
			if (probe == 0)
				::_exit(0);
			reply = probe < 0 ? errno : 0;
			if (probe > 0)
				::waitpid(probe, nullptr, 0);
			break;
		}
		case kOpWatch:
			watched = fd;
			fd = -1;
			break;
		case kOpKeep:
			::_exit(0);
		default:
			reply = EPROTO;
		}
		if (fd >= 0)
			::close(fd);
		if ((buf[0] == kOpImage || buf[0] == kOpFile || buf[0] == kOpListen) && out < 0)
			reply = errno != 0 ? errno : EIO;
		const bool sent = sendMessage(sock, &reply, sizeof(reply), out).hasValue();
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

CallerAgent::~CallerAgent() { finish(false); }

Result<UniqueFd> CallerAgent::request(char op, const std::string &path, int sendFd, bool wantFd)
{
	if (!channel_.isValid())
		return Error(EPIPE, "caller agent");
	std::string message(1, op);
	message += path;
	if (Status ok = sendMessage(channel_.get(), message.data(), message.size(), sendFd); !ok)
		return ok.error();
	pollfd pfd{channel_.get(), POLLIN, 0};
	int ready;
	do
		ready = ::poll(&pfd, 1, kReplyTimeoutMs);
	while (ready < 0 && errno == EINTR);
	if (ready == 0)
		return Error::invalid(ETIMEDOUT, "caller agent", path, "no answer within %d s",
				      kReplyTimeoutMs / 1000);
	int reply = 0, fd = -1;
	const ssize_t n = receiveMessage(channel_.get(), &reply, sizeof(reply), fd);
	UniqueFd received(fd);
	if (n != static_cast<ssize_t>(sizeof(reply)))
		return Error(n < 0 ? errno : EPIPE, "recvmsg", "caller agent");
	if (reply != 0)
		return Error(reply, op == kOpListen ? "bind" : op == kOpNproc ? "fork" : "open", path);
	if (wantFd && !received.isValid())
		return Error(EPROTO, "recvmsg", "caller agent");
	return received;
}

Result<UniqueFd> CallerAgent::openImage(const std::string &path)
{
	return request(kOpImage, path, -1, true);
}

Result<UniqueFd> CallerAgent::openFile(const std::string &path)
{
	return request(kOpFile, path, -1, true);
}

Result<UniqueFd> CallerAgent::listen(const std::string &path)
{
	return request(kOpListen, path, -1, true);
}

Status CallerAgent::probeProcessLimit()
{
	Result<UniqueFd> done = request(kOpNproc, "RLIMIT_NPROC", -1, false);
	return done ? Status() : Status(done.error());
}

Status CallerAgent::watch(int pidfd)
{
	Result<UniqueFd> done = request(kOpWatch, "QEMU", pidfd, false);
	return done ? Status() : Status(done.error());
}

void CallerAgent::finish(bool success) noexcept
{
	if (pid_ < 0)
		return;
	if (success)
		(void)sendMessage(channel_.get(), &kOpKeep, 1, -1);
	channel_.reset();
	while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
	}
	pid_ = -1;
}

} // namespace fr::helper
