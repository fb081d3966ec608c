// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/display.h"

#include <cstdint>
#include <cstdio>

namespace fr {

namespace {

// Decodes one well-formed UTF-8 sequence at `s[i]` (RFC 3629). Returns its
// length and code point, or 0 when the bytes there are not well-formed.
std::size_t decodeUtf8(std::string_view s, std::size_t i, std::uint32_t &cp) noexcept
{
	const auto b0 = static_cast<unsigned char>(s[i]);
	std::size_t len;
	std::uint32_t min;
	if (b0 < 0x80) {
		cp = b0;
		return 1;
	} else if ((b0 & 0xe0) == 0xc0) {
		len = 2;
		min = 0x80;
		cp = b0 & 0x1fU;
	} else if ((b0 & 0xf0) == 0xe0) {
		len = 3;
		min = 0x800;
		cp = b0 & 0x0fU;
	} else if ((b0 & 0xf8) == 0xf0) {
		len = 4;
		min = 0x10000;
		cp = b0 & 0x07U;
	} else {
		return 0;
	}
	if (s.size() - i < len)
		return 0;
	for (std::size_t k = 1; k < len; ++k) {
		const auto b = static_cast<unsigned char>(s[i + k]);
		if ((b & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (b & 0x3fU);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool isUnsafeCodePoint(std::uint32_t cp) noexcept
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
	       cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff;
}

} // namespace

std::string escapeForDisplay(std::string_view bytes)
{
	std::string out;
	out.reserve(bytes.size());
	char buf[16];
	for (std::size_t i = 0; i < bytes.size();) {
		std::uint32_t cp = 0;
		const std::size_t len = decodeUtf8(bytes, i, cp);
		if (len == 0) {
			(void)std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(bytes[i]));
			out += buf;
			i += 1;
			continue;
		}
		if (cp == '\\') {
			out += "\\\\";
		} else if (cp == '\n') {
			out += "\\n";
		} else if (cp == '\t') {
			out += "\\t";
		} else if (cp == '\r') {
			out += "\\r";
		} else if (isUnsafeCodePoint(cp)) {
			(void)std::snprintf(buf, sizeof(buf), "\\u{%04x}", static_cast<unsigned>(cp));
			out += buf;
		} else {
			out.append(bytes.substr(i, len));
		}
		i += len;
	}
	return out;
}

} // namespace fr
