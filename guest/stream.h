// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include "shared/byte_stream.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// A stream that takes bytes straight out of a pipe (splice(2)). On the
// virtio-serial port the kernel hands the pipe's pages to the host as they
// are (virtio_console's splice_write), so file contents spliced into the
// pipe reach QEMU without the guest copying them even once; under TCG every
// copy in the guest is emulated and was most of an extract's cost.
class PipeSink {
public:
	virtual ~PipeSink() = default;
	// Moves exactly n bytes from pipeFd (a pipe holding at least n bytes)
	// into the stream. Errors as ByteStream::write.
	virtual Status fromPipe(int pipeFd, std::size_t n, int timeoutMs) = 0;
};

// The daemon's end of a transport: a vsock connection or the virtio-serial
// port. Owns the fd (switched to O_NONBLOCK).
//
// Writes wait with poll(POLLOUT) and fail with EPIPE on POLLHUP/POLLERR:
// the host disconnected. On the serial port this matters most:
// virtio_console's write() blocks, with no error, until a host reconnects,
// and QEMU drops what the guest writes meanwhile. (Input arriving
// mid-response is handled by the protocol's flow control, Connection::admit.)
//
// The serial port's view of the host is asynchronous: virtio_console takes
// the host's data in its interrupt handler but the host's connect and
// disconnect events from a workqueue, so a new host's hello can be read
// while the port still says "no host" (POLLHUP, writes would block). A
// POLLHUP on a serial write is therefore believed only after it outlasted
// kHostEventGraceMs; before that the write waits for the port's state to
// change. (Answering a hello with EPIPE lost that host's handshake: it
// waited out its timeout.)
//
// Serial reads: while no host is connected, virtio_console reports
// POLLIN|POLLHUP continuously and read() returns 0. The first such read ends
// the conversation (returns 0); later ones wait for the port to signal a
// host event or data (SIGIO: the port is switched to O_ASYNC, owned by the
// serving thread, which blocks SIGIO and takes it with sigtimedwait), so a
// new host is answered at once and an idle guest does not poll.
class GuestStream final : public ByteStream, public PipeSink {
public:
	// serial: the virtio-serial port. Must be constructed on the thread
	// that then uses the stream (it receives the port's SIGIO).
	GuestStream(UniqueFd fd, bool serial);
	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override;
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override;
	Status fromPipe(int pipeFd, std::size_t n, int timeoutMs) override;

	// How long a serial write waits for a host that the port says is gone.
	static constexpr int kHostEventGraceMs = 2000;

private:
	// Waits for `events` like poll(), treating a serial POLLHUP as final
	// only after the grace period. Returns EPIPE (host gone), ETIMEDOUT.
	Status waitWritable(std::int64_t deadline, int timeoutMs);
	// Waits up to ms (< 0: long) for a SIGIO from the serial port, or
	// sleeps briefly where SIGIO is not available.
	void waitForPortEvent(int ms);

	UniqueFd fd_;
	bool serial_;
	bool hangupReported_ = false;
	bool portEvents_ = false; // SIGIO set up
};

} // namespace fr::guest
