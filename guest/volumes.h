// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Where the daemon's filesystems come from. SystemVolumes (disks.h) finds
// virtio disks, their partitions and the volume layers on them (LVM, md,
// LUKS), probes them with libblkid and mounts them; unit tests use
// directories instead.
//
// The virtual tree (docs/protocol.md, "Paths") is the Volumes' to decide:
// resolve() takes a request path's components and answers either a
// virtual directory (its entries) or a mounted filesystem and the path
// inside it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::guest {

// One entry of a virtual directory: a disk, a bucket, a partition, a
// volume group, a logical volume, an md array, a LUKS layer, a subvolume.
struct VolumeEntry {
	std::string name;
	std::uint64_t sizeBytes = 0;
	// Non-empty: this volume cannot be opened (or holds no filesystem of
	// its own), and why, one line starting with its type: "crypto_LUKS:
	// locked: no key given". It is listed all the same: it never vanishes.
	std::string reason;
};

struct Resolved {
	bool isFilesystem = false;
	// A virtual directory.
	std::vector<VolumeEntry> entries;
	// A filesystem: the root directory (O_PATH | O_DIRECTORY, owned by the
	// Volumes, valid until it is destroyed) and the path beneath it ("" for
	// the root; valid names joined by '/').
	int root = -1;
	std::string rest;
	// Said on every answer about this filesystem: "journal not replayed:
	// the newest changes may be missing".
	std::string warning;
	// Virtual entries shown in the root's listing besides the files
	// ("subvol" in a btrfs).
	std::vector<VolumeEntry> rootExtras;
};

class Volumes {
public:
	virtual ~Volumes() = default;
	// `components`: the request path split at '/', each a valid name (the
	// caller checked the path with proto::checkPath). ENOENT for a path
	// outside the tree; a volume that cannot be opened answers its reason
	// as the error (EOPNOTSUPP, ENOKEY, or the mount's errno).
	virtual Result<Resolved> resolve(const std::vector<std::string_view> &components) = 0;
	virtual std::uint32_t diskCount() = 0;
	virtual std::uint32_t mountCount() = 0;
};

} // namespace fr::guest
