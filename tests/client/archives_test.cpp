// SPDX-License-Identifier: AGPL-3.0-or-later
// Which files of a snapshot are disk images, and in which format.
#include "client/archives.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace fr::client {
namespace {

using test::TempDir;
using test::writeFile;

TEST(Archives, FormatFromTheNameOnly)
{
	EXPECT_EQ(formatFromName("drive-scsi0.img"), ImageFormat::Raw);
	EXPECT_EQ(formatFromName("a.RAW"), ImageFormat::Raw);
	EXPECT_EQ(formatFromName("a.QCow2"), ImageFormat::Qcow2);
	EXPECT_EQ(formatFromName("a.vmdk"), ImageFormat::Vmdk);
	EXPECT_EQ(formatFromName("a.vdi"), ImageFormat::Vdi);
	EXPECT_EQ(formatFromName("a.vhdx"), ImageFormat::Vhdx);
	EXPECT_FALSE(formatFromName("a.nbd"));
	EXPECT_FALSE(formatFromName("a.vhd"));
	EXPECT_FALSE(formatFromName("index.json"));
	EXPECT_FALSE(formatFromName("blob"));
}

// Finding 2 of the outside attack (issue 11): the client preferred magic
// bytes over the archive's name, so a raw .img whose first sector held a
// VMDK text descriptor ("RW 8 FLAT \"/etc/passwd\" 0") went to QEMU as
// vmdk and QEMU opened /etc/passwd for the guest. The name decides.
TEST(Archives, TheBackupsBytesNeverChooseTheFormat)
{
	using namespace std::string_literals;
	TempDir dir;
	writeFile(dir / "drive-scsi0.img", "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
					   "RW 8 FLAT \"/etc/passwd\" 0\n");
	writeFile(dir / "drive-scsi1.raw", "QFI\xfb rest"s);
	writeFile(dir / "drive-scsi2.IMG", "KDMV....");
	writeFile(dir / "vhdx.img", "vhdxfile");
	writeFile(dir / "blob", "vhdxfile");                     // no image name: not an archive
	writeFile(dir / "index.json", "{}");
	writeFile(dir / "drive-scsi0.img.fidx", "PBS");           // PBS index: later
	writeFile(dir / ".hidden.img", "");
	ASSERT_EQ(::mkdir((dir / "sub.img").c_str(), 0755), 0);   // a directory
	ASSERT_EQ(::symlink("drive-scsi0.img", (dir / "link.raw").c_str()), 0);

	Result<std::vector<Archive>> archives = snapshotArchives(dir.path());
	ASSERT_TRUE(archives) << archives.error().message();
	std::vector<std::string> names;
	for (const Archive &a : *archives)
		names.push_back(a.name + ":" + formatName(a.format));
	EXPECT_EQ(names, (std::vector<std::string>{"drive-scsi0.img:raw", "drive-scsi1.raw:raw",
						   "drive-scsi2.IMG:raw", "link.raw:raw", "vhdx.img:raw"}));
	EXPECT_EQ(archives->front().path, dir / "drive-scsi0.img");
	// An ad-hoc image too: by its name, else raw, else what the user says.
	Result<std::vector<Archive>> adhoc = imageArchives({dir / "drive-scsi0.img", dir / "blob"});
	ASSERT_TRUE(adhoc) << adhoc.error().message();
	EXPECT_EQ((*adhoc)[0].format, ImageFormat::Raw);
	EXPECT_EQ((*adhoc)[1].format, ImageFormat::Raw);
}

TEST(Archives, ContentThatContradictsTheNameIsAnErrorThatSaysSo)
{
	TempDir dir;
	writeFile(dir / "disk.qcow2", std::string(4096, '\0'));
	Result<std::vector<Archive>> archives = snapshotArchives(dir.path());
	ASSERT_TRUE(archives) << archives.error().message();
	ASSERT_EQ(archives->size(), 1U);
	EXPECT_EQ((*archives)[0].unusable, "named qcow2, but: not a qcow2 image (bad magic or too short)");
	EXPECT_TRUE(usableArchives(*archives).empty());
	TempDir other;
	writeFile(other / "disk.vmdk", "# Disk DescriptorFile\nRW 8 FLAT \"/etc/shadow\" 0\n");
	Result<std::vector<Archive>> vmdk = snapshotArchives(other.path());
	ASSERT_TRUE(vmdk) << vmdk.error().message();
	EXPECT_NE((*vmdk)[0].unusable.find("text descriptor"), std::string::npos) << (*vmdk)[0].unusable;
	// An ad-hoc image the user named is an error at once.
	Result<std::vector<Archive>> named = imageArchives({dir / "disk.qcow2"});
	ASSERT_FALSE(named);
	EXPECT_EQ(named.error().errnum(), EINVAL);
	EXPECT_NE(named.error().message().find("disk.qcow2): named qcow2, but: not a qcow2 image"), std::string::npos)
		<< named.error().message();
	// --image-format says what an ad-hoc image is, and is checked as well.
	Result<std::vector<Archive>> forced = imageArchives({other / "disk.vmdk"}, ImageFormat::Raw);
	ASSERT_TRUE(forced) << forced.error().message();
	EXPECT_EQ((*forced)[0].format, ImageFormat::Raw);
	EXPECT_FALSE(imageArchives({dir / "disk.qcow2"}, ImageFormat::Vdi));
}

// Issue 14: one archive that cannot be used (qcow2 with a backing file, a
// VMDK with external extents, a VHD) made every archive of the snapshot
// fail, even `list /`. Now it stays listed with its reason and the others
// are served.
TEST(Archives, EveryArchiveStandsAlone)
{
	TempDir dir;
	std::string backed(4096, '\0');
	// qcow2 v2: backing file name at offset 0x200, 8 bytes; 64 KiB clusters.
	const unsigned char qcow2[] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x02, 0x00,
				       0, 0, 0, 8, 0, 0, 0, 16};
	backed.replace(0, sizeof(qcow2), reinterpret_cast<const char *>(qcow2), sizeof(qcow2));
	backed.replace(0x200, 8, "base.img");
	writeFile(dir / "a-backed.qcow2", backed);
	writeFile(dir / "b-good.img", std::string(4096, 'x'));
	writeFile(dir / "c-extents.vmdk", "# Disk DescriptorFile\nversion=1\nRW 2048 SPARSE \"c-s001.vmdk\"\n");
	writeFile(dir / "d-legacy.VHD", std::string(512, '\0'));
	Result<std::vector<Archive>> archives = snapshotArchives(dir.path());
	ASSERT_TRUE(archives) << archives.error().message();
	ASSERT_EQ(archives->size(), 4U);
	EXPECT_NE((*archives)[0].unusable.find("backing file"), std::string::npos) << (*archives)[0].unusable;
	EXPECT_EQ((*archives)[1].unusable, "");
	EXPECT_NE((*archives)[2].unusable.find("descriptor"), std::string::npos) << (*archives)[2].unusable;
	EXPECT_NE((*archives)[3].unusable.find("VHD"), std::string::npos) << (*archives)[3].unusable;
	const std::vector<Archive> usable = usableArchives(*archives);
	ASSERT_EQ(usable.size(), 1U);
	EXPECT_EQ(usable[0].name, "b-good.img");
}

