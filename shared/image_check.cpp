// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/image_check.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "shared/qcow2.h"
#include "shared/unique_fd.h"

namespace fr {

namespace {

std::uint64_t le(std::span<const unsigned char> bytes, std::size_t at, std::size_t width) noexcept
{
	std::uint64_t value = 0;
	for (std::size_t i = width; i > 0; --i)
		value = (value << 8) | bytes[at + i - 1];
	return value;
}

// Reads exactly `out.size()` bytes at `offset`; a short read is EINVAL
// ("truncated"), naming `what`.
Status readExactly(const ReadAt &read, std::uint64_t offset, std::span<unsigned char> out,
		   const char *format, std::string_view what)
{
	Result<std::size_t> got = read(offset, out);
	if (!got)
		return got.error();
	if (*got != out.size())
		return Error::invalid(EINVAL, format, what, "truncated %s image", format);
	return {};
}

// The GUIDs VHDX uses, as stored on disk (the first three fields little
// endian), from the VHDX specification.
using Guid = unsigned char[16];
constexpr Guid kVhdxMetadataRegion = {0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
				      0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
constexpr Guid kVhdxFileParameters = {0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
				      0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b};
constexpr Guid kVhdxParentLocator = {0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
				     0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c};
constexpr std::uint64_t kVhdxRegionTable = std::uint64_t{192} * 1024;
constexpr std::uint32_t kVhdxMaxEntries = 2047;
constexpr std::uint32_t kVhdxHasParent = 1U << 1;

bool sameGuid(std::span<const unsigned char> bytes, std::size_t at, const Guid &guid) noexcept
{
	return std::memcmp(bytes.data() + at, guid, sizeof(Guid)) == 0;
}

struct KernelFs {
	std::uint64_t magic;
	const char *name;
};
// Filesystems whose files are kernel state, never disk images. devtmpfs
// shares the tmpfs magic and is told apart through mountinfo.
constexpr KernelFs kKernelFilesystems[] = {
	{PROC_SUPER_MAGIC, "procfs"},       {SYSFS_MAGIC, "sysfs"},
	{DEBUGFS_MAGIC, "debugfs"},         {SECURITYFS_MAGIC, "securityfs"},
	{CGROUP_SUPER_MAGIC, "cgroupfs"},   {CGROUP2_SUPER_MAGIC, "cgroup2fs"},
	{TRACEFS_MAGIC, "tracefs"},         {BPF_FS_MAGIC, "bpffs"},
	{PSTOREFS_MAGIC, "pstore"},         {EFIVARFS_MAGIC, "efivarfs"},
	{DEVPTS_SUPER_MAGIC, "devpts"},     {SELINUX_MAGIC, "selinuxfs"},
	{SMACK_MAGIC, "smackfs"},           {BINFMTFS_MAGIC, "binfmt_misc"},
	{NSFS_MAGIC, "nsfs"},               {0x62656570, "configfs"},
	{0x65735543, "fusectl"},
};

} // namespace

ReadAt fdReader(int fd)
{
	return [fd](std::uint64_t offset, std::span<unsigned char> out) -> Result<std::size_t> {
		std::size_t got = 0;
		while (got < out.size()) {
			const ssize_t n = ::pread(fd, out.data() + got, out.size() - got,
						  static_cast<off_t>(offset + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return Error(errno, "pread", "image");
			if (n == 0)
				break;
			got += static_cast<std::size_t>(n);
		}
		return got;
	};
}

ReadAt bytesReader(std::string_view bytes)
{
	return [bytes](std::uint64_t offset, std::span<unsigned char> out) -> Result<std::size_t> {
		if (offset >= bytes.size())
			return std::size_t{0};
		const std::size_t n = std::min<std::uint64_t>(out.size(), bytes.size() - offset);
		std::memcpy(out.data(), bytes.data() + offset, n);
		return n;
	};
}

Status checkVmdkHeader(const ReadAt &read, std::string_view what)
{
	// The hosted sparse extent header ("KDMV", little endian; QEMU's
	// VMDK4Header after the magic): version at 4, capacity at 12,
	// descriptor offset at 28.
	unsigned char header[512] = {};
	Result<std::size_t> got = read(0, header);
	if (!got)
		return got.error();
	const std::span<const unsigned char> h(header, *got);
	const auto starts = [&h](const char *magic) {
		return h.size() >= 4 && std::memcmp(h.data(), magic, 4) == 0;
	};
	if (starts("COWD"))
		return Error::invalid(EPERM, "vmdk", what,
				      "an ESX sparse extent (COWD) belongs to a descriptor; only "
				      "monolithic sparse and streamOptimized VMDKs are accepted");
	if (!starts("KDMV"))
		return Error::invalid(EPERM, "vmdk", what,
				      "not a binary sparse VMDK: QEMU would parse it as a text descriptor, "
				      "whose extent lines name other files (refused)");
	if (h.size() < 80)
		return Error::invalid(EINVAL, "vmdk", what, "truncated vmdk image");
	const std::uint64_t version = le(h, 4, 4);
	if (version < 1 || version > 3)
		return Error::invalid(EINVAL, "vmdk", what, "unsupported vmdk version %u",
				      static_cast<unsigned>(version));
	if (le(h, 12, 8) == 0)
		return Error::invalid(EPERM, "vmdk", what,
				      "capacity 0: QEMU would read the embedded descriptor as a text "
				      "descriptor naming other files (refused)");
	// QEMU looks for a parent ("parentFileNameHint") in the 10 KiB after the
	// header sector: a differencing disk is useless without it.
	std::vector<unsigned char> descriptor(10240);
	Result<std::size_t> descGot = read(512, descriptor);
	if (!descGot)
		return descGot.error();
	const std::string_view text(reinterpret_cast<const char *>(descriptor.data()), *descGot);
	if (text.substr(0, text.find('\0')).find("parentFileNameHint") != std::string_view::npos)
		return Error::invalid(EPERM, "vmdk", what,
				      "a differencing disk (it names a parent file; refused)");
	return {};
}

Status checkVdiHeader(const ReadAt &read, std::string_view what)
{
	// After 64 bytes of text: signature, version, header size, image type.
	unsigned char header[0x50] = {};
	Result<std::size_t> got = read(0, header);
	if (!got)
		return got.error();
	const std::span<const unsigned char> h(header, *got);
	if (h.size() < sizeof(header) || le(h, 0x40, 4) != 0xbeda107fU)
		return Error::invalid(EINVAL, "vdi", what, "not a vdi image (bad signature)");
	if (le(h, 0x44, 4) != 0x00010001U)
		return Error::invalid(EINVAL, "vdi", what, "unsupported vdi version");
	const std::uint64_t type = le(h, 0x4c, 4);
	if (type == 3 || type == 4)
		return Error::invalid(EPERM, "vdi", what,
				      "a %s image (it needs its parent; refused)",
				      type == 4 ? "differencing" : "undo");
	if (type != 1 && type != 2)
		return Error::invalid(EINVAL, "vdi", what, "unknown vdi image type %u",
				      static_cast<unsigned>(type));
	return {};
}

Status checkVhdxHeader(const ReadAt &read, std::string_view what)
{
	unsigned char ident[8] = {};
	if (Result<std::size_t> got = read(0, ident); !got)
		return got.error();
	if (std::memcmp(ident, "vhdxfile", 8) != 0)
		return Error::invalid(EINVAL, "vhdx", what, "not a vhdx image (bad signature)");
	// Region table 1: "regi", checksum, entry count, then 32-byte entries
	// (GUID, file offset, length, flags).
	std::vector<unsigned char> table(16 + 32 * std::size_t{kVhdxMaxEntries});
	if (Status ok = readExactly(read, kVhdxRegionTable, {table.data(), 16}, "vhdx", what); !ok)
		return ok;
	if (std::memcmp(table.data(), "regi", 4) != 0)
		return Error::invalid(EINVAL, "vhdx", what, "bad region table");
	const std::uint64_t regions = le(table, 8, 4);
	if (regions > kVhdxMaxEntries)
		return Error::invalid(EINVAL, "vhdx", what, "too many regions");
	table.resize(16 + 32 * regions);
	if (Status ok = readExactly(read, kVhdxRegionTable, table, "vhdx", what); !ok)
		return ok;
	std::optional<std::uint64_t> metadata;
	for (std::size_t i = 0; i < regions; ++i)
		if (sameGuid(table, 16 + 32 * i, kVhdxMetadataRegion))
			metadata = le(table, 16 + 32 * i + 16, 8);
	if (!metadata)
		return Error::invalid(EINVAL, "vhdx", what, "no metadata region");
	// The metadata table: "metadata", reserved, entry count, 20 reserved
	// bytes, then 32-byte entries (item GUID, offset, length, flags, ...).
	std::vector<unsigned char> items(32);
	if (Status ok = readExactly(read, *metadata, items, "vhdx", what); !ok)
		return ok;
	if (std::memcmp(items.data(), "metadata", 8) != 0)
		return Error::invalid(EINVAL, "vhdx", what, "bad metadata table");
	const std::uint64_t count = le(items, 10, 2);
	if (count > kVhdxMaxEntries)
		return Error::invalid(EINVAL, "vhdx", what, "too many metadata items");
	items.resize(32 + 32 * count);
	if (Status ok = readExactly(read, *metadata, items, "vhdx", what); !ok)
		return ok;
	bool parameters = false;
	for (std::size_t i = 0; i < count; ++i) {
		const std::size_t at = 32 + 32 * i;
		if (sameGuid(items, at, kVhdxParentLocator))
			return Error::invalid(EPERM, "vhdx", what,
					      "a differencing disk (parent locator; refused)");
		if (!sameGuid(items, at, kVhdxFileParameters))
			continue;
		unsigned char value[8] = {};
		if (Status ok = readExactly(read, *metadata + le(items, at + 16, 4), value, "vhdx", what); !ok)
			return ok;
		if ((le(value, 4, 4) & kVhdxHasParent) != 0)
			return Error::invalid(EPERM, "vhdx", what,
					      "a differencing disk (has a parent; refused)");
		parameters = true;
	}
	if (!parameters)
		return Error::invalid(EINVAL, "vhdx", what, "no file parameters");
	return {};
}

Status checkImageHeader(int fd, contract::ImageFormat format, std::string_view what)
{
	using contract::ImageFormat;
	switch (format) {
	case ImageFormat::Qcow2:
		return checkQcow2File(fd, what);
	case ImageFormat::Vmdk:
		return checkVmdkHeader(fdReader(fd), what);
	case ImageFormat::Vdi:
		return checkVdiHeader(fdReader(fd), what);
	case ImageFormat::Vhdx:
		return checkVhdxHeader(fdReader(fd), what);
	case ImageFormat::Raw:
	case ImageFormat::Nbd:
		break;
	}
	return {};
}

std::optional<std::string_view> kernelFilesystemName(std::uint64_t magic) noexcept
{
	for (const KernelFs &fs : kKernelFilesystems)
		if (fs.magic == magic)
			return fs.name;
	return std::nullopt;
}

std::optional<std::string_view> mountFilesystemType(std::string_view mountinfo,
						    std::uint64_t mountId) noexcept
{
	// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the
	// mount id first, the type right after the " - " separator.
	const std::string id = std::to_string(mountId) + " ";
	while (!mountinfo.empty()) {
		const std::size_t end = mountinfo.find('\n');
		const std::string_view line = mountinfo.substr(0, end);
		mountinfo = end == std::string_view::npos ? std::string_view() : mountinfo.substr(end + 1);
		if (line.substr(0, id.size()) != id)
			continue;
		const std::size_t dash = line.find(" - ");
		if (dash == std::string_view::npos)
			return std::nullopt;
		const std::string_view rest = line.substr(dash + 3);
		return rest.substr(0, rest.find(' '));
	}
	return std::nullopt;
}

Status checkImageFile(int fd, std::string_view what)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", what);
	if (!S_ISREG(st.st_mode))
		return Error::invalid(EPERM, "open", what, "not a regular file");
	struct statfs fs {};
	if (::fstatfs(fd, &fs) != 0)
		return Error(errno, "fstatfs", what);
	const auto magic = static_cast<std::uint64_t>(fs.f_type);
	if (std::optional<std::string_view> name = kernelFilesystemName(magic))
		return Error::invalid(EPERM, "image", what, "on %.*s, not a disk filesystem (refused)",
				      static_cast<int>(name->size()), name->data());
	if (magic != TMPFS_MAGIC && magic != RAMFS_MAGIC)
		return {};
	// devtmpfs is tmpfs inside: ask which mount the fd is on.
	struct statx sx {};
	if (::statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0 || (sx.stx_mask & STATX_MNT_ID) == 0)
		return Error(errno != 0 ? errno : ENOTSUP, "statx(STATX_MNT_ID)", what);
	UniqueFd info(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
	if (!info.isValid())
		return Error(errno, "open", "/proc/self/mountinfo");
	std::string text;
	char buf[8192];
	for (;;) {
		const ssize_t n = ::read(info.get(), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", "/proc/self/mountinfo");
		if (n == 0 || text.size() > (std::size_t{16} << 20))
			break;
		text.append(buf, static_cast<std::size_t>(n));
	}
	const std::optional<std::string_view> type = mountFilesystemType(text, sx.stx_mnt_id);
	if (!type)
		return Error::invalid(EPERM, "image", what, "on a tmpfs mount that mountinfo does not list");
	if (*type != "tmpfs" && *type != "ramfs")
		return Error::invalid(EPERM, "image", what, "on %.*s, not a disk filesystem (refused)",
				      static_cast<int>(type->size()), type->data());
	return {};
}

} // namespace fr
