// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Strict validators shared by the helper and the client. Everything here
// refuses by default: a character set is an allow-list, an integer is decimal
// digits only. Each check returns an Error naming the argument (`what`), the
// offending value and what was expected; none of them allocates or throws.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shared/result.h"

namespace fr {

// A 256-bit allow-list of bytes.
class CharSet {
public:
	// Letters and digits (if `alnum`) plus every byte of `extra`.
	constexpr CharSet(bool alnum, std::string_view extra) noexcept : bits_{}
	{
		if (alnum) {
			for (unsigned c = '0'; c <= '9'; ++c)
				set(c);
			for (unsigned c = 'a'; c <= 'z'; ++c)
				set(c);
			for (unsigned c = 'A'; c <= 'Z'; ++c)
				set(c);
		}
		for (char c : extra)
			set(static_cast<unsigned char>(c));
	}

	constexpr bool contains(unsigned char c) const noexcept
	{
		return (bits_[c >> 6] >> (c & 63)) & 1U;
	}
	// Index of the first byte of `s` not in the set, or npos.
	constexpr std::size_t firstNotIn(std::string_view s) const noexcept
	{
		for (std::size_t i = 0; i < s.size(); ++i)
			if (!contains(static_cast<unsigned char>(s[i])))
				return i;
		return std::string_view::npos;
	}
	constexpr bool containsAll(std::string_view s) const noexcept
	{
		return firstNotIn(s) == std::string_view::npos;
	}

private:
	constexpr void set(unsigned c) noexcept { bits_[c >> 6] |= std::uint64_t{1} << (c & 63); }
	std::uint64_t bits_[4];
};

// VM names are systemd-escaped (shared/unit_name.h), so they hold only what
// the escaper emits: letters, digits, ':', '_', '.', '-' and the '\' of its
// "\xhh" escapes. No ',', '=', '/' or blank: a name travels as a file name
// component and inside QEMU's command line.
inline constexpr CharSet kVmNameChars{true, ":_.-\\"};
inline constexpr std::size_t kVmNameMax = 255;
// Paths that may reach a command line (the serial transport's socket):
// no comma, '=', quote, space or control character can pass.
inline constexpr CharSet kSafePathChars{true, "/_.-+@"};
inline constexpr CharSet kLowerHexChars{false, "0123456789abcdef"};
inline constexpr std::size_t kPathMax = 4095;

// Parses `text` as a decimal integer in [min, max]: ASCII digits only, no
// sign, no leading zero (except "0" itself), no blanks, no hex or octal, no
// overflow, no trailing junk. Error: EINVAL (not a number) or ERANGE (outside
// the range), naming `what` and the text.
Result<std::uint64_t> parseDecimal(std::string_view text, std::uint64_t min, std::uint64_t max,
				   const char *what) noexcept;

// Every byte of `text` in `allowed`, and 1 <= size <= maxLength.
// Error: EINVAL naming the first offending byte (as \xHH) or the length.
Status checkChars(std::string_view text, const CharSet &allowed, std::size_t maxLength,
		  const char *what) noexcept;

// A VM name: 1..255 bytes of kVmNameChars, not "." or "..".
Status checkVmName(std::string_view name, const char *what) noexcept;

// An absolute path: starts with '/', at most kPathMax bytes, no NUL, no
// control character (0x00-0x1f, 0x7f), no "." or ".." component and no empty
// component ("//"). The byte set beyond that is the caller's `allowed`.
Status checkAbsolutePath(std::string_view path, const CharSet &allowed, const char *what) noexcept;

// Bytes that may appear in a path the helper only ever opens (never passes on
// by name): everything but NUL and ASCII control characters.
bool isPathByte(unsigned char c) noexcept;
Status checkAbsolutePath(std::string_view path, const char *what) noexcept;

// Exactly `length` lowercase hexadecimal digits.
Status checkLowerHex(std::string_view text, std::size_t length, const char *what) noexcept;

} // namespace fr
