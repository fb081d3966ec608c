// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The real SessionFactory: VmSession over the guest protocol session from
// shared/ (shared/guest_session.h).

#include <memory>

#include "client/session.h"

namespace fr::client {

std::unique_ptr<SessionFactory> makeProtocolSessionFactory();

} // namespace fr::client
