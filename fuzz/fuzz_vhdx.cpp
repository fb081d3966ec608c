// SPDX-License-Identifier: AGPL-3.0-or-later
// The vhdx header check (shared/image_check.h) on arbitrary bytes, read the way
// the helper reads an image fd (at offsets, short at the end).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "shared/image_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view bytes(reinterpret_cast<const char *>(data), size);
	const fr::Status ok = fr::checkVhdxHeader(fr::bytesReader(bytes), "fuzz");
	if (!ok)
		return 0;
	// Accepted: the file identifier and a region table were there.
	if (size < 192 * 1024 + 16 || std::memcmp(data, "vhdxfile", 8) != 0 ||
	    std::memcmp(data + 192 * 1024, "regi", 4) != 0)
		std::abort();
	return 0;
}
