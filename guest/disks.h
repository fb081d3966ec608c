// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The VM's disks: virtio-blk devices whose serial is "frdisk<N>"
// (abi::kDiskSerialPrefix), found in sysfs; partitions as the kernel parsed
// them (GPT, MBR); filesystem types from libblkid's superblock probe, never
// by trial mounting; mounts read-only, on first use, with the options of the
// allow-list below.

#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "guest/modules.h"
#include "guest/volumes.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// One allowed filesystem type.
struct FsSpec {
	const char *blkidType;  // libblkid's TYPE
	const char *kernelType; // mount(2)'s type
	const char *options;    // mount(2)'s data: never replay a journal or log
	const char *moduleGroup;
};

// nullptr for a type outside the allow-list.
const FsSpec *fsSpecFor(std::string_view blkidType) noexcept;

// Mount flags for every guest filesystem.
unsigned long guestMountFlags() noexcept;

class SystemVolumes final : public Volumes {
public:
	explicit SystemVolumes(ModuleLoader &modules, std::string sysBlock = "/sys/block", std::string devDir = "/dev",
		      std::string mountBase = "/run/fr")
		: modules_(modules), sysBlock_(std::move(sysBlock)), devDir_(std::move(devDir)),
		  mountBase_(std::move(mountBase))
	{
	}

	// Scans sysfs for the virtio disks. Disks without an frdisk<N> serial
	// are logged and ignored.
	Status discover();

	std::vector<std::uint32_t> disks() override;
	Result<DiskLayout> layout(std::uint32_t disk) override;
	Result<int> root(std::uint32_t disk, Bucket bucket, std::uint32_t partition) override;
	std::uint32_t mountCount() override;

private:
	struct Disk {
		std::string name; // "vda"
		bool probed = false;
		DiskLayout layout;
		std::map<std::uint32_t, UniqueFd> partRoots;
		UniqueFd rawRoot;
	};

	Status probe(std::uint32_t index, Disk &disk);
	Result<int> mount(std::uint32_t index, Disk &disk, Bucket bucket, std::uint32_t partition,
			  const std::string &fsType);

	ModuleLoader &modules_;
	std::string sysBlock_;
	std::string devDir_;
	std::string mountBase_;
	std::mutex mutex_;
	std::map<std::uint32_t, Disk> disks_;
	std::uint32_t mounts_ = 0;
};

} // namespace fr::guest
