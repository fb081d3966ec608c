// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The state map on disk: <runtime dir>/vm-map.json (0600, ours), read and
// written only under an exclusive flock of <runtime dir>/vm-map.lock with a
// deadline, replaced atomically (write a temporary file, fsync, rename).
// A map that does not parse is never emptied silently: it is renamed to
// vm-map.json.corrupt-<UTC timestamp> and reported to the caller, who then
// deals with the VMs it may have listed.

#include <functional>
#include <optional>
#include <string>

#include "client/state_map.h"
#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

inline constexpr const char *kStateMapFile = "vm-map.json";
inline constexpr const char *kStateLockFile = "vm-map.lock";

struct CorruptMap {
	// Where the unreadable map was kept ("<dir>/vm-map.json.corrupt-...").
	std::string keptAs;
	// Why it did not parse.
	std::string reason;
};

class StateStore {
public:
	// `dirFd` (borrowed: it must outlive the store) and `dirPath` name the
	// runtime directory.
	StateStore(int dirFd, std::string dirPath) : dirFd_(dirFd), dirPath_(std::move(dirPath)) {}

	// Called with the map under the lock; sets `changed` to have it
	// written back. An error returned from `change` is returned unchanged
	// and nothing is written.
	using Change = std::function<Status(StateMap &map, bool &changed)>;

	// Loads (an absent file is an empty map), applies `change`, writes
	// back if asked. A corrupt map is set aside first and reported through
	// `corrupt` (the change then sees an empty map).
	Status update(Deadline deadline, const Change &change, std::optional<CorruptMap> &corrupt);

	// A consistent copy of the map (taken under the lock).
	Result<StateMap> read(Deadline deadline, std::optional<CorruptMap> &corrupt);

	int dirFd() const { return dirFd_; }

private:
	Result<StateMap> load(std::optional<CorruptMap> &corrupt);
	Status store(const StateMap &map);

	int dirFd_;
	std::string dirPath_;
};

} // namespace fr::client
