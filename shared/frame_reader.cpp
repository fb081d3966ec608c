// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/frame_reader.h"

#include <cerrno>
#include <cstring>

namespace fr {

namespace {

// The end of the stream: the peer closed its end.
Error streamEnded(proto::Direction incoming)
{
	return Error(ECONNRESET, "read",
		     incoming == proto::Direction::ToHost ? "guest connection closed"
							  : "host connection closed");
}

} // namespace

Status FrameReader::fill(std::size_t want, int timeoutMs)
{
	if (pos_ == in_.size()) {
		in_.clear();
		pos_ = 0;
	}
	while (in_.size() - pos_ < want) {
		if (pos_ > 0) { // compact before growing
			in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos_));
			pos_ = 0;
		}
		const std::size_t at = in_.size();
		in_.resize(at + readChunk_);
		Result<std::size_t> n = stream_.read(std::span(in_.data() + at, readChunk_), timeoutMs);
		in_.resize(at + (n ? *n : 0));
		if (!n)
			return n.error();
		if (*n == 0)
			return streamEnded(incoming_);
	}
	return {};
}

bool FrameReader::seek(const std::array<std::uint8_t, proto::kMagicSize> &magic, std::size_t size) noexcept
{
	pos_ += proto::scanForMagic(buffered(), magic);
	return buffered().size() >= size;
}

Result<proto::FrameHeader> FrameReader::peekHeader() const noexcept
{
	return proto::decodeFrameHeader(buffered().first<proto::kFrameHeaderSize>(), incoming_);
}

Result<FrameReader::Frame> FrameReader::next(int timeoutMs)
{
	if (Status ok = fill(proto::kFrameHeaderSize, timeoutMs); !ok)
		return ok.error();
	const Result<proto::FrameHeader> header = peekHeader();
	if (!header)
		return header.error();
	consume(proto::kFrameHeaderSize);
	// The length is now within the type's cap (at most 4 MiB).
	if (Status ok = readBody(header->length, timeoutMs); !ok)
		return ok.error();
	return Frame{header->type, std::span<const std::uint8_t>(body_)};
}

Status FrameReader::readBody(std::size_t length, int timeoutMs)
{
	body_.resize(length);
	std::uint8_t *dst = body_.data();
	std::size_t left = length;
	const std::size_t have = std::min(buffered().size(), left);
	if (have > 0) {
		std::memcpy(dst, buffered().data(), have);
		consume(have);
		dst += have;
		left -= have;
	}
	while (left >= readChunk_) { // large bodies: straight into place
		Result<std::size_t> got = stream_.read(std::span(dst, left), timeoutMs);
		if (!got)
			return got.error();
		if (*got == 0)
			return streamEnded(incoming_);
		dst += *got;
		left -= *got;
	}
	if (left > 0) {
		if (Status ok = fill(left, timeoutMs); !ok)
			return ok;
		std::memcpy(dst, buffered().data(), left);
		consume(left);
	}
	return {};
}

} // namespace fr
