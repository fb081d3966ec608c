// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Loop devices and device-mapper tables, set up by the daemon itself
// (LOOP_CONFIGURE, the DM_* ioctls of linux/dm-ioctl.h): the tools image
// and the throwaway copy-on-write layer need no tool, so a plain disk with
// a dirty journal costs no process start.

#include <cstdint>
#include <string>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// Attaches `file` (an open fd, not consumed) to a free loop device,
// LO_FLAGS_AUTOCLEAR (and LO_FLAGS_READ_ONLY if asked): it detaches when
// its last opener closes it, so keep `fd` open until the mount or dm table
// that uses it has opened it.
struct LoopDevice {
	std::string dev; // "/dev/loopN"
	UniqueFd fd;
};
Result<LoopDevice> attachLoop(int file, bool readOnly);

// Creates a device-mapper device `name` with one table (lines of
// "<start> <length> <target> <params>", '\n'-separated) and resumes it;
// returns "/dev/dm-N". readOnly creates it read-only.
Result<std::string> dmCreate(const std::string &name, const std::string &table, bool readOnly);
Status dmRemove(const std::string &name);

// The throwaway layer a journal or log is replayed into: a dm-snapshot
// ("N": not persistent) of `origin` whose exception store is a loop device
// on a sparse tmpfs file of at most `storeBytes` bytes. Writes land there
// and vanish with it; the origin is only read. A replay that needs more
// than the store invalidates the snapshot: the mount then fails and the
// caller falls back to a mount without replay.
struct CowDevice {
	std::string name; // the dm name
	std::string dev;  // /dev/dm-N
};
Result<CowDevice> makeCow(const std::string &origin, std::uint64_t originBytes, std::uint64_t storeBytes,
			  const std::string &storeDir, unsigned serial);
void removeCow(const CowDevice &cow);

} // namespace fr::guest
