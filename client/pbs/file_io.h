// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Reading datastore files: relative to a directory fd, never following a
// symlink, regular files only, sizes bounded before anything is allocated.

#include <cstddef>
#include <string>

#include "client/pbs/crypto.h"
#include "shared/result.h"

namespace fr::pbs {

// Reads all of `name` under `dirFd` (O_NOFOLLOW). ENOENT when it does not
// exist, EFBIG when larger than `maxSize`, EINVAL when not a regular file.
// Errors name `displayName`.
Result<Bytes> readWholeFile(int dirFd, const std::string &name, std::size_t maxSize,
			    const std::string &displayName);

// The same for an open fd (which the caller keeps owning).
Result<Bytes> readWholeFd(int fd, std::size_t maxSize, const std::string &displayName);

} // namespace fr::pbs
