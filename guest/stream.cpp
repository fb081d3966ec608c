// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/stream.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace fr::guest {

namespace {

constexpr int kHangupPollMs = 20;
// virtio_console queues each non-blocking write() as one buffer in a
// 128-entry virtqueue, in guest kernel memory, whatever its size: with
// 256 KiB writes a host that reads slowly has ~30 MiB of a 128 MiB guest
// pinned, and an extract "finishes" long before the host has its bytes.
// 32 KiB writes bound that to 4 MiB.
constexpr std::size_t kSerialWriteMax = std::size_t{32} * 1024;

std::int64_t nowMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int leftMs(std::int64_t deadline, int timeoutMs) noexcept
{
	if (timeoutMs < 0)
		return -1;
	const std::int64_t left = deadline - nowMs();
	return left > 0 ? static_cast<int>(left) : 0;
}

} // namespace

GuestStream::GuestStream(UniqueFd fd, bool serial) : fd_(std::move(fd)), serial_(serial)
{
	const int flags = ::fcntl(fd_.get(), F_GETFL);
	if (flags >= 0)
		::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
}

Result<std::size_t> GuestStream::read(std::span<std::uint8_t> buf, int timeoutMs)
{
	const std::int64_t deadline = nowMs() + timeoutMs;
	for (;;) {
		const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
		if (n > 0) {
			hangupReported_ = false;
			return static_cast<std::size_t>(n);
		}
		if (n == 0) {
			if (!serial_ || !hangupReported_) {
				hangupReported_ = true;
				return std::size_t{0};
			}
			// No host on the serial port: wait for one without
			// spinning (poll would return POLLHUP at once).
			const int wait = leftMs(deadline, timeoutMs);
			if (wait == 0)
				return Error::invalid(ETIMEDOUT, "read", "host", "no host connected");
			::usleep(static_cast<useconds_t>(kHangupPollMs) * 1000);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "read", serial_ ? "serial port" : "vsock connection");
		pollfd p{fd_.get(), POLLIN, 0};
		const int wait = leftMs(deadline, timeoutMs);
		const int r = ::poll(&p, 1, wait);
		if (r < 0 && errno != EINTR)
			return Error(errno, "poll", "host connection");
		if (r == 0)
			return Error::invalid(ETIMEDOUT, "read", "host", "no request within %d ms", timeoutMs);
	}
}

Status GuestStream::write(std::span<const std::uint8_t> buf, int timeoutMs)
{
	const std::int64_t deadline = nowMs() + timeoutMs;
	std::size_t done = 0;
	while (done < buf.size()) {
		// Input mid-response is the flow control's business
		// (Connection::admit), not a reason to stop writing here.
		pollfd p{fd_.get(), POLLOUT, 0};
		const int r = ::poll(&p, 1, leftMs(deadline, timeoutMs));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "poll", "host connection");
		}
		if (r == 0)
			return Error::invalid(ETIMEDOUT, "write", "host", "host reads nothing for %d ms",
					      timeoutMs);
		if (p.revents & (POLLHUP | POLLERR))
			return Error(EPIPE, "write", "host disconnected");
		// send(MSG_NOSIGNAL) on sockets: a vanished peer is EPIPE, not a
		// SIGPIPE (the serial port is a character device: plain write).
		const std::size_t chunk = buf.size() - done;
		const ssize_t n = serial_ ? ::write(fd_.get(), buf.data() + done,
						    chunk < kSerialWriteMax ? chunk : kSerialWriteMax)
					  : ::send(fd_.get(), buf.data() + done, chunk, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return Error(errno, "write", serial_ ? "serial port" : "vsock connection");
		}
		done += static_cast<std::size_t>(n);
	}
	return {};
}

} // namespace fr::guest
