// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/unit_name.h"

#include "shared/hex.h"
#include "shared/validate.h"

namespace fr {

namespace {

// systemd's VALID_CHARS minus '-' and '\', which it always escapes.
constexpr CharSet kKept{true, ":_."};

void appendEscaped(std::string &out, unsigned char c)
{
	static constexpr char kHex[] = "0123456789abcdef";
	out += '\\';
	out += 'x';
	out += kHex[c >> 4];
	out += kHex[c & 15];
}

} // namespace

std::string escapeUnitName(std::string_view text)
{
	std::string out;
	out.reserve(text.size() * 4);
	std::size_t i = 0;
	// Never start a unit name with '.' (hidden files, "/.dotdir" mounts).
	if (!text.empty() && text.front() == '.') {
		appendEscaped(out, '.');
		i = 1;
	}
	for (; i < text.size(); ++i) {
		const auto c = static_cast<unsigned char>(text[i]);
		if (c == '/')
			out += '-';
		else if (kKept.contains(c))
			out += static_cast<char>(c);
		else
			appendEscaped(out, c);
	}
	return out;
}

std::optional<std::string> unescapeUnitName(std::string_view name)
{
	std::string out;
	out.reserve(name.size());
	for (std::size_t i = 0; i < name.size(); ++i) {
		const char c = name[i];
		if (c == '-') {
			out += '/';
		} else if (c == '\\') {
			if (name.size() - i < 4 || name[i + 1] != 'x')
				return std::nullopt;
			const int hi = hexValue(name[i + 2]);
			const int lo = hexValue(name[i + 3]);
			if (hi < 0 || lo < 0)
				return std::nullopt;
			out += static_cast<char>((hi << 4) | lo);
			i += 3;
		} else {
			out += c;
		}
	}
	return out;
}

} // namespace fr
