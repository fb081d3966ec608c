// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The VM's disks and the volumes on them. Disks are virtio-blk devices
// whose serial is "frdisk<N>" (abi::kDiskSerialPrefix), found in sysfs;
// partitions are the kernel's (GPT, MBR); what a block device holds comes
// from libblkid's safe probe, never from trial mounting. Volume layers are
// opened read-only with Debian's tools (guest/tools.h), once, on the first
// request that needs to know them:
//
//   md         mdadm --assemble --scan --readonly --run (degraded arrays
//              too; never a resync: the array stays read-only)
//   LVM        lvm vgchange -ay with every LV in read_only_volume_list, no
//              locking, no udev, no backups/archives, no thin_check; the
//              physical volumes are read-only block devices before that.
//              Thin pools: their metadata and data LVs activated as LVM
//              components (read-only), the pool's dm table built here
//              with the pool's read_only feature, each thin LV a
//              read-only thin table on it
//   LUKS       locked until a key is given (Unlock, docs/protocol.md);
//              cryptsetup open --readonly, the key on stdin, the key
//              derivation's costs checked against limits first and
//              bounded in time and memory
//
// Filesystems are mounted read-only on first use. A journal or log that
// needs replaying (ext3/4, xfs, btrfs) is replayed into a throwaway
// copy-on-write layer (guest/dm.h), never into the disk; when that is not
// possible the filesystem is mounted without replay and every answer about
// it carries a warning. NTFS is mounted with ntfs-3g (FUSE), read-only.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "guest/modules.h"
#include "guest/tools.h"
#include "guest/volumes.h"
#include "guest/vpath.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// One allowed filesystem type.
struct FsSpec {
	const char *blkidType;  // libblkid's TYPE
	const char *kernelType; // mount(2)'s type ("" for a FUSE mount)
	const char *options;    // mount(2)'s data on a clean filesystem
	const char *noReplay;   // nullptr: no journal; else the options that skip its replay
	const char *moduleGroup;
};

// nullptr for a type outside the allow-list.
const FsSpec *fsSpecFor(std::string_view blkidType) noexcept;

// Mount flags for every guest filesystem.
unsigned long guestMountFlags() noexcept;

inline constexpr const char *kJournalWarning = "journal not replayed: the newest changes may be missing";

class SystemVolumes final : public Volumes {
public:
	SystemVolumes(ModuleLoader &modules, Tools &tools, std::string sysBlock = "/sys/block",
		      std::string devDir = "/dev", std::string mountBase = "/run/fr")
		: modules_(modules), tools_(tools), sysBlock_(std::move(sysBlock)), devDir_(std::move(devDir)),
		  mountBase_(std::move(mountBase))
	{
	}

	// Whether a journal or log that needs replaying is replayed into a
	// throwaway layer (the default) or the filesystem mounted without it,
	// with kJournalWarning (fr.replay=no: the tests of that path).
	void setJournalReplay(bool replay) { replay_ = replay; }

	// Scans sysfs for the virtio disks. Disks without an frdisk<N> serial
	// are logged and ignored.
	Status discover();

	Result<Resolved> resolve(const std::vector<std::string_view> &components) override;
	Result<std::uint32_t> unlock(std::string_view key) override;
	std::uint32_t diskCount() override;
	std::uint32_t mountCount() override;

private:
	// A block device: a disk, a partition, an md array, a logical volume,
	// an opened LUKS volume.
	struct Node {
		std::string dev;     // "/dev/vda1"
		std::string sysName; // "vda1"
		std::uint64_t sizeBytes = 0;
		std::string type;    // blkid TYPE
		std::string ptType;  // blkid PTTYPE (whole disks)
		std::string reason;  // why it holds nothing that opens here
		std::set<std::uint32_t> disks; // the virtio disks it lives on
		int aliasOf = -1;    // the same filesystem as this node (a hybrid ISO)
		std::string mountPath;
		std::string mountedDev;     // what was mounted: dev, or its throwaway layer
		std::string mountedOptions; // with which options
		UniqueFd root;
		std::string mountError;
		std::string warning;
		std::map<std::uint64_t, UniqueFd> subvolRoots; // btrfs, by id
		int opened = -1; // LUKS: the node of the opened volume
	};
	struct Disk {
		std::string name; // "vda"
		int whole = -1;
		bool hasTable = false;
		std::map<std::uint32_t, int> parts;
	};
	struct LogicalVolume {
		std::string name;
		int node = -1;
		std::uint64_t sizeBytes = 0;
		std::string reason;
	};
	struct VolumeGroup {
		std::set<std::uint32_t> disks;
		std::map<std::string, LogicalVolume> lvs;
	};
	// One row of `lvs -a`.
	struct LvRow {
		std::string vg, name, segtype, pool, dataLv, metadataLv;
		std::uint64_t sizeBytes = 0, chunkBytes = 0, thinId = 0;
		bool hasThinId = false;
	};

