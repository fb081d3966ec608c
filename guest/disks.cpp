// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/disks.h"

#include <blkid.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "guest/activity.h"
#include "shared/fd_io.h"
#include "shared/guest_abi.h"
#include "shared/log.h"
#include "shared/validate.h"

namespace fr::guest {

namespace {

// ext2/ext3 are mounted by the ext4 driver (CONFIG_EXT4_USE_FOR_EXT2).
// noload / norecovery / rescue=nologreplay: a dirty journal or log is not
// replayed (the device is read-only anyway; replaying would fail or, worse,
// run the journal code on hostile data for nothing).
constexpr FsSpec kFsSpecs[] = {
	{"ext2", "ext4", "noload", "ext4"},
	{"ext3", "ext4", "noload", "ext4"},
	{"ext4", "ext4", "noload", "ext4"},
	{"xfs", "xfs", "norecovery", "xfs"},
	{"btrfs", "btrfs", "rescue=nologreplay", "btrfs"},
	{"vfat", "vfat", "iocharset=utf8,shortname=mixed", "vfat"},
	{"exfat", "exfat", "iocharset=utf8", "exfat"},
	{"iso9660", "iso9660", "iocharset=utf8", "isofs"},
	{"udf", "udf", "utf8", "udf"},
};

// Reads a small sysfs attribute, without the trailing newline.
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

struct Probed {
	std::string type;   // a filesystem (TYPE)
	std::string ptType; // a partition table (PTTYPE)
};

// One libblkid safe probe: superblocks (and partition tables if asked).
// Ambiguous results (several signatures) count as nothing: guessing is how
// a crafted image gets the wrong driver.
Probed probeDevice(const std::string &dev, bool partitions)
{
	Probed result;
	std::unique_ptr<blkid_struct_probe, ProbeDeleter> pr(blkid_new_probe_from_filename(dev.c_str()));
	if (!pr) {
		logf(LogLevel::Warning, "blkid: cannot probe %s", dev.c_str());
		return result;
	}
	blkid_probe_enable_superblocks(pr.get(), 1);
	blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr.get(), partitions ? 1 : 0);
	const int rc = blkid_do_safeprobe(pr.get());
	if (rc == -2) {
		logf(LogLevel::Warning, "blkid: %s has ambiguous signatures: not mounted", dev.c_str());
		return result;
	}
	if (rc != 0)
		return result;
	const char *value = nullptr;
	if (blkid_probe_lookup_value(pr.get(), "TYPE", &value, nullptr) == 0 && value != nullptr)
		result.type = value;
	if (partitions && blkid_probe_lookup_value(pr.get(), "PTTYPE", &value, nullptr) == 0 && value != nullptr)
		result.ptType = value;
	return result;
}

// Marks a block device read-only in the guest kernel too: even a bug in a
// filesystem driver cannot then write (QEMU refuses writes as well).
void setReadOnly(const std::string &dev)
{
	UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
	int one = 1;
	if (!fd.isValid() || ::ioctl(fd.get(), BLKROSET, &one) != 0)
		logf(LogLevel::Warning, "BLKROSET(%s) failed (errno %d)", dev.c_str(), errno);
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

std::vector<std::uint32_t> SystemVolumes::disks()
{
	std::lock_guard lock(mutex_);
	std::vector<std::uint32_t> out;
	for (const auto &entry : disks_)
		out.push_back(entry.first);
	return out;
}

Status SystemVolumes::probe(std::uint32_t index, Disk &disk)
{
	if (disk.probed)
		return {};
	const std::string sys = sysBlock_ + "/" + disk.name;
	const std::string dev = devDir_ + "/" + disk.name;
	disk.layout.sizeBytes = sectorsToBytes(sys + "/size");
	const Probed whole = probeDevice(dev, true);
	if (!whole.type.empty()) {
		if (fsSpecFor(whole.type) != nullptr)
			disk.layout.wholeFsType = whole.type;
		else
			logf(LogLevel::Info, "disk%u: filesystem type %s is not supported", index, whole.type.c_str());
	}
	// Partitions as the kernel parsed them: /sys/block/vda/vdaN/partition.
	DIR *dir = ::opendir(sys.c_str());
	if (dir == nullptr)
		return Error(errno, "opendir", sys);
	std::map<std::uint32_t, std::string> parts;
	while (const dirent *d = ::readdir(dir)) {
		const std::string name = d->d_name;
		if (name.rfind(disk.name, 0) != 0)
			continue;
		Result<std::string> number = readAttribute(std::string(sys).append("/").append(name).append("/partition"));
		if (!number)
			continue;
		Result<std::uint64_t> n = parseDecimal(*number, 1, kMaxPartition, "partition");
		if (n)
			parts.emplace(static_cast<std::uint32_t>(*n), name);
	}
	::closedir(dir);
	disk.layout.hasTable = !whole.ptType.empty() || !parts.empty();
	for (const auto &[number, name] : parts) {
		const Probed probed = probeDevice(std::string(devDir_).append("/").append(name), false);
		if (probed.type.empty() || fsSpecFor(probed.type) == nullptr) {
			logf(LogLevel::Info, "disk%u part %u: %s, not listed", index, number,
			     probed.type.empty() ? "no known filesystem" : probed.type.c_str());
			continue;
		}
		PartitionInfo info;
		info.number = number;
		info.sizeBytes = sectorsToBytes(std::string(sys).append("/").append(name).append("/size"));
		info.fsType = probed.type;
		disk.layout.partitions.push_back(info);
	}
	disk.probed = true;
	logf(LogLevel::Info, "disk%u (%s): %s%s%s, %zu partition(s) with a supported filesystem", index,
	     disk.name.c_str(), disk.layout.hasTable ? "partition table " : "",
	     whole.ptType.c_str(), disk.layout.wholeFsType.empty() ? "" : (" whole-disk " + disk.layout.wholeFsType).c_str(),
	     disk.layout.partitions.size());
	return {};
}

Result<DiskLayout> SystemVolumes::layout(std::uint32_t disk)
{
	std::lock_guard lock(mutex_);
	auto it = disks_.find(disk);
	if (it == disks_.end())
		return Error::invalid(ENOENT, "disk", std::to_string(disk), "no such disk");
	if (Status ok = probe(disk, it->second); !ok)
		return ok.error();
	return it->second.layout;
}

Result<int> SystemVolumes::mount(std::uint32_t index, Disk &disk, Bucket bucket, std::uint32_t partition,
				 const std::string &fsType)
{
	const FsSpec *spec = fsSpecFor(fsType);
	if (spec == nullptr)
		return Error::invalid(EOPNOTSUPP, "mount", fsType, "filesystem type not supported");
	if (Status ok = modules_.loadGroup(spec->moduleGroup); !ok)
		return ok.error();
	std::string dev = devDir_ + "/" + disk.name;
	std::string where = mountBase_ + "/disk" + std::to_string(index);
	if (bucket == Bucket::Part) {
		// vda1, but nvme-style names (p1) never occur for virtio.
		dev += std::to_string(partition);
		where += "/part/" + std::to_string(partition);
	} else {
		where += "/raw";
	}
	if (Status ok = makeDirs(where); !ok)
		return ok.error();
	setReadOnly(devDir_ + "/" + disk.name);
	setReadOnly(dev);
	const std::int64_t start = monotonicMs();
	if (::mount(dev.c_str(), where.c_str(), spec->kernelType, guestMountFlags(), spec->options) != 0) {
		const int err = errno;
		// strerrordesc_np: thread-safe and locale-free, unlike strerror.
		const char *reason = strerrordesc_np(err);
		return Error::invalid(err, "mount", dev, "%s as %s (%s): %s", fsType.c_str(), spec->kernelType,
				      spec->options, reason != nullptr ? reason : "unknown error");
	}
	UniqueFd mounted(::open(where.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
	if (!mounted.isValid())
		return Error(errno, "open", where);
	++mounts_;
	logf(LogLevel::Info, "mounted %s (%s) read-only in %lld ms", dev.c_str(), fsType.c_str(),
	     static_cast<long long>(monotonicMs() - start));
	const int fd = mounted.get();
	if (bucket == Bucket::Part)
		disk.partRoots[partition] = std::move(mounted);
	else
		disk.rawRoot = std::move(mounted);
	return fd;
}

Result<int> SystemVolumes::root(std::uint32_t index, Bucket bucket, std::uint32_t partition)
{
	std::lock_guard lock(mutex_);
	auto it = disks_.find(index);
	if (it == disks_.end())
		return Error::invalid(ENOENT, "disk", std::to_string(index), "no such disk");
	Disk &disk = it->second;
	if (Status ok = probe(index, disk); !ok)
		return ok.error();
	if (bucket == Bucket::Raw) {
		if (disk.rawRoot.isValid())
			return disk.rawRoot.get();
		if (disk.layout.wholeFsType.empty())
			return Error::invalid(ENOENT, "disk", std::to_string(index),
					      "no supported filesystem on the whole disk");
		return mount(index, disk, bucket, 0, disk.layout.wholeFsType);
	}
	if (auto mounted = disk.partRoots.find(partition); mounted != disk.partRoots.end())
		return mounted->second.get();
	for (const PartitionInfo &part : disk.layout.partitions)
		if (part.number == partition)
			return mount(index, disk, bucket, partition, part.fsType);
	return Error::invalid(ENOENT, "partition", std::to_string(partition),
			      "no such partition with a supported filesystem");
}

std::uint32_t SystemVolumes::mountCount()
{
	std::lock_guard lock(mutex_);
	return mounts_;
}

} // namespace fr::guest
