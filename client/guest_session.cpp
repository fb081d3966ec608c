// SPDX-License-Identifier: AGPL-3.0-or-later
// TEMPORARY until the guest protocol (issue 4) lands in shared/: every
// session fails with ENOSYS.
#include "client/guest_session.h"

#include <cerrno>

namespace fr::client {

namespace {

class UnavailableFactory final : public SessionFactory {
public:
	Result<std::unique_ptr<GuestSession>> open(UniqueFd, std::string_view) override
	{
		return Error::invalid(ENOSYS, "guest protocol", "", "not built yet");
	}
};

} // namespace

std::unique_ptr<SessionFactory> makeProtocolSessionFactory()
{
	return std::make_unique<UnavailableFactory>();
}

} // namespace fr::client
