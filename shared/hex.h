// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

namespace fr {

// The value of one hexadecimal digit, either case; -1 for anything else.
constexpr int hexValue(char c) noexcept
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

} // namespace fr
