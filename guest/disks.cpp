// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/disks.h"

#include <blkid.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include "guest/activity.h"
#include "guest/dm.h"
#include "shared/fd_io.h"
#include "shared/guest_abi.h"
#include "shared/log.h"
#include "shared/protocol.h"
#include "shared/validate.h"

namespace fr::guest {

namespace {

// ext2/ext3 are mounted by the ext4 driver (CONFIG_EXT4_USE_FOR_EXT2).
// A journalled filesystem is first mounted as it is (a clean journal needs
// nothing); one whose journal or log needs replaying refuses that on a
// read-only device, and is then mounted on a throwaway copy-on-write layer
// that takes the replay, or, failing that, with the `noReplay` options.
constexpr FsSpec kFsSpecs[] = {
	{"ext2", "ext4", "", nullptr, "ext4"},
	{"ext3", "ext4", "", "noload", "ext4"},
	{"ext4", "ext4", "", "noload", "ext4"},
	{"xfs", "xfs", "", "norecovery", "xfs"},
	{"btrfs", "btrfs", "", "rescue=nologreplay", "btrfs"},
	{"vfat", "vfat", "iocharset=utf8,shortname=mixed", nullptr, "vfat"},
	{"exfat", "exfat", "iocharset=utf8", nullptr, "exfat"},
	{"iso9660", "iso9660", "iocharset=utf8", nullptr, "isofs"},
	{"udf", "udf", "utf8", nullptr, "udf"},
	{"f2fs", "f2fs", "", "norecovery", "f2fs"},
	{"hfsplus", "hfsplus", "nls=utf8", nullptr, "hfsplus"},
	{"hfs", "hfs", "iocharset=utf8", nullptr, "hfs"},
	{"jfs", "jfs", "iocharset=utf8", nullptr, "jfs"},
	{"nilfs2", "nilfs2", "", "norecovery", "nilfs2"},
	{"reiserfs", "reiserfs", "", "nolog", "reiserfs"},
	{"squashfs", "squashfs", "", nullptr, "squashfs"},
	// ntfs-3g over FUSE (the Debian kernel has no ntfs3): mountNtfs.
	{"ntfs", "", "", nullptr, "fuse"},
};

constexpr int kLvmTimeoutMs = 60000;
constexpr int kMdTimeoutMs = 60000;
constexpr int kNtfsTimeoutMs = 60000;
// LUKS: what a key derivation may cost (a crafted header can ask for hours
// of PBKDF2 or gigabytes of Argon2 memory: over these, a key slot is not
// tried). Real headers: cryptsetup calibrates to ~2 s on the machine that
// made them, a few million PBKDF2 iterations, Argon2 up to 1 GiB x a few
// passes.
constexpr std::uint64_t kLuksMaxPbkdf2Iterations = 50000000;
constexpr std::uint64_t kLuksMaxArgonWork = std::uint64_t{32} << 20; // passes x KiB: 32 passes over 1 GiB
constexpr std::uint64_t kLuksMemoryMargin = std::uint64_t{32} << 20; // left to the rest of the VM
constexpr std::uint64_t kLuksAddressSpaceMargin = std::uint64_t{768} << 20; // libraries, threads, arenas
constexpr int kLuksDumpTimeoutMs = 30000;
constexpr int kLuksOpenTimeoutMs = 120000;
// The throwaway layer's store: at most this, and at most a quarter of RAM.
constexpr std::uint64_t kCowMaxBytes = std::uint64_t{256} << 20;

// LVM: read-only and quiet. No locking (nothing else runs here), no udev,
// no metadata backups or archives (they would be written to /etc), no
// thin_check (not in the image; the kernel checks the pool's metadata),
// only the VM's block devices.
constexpr const char *kLvmConf = R"(devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	hints = "none"
	write_cache_state = 0
	filter = [ "a|^/dev/vd|", "a|^/dev/dm-|", "a|^/dev/mapper/|", "a|^/dev/md|", "r|.*|" ]
}
global {
	thin_check_executable = ""
	thin_repair_executable = ""
	event_activation = 0
	locking_dir = "/run/lock/lvm"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
	polling_interval = 0
}
backup { backup = 0 archive = 0 }
)";

Result<std::string> readAttribute(const std::string &path)
{
	Result<std::string> text = readFile(path, 4096); // one page at most
	if (!text)
		return text.error();
	std::string value = std::move(*text);
	while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
		value.pop_back();
	return value;
}

std::uint64_t sectorsToBytes(const std::string &sizePath)
{
	Result<std::string> text = readAttribute(sizePath);
	if (!text)
		return 0;
	Result<std::uint64_t> sectors = parseDecimal(*text, 0, UINT64_MAX / 512, "size");
	return sectors ? *sectors * 512 : 0;
}

struct ProbeDeleter {
	void operator()(blkid_probe pr) const noexcept { blkid_free_probe(pr); }
};

// One libblkid safe probe: superblocks (and partition tables if asked).
// Ambiguous results (several signatures) count as nothing: guessing is how
// a crafted image gets the wrong driver.
void probeDevice(const std::string &dev, bool partitions, std::string &type, std::string &ptType)
{
	std::unique_ptr<blkid_struct_probe, ProbeDeleter> pr(blkid_new_probe_from_filename(dev.c_str()));
	if (!pr) {
		logf(LogLevel::Warning, "blkid: cannot probe %s", dev.c_str());
		return;
	}
	blkid_probe_enable_superblocks(pr.get(), 1);
	blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr.get(), partitions ? 1 : 0);
	const int rc = blkid_do_safeprobe(pr.get());
	if (rc == -2) {
		logf(LogLevel::Warning, "blkid: %s has ambiguous signatures: not mounted", dev.c_str());
		type = "ambiguous";
		return;
	}
	if (rc != 0)
		return;
	const char *value = nullptr;
	if (blkid_probe_lookup_value(pr.get(), "TYPE", &value, nullptr) == 0 && value != nullptr)
		type = value;
	if (partitions && blkid_probe_lookup_value(pr.get(), "PTTYPE", &value, nullptr) == 0 && value != nullptr)
		ptType = value;
}

// Marks a block device read-only in the guest kernel too: even a bug in a
// filesystem driver or a tool cannot then write (QEMU refuses writes as
// well).
void setReadOnly(const std::string &dev)
{
	UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
	int one = 1;
	if (!fd.isValid() || ::ioctl(fd.get(), BLKROSET, &one) != 0)
		logf(LogLevel::Warning, "BLKROSET(%s) failed (errno %d)", dev.c_str(), errno);
}

// Restores read files whole, front to back: a readahead of one PBS chunk
// (4 MiB) instead of the kernel's 128 KiB makes a sequential read of a
// large file a few large requests to the host instead of many small ones,
// each a round trip (through QEMU and, for a datastore, the NBD server).
constexpr unsigned long kReadAheadSectors = (4UL << 20) / 512;

void setReadAhead(const std::string &dev)
{
	UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
	if (!fd.isValid() || ::ioctl(fd.get(), BLKRASET, kReadAheadSectors) != 0)
		logf(LogLevel::Warning, "BLKRASET(%s) failed (errno %d)", dev.c_str(), errno);
}

Status makeDirs(const std::string &path)
{
	for (std::size_t i = 1; i <= path.size(); ++i) {
		if (i < path.size() && path[i] != '/')
			continue;
		const std::string prefix = path.substr(0, i);
		if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
			return Error(errno, "mkdir", prefix);
	}
	return {};
}

Status writeText(const std::string &path, const std::string &text)
{
	UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!fd.isValid())
		return Error(errno, "open", path);
	if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
		return Error(errno, "write", path);
	return {};
}

// LVM and md names as the tools allow them; anything else from a hostile
// disk is not put in the tree.
bool validVolumeName(std::string_view name)
{
	if (name.empty() || name.size() > 127 || name == "." || name == "..")
		return false;
	for (char c : name)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-' || c == '+'))
			return false;
	return true;
}

// The parts one after the other (one allocation, not one per '+').
template <typename... Parts>
std::string concat(const Parts &...parts)
{
	std::string out;
	(out.append(parts), ...);
	return out;
}

std::vector<std::string> splitLines(const std::string &text)
{
	std::vector<std::string> lines;
	std::size_t from = 0;
	while (from < text.size()) {
		std::size_t end = text.find('\n', from);
		if (end == std::string::npos)
			end = text.size();
		std::string line = text.substr(from, end - from);
		while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
			line.erase(line.begin());
		if (!line.empty())
			lines.push_back(line);
		from = end + 1;
	}
	return lines;
}

