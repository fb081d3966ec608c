// SPDX-License-Identifier: AGPL-3.0-or-later
// Drives the systemd unit-name unescaper (VM names read back from the state
// map and from completion) and checks the escape/unescape round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shared/unit_name.h"
#include "shared/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view input(reinterpret_cast<const char *>(data), size);
	const std::optional<std::string> unescaped = fr::unescapeUnitName(input);
	const std::string escaped = fr::escapeUnitName(input);
	// Escaping always yields a valid name's bytes and round-trips exactly.
	if (!(escaped.empty() || fr::kVmNameChars.containsAll(escaped)))
		std::abort();
	const std::optional<std::string> back = fr::unescapeUnitName(escaped);
	if (!back || *back != input)
		std::abort();
	// Unescaping never grows the text.
	if (unescaped && unescaped->size() > input.size())
		std::abort();
	return 0;
}
