// SPDX-License-Identifier: AGPL-3.0-or-later
// The qcow2 header check on arbitrary bytes. Whatever it accepts has no
// backing file, no external data file and only known incompatible features.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shared/qcow2.h"

namespace {

std::uint64_t be(const std::uint8_t *p, std::size_t width)
{
	std::uint64_t v = 0;
	for (std::size_t i = 0; i < width; ++i)
		v = (v << 8) | p[i];
	return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view area(reinterpret_cast<const char *>(data), size);
	if (!fr::checkQcow2Header(area, "fuzz"))
		return 0;
	if (size < 72 || be(data, 4) != 0x514649fb)
		std::abort();
	if (be(data + 8, 8) != 0 || be(data + 16, 4) != 0 || be(data + 32, 4) != 0)
		std::abort();
	const std::uint64_t version = be(data + 4, 4);
	if (version != 2 && version != 3)
		std::abort();
	if (version == 3 && (size < 104 || (be(data + 72, 8) & ~std::uint64_t{0x1b}) != 0))
		std::abort();
	return 0;
}