std::vector<std::string> splitFields(const std::string &line, char separator)
{
	std::vector<std::string> fields;
	std::size_t from = 0;
	for (;;) {
		const std::size_t end = line.find(separator, from);
		fields.push_back(line.substr(from, end == std::string::npos ? std::string::npos : end - from));
		if (end == std::string::npos)
			return fields;
		from = end + 1;
	}
}

const char *errnoText(int err)
{
	// strerrordesc_np: thread-safe and locale-free, unlike strerror.
	const char *text = strerrordesc_np(err);
	return text != nullptr ? text : "unknown error";
}

Error notInTree(const std::string &where)
{
	return Error::invalid(ENOENT, "path", where.substr(0, 64), "no such entry in the VM's tree");
}

std::uint64_t cowStoreBytes()
{
	struct sysinfo info {};
	if (::sysinfo(&info) != 0)
		return std::uint64_t{32} << 20;
	const std::uint64_t ram = static_cast<std::uint64_t>(info.totalram) * info.mem_unit;
	return std::min(kCowMaxBytes, ram / 4);
}

// "[pool_tdata]" (lvs shows hidden LVs in brackets) -> "pool_tdata".
std::string hiddenName(const std::string &name)
{
	if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
		return name.substr(1, name.size() - 2);
	return name;
}

// The device-mapper name LVM gives vg/lv ('-' doubled in each part).
std::string lvmDmName(const std::string &vg, const std::string &lv)
{
	auto escape = [](const std::string &part) {
		std::string out;
		for (char c : part) {
			out += c;
			if (c == '-')
				out += '-';
		}
		return out;
	};
	return escape(vg) + "-" + escape(lv);
}

// "/dev/dm-N" of the device-mapper device named `name` ("" if none).
std::string dmDeviceByName(const std::string &name)
{
	DIR *dir = ::opendir("/sys/block");
	if (dir == nullptr)
		return {};
	std::string found;
	while (const dirent *d = ::readdir(dir)) {
		if (std::strncmp(d->d_name, "dm-", 3) != 0)
			continue;
		Result<std::string> dmName = readAttribute(std::string("/sys/block/") + d->d_name + "/dm/name");
		if (dmName && *dmName == name) {
			found = std::string("/dev/") + d->d_name;
			break;
		}
	}
	::closedir(dir);
	return found;
}

// The sysfs name ("dm-3") of the block device major:minor ("" if none).
std::string sysNameOf(std::uint64_t major, std::uint64_t minor)
{
	char target[256] = {};
	const std::string path = "/sys/dev/block/" + std::to_string(major) + ":" + std::to_string(minor);
	const ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
	if (n <= 0)
		return {};
	std::string sysName(target, static_cast<std::size_t>(n));
	return sysName.substr(sysName.rfind('/') + 1);
}

// The sysfs name of the block device node at `path` (by its device number).
std::string sysNameOfDevice(const std::string &path)
{
	struct stat st {};
	if (::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
		return {};
	return sysNameOf(major(st.st_rdev), minor(st.st_rdev));
}

} // namespace

const FsSpec *fsSpecFor(std::string_view blkidType) noexcept
{
	for (const FsSpec &spec : kFsSpecs)
		if (blkidType == spec.blkidType)
			return &spec;
	return nullptr;
}

unsigned long guestMountFlags() noexcept
{
	return MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC;
}

Status SystemVolumes::discover()
{
	std::lock_guard lock(mutex_);
	DIR *dir = ::opendir(sysBlock_.c_str());
	if (dir == nullptr)
		return Error(errno, "opendir", sysBlock_);
	const std::string prefix = abi::kDiskSerialPrefix;
	while (const dirent *d = ::readdir(dir)) {
		const std::string name = d->d_name;
		if (name.rfind("vd", 0) != 0)
			continue;
		Result<std::string> serial = readAttribute(sysBlock_ + "/" + name + "/serial");
		if (!serial || serial->rfind(prefix, 0) != 0) {
			logf(LogLevel::Warning, "disk %s: no %s<N> serial, ignored", name.c_str(), prefix.c_str());
			continue;
		}
		Result<std::uint64_t> index =
			parseDecimal(std::string_view(*serial).substr(prefix.size()), 0, kMaxDisks - 1, "serial");
		if (!index || disks_.count(static_cast<std::uint32_t>(*index)) != 0) {
			logf(LogLevel::Warning, "disk %s: bad or duplicate serial, ignored", name.c_str());
			continue;
		}
		Disk disk;
		disk.name = name;
		disks_.emplace(static_cast<std::uint32_t>(*index), std::move(disk));
	}
	::closedir(dir);
	logf(LogLevel::Info, "%zu disk(s) found", disks_.size());
	return {};
}

std::uint32_t SystemVolumes::diskCount()
{
	std::lock_guard lock(mutex_);
	return static_cast<std::uint32_t>(disks_.size());
}

std::uint32_t SystemVolumes::mountCount()
{
	std::lock_guard lock(mutex_);
	return mounts_;
}

int SystemVolumes::addNode(const std::string &sysName, std::set<std::uint32_t> disks)
{
	auto node = std::make_unique<Node>();
	node->sysName = sysName;
	node->dev = devDir_ + "/" + sysName;
	node->disks = std::move(disks);
	nodes_.push_back(std::move(node));
	return static_cast<int>(nodes_.size() - 1);
}

void SystemVolumes::probeNode(Node &node, bool partitions)
{
	node.sizeBytes = sectorsToBytes(sysBlock_ + "/" + node.sysName + "/size");
	setReadOnly(node.dev);
	probeDevice(node.dev, partitions, node.type, node.ptType);
}

// Disks, partitions, then the layers on them, until nothing new appears
// (LVM on an md array, a VG on a LUKS volume...).
Status SystemVolumes::scan()
{
	if (scanned_)
		return {};
	scanned_ = true;
	const std::uint64_t start = monotonicMs();
	for (auto &[index, disk] : disks_) {
		disk.whole = addNode(disk.name, {index});
		Node &whole = *nodes_[static_cast<std::size_t>(disk.whole)];
		probeNode(whole, true);
		// Partitions as the kernel parsed them: /sys/block/vda/vdaN/partition.
		const std::string sys = sysBlock_ + "/" + disk.name;
		DIR *dir = ::opendir(sys.c_str());
		if (dir == nullptr)
			return Error(errno, "opendir", sys);
		std::map<std::uint32_t, std::string> parts;
		while (const dirent *d = ::readdir(dir)) {
			const std::string name = d->d_name;
			if (name.rfind(disk.name, 0) != 0)
				continue;
			Result<std::string> number = readAttribute(concat(sys, "/", name, "/partition"));
			if (!number)
				continue;
			Result<std::uint64_t> n = parseDecimal(*number, 1, kMaxPartition, "partition");
			if (n)
				parts.emplace(static_cast<std::uint32_t>(*n), name);
		}
		::closedir(dir);
		disk.hasTable = !whole.ptType.empty() || !parts.empty();
		for (const auto &[number, name] : parts) {
			const int node = addNode(name, {index});
			Node &part = *nodes_[static_cast<std::size_t>(node)];
			part.sizeBytes = sectorsToBytes(concat(sys, "/", name, "/size"));
			setReadOnly(part.dev);
			probeDevice(part.dev, false, part.type, part.ptType);
			// A hybrid ISO: partition 1 starts at sector 0 and holds the
			// same iso9660 as the whole disk. Both paths serve it (two
			// mounts of the same bytes would collide: EBUSY).
			Result<std::string> startSector = readAttribute(concat(sys, "/", name, "/start"));
			if (startSector && *startSector == "0" && !part.type.empty() && part.type == whole.type)
				part.aliasOf = disk.whole;
			disk.parts[number] = node;
		}
	}
	auto anyType = [&](const char *type) {
		for (const auto &node : nodes_)
			if (node->type == type)
				return true;
		return false;
	};
	if (anyType("linux_raid_member"))
		assembleMd();
	if (anyType("LVM2_member"))
		activateLvm();
	logf(LogLevel::Info, "volumes scanned in %llu ms: %zu block devices, %zu md arrays, %zu volume groups",
	     static_cast<unsigned long long>(monotonicMs() - start), nodes_.size(), mdArrays_.size(), vgs_.size());
	return {};
}

