// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A bidirectional byte stream with timeouts: what both ends of the guest
// protocol read frames from (shared/frame_reader.h) and write frames to.
// FdStream is the host's, over a connected socket; the daemon has its own
// (guest/stream.h, the vsock connection or the virtio-serial port); tests
// and fuzz targets substitute in-memory streams.

#include <cstddef>
#include <cstdint>
#include <span>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr {

class ByteStream {
public:
	virtual ~ByteStream() = default;
	// Reads 1..buf.size() bytes, waiting at most timeoutMs for the first
	// (< 0: no limit; 0: only what is there already). Returns 0 at the end
	// of the stream; ETIMEDOUT after the wait.
	virtual Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) = 0;
	// Writes all of buf, waiting at most timeoutMs (< 0: no limit) each time
	// the stream blocks. ETIMEDOUT, EPIPE, ...
	virtual Status write(std::span<const std::uint8_t> buf, int timeoutMs) = 0;
};

// A ByteStream over a connected socket (or any fd that poll() works on).
// Owns the fd. Switches it to O_NONBLOCK. Writes to a socket use
// MSG_NOSIGNAL, so a vanished peer is EPIPE, not SIGPIPE. Errors name the
// object "guest connection".
class FdStream final : public ByteStream {
public:
	explicit FdStream(UniqueFd fd);
	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override;
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override;
	int fd() const noexcept { return fd_.get(); }

private:
	UniqueFd fd_;
	bool isSocket_ = true;
};

// Waits for `events` on fd (not owned) for at most timeoutMs (< 0: no
// limit), restarting after EINTR with the time left. Returns the revents;
// ETIMEDOUT (object "guest", reason naming timeoutMs) when nothing happened;
// poll's errno otherwise. `what` names the wait in errors.
Result<short> waitFor(int fd, short events, int timeoutMs, const char *what) noexcept;

} // namespace fr
