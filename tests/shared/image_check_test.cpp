// SPDX-License-Identifier: AGPL-3.0-or-later
// The image checks (shared/image_check.h): real images from qemu-img pass;
// hostile and malformed headers are refused with the reason; kernel
// filesystems are never images.
#include "shared/image_check.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/support.h"

namespace fr {
namespace {

using namespace std::string_literals;

void putLe(std::string &bytes, std::size_t at, std::uint64_t value, std::size_t width)
{
	if (bytes.size() < at + width)
		bytes.resize(at + width, '\0');
	for (std::size_t i = 0; i < width; ++i)
		bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

// A minimal VHDX as the specification lays it out: file identifier, region
// table 1 at 192 KiB naming the metadata region at 256 KiB, and a metadata
// table whose file parameters carry `flags`; optionally a parent locator.
std::string vhdx(std::uint32_t flags, bool parentLocator)
{
	std::string b = "vhdxfile";
	const std::size_t region = 192 * 1024, metadata = 256 * 1024;
	b.resize(metadata + 64 * 1024, '\0');
	b.replace(region, 4, "regi");
	putLe(b, region + 8, 1, 4);
	const char metadataGuid[] = "\x06\xa2\x7c\x8b\x90\x47\x9a\x4b\xb8\xfe\x57\x5f\x05\x0f\x88\x6e";
	b.replace(region + 16, 16, metadataGuid, 16);
	putLe(b, region + 32, metadata, 8);
	putLe(b, region + 40, 1 << 20, 4);
	b.replace(metadata, 8, "metadata");
	putLe(b, metadata + 10, parentLocator ? 2 : 1, 2);
	const char parametersGuid[] = "\x37\x67\xa1\xca\x36\xfa\x43\x4d\xb3\xb6\x33\xf0\xaa\x44\xe7\x6b";
	b.replace(metadata + 32, 16, parametersGuid, 16);
	putLe(b, metadata + 48, 65536, 4); // the item's offset in the region
	putLe(b, metadata + 52, 8, 4);
	putLe(b, metadata + 65536, 32 << 20, 4);
	putLe(b, metadata + 65536 + 4, flags, 4);
	if (parentLocator) {
		const char locatorGuid[] = "\x2d\x5f\xd3\xa8\x0b\xb3\x4d\x45\xab\xf7\xd3\xd8\x48\x34\xab\x0c";
		b.replace(metadata + 64, 16, locatorGuid, 16);
		putLe(b, metadata + 80, 65536 + 8, 4);
	}
	return b;
}

std::string qemuImg(const std::string &format, const std::string &options = "")
{
	const std::string dir = ::testing::TempDir() + "/fr-image-check-" + std::to_string(::getpid());
	test::makeDir(dir, 0700, ::getuid(), ::getgid());
	const std::string path = dir + "/img." + format;
	std::vector<std::string> argv = {"/usr/bin/qemu-img", "create", "-q", "-f", format};
	if (!options.empty())
		argv.insert(argv.end(), {"-o", options});
	argv.insert(argv.end(), {path, "16M"});
	const test::RunResult r = test::runCommand(argv);
	EXPECT_EQ(r.exitCode, 0) << r.err;
	std::string bytes = test::readFile(path);
	test::removeTree(dir);
	return bytes;
}

Status check(Status (*checker)(const ReadAt &, std::string_view), const std::string &bytes)
{
	return checker(bytesReader(bytes), "img");
}

TEST(ImageCheck, QemuImgImagesPass)
{
	if (::access("/usr/bin/qemu-img", X_OK) != 0)
		GTEST_SKIP() << "needs qemu-img";
	EXPECT_TRUE(check(checkVmdkHeader, qemuImg("vmdk")));
	EXPECT_TRUE(check(checkVmdkHeader, qemuImg("vmdk", "subformat=streamOptimized")));
	EXPECT_TRUE(check(checkVdiHeader, qemuImg("vdi")));
	EXPECT_TRUE(check(checkVdiHeader, qemuImg("vdi", "static=on")));
	Status vhdxOk = check(checkVhdxHeader, qemuImg("vhdx"));
	EXPECT_TRUE(vhdxOk) << vhdxOk.error().message();
}

TEST(ImageCheck, VmdkThatWouldOpenOtherFilesIsRefused)
{
	// The outside attack: a text descriptor whose extent is any file.
	const std::string descriptor = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
				       "RW 8 FLAT \"/etc/passwd\" 0\n";
	Status text = check(checkVmdkHeader, descriptor);
	ASSERT_FALSE(text);
	EXPECT_EQ(text.error().errnum(), EPERM);
	EXPECT_NE(text.error().message().find("text descriptor"), std::string::npos);
	// QEMU treats every file that is not KDMV/COWD as a descriptor.
	EXPECT_FALSE(check(checkVmdkHeader, std::string(4096, '\0')));
	EXPECT_FALSE(check(checkVmdkHeader, "RW 8 FLAT \"/etc/shadow\" 0\n"s));
	EXPECT_NE(check(checkVmdkHeader, "COWD"s + std::string(2044, '\0')).error().message().find("COWD"),
		  std::string::npos);
	std::string sparse = "KDMV"s;
	putLe(sparse, 4, 1, 4);        // version
	putLe(sparse, 12, 32768, 8);   // capacity, sectors
	putLe(sparse, 20, 128, 8);     // grain
	sparse.resize(65536, '\0');
	EXPECT_TRUE(check(checkVmdkHeader, sparse));
	std::string zero = sparse;
	putLe(zero, 12, 0, 8);         // QEMU then parses the embedded descriptor
	putLe(zero, 28, 1, 8);
	EXPECT_NE(check(checkVmdkHeader, zero).error().message().find("capacity 0"), std::string::npos);
	std::string parent = sparse;
	const std::string hint = "parentFileNameHint=\"/etc/passwd\"\n";
	parent.replace(512, hint.size(), hint); // QEMU stops at the first NUL, as the check does
	EXPECT_NE(check(checkVmdkHeader, parent).error().message().find("differencing"), std::string::npos);
	std::string future = sparse;
	putLe(future, 4, 4, 4);
	EXPECT_EQ(check(checkVmdkHeader, future).error().errnum(), EINVAL);
	EXPECT_FALSE(check(checkVmdkHeader, "KDMV\1\0\0\0"s)); // truncated
	EXPECT_FALSE(check(checkVmdkHeader, ""s));
}

TEST(ImageCheck, VdiMustBeNormalOrFixed)
{
	std::string vdi = "<<< Oracle VM VirtualBox Disk Image >>>\n";
	vdi.resize(0x40, '\0');
	putLe(vdi, 0x40, 0xbeda107f, 4);
	putLe(vdi, 0x44, 0x00010001, 4);
	putLe(vdi, 0x48, 400, 4);
	for (std::uint32_t type : {1U, 2U}) {
		putLe(vdi, 0x4c, type, 4);
		EXPECT_TRUE(check(checkVdiHeader, vdi)) << type;
	}
	putLe(vdi, 0x4c, 4, 4);
	EXPECT_NE(check(checkVdiHeader, vdi).error().message().find("differencing"), std::string::npos);
	putLe(vdi, 0x4c, 3, 4);
	EXPECT_EQ(check(checkVdiHeader, vdi).error().errnum(), EPERM);
	putLe(vdi, 0x4c, 99, 4);
	EXPECT_EQ(check(checkVdiHeader, vdi).error().errnum(), EINVAL);
	putLe(vdi, 0x4c, 1, 4);
	putLe(vdi, 0x44, 0x00020000, 4);
	EXPECT_FALSE(check(checkVdiHeader, vdi));
	EXPECT_NE(check(checkVdiHeader, std::string(512, '\0')).error().message().find("not a vdi image"),
		  std::string::npos);
	EXPECT_FALSE(check(checkVdiHeader, vdi.substr(0, 0x48)));
}

TEST(ImageCheck, VhdxDifferencingDisksAreRefused)
{
	EXPECT_TRUE(check(checkVhdxHeader, vhdx(0, false)));
	EXPECT_TRUE(check(checkVhdxHeader, vhdx(1, false))); // leave-blocks-allocated
	Status parent = check(checkVhdxHeader, vhdx(2, false));
	ASSERT_FALSE(parent);
	EXPECT_EQ(parent.error().errnum(), EPERM);
	EXPECT_NE(parent.error().message().find("differencing"), std::string::npos);
	EXPECT_EQ(check(checkVhdxHeader, vhdx(0, true)).error().errnum(), EPERM);
	// Malformed: each is an error, none a crash or a pass.
	std::string b = vhdx(0, false);
	EXPECT_FALSE(check(checkVhdxHeader, b.substr(0, 200000)));   // truncated region table
	std::string noRegion = b;
	noRegion.replace(192 * 1024, 4, "xxxx");
	EXPECT_FALSE(check(checkVhdxHeader, noRegion));
	std::string huge = b;
	putLe(huge, 192 * 1024 + 8, 0xffffffff, 4);
	EXPECT_FALSE(check(checkVhdxHeader, huge));
	std::string farAway = b;
	putLe(farAway, 192 * 1024 + 32, 1ULL << 62, 8);
	EXPECT_FALSE(check(checkVhdxHeader, farAway));
	std::string noParameters = b;
	noParameters[256 * 1024 + 32] ^= 1;
	EXPECT_FALSE(check(checkVhdxHeader, noParameters));
	EXPECT_NE(check(checkVhdxHeader, "vhdyfile"s).error().message().find("not a vhdx"), std::string::npos);
}

TEST(ImageCheck, KernelFilesystemsByMagic)
{
	EXPECT_EQ(kernelFilesystemName(PROC_SUPER_MAGIC), "procfs");
	EXPECT_EQ(kernelFilesystemName(SYSFS_MAGIC), "sysfs");
	EXPECT_EQ(kernelFilesystemName(DEBUGFS_MAGIC), "debugfs");
	EXPECT_EQ(kernelFilesystemName(SECURITYFS_MAGIC), "securityfs");
	EXPECT_EQ(kernelFilesystemName(CGROUP_SUPER_MAGIC), "cgroupfs");
	EXPECT_EQ(kernelFilesystemName(CGROUP2_SUPER_MAGIC), "cgroup2fs");
	EXPECT_FALSE(kernelFilesystemName(EXT4_SUPER_MAGIC));
	EXPECT_FALSE(kernelFilesystemName(TMPFS_MAGIC)); // devtmpfs: by mountinfo
	EXPECT_FALSE(kernelFilesystemName(0x58465342));   // xfs
}

TEST(ImageCheck, MountTypeFromMountinfo)
{
	const std::string info = "22 1 0:21 / /dev rw,nosuid - devtmpfs udev rw,size=100k\n"
				 "23 22 0:22 / /dev/shm rw - tmpfs tmpfs rw\n"
				 "30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
				 "31 1 0:40 / /odd rw optional - fields - - vfat /dev/x rw\n";
	EXPECT_EQ(mountFilesystemType(info, 22), "devtmpfs");
	EXPECT_EQ(mountFilesystemType(info, 23), "tmpfs");
	EXPECT_EQ(mountFilesystemType(info, 30), "ext4");
	EXPECT_EQ(mountFilesystemType(info, 31), "fields");
	EXPECT_FALSE(mountFilesystemType(info, 2));
	EXPECT_FALSE(mountFilesystemType("2 x", 2));
	EXPECT_FALSE(mountFilesystemType("", 22));
}

TEST(ImageCheck, RegularFilesOnDiskFilesystemsOnly)
{
	auto openCheck = [](const char *path) {
		const int fd = ::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return Status(Error(errno, "open", path));
		Status s = checkImageFile(fd, path);
		::close(fd);
		return s;
	};
	EXPECT_NE(openCheck("/proc/version").error().message().find("on procfs"), std::string::npos);
	EXPECT_NE(openCheck("/sys/kernel/notes").error().message().find("on sysfs"), std::string::npos);
	EXPECT_NE(openCheck("/dev/null").error().message().find("not a regular file"), std::string::npos);
	EXPECT_NE(openCheck("/proc/self").error().message().find("not a regular file"), std::string::npos);
	// A file of this test on its temporary directory's (disk or tmpfs) filesystem.
	const std::string mine = ::testing::TempDir() + "/fr-image-check-file-" + std::to_string(::getpid());
	test::writeFile(mine, "x", 0600, ::getuid(), ::getgid());
	Status ok = openCheck(mine.c_str());
	EXPECT_TRUE(ok) << ok.error().message();
	::unlink(mine.c_str());
	if (::geteuid() == 0) {
		// devtmpfs shares tmpfs's magic.
		const std::string onDev = "/dev/fr-image-check-" + std::to_string(::getpid());
		test::writeFile(onDev, "x", 0600);
		Status dev = openCheck(onDev.c_str());
		::unlink(onDev.c_str());
		ASSERT_FALSE(dev);
		EXPECT_NE(dev.error().message().find("on devtmpfs"), std::string::npos) << dev.error().message();
	}
}

} // namespace
} // namespace fr