TEST(Archives, EmptySnapshotIsNotFound)
{
	TempDir dir;
	writeFile(dir / "index.json", "{}");
	EXPECT_EQ(snapshotArchives(dir.path()).error().errnum(), ENOENT);
	EXPECT_EQ(snapshotArchives(dir / "missing").error().errnum(), ENOENT);
}

TEST(Archives, ImagesAreCanonicalAndUniquelyNamed)
{
	TempDir dir;
	ASSERT_EQ(::mkdir((dir / "a").c_str(), 0755), 0);
	ASSERT_EQ(::mkdir((dir / "b").c_str(), 0755), 0);
	writeFile(dir / "a/disk.img", "x");
	writeFile(dir / "b/disk.img", "QFI\xfb");
	writeFile(dir / "b/other", "x");
	writeFile(dir / "b/real.qcow2", "QFI\xfb\0\0\0\3");
	Result<std::vector<Archive>> one = imageArchives({dir / "a/../b/disk.img", dir / "b/other"});
	ASSERT_TRUE(one) << one.error().message();
	EXPECT_EQ((*one)[0].path, dir / "b/disk.img");
	EXPECT_EQ((*one)[0].format, ImageFormat::Raw); // its name says so
	EXPECT_EQ((*one)[1].name, "other");
	EXPECT_EQ((*one)[1].format, ImageFormat::Raw);

	EXPECT_EQ(imageArchives({dir / "a/disk.img", dir / "b/disk.img"}).error().errnum(), EINVAL);
	EXPECT_EQ(imageArchives({dir / "nope.img"}).error().errnum(), ENOENT);
	EXPECT_EQ(imageArchives({dir.path()}).error().errnum(), EINVAL);
}

TEST(Archives, SnapshotArgumentIsNormalised)
{
	EXPECT_EQ(*normaliseSnapshot("/vm/100//2026/"), "vm/100/2026");
	EXPECT_FALSE(normaliseSnapshot("vm/../../etc"));
	EXPECT_FALSE(normaliseSnapshot("/"));
}

} // namespace
} // namespace fr::client
