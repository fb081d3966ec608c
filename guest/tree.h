// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's answers: the virtual tree (vpath.h) over the Volumes, the
// idle timer, the status.

#include <sys/stat.h>

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
	Result<std::uint64_t> unlock(std::string_view key) override;
	Status stat(std::string_view path, Responder &out) override;
	Status read(const proto::ReadRequest &request, Responder &out) override;
	Status xattrs(std::string_view path, Responder &out) override;

private:
	// The object at a path inside a filesystem, opened O_PATH (the
	// filesystem's root for an empty rest), and its stat.
	struct Object {
		UniqueFd fd;
		struct stat st {};
	};
	Result<Object> openObject(const Resolved &resolved);
	// A request's path, split and resolved to its volume.
	struct Located {
		VirtualPath vp;
		Resolved resolved;
	};
	Result<Located> locate(std::string_view path);
	Status listFilesystem(int root, const std::string &rest, const std::string &lastName, Responder &out);

	Volumes &volumes_;
	Activity &activity_;
};

} // namespace fr::guest