void SystemVolumes::assembleMd()
{
	if (Status ok = modules_.loadGroup("md"); !ok) {
		mdError_ = ok.error().message();
		return;
	}
	(void)makeDirs("/run/mdadm");
	// Every array on the VM's disks, whatever host it was made on, assembled
	// read-only (--readonly: no resync, no superblock writes), degraded ones
	// too (--run).
	const std::string conf = "/run/fr-mdadm.conf";
	(void)writeText(conf, "DEVICE /dev/vd*\nAUTO +all\nHOMEHOST <ignore>\n");
	ToolCommand command;
	command.program = "mdadm";
	command.args = {"--assemble", "--scan", "--readonly", "--run", "--config=" + conf};
	command.env = {"MDADM_NO_UDEV=1", "MDADM_NO_SYSTEMCTL=1"};
	command.timeoutMs = kMdTimeoutMs;
	Result<ToolResult> result = tools_.run(command);
	if (!result) {
		mdError_ = result.error().message();
		return;
	}
	mdError_ = result->summary();
	if (!result->err.empty())
		logf(LogLevel::Info, "mdadm: %s", result->summary().c_str());
	// The arrays: /sys/block/md*; their names from mdadm --detail.
	DIR *dir = ::opendir(sysBlock_.c_str());
	if (dir == nullptr)
		return;
	std::vector<std::string> arrays;
	while (const dirent *d = ::readdir(dir))
		if (std::strncmp(d->d_name, "md", 2) == 0)
			arrays.emplace_back(d->d_name);
	::closedir(dir);
	std::sort(arrays.begin(), arrays.end());
	for (const std::string &md : arrays) {
		std::set<std::uint32_t> disks;
		std::vector<int> members;
		if (DIR *slaves = ::opendir((sysBlock_ + "/" + md + "/slaves").c_str())) {
			while (const dirent *d = ::readdir(slaves))
				for (std::size_t i = 0; i < nodes_.size(); ++i)
					if (nodes_[i]->sysName == d->d_name) {
						disks.insert(nodes_[i]->disks.begin(), nodes_[i]->disks.end());
						members.push_back(static_cast<int>(i));
					}
			::closedir(slaves);
		}
		ToolCommand detail;
		detail.program = "mdadm";
		detail.args = {"--detail", "--export", devDir_ + "/" + md};
		detail.env = command.env;
		detail.timeoutMs = kMdTimeoutMs;
		std::string name = md;
		if (Result<ToolResult> d = tools_.run(detail); d && d->ok())
			for (const std::string &line : splitLines(d->out))
				if (line.rfind("MD_NAME=", 0) == 0) {
					std::string value = line.substr(8);
					const std::size_t colon = value.rfind(':');
					if (colon != std::string::npos)
						value = value.substr(colon + 1);
					if (validVolumeName(value) && mdArrays_.count(value) == 0)
						name = value;
				}
		const int node = addNode(md, disks);
		probeNode(*nodes_[static_cast<std::size_t>(node)], false);
		mdArrays_[name] = node;
		for (int member : members)
			nodes_[static_cast<std::size_t>(member)]->reason =
				concat("linux_raid_member: member of md array ", name, " (listed under /md/", name, ")");
		logf(LogLevel::Info, "md array %s (%s) assembled read-only: %s", name.c_str(), md.c_str(),
		     nodes_[static_cast<std::size_t>(node)]->type.c_str());
	}
	for (const auto &node : nodes_)
		if (node->type == "linux_raid_member" && node->reason.empty())
			node->reason = "linux_raid_member: the md array could not be assembled: " + mdError_;
	// New block devices may hold LVM: the caller looks next.
}

void SystemVolumes::activateLvm()
{
	if (Status ok = modules_.loadGroup("lvm"); !ok) {
		lvmError_ = ok.error().message();
		return;
	}
	(void)makeDirs("/run/fr-lvm");
	(void)makeDirs("/run/lock/lvm");
	(void)writeText("/run/fr-lvm/lvm.conf", kLvmConf);
	const std::vector<std::string> env = {"LVM_SYSTEM_DIR=/run/fr-lvm", "DM_DISABLE_UDEV=1",
					      "LVM_SUPPRESS_FD_WARNINGS=1"};
	const LvmRunner lvm = [&](std::vector<std::string> args) {
		ToolCommand command;
		command.program = "lvm";
		command.args = std::move(args);
		command.env = env;
		command.timeoutMs = kLvmTimeoutMs;
		return tools_.run(command);
	};
	// The physical volumes and their VGs (reading only). Called again
	// after a LUKS volume opened (LVM on LUKS): only VGs not seen before
	// are activated.
	Result<ToolResult> pvs = lvm({"pvs", "--readonly", "--noheadings", "--separator", "|", "-o", "pv_name,vg_name"});
	if (!pvs) {
		lvmError_ = pvs.error().message();
		return;
	}
	lvmError_ = pvs->summary();
	const std::set<std::string> vgNames = addPhysicalVolumes(pvs->out);
	const std::vector<LvRow> rows = vgNames.empty() ? std::vector<LvRow>() : readLvRows(lvm, vgNames);
	bool any = false;
	const std::string activateError = activatePlain(lvm, rows, vgNames, any);
	// Not --readonly: that mode does not ask the kernel, and the kernel's
	// device numbers are what we want.
	Result<ToolResult> lvs = !any ? Result<ToolResult>(ToolResult{})
				      : lvm({"lvs", "--nolocking", "--noheadings", "--separator", "|", "--units", "b",
					     "--nosuffix", "-o", "vg_name,lv_name,lv_kernel_major,lv_kernel_minor,lv_size,segtype"});
	if (!lvs) {
		lvmError_ = lvs.error().message();
		return;
	}
	addLogicalVolumes(lvs->out, vgNames, activateError);
	for (const std::string &vg : vgNames)
		activateThin(vg, rows, lvm);
	linkVolumeGroups();
	logf(LogLevel::Info, "lvm: %zu volume group(s) activated read-only", vgs_.size());
}

std::set<std::string> SystemVolumes::addPhysicalVolumes(const std::string &pvsOut)
{
	std::set<std::string> vgNames;
	for (const std::string &line : splitLines(pvsOut)) {
		const std::vector<std::string> f = splitFields(line, '|');
		if (f.size() != 2 || f[0].rfind(devDir_ + "/", 0) != 0 || !validVolumeName(f[1]))
			continue;
		// LVM names a device-mapper PV (LVM on LUKS) /dev/mapper/<name>:
		// the node's name is the kernel's (dm-N), by device number.
		const std::string sysName = sysNameOfDevice(f[0]);
		if (sysName.empty())
			continue;
		pvVg_[sysName] = f[1];
		if (vgs_.count(f[1]) == 0)
			vgNames.insert(f[1]);
	}
	return vgNames;
}

std::vector<SystemVolumes::LvRow> SystemVolumes::readLvRows(const LvmRunner &lvm, const std::set<std::string> &vgNames)
{
	std::vector<LvRow> rows;
	Result<ToolResult> all =
		lvm({"lvs", "-a", "--readonly", "--noheadings", "--separator", "|", "--units", "b", "--nosuffix", "-o",
		     "vg_name,lv_name,segtype,pool_lv,data_lv,metadata_lv,thin_id,lv_size,chunk_size"});
	if (!all)
		return rows;
	for (const std::string &line : splitLines(all->out)) {
		const std::vector<std::string> f = splitFields(line, '|');
		if (f.size() != 9 || vgNames.count(f[0]) == 0)
			continue;
		LvRow row;
		row.vg = f[0];
		row.name = f[1];
		row.segtype = f[2];
		row.pool = f[3];
		row.dataLv = hiddenName(f[4]);
		row.metadataLv = hiddenName(f[5]);
		Result<std::uint64_t> id = parseDecimal(f[6], 0, UINT32_MAX, "thin_id");
		row.hasThinId = static_cast<bool>(id);
		row.thinId = id ? *id : 0;
		Result<std::uint64_t> size = parseDecimal(f[7], 0, UINT64_MAX / 2, "lv_size");
		row.sizeBytes = size ? *size : 0;
		Result<std::uint64_t> chunk = parseDecimal(f[8], 0, UINT32_MAX, "chunk_size");
		row.chunkBytes = chunk ? *chunk : 0;
		rows.push_back(std::move(row));
	}
	return rows;
}

