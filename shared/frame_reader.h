// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Reads the guest protocol off a ByteStream, for both ends: the host's
// session (shared/guest_session.h) and the daemon's connection
// (guest/server.h). One buffer, the hello scan, and whole frames whose
// header is checked against the frame table (shared/protocol.h) before the
// body is read: a body is never allocated beyond its type's cap (4 MiB).
//
// Not thread-safe. The reader does not own the stream.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "shared/byte_stream.h"
#include "shared/protocol.h"
#include "shared/result.h"

namespace fr {

class FrameReader {
public:
	struct Frame {
		proto::FrameType type;
		std::span<const std::uint8_t> body; // valid until the next next()
	};

	// incoming: the end this reader serves (it accepts the other end's
	// frame types). readChunk: the most one read() asks the stream for; a
	// body at least this large is read straight into place.
	FrameReader(ByteStream &stream, proto::Direction incoming, std::size_t readChunk) noexcept
		: stream_(stream), incoming_(incoming), readChunk_(readChunk)
	{
	}

	// What has been read and not consumed yet.
	std::span<const std::uint8_t> buffered() const noexcept
	{
		return std::span(in_).subspan(pos_);
	}
	void consume(std::size_t n) noexcept { pos_ += n; }

	// Reads until at least `want` bytes are buffered, each read waiting at
	// most timeoutMs (< 0: no limit, 0: only what has arrived). Errors: the
	// stream's (ETIMEDOUT: nothing arrived in time), ECONNRESET at the end
	// of the stream.
	Status fill(std::size_t want, int timeoutMs);

	// Discards the buffered bytes before the first occurrence of `magic`
	// (keeping a partial one at the end of the buffer). True when `size`
	// bytes that start with the magic are buffered: a whole hello.
	bool seek(const std::array<std::uint8_t, proto::kMagicSize> &magic, std::size_t size) noexcept;

	// The frame header at the head of the buffer, checked (type, reserved
	// bytes, length within its row). kFrameHeaderSize bytes must be
	// buffered.
	Result<proto::FrameHeader> peekHeader() const noexcept;

	// Reads one whole frame. Errors: those of fill() and of peekHeader()
	// (EPROTO, EMSGSIZE), after which the stream is out of step.
	Result<Frame> next(int timeoutMs);

private:
	Status readBody(std::size_t length, int timeoutMs);

	ByteStream &stream_;
	proto::Direction incoming_;
	std::size_t readChunk_;
	std::vector<std::uint8_t> in_; // in_[pos_..] is unread
	std::size_t pos_ = 0;
	std::vector<std::uint8_t> body_; // the last frame's body
};

} // namespace fr
