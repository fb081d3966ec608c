// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The real SessionFactory: the guest protocol session from shared/.

#include <memory>

#include "client/session.h"

namespace fr::client {

std::unique_ptr<SessionFactory> makeProtocolSessionFactory();

} // namespace fr::client