std::string SystemVolumes::activatePlain(const LvmRunner &lvm, const std::vector<LvRow> &rows,
					 const std::set<std::string> &vgNames, bool &any)
{
	// Activation, read-only: every plain LV (hidden ones and thin ones
	// aside) in volume_list and read_only_volume_list (LVM makes its dm
	// table read-only); -K for LVs flagged to skip activation. Thin pools
	// cannot be in a read-only table (the kernel refuses: "target type may
	// not be included in a read-only table"): activateThin builds them.
	std::string list;
	for (const LvRow &row : rows)
		if (validVolumeName(row.name) && row.segtype != "thin-pool" && row.segtype != "thin")
			list += (list.empty() ? "\"" : ",\"") + row.vg + "/" + row.name + "\"";
	any = !list.empty();
	if (list.empty())
		return {};
	std::vector<std::string> activate = {
		"vgchange", "-ay", "-K", "--nolocking", "--ignoremonitoring", "--noudevsync", "--config",
		"activation { volume_list = [ " + list + " ] read_only_volume_list = [ " + list + " ] }"};
	activate.insert(activate.end(), vgNames.begin(), vgNames.end());
	Result<ToolResult> activated = lvm(activate);
	std::string activateError = activated ? activated->summary() : activated.error().message();
	if (activated && !activated->err.empty())
		logf(LogLevel::Info, "lvm vgchange: %s", activateError.c_str());
	return activateError;
}

void SystemVolumes::addLogicalVolumes(const std::string &lvsOut, const std::set<std::string> &vgNames,
				      const std::string &activateError)
{
	for (const std::string &line : splitLines(lvsOut)) {
		const std::vector<std::string> f = splitFields(line, '|');
		if (f.size() != 6 || vgNames.count(f[0]) == 0 || !validVolumeName(f[1]))
			continue;
		// Thin pools hold thin LVs, not a filesystem; thin LVs are
		// activateThin's.
		if (f[5] == "thin-pool" || f[5] == "thin")
			continue;
		LogicalVolume lv;
		lv.name = f[1];
		Result<std::uint64_t> size = parseDecimal(f[4], 0, UINT64_MAX, "lv_size");
		lv.sizeBytes = size ? *size : 0;
		Result<std::uint64_t> major = parseDecimal(f[2], 0, 4095, "major");
		Result<std::uint64_t> minor = parseDecimal(f[3], 0, 1048575, "minor");
		const std::string sysName = major && minor ? sysNameOf(*major, *minor) : std::string();
		if (!sysName.empty()) {
			lv.node = addNode(sysName, {});
			probeNode(*nodes_[static_cast<std::size_t>(lv.node)], false);
		}
		if (lv.node < 0)
			lv.reason = f[5] + ": not activated: " + activateError;
		vgs_[f[0]].lvs[lv.name] = std::move(lv);
	}
}

void SystemVolumes::linkVolumeGroups()
{
	// Which disks each VG lives on: its PVs' disks.
	for (const auto &[pv, vg] : pvVg_) {
		for (const auto &node : nodes_)
			if (node->sysName == pv) {
				vgs_[vg].disks.insert(node->disks.begin(), node->disks.end());
				node->reason = concat("LVM2_member: physical volume of volume group ", vg, " (its logical volumes are under lvm/", vg, ")");
			}
	}
	for (auto &[name, vg] : vgs_)
		for (auto &[lvName, lv] : vg.lvs)
			if (lv.node >= 0)
				nodes_[static_cast<std::size_t>(lv.node)]->disks = vg.disks;
	for (const auto &node : nodes_)
		if (node->type == "LVM2_member" && node->reason.empty())
			node->reason = "LVM2_member: no readable volume group: " + lvmError_;
}

Result<std::string> SystemVolumes::activateComponent(const std::string &vg, const std::string &lv, const LvmRunner &lvm)
{
	// LVM's component activation: a pool's hidden metadata or data LV,
	// activated on its own, read-only (LVM allows it while the pool is
	// inactive, for one LV named per command, and asks first: --yes).
	Result<ToolResult> up = lvm({"lvchange", "-ay", "--yes", "--nolocking", vg + "/" + lv});
	if (!up)
		return up.error();
	if (!up->ok())
		return Error::invalid(EIO, "lvchange", lv, "%s", up->summary().c_str());
	std::string dev = dmDeviceByName(lvmDmName(vg, lv));
	if (dev.empty())
		return Error::invalid(ENOENT, "lvchange", lv, "no device-mapper device after activation");
	return dev;
}

Result<std::string> SystemVolumes::activatePool(const std::string &vg, const LvRow &pool, const LvmRunner &lvm)
{
	// The pool, read-only: its metadata and data LVs as read-only
	// components, then a thin-pool table over them with the pool's
	// read_only feature (the kernel then never writes its metadata, and
	// refuses every write to its thin devices) and no discards. The table
	// itself cannot be read-only (the kernel refuses a thin-pool target
	// there), but nothing below it takes writes: the components are
	// read-only tables, the disks are read-only.
	Result<std::string> meta = activateComponent(vg, pool.metadataLv, lvm);
	if (!meta)
		return meta.error();
	Result<std::string> data = activateComponent(vg, pool.dataLv, lvm);
	if (!data)
		return data.error();
	if (pool.chunkBytes < 65536 || pool.chunkBytes % 65536 != 0)
		return Error::invalid(EINVAL, "thin pool", pool.name, "chunk size %llu is not a multiple of 64 KiB",
				      static_cast<unsigned long long>(pool.chunkBytes));
	const std::string dataSys = data->substr(data->rfind('/') + 1);
	const std::uint64_t dataSectors = sectorsToBytes(sysBlock_ + "/" + dataSys + "/size") / 512;
	const std::string table = concat("0 ", std::to_string(dataSectors), " thin-pool ", *meta, " ", *data, " ",
					 std::to_string(pool.chunkBytes / 512), " 0 2 read_only ignore_discard");
	return dmCreate("fr-pool" + std::to_string(dmSerial_++), table, false);
}

void SystemVolumes::activateThin(const std::string &vg, const std::vector<LvRow> &rows, const LvmRunner &lvm)
{
	for (const LvRow &pool : rows) {
		if (pool.vg != vg || pool.segtype != "thin-pool" || !validVolumeName(pool.name))
			continue;
		Result<std::string> poolDev = activatePool(vg, pool, lvm);
		if (!poolDev)
			logf(LogLevel::Warning, "lvm: thin pool %s/%s not readable: %s", vg.c_str(), pool.name.c_str(),
			     poolDev.error().message().c_str());
		for (const LvRow &thin : rows) {
			if (thin.vg != vg || thin.segtype != "thin" || thin.pool != pool.name || !validVolumeName(thin.name))
				continue;
			LogicalVolume lv;
			lv.name = thin.name;
			lv.sizeBytes = thin.sizeBytes;
			if (!poolDev) {
				lv.reason = concat("thin: its pool ", pool.name, " is not readable: ", poolDev.error().message());
			} else if (!thin.hasThinId || thin.sizeBytes % 512 != 0) {
				lv.reason = "thin: no device id in the metadata";
			} else {
				// A thin LV with an external origin would need that
				// origin in its table: not supported (listed with
				// the kernel's refusal, if any).
				const std::string table = concat("0 ", std::to_string(thin.sizeBytes / 512), " thin ", *poolDev,
								 " ", std::to_string(thin.thinId));
				Result<std::string> dev = dmCreate("fr-thin" + std::to_string(dmSerial_++), table, true);
				if (dev)
					lv.node = addDmNode(*dev, {});
				else
					lv.reason = "thin: " + dev.error().message();
			}
			vgs_[vg].lvs[lv.name] = std::move(lv);
		}
	}
}

int SystemVolumes::addDmNode(const std::string &dev, std::set<std::uint32_t> disks)
{
	const int index = addNode(dev.substr(dev.rfind('/') + 1), std::move(disks));
	probeNode(*nodes_[static_cast<std::size_t>(index)], false);
	return index;
}

// --- LUKS ---------------------------------------------------------------------

