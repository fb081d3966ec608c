// SPDX-License-Identifier: AGPL-3.0-or-later
// The VM image the build produced (guest/build-image.sh) and the pieces that
// make it: the initramfs is an uncompressed newc cpio under 24 MiB with the daemon as
// /init, every module its manifest names, /dev/console; vmlinuz is an ELF
// (PVH boot, no decompression in the guest); the cpio writer is
// reproducible; the module manifest and parameter parsing.
#include "shared/cpio.h"
#include "guest/modules.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace fr::guest {
namespace {

std::string readAll(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct CpioMember {
	unsigned mode;
	std::string data;
	unsigned rdevMajor;
	long mtime;
	long uid;
};

std::map<std::string, CpioMember> readCpio(const std::string &bytes)
{
	std::map<std::string, CpioMember> out;
	archive *a = archive_read_new();
	archive_read_support_format_cpio(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_none(a);
	EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK);
	archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		CpioMember m{archive_entry_mode(e), {}, static_cast<unsigned>(archive_entry_rdevmajor(e)),
			     static_cast<long>(archive_entry_mtime(e)), static_cast<long>(archive_entry_uid(e))};
		char buf[65536];
		la_ssize_t n;
		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			m.data.append(buf, static_cast<std::size_t>(n));
		if (const char *target = archive_entry_symlink(e))
			m.data = target; // a symlink: its target
		out[archive_entry_pathname(e)] = m;
	}
	archive_read_free(a);
	return out;
}

TEST(Cpio, WritesSortedReproducibleNewc)
{
	std::vector<CpioEntry> entries = {
		{CpioEntry::Type::File, "z/last", 0640, "zz", 0, 0},
		{CpioEntry::Type::Directory, "z", 0755, "", 0, 0},
		{CpioEntry::Type::CharDevice, "dev/console", 0600, "", 5, 1},
		{CpioEntry::Type::File, "init", 0755, std::string(1001, 'x'), 0, 0},
	};
	const std::vector<std::uint8_t> first = writeNewc(entries);
	std::reverse(entries.begin(), entries.end());
	const std::vector<std::uint8_t> second = writeNewc(entries);
	EXPECT_EQ(first, second) << "input order must not matter";
	EXPECT_EQ(first.size() % 4, 0U);
	EXPECT_EQ(std::string(first.begin(), first.begin() + 6), "070701");
	const auto members = readCpio(std::string(first.begin(), first.end()));
	ASSERT_EQ(members.size(), 4U);
	EXPECT_EQ(members.at("init").data.size(), 1001U);
	EXPECT_EQ(members.at("init").mode, 0100755U);
	EXPECT_EQ(members.at("z/last").data, "zz");
	EXPECT_EQ(members.at("dev/console").mode, 020600U);
	EXPECT_EQ(members.at("dev/console").rdevMajor, 5U);
	for (const auto &[name, m] : members) {
		EXPECT_EQ(m.mtime, 0) << name;
		EXPECT_EQ(m.uid, 0) << name;
	}
}

TEST(Modules, ManifestAndParameters)
{
	Result<std::vector<ModuleLine>> lines =
		parseModuleManifest("base virtio.ko\nbase virtio_mmio.ko\n\next4 crc32c-intel.ko.zst\n");
	ASSERT_TRUE(lines) << lines.error().message();
	ASSERT_EQ(lines->size(), 3U);
	EXPECT_EQ((*lines)[2].group, "ext4");
	EXPECT_EQ((*lines)[2].file, "crc32c-intel.ko.zst");
	EXPECT_FALSE(parseModuleManifest("base ../../etc/passwd.ko\n"));
	EXPECT_FALSE(parseModuleManifest("base virtio\n"));
	EXPECT_FALSE(parseModuleManifest("onlyonefield\n"));
	EXPECT_FALSE(parseModuleManifest("base a b.ko\n"));

	EXPECT_EQ(moduleNameOf("crc32c-intel.ko.zst"), "crc32c_intel");
	EXPECT_EQ(moduleNameOf("virtio_mmio.ko"), "virtio_mmio");

	const std::string cmdline =
		"console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 virtio-mmio.device=512@0xfeb00c00:11 "
		"dyndbg=\"file x +p\" virtio_mmio.x=\"a b\" fr.idle=600 virtio_mmiox.y=1\n";
	EXPECT_EQ(moduleParams(cmdline, "virtio_mmio"),
		  "device=512@0xfeb00e00:12 device=512@0xfeb00c00:11 x=\"a b\"");
	EXPECT_EQ(moduleParams(cmdline, "ext4"), "");
}

// The built image (meson passes its paths).
class Image : public ::testing::Test {
protected:
	void SetUp() override
	{
		const char *kernel = std::getenv("FR_TEST_VMLINUZ");
		const char *initramfs = std::getenv("FR_TEST_INITRAMFS");
		if (kernel == nullptr || initramfs == nullptr)
			GTEST_SKIP() << "FR_TEST_VMLINUZ/FR_TEST_INITRAMFS not set (run through meson test)";
		kernel_ = kernel;
		initramfs_ = initramfs;
	}
	std::string kernel_, initramfs_;
};

TEST_F(Image, InitramfsHoldsTheDaemonAndItsModules)
{
	const std::string image = readAll(initramfs_);
	ASSERT_FALSE(image.empty()) << initramfs_;
	EXPECT_LT(image.size(), 24U << 20) << "initramfs over the 24 MiB budget";
	// Uncompressed newc: decompressing it cost more boot time than reading
	// it (guest/build-image.sh).
	EXPECT_EQ(image.substr(0, 6), "070701") << "not an uncompressed newc cpio";
	const auto members = readCpio(image);
	ASSERT_EQ(members.count("init"), 1U);
	const CpioMember &init = members.at("init");
	EXPECT_EQ(init.mode, 0100755U);
	EXPECT_EQ(init.data.substr(0, 4), "\x7f" "ELF");
	// Statically linked: no program interpreter, no libxml2/ICU dragged in.
	EXPECT_EQ(init.data.find("/lib64/ld-linux"), std::string::npos);
	EXPECT_EQ(init.data.find("xmlTextWriter"), std::string::npos);
	EXPECT_LT(init.data.size(), 4U << 20);
	ASSERT_EQ(members.count("dev/console"), 1U);
	EXPECT_EQ(members.at("dev/console").rdevMajor, 5U);
	EXPECT_EQ(members.count("usr/lib/locale/C.utf8/LC_CTYPE"), 1U);
	ASSERT_EQ(members.count("lib/modules/order"), 1U);
	Result<std::vector<ModuleLine>> lines = parseModuleManifest(members.at("lib/modules/order").data);
	ASSERT_TRUE(lines) << lines.error().message();
	std::set<std::string> groups;
	for (const ModuleLine &line : *lines) {
		groups.insert(line.group);
		ASSERT_EQ(members.count("lib/modules/" + line.file), 1U) << line.file;
		const bool boot = line.group == "base" || line.group == "serial" || line.group == "vsock";
		EXPECT_EQ(line.file.size() > 7 && line.file.substr(line.file.size() - 7) == ".ko.zst", !boot)
			<< line.file << ": boot modules plain, the others compressed";
	}
	for (const char *group : {"base", "serial", "vsock", "ext4", "xfs", "btrfs", "vfat", "exfat", "isofs", "udf",
				  "f2fs", "hfsplus", "hfs", "jfs", "nilfs2", "reiserfs", "squashfs", "tools", "cow", "lvm",
				  "lvmraid", "md", "luks", "fuse"})
		EXPECT_EQ(groups.count(group), 1U) << group;
	// The tools (lvm, mdadm, cryptsetup, ntfs-3g): a squashfs, mounted on
	// first need; their ELF interpreter through the lib64 link.
	ASSERT_EQ(members.count("tools.sqfs"), 1U);
	EXPECT_EQ(members.at("tools.sqfs").data.substr(0, 4), "hsqs");
	ASSERT_EQ(members.count("lib64"), 1U);
	EXPECT_EQ(members.at("lib64").mode, 0120777U);
	EXPECT_EQ(members.at("lib64").data, "tools/lib");
	EXPECT_EQ(members.count("tools"), 1U);
	for (const auto &[name, m] : members)
		EXPECT_EQ(m.mtime, 0) << name << ": not reproducible";
}

TEST_F(Image, KernelIsAnUncompressedElf)
{
	const int fd = ::open(kernel_.c_str(), O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0) << kernel_;
	char magic[4] = {};
	ASSERT_EQ(::read(fd, magic, 4), 4);
	::close(fd);
	EXPECT_EQ(std::string(magic, 4), "\x7f" "ELF");
}

} // namespace
} // namespace fr::guest
