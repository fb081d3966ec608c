// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/ticket.h"

#include <sodium.h>

#include <cstdlib>

#include "client/encoding.h"
#include "shared/guest_abi.h"

namespace fr::client {

std::string newTicketHex()
{
	if (sodium_init() < 0)
		std::abort();
	unsigned char bytes[abi::kTicketBytes];
	randombytes_buf(bytes, sizeof(bytes));
	std::string hex = hexEncode(std::string_view(reinterpret_cast<const char *>(bytes), sizeof(bytes)));
	sodium_memzero(bytes, sizeof(bytes));
	return hex;
}

} // namespace fr::client