Result<std::uint32_t> SystemVolumes::unlock(std::string_view key)
{
	std::lock_guard lock(mutex_);
	if (Status ok = scan(); !ok)
		return ok.error();
	std::uint32_t opened = 0;
	std::set<int> tried;
	// Until nothing new opens: a LUKS volume may hold LVM whose LVs hold
	// LUKS again (each pass sees the nodes the previous one added).
	for (int pass = 0; pass < 8; ++pass) {
		bool progress = false;
		for (std::size_t i = 0; i < nodes_.size(); ++i) {
			Node &node = *nodes_[i];
			if (node.type != "crypto_LUKS" || node.opened >= 0 || tried.count(static_cast<int>(i)) != 0)
				continue;
			tried.insert(static_cast<int>(i));
			if (openLuks(static_cast<int>(i), key)) {
				++opened;
				progress = true;
			}
		}
		if (!progress)
			break;
		bool newPv = false;
		for (const auto &node : nodes_)
			newPv = newPv || (node->type == "LVM2_member" && pvVg_.count(node->sysName) == 0);
		if (newPv)
			activateLvm();
	}
	return opened;
}

namespace {

// What a LUKS header asks of the key derivation, from `cryptsetup
// luksDump` (LUKS1 and LUKS2 text).
struct KdfSlot {
	int id = -1;
	std::string pbkdf; // "pbkdf2", "argon2i", "argon2id"
	std::uint64_t iterations = 0; // PBKDF2 iterations or Argon2 time cost
	std::uint64_t memoryKiB = 0;
};
struct KdfCosts {
	std::vector<KdfSlot> slots;
	std::uint64_t digestIterations = 0; // checked after every slot tried
};

std::uint64_t numberAfter(const std::string &line)
{
	const std::size_t colon = line.find(':');
	if (colon == std::string::npos)
		return 0;
	std::size_t at = line.find_first_not_of(" \t", colon + 1);
	std::uint64_t value = 0;
	for (; at < line.size() && line[at] >= '0' && line[at] <= '9'; ++at) {
		if (value > UINT64_MAX / 10 - 10)
			return UINT64_MAX;
		value = value * 10 + static_cast<std::uint64_t>(line[at] - '0');
	}
	return value;
}

// One "\tName: value" line of a LUKS2 key slot (or LUKS1's "Key Slot N").
void readSlotField(KdfSlot &slot, const std::string &line)
{
	if (line.rfind("PBKDF:", 0) == 0) {
		std::string value = line.substr(6);
		value.erase(0, value.find_first_not_of(" \t"));
		slot.pbkdf = value;
	} else if (line.rfind("Iterations:", 0) == 0 || line.rfind("Time cost:", 0) == 0) {
		slot.iterations = numberAfter(line);
	} else if (line.rfind("Memory:", 0) == 0) {
		slot.memoryKiB = numberAfter(line);
	}
}

KdfCosts parseLuksDump(const std::string &dump)
{
	KdfCosts costs;
	enum { Other, Keyslots, Digests } section = Other;
	KdfSlot *slot = nullptr;
	for (const std::string &raw : splitLines(dump)) {
		// splitLines dropped the indentation; sections are unindented
		// in the original, slots "  N: type", fields "\tName: value".
		const std::string &line = raw;
		if (line.rfind("Key Slot ", 0) == 0) { // LUKS1
			section = Keyslots;
			slot = nullptr;
			if (line.find("ENABLED") != std::string::npos) {
				costs.slots.push_back(KdfSlot{static_cast<int>(numberAfter("x:" + line.substr(9))), "pbkdf2"});
				slot = &costs.slots.back();
			}
			continue;
		}
		if (line.rfind("MK iterations:", 0) == 0) { // LUKS1's digest
			costs.digestIterations = std::max(costs.digestIterations, numberAfter(line));
			continue;
		}
		if (line == "Keyslots:") {
			section = Keyslots;
			slot = nullptr;
			continue;
		}
		if (line == "Digests:") {
			section = Digests;
			slot = nullptr;
			continue;
		}
		if (line.back() == ':' && line.find(' ') == std::string::npos) { // another section
			section = Other;
			slot = nullptr;
			continue;
		}
		if (section == Keyslots && line[0] >= '0' && line[0] <= '9' && line.find(": ") != std::string::npos) {
			// "N: luks2" (another type, e.g. reencrypt, is no key slot)
			slot = nullptr;
			if (line.find(": luks2") != std::string::npos) {
				costs.slots.push_back(KdfSlot{static_cast<int>(numberAfter("x:" + line)), ""});
				slot = &costs.slots.back();
			}
			continue;
		}
		if (section == Keyslots && slot != nullptr)
			readSlotField(*slot, line);
		else if (section == Digests && line.rfind("Iterations:", 0) == 0)
			costs.digestIterations = std::max(costs.digestIterations, numberAfter(line));
	}
	return costs;
}

// Memory the guest can still give a process, from /proc/meminfo.
std::uint64_t availableBytes()
{
	Result<std::string> meminfo = readFile("/proc/meminfo", 16384);
	if (!meminfo)
		return 0;
	for (const std::string &line : splitLines(*meminfo))
		if (line.rfind("MemAvailable:", 0) == 0)
			return numberAfter(line) * 1024;
	return 0;
}

std::uint64_t totalRamBytes()
{
	struct sysinfo info {};
	if (::sysinfo(&info) != 0)
		return 0;
	return static_cast<std::uint64_t>(info.totalram) * info.mem_unit;
}

// Why the key derivation of `slot` is not run ("" when it may be): the
// limits of guest/README.md, "LUKS". `available` and `ram`: the VM's free
// and total memory.
std::string slotRefusal(const KdfSlot &slot, std::uint64_t available, std::uint64_t ram)
{
	char why[256] = "";
	const bool argon = slot.pbkdf.rfind("argon2", 0) == 0;
	if (!argon && slot.pbkdf != "pbkdf2")
		(void)std::snprintf(why, sizeof(why), "key slot %d uses an unknown key derivation", slot.id);
	else if (!argon && slot.iterations > kLuksMaxPbkdf2Iterations)
		(void)std::snprintf(why, sizeof(why), "key slot %d asks for %llu PBKDF2 iterations, over the limit of %llu",
			      slot.id, static_cast<unsigned long long>(slot.iterations),
			      static_cast<unsigned long long>(kLuksMaxPbkdf2Iterations));
	else if (argon && slot.iterations * std::max<std::uint64_t>(slot.memoryKiB, 1) > kLuksMaxArgonWork)
		(void)std::snprintf(why, sizeof(why), "key slot %d asks for %llu Argon2 passes over %llu KiB, over the limit",
			      slot.id, static_cast<unsigned long long>(slot.iterations),
			      static_cast<unsigned long long>(slot.memoryKiB));
	else if (argon && slot.memoryKiB * 1024 + kLuksMemoryMargin > available) {
		// RAM the VM would need: what is in use now, the Argon2 memory
		// and the margin, rounded up to 64 MiB.
		const std::uint64_t need = ((ram - available + slot.memoryKiB * 1024 + kLuksMemoryMargin) >> 20) + 63;
		const std::uint64_t memoryMib = need / 64 * 64;
		const std::uint64_t freeMib = available >> 20;
		(void)std::snprintf(why, sizeof(why),
			      "key slot %d needs %llu MiB for Argon2, this VM has %llu MiB free: stop the VM and "
			      "start it with --memory %llu (within the helper's policy)",
			      slot.id, static_cast<unsigned long long>(slot.memoryKiB >> 10),
			      static_cast<unsigned long long>(freeMib), static_cast<unsigned long long>(memoryMib));
	}
	return why;
}

} // namespace

