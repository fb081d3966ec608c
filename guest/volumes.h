// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Where the daemon's filesystems come from. SystemVolumes (disks.h) finds
// virtio disks, probes them with libblkid and mounts them; unit tests use
// directories instead.

#include <cstdint>
#include <string>
#include <vector>

#include "guest/vpath.h"
#include "shared/result.h"

namespace fr::guest {

struct PartitionInfo {
	std::uint32_t number = 0;  // the kernel's partition number
	std::uint64_t sizeBytes = 0;
	std::string fsType;        // blkid's TYPE, one of the allow-list
};

struct DiskLayout {
	std::uint64_t sizeBytes = 0;
	bool hasTable = false;       // a partition table (GPT, MBR): the "part" bucket
	std::string wholeFsType;     // a supported filesystem on the whole disk: "raw"
	std::vector<PartitionInfo> partitions; // with a supported filesystem, by number
};

class Volumes {
public:
	virtual ~Volumes() = default;
	// The disk indices N of /disk<N>, ascending.
	virtual std::vector<std::uint32_t> disks() = 0;
	// ENOENT for an unknown disk.
	virtual Result<DiskLayout> layout(std::uint32_t disk) = 0;
	// The root directory of a filesystem, mounted read-only on first use.
	// The fd (O_PATH | O_DIRECTORY) stays owned by the Volumes and valid
	// until it is destroyed. ENOENT for an unknown disk/partition/bucket,
	// EOPNOTSUPP for a filesystem type outside the allow-list, the mount
	// error otherwise.
	virtual Result<int> root(std::uint32_t disk, Bucket bucket, std::uint32_t partition) = 0;
	virtual std::uint32_t mountCount() = 0;
};

} // namespace fr::guest
