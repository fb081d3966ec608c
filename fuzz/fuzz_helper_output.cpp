// SPDX-License-Identifier: AGPL-3.0-or-later
// Drives the parser of the helper's {"pid":N,"cid":M} line
// (client/helper_output.h) for both transports: the pid it yields is later
// signalled (after verification), so nothing out of range may pass.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "client/helper_output.h"
#include "shared/guest_abi.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view text(reinterpret_cast<const char *>(data), size);
	for (fr::client::Transport transport : {fr::client::Transport::Serial, fr::client::Transport::Vsock}) {
		fr::Result<fr::client::HelperOutput> out = fr::client::parseHelperOutput(text, transport);
		if (!out)
			continue;
		if (out->pid < 2 || out->pid > fr::client::kPidMax)
			std::abort();
		if (transport == fr::client::Transport::Serial && out->cid)
			std::abort();
		if (transport == fr::client::Transport::Vsock &&
		    (!out->cid || *out->cid < fr::abi::kMinCid || *out->cid == 0xffffffffU))
			std::abort();
		if (text.empty() || text.back() != '\n' || text.size() > fr::client::kHelperOutputMax)
			std::abort();
	}
	return 0;
}
