// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/fd_io.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shared/unique_fd.h"

namespace fr {

Status writeAll(int fd, std::span<const std::uint8_t> data, std::string_view what) noexcept
{
	while (!data.empty()) {
		const ssize_t n = ::write(fd, data.data(), data.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "write", what);
		data = data.subspan(static_cast<std::size_t>(n));
	}
	return {};
}

Status writeAll(int fd, std::string_view data, std::string_view what) noexcept
{
	return writeAll(fd, std::span(reinterpret_cast<const std::uint8_t *>(data.data()), data.size()), what);
}

Result<std::string> readAll(int fd, std::size_t limit, std::string_view what)
{
	std::string text;
	char buf[65536];
	for (;;) {
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", what);
		if (n == 0)
			return text;
		text.append(buf, static_cast<std::size_t>(n));
		if (text.size() > limit)
			return Error::invalid(EFBIG, "read", what, "larger than %zu bytes", limit);
	}
}

Result<std::string> readFile(const std::string &path, std::size_t limit, int extraFlags)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | extraFlags));
	if (!fd.isValid())
		return Error(errno, "open", path);
	return readAll(fd.get(), limit, path);
}

int openAt2(int dirfd, const char *path, std::uint64_t flags, std::uint64_t resolve, mode_t mode) noexcept
{
	open_how how{};
	how.flags = flags | O_CLOEXEC;
	how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
	how.resolve = resolve;
	for (int attempt = 0;; ++attempt) {
		const long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0 || (errno != EINTR && errno != EAGAIN) || attempt == 8)
			return static_cast<int>(fd);
	}
}

Status sendWithFd(int sock, std::span<const std::uint8_t> data, int fd) noexcept
{
	iovec iov{const_cast<std::uint8_t *>(data.data()), data.size()};
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
		return Error(errno, "sendmsg");
	return {};
}

ssize_t receiveWithFd(int sock, std::span<std::uint8_t> data, int &fd) noexcept
{
	fd = -1;
	iovec iov{data.data(), data.size()};
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
	for (cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&msg) : nullptr; c != nullptr; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return n;
}

} // namespace fr
