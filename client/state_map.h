// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The state map: which VMs this user's client started, how to reach and
// authenticate to them, and how to prove a pid is still that VM's QEMU.
// This header is the pure codec (parsed strictly, fuzzed); state_store.h
// keeps it on disk.
//
// Format (docs/client.md), version 1:
//   {"version":1,"vms":[{"name":..., "pid":N, "start_time":T,
//     "transport":"serial"|"vsock", "cid":null|M, "socket":PATH|null,
//     "ticket":64 hex, "started_at":UNIX, "idle_timeout":S,
//     "memory":MIB|null, "ready":BOOL (absent: true),
//     "archives":[{"name":B64,"format":"raw"|...,"path":B64}, ...]}, ...]}
// Archive names and paths are bytes (not necessarily UTF-8), so they are
// stored base64-encoded. Unknown keys are ignored (a newer client's map
// stays readable); a known key with a wrong type or value makes the whole map
// invalid.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

inline constexpr int kStateMapVersion = 1;
// More than the policy could ever allow; bounds what a broken map can make
// the client do.
inline constexpr std::size_t kStateMapMaxVms = 1024;
inline constexpr std::size_t kStateMapMaxArchives = 256;
inline constexpr std::size_t kStateMapMaxBytes = 16 << 20;

struct VmRecord {
	std::string name;
	pid_t pid = 0;
	// Field 22 of /proc/<pid>/stat when the VM started (clock ticks since
	// boot): with the cmdline marker, proves the pid was not reused.
	std::uint64_t startTime = 0;
	Transport transport = Transport::Serial;
	std::optional<std::uint32_t> cid;
	// Serial transport: the unix socket the helper created.
	std::string socketPath;
	// 64 lowercase hex digits.
	std::string ticket;
	// Wall-clock start (seconds since the epoch), for `status`.
	std::int64_t startedAt = 0;
	std::uint32_t idleTimeout = 0;
	std::optional<std::uint32_t> memory;
	// The guest answered once: false while the VM boots (a call whose
	// --timeout ran out meanwhile leaves it booting for the next call).
	bool ready = true;
	// In disk order: archives[i] is the guest's "/disk<i>".
	std::vector<Archive> archives;
	// A PBS datastore's VM (issue 13): the datastore's path and the
	// snapshot ("ns/a/vm/100/<time>"); empty otherwise. Stored as
	// "datastore" (base64: a path is bytes) and "snapshot", only when set.
	std::string datastore;
	std::string snapshot;

	bool operator==(const VmRecord &) const = default;
};

struct StateMap {
	std::vector<VmRecord> vms;

	const VmRecord *find(std::string_view name) const;
	// Replaces the record of the same name or appends.
	void put(VmRecord record);
	// True when a record was removed.
	bool erase(std::string_view name);
};

// Strict: EINVAL naming the first offending field. The empty text is NOT a
// valid map (an empty file is a truncated write, i.e. corruption).
Result<StateMap> parseStateMap(std::string_view text);

// Pretty-printed JSON, one trailing newline. Always parses back to `map`.
std::string serializeStateMap(const StateMap &map);

} // namespace fr::client
