// SPDX-License-Identifier: AGPL-3.0-or-later
// The vdi header check (shared/image_check.h) on arbitrary bytes, read the way
// the helper reads an image fd (at offsets, short at the end).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "shared/image_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view bytes(reinterpret_cast<const char *>(data), size);
	const fr::Status ok = fr::checkVdiHeader(fr::bytesReader(bytes), "fuzz");
	if (!ok)
		return 0;
	// Accepted: the VDI signature and a normal or fixed image, never a
	// differencing or undo one.
	if (size < 0x50 || data[0x40] != 0x7f || data[0x41] != 0x10 || data[0x42] != 0xda || data[0x43] != 0xbe)
		std::abort();
	if (data[0x4c] != 1 && data[0x4c] != 2)
		std::abort();
	return 0;
}