Result<SystemVolumes::LuksPlan> SystemVolumes::planLuks(Node &node)
{
	// What the header asks of the key derivation, before anything runs
	// it: a crafted header can ask for hours of PBKDF2 or gigabytes of
	// Argon2 memory. Slots over the limits are not tried.
	ToolCommand dump;
	dump.program = "cryptsetup";
	dump.args = {"luksDump", "--disable-locks", node.dev};
	dump.env = {"DM_DISABLE_UDEV=1"};
	dump.timeoutMs = kLuksDumpTimeoutMs;
	Result<ToolResult> dumped = tools_.run(dump);
	if (!dumped || !dumped->ok())
		return Error::invalid(EIO, "luksDump", node.dev, "unreadable header: %s",
				      (dumped ? dumped->summary() : dumped.error().message()).c_str());
	const KdfCosts costs = parseLuksDump(dumped->out);
	const std::uint64_t available = availableBytes();
	const std::uint64_t ram = totalRamBytes();
	LuksPlan plan;
	for (const KdfSlot &slot : costs.slots) {
		const std::string why = slotRefusal(slot, available, ram);
		if (!why.empty()) {
			logf(LogLevel::Warning, "%s: %s: not tried", node.dev.c_str(), why.c_str());
			if (plan.refused.empty())
				plan.refused = why;
			continue;
		}
		plan.slots.push_back(slot.id);
		plan.memoryNeed = std::max(plan.memoryNeed, slot.memoryKiB * 1024);
	}
	if (costs.digestIterations > kLuksMaxPbkdf2Iterations)
		return Error::invalid(E2BIG, "luks", node.dev, "its digest asks for %llu PBKDF2 iterations, over the limit of %llu: not tried",
				      static_cast<unsigned long long>(costs.digestIterations),
				      static_cast<unsigned long long>(kLuksMaxPbkdf2Iterations));
	if (plan.slots.empty())
		return Error::invalid(E2BIG, "luks", node.dev, "%s: not tried",
				      plan.refused.empty() ? "no key slot" : plan.refused.c_str());
	// One run for all slots when every slot passed, else one per usable
	// slot (cryptsetup would otherwise try the refused ones too).
	if (plan.slots.size() == costs.slots.size())
		plan.slots = {-1};
	return plan;
}

bool SystemVolumes::openLuks(int index, std::string_view key)
{
	Node &node = *nodes_[static_cast<std::size_t>(index)];
	if (Status ok = modules_.loadGroup("luks"); !ok) {
		node.reason = "crypto_LUKS: " + ok.error().message();
		return false;
	}
	Result<LuksPlan> plan = planLuks(node);
	if (!plan) {
		node.reason = std::string("crypto_LUKS: ") + plan.error().reason();
		return false;
	}
	const std::string name = "fr-luks" + std::to_string(dmSerial_++);
	std::string failure;
	for (int slot : plan->slots) {
		Result<bool> opened = runLuksOpen(node, key, slot, plan->memoryNeed, name);
		if (!opened) {
			failure = opened.error().reason();
			break;
		}
		if (*opened)
			return true;
		failure = "locked: the key given does not open it";
	}
	if (!plan->refused.empty() && failure == "locked: the key given does not open it")
		failure += " (" + plan->refused + ")";
	node.reason = "crypto_LUKS: " + failure;
	logf(LogLevel::Info, "%s: %s", node.dev.c_str(), node.reason.c_str());
	return false;
}

Result<bool> SystemVolumes::runLuksOpen(Node &node, std::string_view key, int slot, std::uint64_t memoryNeed,
					const std::string &name)
{
	ToolCommand open;
	open.program = "cryptsetup";
	// Read-only mapping; the key on stdin, every byte of it (--key-file=-:
	// no newline processing); no locks (nothing else runs here); no
	// external token handlers.
	open.args = {"open", "--type", "luks", "--readonly", "--key-file=-", "--disable-locks",
		     "--disable-external-tokens"};
	if (slot >= 0)
		open.args.push_back("--key-slot=" + std::to_string(slot));
	open.args.push_back(node.dev);
	open.args.push_back(name);
	open.env = {"DM_DISABLE_UDEV=1"};
	open.input = key;
	open.timeoutMs = kLuksOpenTimeoutMs;
	// A header that lies about its costs meets these: the address space
	// (ENOMEM) and the time limit.
	open.memoryLimit = memoryNeed + kLuksAddressSpaceMargin;
	const std::uint64_t start = monotonicMs();
	Result<ToolResult> result = tools_.run(open);
	if (!result)
		return Error::invalid(result.error().errnum(), "cryptsetup", name, "%s", result.error().message().c_str());
	if (result->ok()) {
		const std::string dev = dmDeviceByName(name);
		if (dev.empty())
			return Error::invalid(ENOENT, "cryptsetup", name, "cryptsetup: no device-mapper device %s", name.c_str());
		node.opened = addDmNode(dev, node.disks);
		node.reason.clear();
		logf(LogLevel::Info, "%s (crypto_LUKS) opened read-only as %s in %llu ms", node.dev.c_str(), dev.c_str(),
		     static_cast<unsigned long long>(monotonicMs() - start));
		return true;
	}
	// cryptsetup's exit 2: no key slot opens with this passphrase.
	if (result->timedOut)
		return Error::invalid(ETIMEDOUT, "cryptsetup", name, "the key derivation did not finish within %d s",
				      static_cast<int>(kLuksOpenTimeoutMs / 1000));
	if (result->exitCode == 2)
		return false;
	return Error::invalid(EIO, "cryptsetup", name, "cryptsetup: %s", result->summary().c_str());
}

std::string SystemVolumes::contentReason(const Node &node) const
{
	if (!node.reason.empty())
		return node.reason;
	if (node.type.empty())
		return "no filesystem or volume recognised";
	if (node.type == "ambiguous")
		return "several signatures (ambiguous): not opened";
	if (node.type == "crypto_LUKS")
		return node.opened >= 0 ? std::string() : "crypto_LUKS: locked: no key given";
	// The module is not built for the image (guest/README.md, "ZFS"): the
	// pool is named, never left out.
	if (node.type == "zfs_member")
		return "zfs_member: ZFS pool member: not supported (this guest image has no ZFS module)";
	if (fsSpecFor(node.type) == nullptr)
		return node.type + ": not supported";
	if (!node.mountError.empty())
		return node.type + ": " + node.mountError;
	return {};
}

VolumeEntry SystemVolumes::entryFor(const std::string &name, int index)
{
	const Node &node = *nodes_[static_cast<std::size_t>(index)];
	VolumeEntry entry;
	entry.name = name;
	entry.sizeBytes = node.sizeBytes;
	entry.reason = contentReason(node);
	return entry;
}

Result<Resolved> SystemVolumes::resolve(const std::vector<std::string_view> &c)
{
	std::lock_guard lock(mutex_);
	if (Status ok = scan(); !ok)
		return ok.error();
	const std::string where = "/" + joinComponents(c, 0);
	Resolved out;
	std::map<std::string, VolumeGroup *> global;
	for (auto &[name, vg] : vgs_)
		if (vg.disks.size() != 1)
			global[name] = &vg;
	if (c.empty()) {
		for (const auto &[index, disk] : disks_)
			out.entries.push_back(VolumeEntry{abi::kDiskDirPrefix + std::to_string(index), 0, {}});
		if (!global.empty())
			out.entries.push_back(VolumeEntry{std::string(kBucketLvm), 0, {}});
		if (!mdArrays_.empty())
			out.entries.push_back(VolumeEntry{std::string(kTopMd), 0, {}});
		return out;
	}
	if (c[0] == kBucketLvm)
		return resolveGroups(global, c, 1, where);
	if (c[0] == kTopMd) {
		if (c.size() == 1) {
			for (const auto &[name, node] : mdArrays_)
				out.entries.push_back(entryFor(name, node));
			return out;
		}
		auto it = mdArrays_.find(std::string(c[1]));
		if (it == mdArrays_.end())
			return notInTree(where);
		return resolveNode(it->second, c, 2, where);
	}
	const std::string_view diskPrefix = abi::kDiskDirPrefix;
	std::uint32_t index = 0;
	if (c[0].substr(0, diskPrefix.size()) != diskPrefix ||
	    !parseVirtualNumber(c[0].substr(diskPrefix.size()), kMaxDisks - 1, index) || disks_.count(index) == 0)
		return notInTree(where);
	Disk &disk = disks_[index];
	std::map<std::string, VolumeGroup *> local;
	for (auto &[name, vg] : vgs_)
		if (vg.disks.size() == 1 && *vg.disks.begin() == index)
			local[name] = &vg;
	const Node &whole = *nodes_[static_cast<std::size_t>(disk.whole)];
	if (c.size() == 1) {
		if (disk.hasTable)
			out.entries.push_back(VolumeEntry{std::string(kBucketPart), 0, {}});
		if (!disk.hasTable || !whole.type.empty())
			out.entries.push_back(entryFor(std::string(kBucketRaw), disk.whole));
		if (!local.empty())
			out.entries.push_back(VolumeEntry{std::string(kBucketLvm), 0, {}});
		return out;
	}
	if (c[1] == kBucketRaw) {
		if (disk.hasTable && whole.type.empty())
			return Error::invalid(ENOENT, "disk", std::string(c[0]),
					      "the disk holds a partition table: see part/");
		return resolveNode(disk.whole, c, 2, where);
	}
	if (c[1] == kBucketLvm)
		return resolveGroups(local, c, 2, where);
	if (c[1] != kBucketPart)
		return notInTree(where);
	if (!disk.hasTable)
		return Error::invalid(ENOENT, "list", where.substr(0, 64), "the disk has no partition table");
	if (c.size() == 2) {
		for (const auto &[number, node] : disk.parts)
			out.entries.push_back(entryFor(std::to_string(number), node));
		return out;
	}
	std::uint32_t number = 0;
	if (!parseVirtualNumber(c[2], kMaxPartition, number) || disk.parts.count(number) == 0)
		return Error::invalid(ENOENT, "partition", std::string(c[2]), "no such partition");
	return resolveNode(disk.parts[number], c, 3, where);
}

