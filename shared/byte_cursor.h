// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Sequential little-endian cursors over a byte buffer: a layout is written
// and read field by field, in order, never by hand-counted offsets. The
// guest protocol's codec (shared/protocol.h) is built on them.
//
// ByteWriter appends to a std::vector it does not own. ByteReader reads a
// span it does not own; reading past its end is not undefined behaviour: the
// read yields zeros, and overrun() is true from then on. Callers check
// overrun() (or remaining()) before trusting what they read.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace fr {

class ByteWriter {
public:
	explicit ByteWriter(std::vector<std::uint8_t> &out) noexcept : out_(out), start_(out.size()) {}

	void u8(std::uint8_t value) { out_.push_back(value); }
	void u16(std::uint16_t value) { little(value, 2); }
	void u32(std::uint32_t value) { little(value, 4); }
	void u64(std::uint64_t value) { little(value, 8); }
	void zeros(std::size_t n) { out_.resize(out_.size() + n, 0); }
	void bytes(std::span<const std::uint8_t> bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
	void bytes(std::string_view text)
	{
		bytes(std::span(reinterpret_cast<const std::uint8_t *>(text.data()), text.size()));
	}
	// Overwrites a u32 written earlier, at `offset` bytes from where this
	// writer started (a length known only once what it counts is written).
	void patch32(std::size_t offset, std::uint32_t value) noexcept
	{
		for (std::size_t i = 0; i < 4; ++i)
			out_[start_ + offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
	}
	// Bytes written through this writer.
	std::size_t written() const noexcept { return out_.size() - start_; }
	// The low n bytes of value (n <= 8), least significant first.
	void little(std::uint64_t value, std::size_t n)
	{
		for (std::size_t i = 0; i < n; ++i)
			out_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
	}

private:

	std::vector<std::uint8_t> &out_;
	std::size_t start_;
};

class ByteReader {
public:
	explicit ByteReader(std::span<const std::uint8_t> in) noexcept : in_(in) {}

	std::uint8_t u8() noexcept { return static_cast<std::uint8_t>(little(1)); }
	std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(little(2)); }
	std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(little(4)); }
	std::uint64_t u64() noexcept { return little(8); }
	// The next n bytes (empty, and overrun, when fewer are left).
	std::span<const std::uint8_t> bytes(std::size_t n) noexcept
	{
		if (!take(n))
			return {};
		return in_.subspan(pos_ - n, n);
	}
	// Consumes n bytes; true when all of them are zero.
	bool zeros(std::size_t n) noexcept
	{
		for (std::uint8_t b : bytes(n))
			if (b != 0)
				return false;
		return !overrun_;
	}

	// An n-byte (n <= 8) little-endian unsigned integer.
	std::uint64_t little(std::size_t n) noexcept
	{
		std::uint64_t value = 0;
		const std::span<const std::uint8_t> b = bytes(n);
		for (std::size_t i = 0; i < b.size(); ++i)
			value |= static_cast<std::uint64_t>(b[i]) << (8 * i);
		return value;
	}

	std::size_t remaining() const noexcept { return in_.size() - pos_; }
	bool overrun() const noexcept { return overrun_; }

private:
	bool take(std::size_t n) noexcept
	{
		if (overrun_ || n > remaining()) {
			overrun_ = true;
			return false;
		}
		pos_ += n;
		return true;
	}

	std::span<const std::uint8_t> in_;
	std::size_t pos_ = 0;
	bool overrun_ = false;
};

} // namespace fr
