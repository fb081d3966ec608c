// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The client's private directory: $XDG_RUNTIME_DIR/file-restore (0700, ours).
// It holds the state map, the per-VM locks, serial sockets and VM logs, and
// the journal of extractions in progress.

#include <string>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

struct RuntimeDir {
	// Absolute path of .../file-restore.
	std::string path;
	// O_DIRECTORY fd of it; every file inside is reached through this fd.
	UniqueFd fd;
};

// Resolves the base directory: $XDG_RUNTIME_DIR if set (it must be an
// absolute path of a directory owned by the effective uid, not writable by
// group or others), else /run/user/<euid> under the same conditions, else
// ENOENT with a message saying what to set. `xdgRuntimeDir` is the
// environment's value (nullptr when unset).
Result<std::string> runtimeBase(const char *xdgRuntimeDir);

// Opens (creating it 0700 if needed) "<base>/file-restore": a real directory
// (no symlink), owned by the effective uid, mode 0700 exactly (a wider mode
// is narrowed; another owner is refused with EPERM).
Result<RuntimeDir> openRuntimeDir(const std::string &base);

} // namespace fr::client
