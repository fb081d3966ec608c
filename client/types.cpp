// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/types.h"

namespace fr::client {

std::optional<TransportChoice> parseTransportChoice(std::string_view name) noexcept
{
	if (name == "auto")
		return TransportChoice::Auto;
	if (name == "serial")
		return TransportChoice::Serial;
	if (name == "vsock")
		return TransportChoice::Vsock;
	return std::nullopt;
}

} // namespace fr::client
