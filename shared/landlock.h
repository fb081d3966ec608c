// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Landlock rulesets: a process restricts itself to the filesystem rights its
// rules grant. Used for QEMU (the helper's launch child, helper/landlock.cpp)
// and for the client's NBD server of a PBS datastore. Every right the
// kernel's ABI knows is handled, so anything not granted is denied; where
// the kernel offers them, TCP bind/connect are denied too (ABI 4), and the
// process may neither connect to abstract unix sockets nor signal processes
// outside its sandbox (ABI 6). The kernel's values are spelled out: Debian
// 12's headers predate the network and scope fields.

#include <cstdint>
#include <span>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::landlock {

inline constexpr std::uint64_t kExecute = 1ULL << 0;
inline constexpr std::uint64_t kWriteFile = 1ULL << 1;
inline constexpr std::uint64_t kReadFile = 1ULL << 2;
inline constexpr std::uint64_t kReadDir = 1ULL << 3;
inline constexpr std::uint64_t kTruncate = 1ULL << 14; // ABI 3
inline constexpr std::uint64_t kIoctlDev = 1ULL << 15; // ABI 5

// The kernel's Landlock ABI version; 0 without Landlock.
int abi() noexcept;

struct Rule {
	const char *path;     // a file or a directory (everything beneath it)
	std::uint64_t access; // rights from above; those the ABI lacks are dropped
};

// A ruleset handling every right of the kernel's ABI, with `rules` added
// (a path that does not exist is skipped). The caller owns the fd.
// Error: ENOSYS/EOPNOTSUPP without Landlock, or the call that failed.
Result<UniqueFd> createRuleset(std::span<const Rule> rules);

// Adds one more rule to `ruleset` (the caller keeps owning it); a missing
// path is skipped. Uses no heap (for a child between fork and exec).
Status addRule(int ruleset, const Rule &rule) noexcept;

// Restricts the calling thread (and its future children) to `ruleset`.
// Needs no_new_privs (or CAP_SYS_ADMIN). Uses no heap.
Status restrictSelf(int ruleset) noexcept;

} // namespace fr::landlock
