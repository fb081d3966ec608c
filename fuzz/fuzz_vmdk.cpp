// SPDX-License-Identifier: AGPL-3.0-or-later
// The vmdk header check (shared/image_check.h) on arbitrary bytes, read the way
// the helper reads an image fd (at offsets, short at the end).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "shared/image_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view bytes(reinterpret_cast<const char *>(data), size);
	const fr::Status ok = fr::checkVmdkHeader(fr::bytesReader(bytes), "fuzz");
	if (!ok)
		return 0;
	// Accepted: a binary sparse extent ("KDMV") of non-zero capacity that
	// names no parent: nothing QEMU would open by name.
	if (size < 80 || std::memcmp(data, "KDMV", 4) != 0)
		std::abort();
	bool zero = true;
	for (int i = 12; i < 20; ++i)
		zero = zero && data[i] == 0;
	if (zero)
		std::abort();
	return 0;
}
