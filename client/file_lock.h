// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// flock(2) on a lock file in the runtime directory, with a deadline. Locks
// belong to the open file description: a killed client releases its locks
// with its last fd, so nothing can stay locked forever.

#include <optional>
#include <string>

#include "client/types.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

class FileLock {
public:
	FileLock() = default;

	// Opens (creating 0600) `name` under `dirFd` without following a
	// symlink and waits until the exclusive lock is ours or `deadline`
	// passes (ETIMEDOUT, naming `what`).
	static Result<FileLock> acquire(int dirFd, const std::string &name, Deadline deadline,
					const char *what);
	// One try: nullopt when another process holds it.
	static Result<std::optional<FileLock>> tryAcquire(int dirFd, const std::string &name);

	void release() noexcept { fd_.reset(); }

private:
	explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
	UniqueFd fd_;
};

} // namespace fr::client
