// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include <string>

namespace fr::client {

// A fresh per-VM ticket: abi::kTicketBytes bytes from libsodium's CSPRNG
// (getrandom underneath) as abi::kTicketHexLength lowercase hex digits.
std::string newTicketHex();

} // namespace fr::client
