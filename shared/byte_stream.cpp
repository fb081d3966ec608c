// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/byte_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "shared/clock.h"

namespace fr {

Result<short> waitFor(int fd, short events, int timeoutMs, const char *what) noexcept
{
	const std::int64_t deadline = monotonicMs() + timeoutMs;
	for (;;) {
		pollfd p{fd, events, 0};
		const int n = ::poll(&p, 1, msLeft(deadline, timeoutMs));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "poll", what);
		}
		if (n == 0)
			return Error::invalid(ETIMEDOUT, what, "guest", "no progress for %d ms", timeoutMs);
		return p.revents;
	}
}

FdStream::FdStream(UniqueFd fd) : fd_(std::move(fd))
{
	const int flags = ::fcntl(fd_.get(), F_GETFL);
	if (flags >= 0)
		::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
	int type = 0;
	socklen_t len = sizeof(type);
	isSocket_ = ::getsockopt(fd_.get(), SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

Result<std::size_t> FdStream::read(std::span<std::uint8_t> buf, int timeoutMs)
{
	for (;;) {
		const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
		if (n >= 0)
			return static_cast<std::size_t>(n);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "read", "guest connection");
		Result<short> ready = waitFor(fd_.get(), POLLIN, timeoutMs, "read");
		if (!ready)
			return ready.error();
		// POLLHUP/POLLERR: the next read() reports it (0 or an errno).
	}
}

Status FdStream::write(std::span<const std::uint8_t> buf, int timeoutMs)
{
	std::size_t done = 0;
	while (done < buf.size()) {
		const ssize_t n = isSocket_ ? ::send(fd_.get(), buf.data() + done, buf.size() - done,
						     MSG_NOSIGNAL)
					    : ::write(fd_.get(), buf.data() + done, buf.size() - done);
		if (n >= 0) {
			done += static_cast<std::size_t>(n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "write", "guest connection");
		Result<short> ready = waitFor(fd_.get(), POLLOUT, timeoutMs, "write");
		if (!ready)
			return ready.error();
	}
	return {};
}

} // namespace fr