Result<Resolved> SystemVolumes::resolveGroups(const std::map<std::string, VolumeGroup *> &groups,
					      const std::vector<std::string_view> &c, std::size_t from,
					      const std::string &where)
{
	Resolved out;
	if (c.size() == from) {
		for (const auto &[name, vg] : groups)
			out.entries.push_back(VolumeEntry{name, 0, {}});
		return out;
	}
	auto vg = groups.find(std::string(c[from]));
	if (vg == groups.end())
		return notInTree(where);
	if (c.size() == from + 1) {
		for (const auto &[name, lv] : vg->second->lvs) {
			VolumeEntry entry = lv.node >= 0 ? entryFor(name, lv.node) : VolumeEntry{name, lv.sizeBytes, lv.reason};
			entry.sizeBytes = lv.sizeBytes;
			out.entries.push_back(entry);
		}
		return out;
	}
	auto lv = vg->second->lvs.find(std::string(c[from + 1]));
	if (lv == vg->second->lvs.end())
		return notInTree(where);
	if (lv->second.node < 0)
		return Error::invalid(EIO, "logical volume", lv->first, "%s", lv->second.reason.c_str());
	return resolveNode(lv->second.node, c, from + 2, where);
}

Result<Resolved> SystemVolumes::resolveNode(int index, const std::vector<std::string_view> &c, std::size_t from,
					    const std::string &where)
{
	Node &node = *nodes_[static_cast<std::size_t>(index)];
	if (node.aliasOf >= 0)
		return resolveNode(node.aliasOf, c, from, where);
	if (node.type == "crypto_LUKS" && node.opened >= 0) {
		// An opened LUKS volume: its content is the layer "luks".
		if (c.size() == from) {
			Resolved out;
			out.entries.push_back(entryFor(std::string(kLayerLuks), node.opened));
			return out;
		}
		if (c[from] != kLayerLuks)
			return notInTree(where);
		return resolveNode(node.opened, c, from + 1, where);
	}
	const FsSpec *spec = fsSpecFor(node.type);
	if (spec == nullptr || !node.reason.empty()) {
		const std::string reason = contentReason(node);
		const int err = node.type == "crypto_LUKS" ? ENOKEY : EOPNOTSUPP;
		return Error::invalid(err, "volume", where.substr(0, 64), "%s", reason.c_str());
	}
	if (node.type == "btrfs" && c.size() > from && c[from] == kLayerSubvol)
		return resolveSubvolume(index, c, from + 1, where);
	Result<int> root = mountNode(index, where);
	if (!root)
		return root.error();
	Resolved out;
	out.isFilesystem = true;
	out.root = *root;
	out.rest = joinComponents(c, from);
	out.warning = node.warning;
	if (node.type == "btrfs")
		out.rootExtras.push_back(VolumeEntry{std::string(kLayerSubvol), 0, {}});
	return out;
}

Status SystemVolumes::mountKernel(Node &node, const FsSpec &spec, const std::string &where)
{
	if (Status ok = modules_.loadGroup(spec.moduleGroup); !ok)
		return ok.error();
	for (std::uint32_t d : node.disks)
		if (auto it = disks_.find(d); it != disks_.end())
			setReadOnly(devDir_ + "/" + it->second.name);
	setReadOnly(node.dev);
	setReadAhead(node.dev);
	const std::uint64_t start = monotonicMs();
	if (::mount(node.dev.c_str(), where.c_str(), spec.kernelType, guestMountFlags(), spec.options) == 0) {
		node.mountedDev = node.dev;
		node.mountedOptions = spec.options;
		logf(LogLevel::Info, "mounted %s (%s) read-only in %llu ms", node.dev.c_str(), node.type.c_str(),
		     static_cast<unsigned long long>(monotonicMs() - start));
		return {};
	}
	const int err = errno;
	if (spec.noReplay == nullptr)
		return Error::invalid(err, "mount", node.dev, "%s as %s: %s", node.type.c_str(), spec.kernelType,
				      errnoText(err));
	// The journal or log needs replaying (the read-only device refused
	// it): replay it into a throwaway layer.
	logf(LogLevel::Info, "%s (%s): %s; replaying its journal into a throwaway layer", node.dev.c_str(),
	     node.type.c_str(), errnoText(err));
	std::string cowError;
	if (!replay_) {
		cowError = std::string("disabled by ") + abi::kCmdlineReplay + "=no";
	} else if (Status ok = modules_.loadGroup("cow"); !ok) {
		cowError = ok.error().message();
	} else {
		Result<CowDevice> cow = makeCow(node.dev, node.sizeBytes, cowStoreBytes(), "/run/fr-cow", cows_++);
		if (!cow) {
			cowError = cow.error().message();
		} else if (::mount(cow->dev.c_str(), where.c_str(), spec.kernelType, guestMountFlags(), spec.options) == 0) {
			node.mountedDev = cow->dev;
			node.mountedOptions = spec.options;
			logf(LogLevel::Info, "mounted %s (%s) read-only with its journal replayed into %s in %llu ms",
			     node.dev.c_str(), node.type.c_str(), cow->dev.c_str(),
			     static_cast<unsigned long long>(monotonicMs() - start));
			return {};
		} else {
			cowError = errnoText(errno);
			removeCow(*cow);
		}
	}
	logf(LogLevel::Warning, "%s: replay failed (%s): mounting without it", node.dev.c_str(), cowError.c_str());
	if (::mount(node.dev.c_str(), where.c_str(), spec.kernelType, guestMountFlags(), spec.noReplay) != 0) {
		const int again = errno;
		return Error::invalid(again, "mount", node.dev, "%s as %s: %s", node.type.c_str(), spec.kernelType,
				      errnoText(again));
	}
	node.mountedDev = node.dev;
	node.mountedOptions = spec.noReplay;
	node.warning = kJournalWarning;
	logf(LogLevel::Warning, "mounted %s (%s) read-only WITHOUT journal replay", node.dev.c_str(), node.type.c_str());
	return {};
}

Status SystemVolumes::mountNtfs(Node &node, const std::string &where)
{
	if (Status ok = modules_.loadGroup("fuse"); !ok)
		return ok.error();
	setReadOnly(node.dev);
	setReadAhead(node.dev);
	ToolCommand command;
	command.program = "ntfs-3g";
	// ro; the mount flags of every guest filesystem; names as UTF-8;
	// alternate data streams as extended attributes (not as files).
	command.args = {"-o", "ro,nodev,nosuid,noexec,noatime,streams_interface=xattr", node.dev, where};
	command.timeoutMs = kNtfsTimeoutMs;
	const std::uint64_t start = monotonicMs();
	Result<ToolResult> result = tools_.run(command);
	if (!result)
		return result.error();
	if (!result->ok())
		return Error::invalid(EIO, "ntfs-3g", node.dev, "%s", result->summary().c_str());
	node.mountedDev = node.dev;
	logf(LogLevel::Info, "mounted %s (ntfs, ntfs-3g) read-only in %llu ms", node.dev.c_str(),
	     static_cast<unsigned long long>(monotonicMs() - start));
	return {};
}