	Status scan();
	int addNode(const std::string &sysName, std::set<std::uint32_t> disks);
	void probeNode(Node &node, bool partitions);
	void assembleMd();
	void activateLvm();
	using LvmRunner = std::function<Result<ToolResult>(std::vector<std::string>)>;
	// The PVs `pvs -o pv_name,vg_name` printed (pvVg_); returns their VGs
	// not seen before (LVM on LUKS: called again once a volume opened).
	std::set<std::string> addPhysicalVolumes(const std::string &pvsOut);
	// Every LV of `vgNames` (hidden ones included), from `lvs -a`.
	static std::vector<LvRow> readLvRows(const LvmRunner &lvm, const std::set<std::string> &vgNames);
	// Activates the plain LVs of `rows` read-only; returns vgchange's
	// complaint ("" when none) and whether any LV was asked for.
	static std::string activatePlain(const LvmRunner &lvm, const std::vector<LvRow> &rows,
					 const std::set<std::string> &vgNames, bool &any);
	// The LVs `lvs -o vg_name,lv_name,lv_kernel_major,lv_kernel_minor,
	// lv_size,segtype` printed, as nodes (or with the reason they are not).
	void addLogicalVolumes(const std::string &lvsOut, const std::set<std::string> &vgNames,
			       const std::string &activateError);
	// The disks of each volume group (its PVs'), and the reasons of PVs.
	void linkVolumeGroups();
	// The thin pools of `vg` and the thin LVs on them (rows of lvs -a).
	void activateThin(const std::string &vg, const std::vector<LvRow> &rows, const LvmRunner &lvm);
	// One thin pool, read-only: its device, or why it cannot be read.
	Result<std::string> activatePool(const std::string &vg, const LvRow &pool, const LvmRunner &lvm);
	static Result<std::string> activateComponent(const std::string &vg, const std::string &lv, const LvmRunner &lvm);
	int addDmNode(const std::string &dev, std::set<std::uint32_t> disks);
	// Opens one locked LUKS volume with `key`: true when it opened (else
	// the node's reason says why).
	bool openLuks(int index, std::string_view key);
	// The key slots of a LUKS volume worth trying ({-1}: all of them) and
	// the memory their derivation needs; an error when none is.
	struct LuksPlan {
		std::vector<int> slots;
		std::uint64_t memoryNeed = 0;
		std::string refused; // why the first refused slot was
	};
	Result<LuksPlan> planLuks(Node &node);
	// One cryptsetup open (slot -1: any): true when it opened, false when
	// the key does not fit.
	Result<bool> runLuksOpen(Node &node, std::string_view key, int slot, std::uint64_t memoryNeed,
				 const std::string &name);
	Result<Resolved> resolveNode(int index, const std::vector<std::string_view> &components, std::size_t from,
				     const std::string &where);
	Result<int> mountNode(int index, const std::string &where);
	Status mountKernel(Node &node, const FsSpec &spec, const std::string &where);
	Status mountNtfs(Node &node, const std::string &where);
	Result<Resolved> resolveSubvolume(int index, const std::vector<std::string_view> &components,
					  std::size_t from, const std::string &where);
	VolumeEntry entryFor(const std::string &name, int index);
	std::string contentReason(const Node &node) const;
	Result<Resolved> resolveGroups(const std::map<std::string, VolumeGroup *> &groups,
				       const std::vector<std::string_view> &components, std::size_t from,
				       const std::string &where);

	ModuleLoader &modules_;
	Tools &tools_;
	std::string sysBlock_;
	std::string devDir_;
	std::string mountBase_;
	std::mutex mutex_;
	bool scanned_ = false;
	std::map<std::uint32_t, Disk> disks_;
	std::vector<std::unique_ptr<Node>> nodes_;
	std::map<std::string, int> mdArrays_;     // name -> node
	std::map<std::string, VolumeGroup> vgs_;
	std::map<std::string, std::string> pvVg_; // PV sysName -> its VG
	std::string lvmError_;                    // why PVs without a VG have none
	std::string mdError_;
	std::uint32_t mounts_ = 0;
	unsigned cows_ = 0;
	bool replay_ = true;
	unsigned dmSerial_ = 0; // names of our own dm devices (thin, LUKS)
};

} // namespace fr::guest
