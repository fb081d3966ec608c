// SPDX-License-Identifier: AGPL-3.0-or-later
// Drives the state-map parser (client/state_map.h). The map lives in the
// user's private runtime directory, but a corrupt or hand-edited one must
// never crash the client or yield a record that breaks the map's rules:
// whatever parses must serialise and parse back to the same map.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "client/state_map.h"
#include "shared/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view text(reinterpret_cast<const char *>(data), size);
	fr::Result<fr::client::StateMap> map = fr::client::parseStateMap(text);
	if (!map)
		return 0;
	for (const fr::client::VmRecord &vm : map->vms) {
		if (!fr::checkVmName(vm.name, "name") || vm.pid < 2 || vm.archives.empty() ||
		    vm.ticket.size() != 64)
			std::abort();
		if ((vm.transport == fr::client::Transport::Vsock) != vm.cid.has_value())
			std::abort();
	}
	fr::Result<fr::client::StateMap> again =
		fr::client::parseStateMap(fr::client::serializeStateMap(*map));
	if (!again || again->vms != map->vms)
		std::abort();
	return 0;
}