Result<int> SystemVolumes::mountNode(int index, const std::string &where)
{
	Node &node = *nodes_[static_cast<std::size_t>(index)];
	if (node.root.isValid())
		return node.root.get();
	if (!node.mountError.empty())
		return Error::invalid(EIO, "volume", where.substr(0, 64), "%s: %s", node.type.c_str(),
				      node.mountError.c_str());
	const FsSpec *spec = fsSpecFor(node.type);
	node.mountPath = mountBase_ + "/" + node.sysName;
	if (Status ok = makeDirs(node.mountPath); !ok)
		return ok.error();
	Status mounted = node.type == "ntfs" ? mountNtfs(node, node.mountPath) : mountKernel(node, *spec, node.mountPath);
	if (!mounted) {
		// Said once, then again from memory: a hostile volume is not
		// retried on every request.
		node.mountError = mounted.error().message();
		return mounted.error();
	}
	UniqueFd root(::open(node.mountPath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
	if (!root.isValid())
		return Error(errno, "open", node.mountPath);
	++mounts_;
	node.root = std::move(root);
	return node.root.get();
}

namespace {

struct Subvolume {
	std::uint64_t id = 0;
	std::uint64_t parent = 0;
	std::string path; // from the top level, e.g. "snapshots/before"
};

// Every subvolume of the btrfs that `fd` is on (root tree ROOT_BACKREF
// items; each directory path looked up with INO_LOOKUP), paths from the
// top level. Read-only ioctls.
// A subvolume's back reference in the root tree: its id, its parent
// subvolume, the directory it sits in there and its name.
struct RootRef {
	std::uint64_t id, parent, dirid;
	std::string name;
};

Result<std::vector<RootRef>> searchRootRefs(int fd)
{
	btrfs_ioctl_search_args args{};
	btrfs_ioctl_search_key &key = args.key;
	key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
	key.min_objectid = BTRFS_FIRST_FREE_OBJECTID;
	key.max_objectid = BTRFS_LAST_FREE_OBJECTID;
	key.min_type = BTRFS_ROOT_BACKREF_KEY;
	key.max_type = BTRFS_ROOT_BACKREF_KEY;
	key.max_offset = UINT64_MAX;
	key.max_transid = UINT64_MAX;
	std::vector<RootRef> refs;
	for (int rounds = 0; rounds < 1024; ++rounds) {
		key.nr_items = 4096;
		if (::ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) != 0)
			return Error(errno, "BTRFS_IOC_TREE_SEARCH", "root tree");
		if (key.nr_items == 0)
			break;
		std::size_t off = 0;
		btrfs_ioctl_search_header header{};
		for (std::uint32_t i = 0; i < key.nr_items; ++i) {
			if (off + sizeof(header) > sizeof(args.buf))
				break;
			std::memcpy(&header, args.buf + off, sizeof(header));
			off += sizeof(header);
			if (off + header.len > sizeof(args.buf))
				break;
			if (header.type == BTRFS_ROOT_BACKREF_KEY && header.len >= sizeof(btrfs_root_ref)) {
				btrfs_root_ref ref{};
				std::memcpy(&ref, args.buf + off, sizeof(ref));
				const std::size_t nameLen = std::min<std::size_t>(
					ref.name_len, header.len - sizeof(btrfs_root_ref));
				refs.push_back(RootRef{header.objectid, header.offset, ref.dirid,
						   std::string(args.buf + off + sizeof(ref), nameLen)});
			}
			off += header.len;
			key.min_objectid = header.objectid;
			key.min_type = header.type;
			key.min_offset = header.offset;
		}
		// Next key.
		if (key.min_offset < UINT64_MAX) {
			++key.min_offset;
		} else {
			key.min_offset = 0;
			++key.min_objectid;
		}
		if (key.min_objectid > key.max_objectid)
			break;
		key.min_type = BTRFS_ROOT_BACKREF_KEY;
	}
	return refs;
}

// Full paths: prefix each with its parents' (at most 64 levels: a loop in
// hostile metadata ends there). Those not reaching the top are left out.
std::vector<Subvolume> withFullPaths(const std::map<std::uint64_t, Subvolume> &byId)
{
	std::vector<Subvolume> out;
	for (const auto &[id, sub] : byId) {
		std::string path = sub.path;
		std::uint64_t parent = sub.parent;
		for (int depth = 0; depth < 64 && parent != BTRFS_FS_TREE_OBJECTID; ++depth) {
			auto it = byId.find(parent);
			if (it == byId.end())
				break;
			path = concat(it->second.path, "/", path);
			parent = it->second.parent;
		}
		if (parent != BTRFS_FS_TREE_OBJECTID)
			continue;
		out.push_back(Subvolume{id, sub.parent, path});
	}
	return out;
}

Result<std::vector<Subvolume>> listSubvolumes(int fd)
{
	Result<std::vector<RootRef>> refs = searchRootRefs(fd);
	if (!refs)
		return refs.error();
	std::map<std::uint64_t, Subvolume> byId;
	for (const RootRef &ref : *refs) {
		std::string dir;
		if (ref.dirid != BTRFS_FIRST_FREE_OBJECTID) {
			btrfs_ioctl_ino_lookup_args lookup{};
			lookup.treeid = ref.parent;
			lookup.objectid = ref.dirid;
			if (::ioctl(fd, BTRFS_IOC_INO_LOOKUP, &lookup) != 0)
				continue;
			lookup.name[sizeof(lookup.name) - 1] = '\0';
			dir = lookup.name;
		}
		byId[ref.id] = Subvolume{ref.id, ref.parent, dir + ref.name};
	}
	return withFullPaths(byId);
}

} // namespace

Result<Resolved> SystemVolumes::resolveSubvolume(int index, const std::vector<std::string_view> &c,
						 std::size_t from, const std::string &where)
{
	Result<int> root = mountNode(index, where);
	if (!root)
		return root.error();
	Node &node = *nodes_[static_cast<std::size_t>(index)];
	UniqueFd dir(::openat(*root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dir.isValid())
		return Error(errno, "open", node.mountPath);
	Result<std::vector<Subvolume>> subvols = listSubvolumes(dir.get());
	if (!subvols)
		return subvols.error();
	// The longest subvolume path the request starts with; or, while the
	// request is a prefix of subvolume paths, a virtual directory.
	const Subvolume *match = nullptr;
	std::size_t matched = 0;
	for (const Subvolume &sub : *subvols) {
		std::vector<std::string_view> parts;
		std::string_view p = sub.path;
		while (!p.empty()) {
			const std::size_t slash = p.find('/');
			parts.push_back(p.substr(0, slash));
			p = slash == std::string_view::npos ? std::string_view() : p.substr(slash + 1);
		}
		if (parts.empty() || c.size() - from < parts.size())
			continue;
		if (std::equal(parts.begin(), parts.end(), c.begin() + static_cast<std::ptrdiff_t>(from)) &&
		    parts.size() > matched) {
			match = &sub;
			matched = parts.size();
		}
	}
	if (match == nullptr) {
		Resolved out;
		std::set<std::string> names;
		const std::string prefix = joinComponents(c, from);
		for (const Subvolume &sub : *subvols) {
			if (!prefix.empty() && sub.path.rfind(prefix + "/", 0) != 0)
				continue;
			std::string rest = prefix.empty() ? sub.path : sub.path.substr(prefix.size() + 1);
			if (const std::size_t slash = rest.find('/'); slash != std::string::npos)
				rest.resize(slash);
			if (proto::checkName(rest))
				names.insert(rest);
		}
		if (names.empty())
			return notInTree(where);
		for (const std::string &name : names)
			out.entries.push_back(VolumeEntry{name, 0, {}});
		return out;
	}
	auto it = node.subvolRoots.find(match->id);
	if (it == node.subvolRoots.end()) {
		const std::string path = node.mountPath + "-subvol/" + std::to_string(match->id);
		if (Status ok = makeDirs(path); !ok)
			return ok.error();
		std::string options = "subvolid=" + std::to_string(match->id);
		if (!node.mountedOptions.empty())
			options += "," + node.mountedOptions;
		if (::mount(node.mountedDev.c_str(), path.c_str(), "btrfs", guestMountFlags(), options.c_str()) != 0)
			return Error::invalid(errno, "mount", match->path, "btrfs subvolume: %s", errnoText(errno));
		UniqueFd subRoot(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
		if (!subRoot.isValid())
			return Error(errno, "open", path);
		++mounts_;
		it = node.subvolRoots.emplace(match->id, std::move(subRoot)).first;
	}
	Resolved out;
	out.isFilesystem = true;
	out.root = it->second.get();
	out.rest = joinComponents(c, from + matched);
	out.warning = node.warning;
	return out;
}

} // namespace fr::guest
