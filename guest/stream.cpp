// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/stream.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "shared/clock.h"
#include "shared/log.h"

namespace fr::guest {

namespace {

// Where SIGIO cannot be set up: how often a serial read polls for a host.
constexpr int kHangupPollMs = 20;
// The longest wait for a port event before looking again anyway: a safety
// net, the port signals every event.
constexpr int kPortEventMaxWaitMs = 1000;
// virtio_console queues each non-blocking write() as one buffer in a
// 128-entry virtqueue, in guest kernel memory, whatever its size: with
// 256 KiB writes a host that reads slowly has ~30 MiB of a 128 MiB guest
// pinned, and an extract "finishes" long before the host has its bytes.
// 32 KiB writes bound that to 4 MiB. (Spliced data is bounded by the
// protocol's flow-control window instead.)
constexpr std::size_t kSerialWriteMax = std::size_t{32} * 1024;

extern "C" void ignoreSignal(int) {}

sigset_t sigioSet() noexcept
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	return set;
}

// Switches the port to O_ASYNC with this thread as the owner of its SIGIO,
// and blocks SIGIO here so that it stays pending for sigtimedwait. (A
// handler is installed too: a SIGIO that reached another thread must not
// take its default action.)
bool enablePortEvents(int fd) noexcept
{
	const sigset_t set = sigioSet();
	if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
		return false;
	struct sigaction action {};
	action.sa_handler = ignoreSignal;
	action.sa_flags = SA_RESTART;
	sigemptyset(&action.sa_mask);
	if (::sigaction(SIGIO, &action, nullptr) != 0)
		return false;
	f_owner_ex owner{F_OWNER_TID, ::gettid()};
	if (::fcntl(fd, F_SETOWN_EX, &owner) != 0)
		return false;
	const int flags = ::fcntl(fd, F_GETFL);
	return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_ASYNC) == 0;
}

} // namespace

GuestStream::GuestStream(UniqueFd fd, bool serial) : fd_(std::move(fd)), serial_(serial)
{
	const int flags = ::fcntl(fd_.get(), F_GETFL);
	if (flags >= 0)
		::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
	if (serial_) {
		portEvents_ = enablePortEvents(fd_.get());
		if (!portEvents_)
			logf(LogLevel::Warning, "serial port: no SIGIO (errno %d); polling for hosts", errno);
	}
}

void GuestStream::waitForPortEvent(int ms)
{
	if (ms < 0 || ms > kPortEventMaxWaitMs)
		ms = kPortEventMaxWaitMs;
	if (!portEvents_) {
		::usleep(static_cast<useconds_t>(ms < kHangupPollMs ? ms : kHangupPollMs) * 1000);
		return;
	}
	const sigset_t set = sigioSet();
	const timespec wait{ms / 1000, static_cast<long>(ms % 1000) * 1000000};
	// Returns early on SIGIO (pending since the last wait, or new), EINTR,
	// or after `ms`: the caller looks at the port again in every case.
	(void)::sigtimedwait(&set, nullptr, &wait);
}

Result<std::size_t> GuestStream::read(std::span<std::uint8_t> buf, int timeoutMs)
{
	const std::int64_t deadline = monotonicMs() + timeoutMs;
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
			// No host on the serial port: wait for one (poll would
			// return POLLHUP at once).
			const int wait = msLeft(deadline, timeoutMs);
			if (wait == 0)
				return Error::invalid(ETIMEDOUT, "read", "host", "no host connected");
			waitForPortEvent(wait);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "read", serial_ ? "serial port" : "vsock connection");
		pollfd p{fd_.get(), POLLIN, 0};
		const int wait = msLeft(deadline, timeoutMs);
		const int r = ::poll(&p, 1, wait);
		if (r < 0 && errno != EINTR)
			return Error(errno, "poll", "host connection");
		if (r == 0)
			return Error::invalid(ETIMEDOUT, "read", "host", "no request within %d ms", timeoutMs);
	}
}

Status GuestStream::waitWritable(std::int64_t deadline, int timeoutMs)
{
	std::int64_t hangupSince = -1;
	for (;;) {
		// Input mid-response is the flow control's business
		// (Connection::admit), not a reason to stop writing here.
		pollfd p{fd_.get(), POLLOUT, 0};
		const int r = ::poll(&p, 1, msLeft(deadline, timeoutMs));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "poll", "host connection");
		}
		if (r == 0)
			return Error::invalid(ETIMEDOUT, "write", "host", "host reads nothing for %d ms",
					      timeoutMs);
		if ((p.revents & (POLLHUP | POLLERR)) == 0)
			return {};
		if (!serial_)
			return Error(EPIPE, "write", "host disconnected");
		// The port says no host; a host that just connected may not have
		// been announced yet (see stream.h). Believe it after the grace.
		const std::int64_t now = monotonicMs();
		if (hangupSince < 0)
			hangupSince = now;
		const std::int64_t graceLeft = hangupSince + kHostEventGraceMs - now;
		if (graceLeft <= 0)
			return Error(EPIPE, "write", "host disconnected");
		int wait = static_cast<int>(graceLeft);
		const int left = msLeft(deadline, timeoutMs);
		if (left == 0)
			return Error::invalid(ETIMEDOUT, "write", "host", "host reads nothing for %d ms",
					      timeoutMs);
		if (left > 0 && left < wait)
			wait = left;
		waitForPortEvent(wait);
	}
}

Status GuestStream::write(std::span<const std::uint8_t> buf, int timeoutMs)
{
	const std::int64_t deadline = monotonicMs() + timeoutMs;
	std::size_t done = 0;
	while (done < buf.size()) {
		if (Status ok = waitWritable(deadline, timeoutMs); !ok)
			return ok;
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

Status GuestStream::fromPipe(int pipeFd, std::size_t n, int timeoutMs)
{
	const std::int64_t deadline = monotonicMs() + timeoutMs;
	std::size_t left = n;
	while (left > 0) {
		if (Status ok = waitWritable(deadline, timeoutMs); !ok)
			return ok;
		// SPLICE_F_NONBLOCK is about the pipe (it holds the bytes
		// already); the stream side is O_NONBLOCK.
		const ssize_t moved = ::splice(pipeFd, nullptr, fd_.get(), nullptr, left,
					       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (moved > 0) {
			left -= static_cast<std::size_t>(moved);
			continue;
		}
		if (moved == 0)
			return Error::invalid(EIO, "splice", "pipe", "%zu bytes missing", left);
		if (errno == EINTR || errno == EAGAIN)
			continue;
		if (errno != EINVAL)
			return Error(errno, "splice", serial_ ? "serial port" : "vsock connection");
		// A stream without splice support: copy through a buffer.
		std::vector<std::uint8_t> buf(left < kSerialWriteMax ? left : kSerialWriteMax);
		while (left > 0) {
			const std::size_t want = left < buf.size() ? left : buf.size();
			const ssize_t got = ::read(pipeFd, buf.data(), want);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return got == 0 ? Error::invalid(EIO, "read", "pipe", "%zu bytes missing", left)
						: Error(errno, "read", "pipe");
			if (Status ok = write(std::span(buf.data(), static_cast<std::size_t>(got)), timeoutMs); !ok)
				return ok;
			left -= static_cast<std::size_t>(got);
		}
	}
	return {};
}

} // namespace fr::guest
