// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's answers: the virtual tree (vpath.h) over the Volumes, the
// idle timer, the status.

#include "guest/activity.h"
#include "guest/server.h"
#include "guest/volumes.h"
#include "guest/vpath.h"

namespace fr::guest {

class TreeHandler final : public RequestHandler {
public:
	// `stopHook` runs (on the connection's thread) after a Stop request was
	// acknowledged; the main loop powers off.
	TreeHandler(Volumes &volumes, Activity &activity) : volumes_(volumes), activity_(activity) {}

	proto::StatusInfo status(bool keepTimeout) override;
	void stop() override;
	Status list(std::string_view path, Responder &out) override;
	Status extract(const proto::ExtractRequest &request, Responder &out) override;

private:
	Status listFilesystem(int root, const std::string &rest, const std::string &lastName, Responder &out);

	Volumes &volumes_;
	Activity &activity_;
};

} // namespace fr::guest
