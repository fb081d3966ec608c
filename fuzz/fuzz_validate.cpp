// SPDX-License-Identifier: AGPL-3.0-or-later
// Drives the strict integer and string validators with arbitrary bytes and
// checks what they accept against an independent slow definition.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shared/validate.h"

namespace {

bool slowIsDecimal(std::string_view s)
{
	if (s.empty() || (s.size() > 1 && s[0] == '0'))
		return false;
	for (char c : s)
		if (c < '0' || c > '9')
			return false;
	return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view input(reinterpret_cast<const char *>(data), size);

	const fr::Result<std::uint64_t> any = fr::parseDecimal(input, 0, UINT64_MAX, "n");
	if (any) {
		if (!slowIsDecimal(input) || std::to_string(*any) != input)
			std::abort();
	} else if (slowIsDecimal(input) && input.size() < 20) {
		std::abort(); // a plain number below 10^19 always fits
	}
	const fr::Result<std::uint64_t> ranged = fr::parseDecimal(input, 10, 1000, "n");
	if (ranged && (*ranged < 10 || *ranged > 1000))
		std::abort();

	if (fr::checkVmName(input, "--name")) {
		if (input.empty() || input.size() > fr::kVmNameMax)
			std::abort();
		for (char c : input)
			if (c == ',' || c == '=' || c == '/' || c == ' ' || static_cast<unsigned char>(c) < 0x20)
				std::abort();
	}
	const bool safePath = static_cast<bool>(fr::checkAbsolutePath(input, fr::kSafePathChars, "p"));
	const bool anyPath = static_cast<bool>(fr::checkAbsolutePath(input, "p"));
	if (safePath && !anyPath)
		std::abort(); // the safe charset is a subset of path bytes
	if (anyPath) {
		if (input.empty() || input[0] != '/' || input.find("/../") != std::string_view::npos ||
		    input.find("//") != std::string_view::npos || input.find('\0') != std::string_view::npos)
			std::abort();
	}
	if (fr::checkLowerHex(input, 64, "ticket") && input.size() != 64)
		std::abort();
	return 0;
}
