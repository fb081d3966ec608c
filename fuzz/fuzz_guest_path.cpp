// SPDX-License-Identifier: AGPL-3.0-or-later
// The daemon's path splitting (guest/vpath.h): arbitrary bytes as a request
// path. What it accepts must never be able to leave a filesystem by name:
// every component is a valid name (no "", ".", ".."), and the split is
// canonical (joining the components gives the input, modulo one trailing
// '/'). Checked against independent slow definitions.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "guest/vpath.h"
#include "shared/protocol.h"

namespace {

bool slowValidName(std::string_view name)
{
	if (name.empty() || name.size() > 255 || name == "." || name == "..")
		return false;
	for (char c : name)
		if (c == '/' || c == '\0')
			return false;
	return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view input(reinterpret_cast<const char *>(data), size);
	const fr::Result<fr::guest::VirtualPath> vp = fr::guest::splitVirtualPath(input);
	const bool pathOk = static_cast<bool>(fr::proto::checkPath(input));
	if (pathOk != static_cast<bool>(vp))
		std::abort(); // accepted a path the protocol forbids, or refused one it allows
	if (!vp)
		return 0;
	for (std::string_view name : vp->components)
		if (!slowValidName(name))
			std::abort();
	const std::string rebuilt = "/" + fr::guest::joinComponents(vp->components, 0);
	std::string canonical(input);
	if (canonical.size() > 1 && canonical.back() == '/')
		canonical.pop_back();
	if (rebuilt != canonical)
		std::abort();
	std::uint32_t n = 0;
	if (!vp->components.empty() && fr::guest::parseVirtualNumber(vp->components[0], 4096, n)) {
		if (n > 4096 || std::to_string(n) != vp->components[0])
			std::abort(); // numbers are canonical decimal
	}
	return 0;
}
