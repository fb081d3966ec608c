// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// An in-memory ByteStream for the protocol fuzz targets. Reads hand out
// `input` in chunks whose sizes vary (next = next * multiplier % modulus + 1)
// so that every split of a frame gets exercised; writes are kept, up to a
// bound, and passed to onWrite(), where a target answers (a handshake).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "shared/byte_stream.h"

namespace fr::fuzz {

class ScriptedStream : public ByteStream {
public:
	ScriptedStream(std::size_t firstChunk, std::size_t multiplier, std::size_t modulus,
		       std::size_t keepWritten)
		: chunk_(firstChunk), multiplier_(multiplier), modulus_(modulus), keep_(keepWritten)
	{
	}

	std::vector<std::uint8_t> input;
	std::vector<std::uint8_t> written;

	Result<std::size_t> read(std::span<std::uint8_t> buf, int) override
	{
		if (pos_ >= input.size())
			return std::size_t{0};
		std::size_t n = input.size() - pos_;
		n = n < buf.size() ? n : buf.size();
		n = n < chunk_ ? n : chunk_;
		std::memcpy(buf.data(), input.data() + pos_, n);
		pos_ += n;
		chunk_ = chunk_ * multiplier_ % modulus_ + 1;
		return n;
	}

	Status write(std::span<const std::uint8_t> buf, int) override
	{
		if (written.size() < keep_)
			written.insert(written.end(), buf.begin(), buf.end());
		onWrite();
		return {};
	}

protected:
	virtual void onWrite() {}

private:
	std::size_t pos_ = 0;
	std::size_t chunk_;
	std::size_t multiplier_;
	std::size_t modulus_;
	std::size_t keep_;
};

} // namespace fr::fuzz
