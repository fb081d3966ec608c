// SPDX-License-Identifier: AGPL-3.0-or-later
// Which files of a snapshot are disk images, and in which format.
#include "client/archives.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace fr::client {
namespace {

using test::TempDir;
using test::writeFile;

std::span<const unsigned char> bytes(const std::string &text)
{
	return {reinterpret_cast<const unsigned char *>(text.data()), text.size()};
}

TEST(Archives, DetectsMagic)
{
	using namespace std::string_literals;
	EXPECT_EQ(*detectMagic(bytes("QFI\xfb\0\0\0\3"s)), ImageFormat::Qcow2);
	EXPECT_EQ(*detectMagic(bytes("KDMV\1\0\0\0"s)), ImageFormat::Vmdk);
	EXPECT_EQ(*detectMagic(bytes("COWD"s)), ImageFormat::Vmdk);
	EXPECT_EQ(*detectMagic(bytes("# Disk DescriptorFile\nversion=1\n"s)), ImageFormat::Vmdk);
	std::string vdi = "<<< Oracle VM VirtualBox Disk Image >>>\n";
	vdi.resize(0x40, '\0');
	vdi += "\x7f\x10\xda\xbe"s;
	EXPECT_EQ(*detectMagic(bytes(vdi)), ImageFormat::Vdi);
	EXPECT_EQ(*detectMagic(bytes("vhdxfile"s)), ImageFormat::Vhdx);
	EXPECT_FALSE(detectMagic(bytes(std::string(512, '\0')))->has_value());
	EXPECT_FALSE(detectMagic(bytes(""s))->has_value());
	EXPECT_FALSE(detectMagic(bytes("QFI"s))->has_value()); // truncated magic
	EXPECT_EQ(detectMagic(bytes("conectix"s)).error().errnum(), EINVAL);
	EXPECT_EQ(detectMagic(bytes("QED\0"s)).error().errnum(), EINVAL);
}

TEST(Archives, SnapshotListsImagesSortedWithFormats)
{
	TempDir dir;
	writeFile(dir / "drive-scsi1.img", "QFI\xfb rest");     // qcow2 despite the name
	writeFile(dir / "drive-scsi0.img", std::string(4096, '\0'));
	writeFile(dir / "data.vmdk", "KDMV....");
	writeFile(dir / "blob", "vhdxfile");                     // magic, no extension
	writeFile(dir / "index.json", "{}");                      // not an image
	writeFile(dir / "drive-scsi0.img.fidx", "PBS");           // PBS index: later
	writeFile(dir / ".hidden.img", "");
	ASSERT_EQ(::mkdir((dir / "sub.img").c_str(), 0755), 0);   // a directory
	ASSERT_EQ(::symlink("drive-scsi0.img", (dir / "link.raw").c_str()), 0);

	Result<std::vector<Archive>> archives = snapshotArchives(dir.path());
	ASSERT_TRUE(archives) << archives.error().message();
	std::vector<std::string> names;
	for (const Archive &a : *archives)
		names.push_back(a.name + ":" + formatName(a.format));
	EXPECT_EQ(names, (std::vector<std::string>{"blob:vhdx", "data.vmdk:vmdk",
						   "drive-scsi0.img:raw", "drive-scsi1.img:qcow2",
						   "link.raw:raw"}));
	EXPECT_EQ(archives->front().path, dir / "blob");
}

TEST(Archives, EmptySnapshotIsNotFound)
{
	TempDir dir;
	writeFile(dir / "index.json", "{}");
	EXPECT_EQ(snapshotArchives(dir.path()).error().errnum(), ENOENT);
	EXPECT_EQ(snapshotArchives(dir / "missing").error().errnum(), ENOENT);
}

TEST(Archives, VhdWithImageExtensionIsRefused)
{
	TempDir dir;
	writeFile(dir / "disk.img", "conectix");
	Result<std::vector<Archive>> archives = snapshotArchives(dir.path());
	ASSERT_FALSE(archives);
	EXPECT_NE(archives.error().message().find("VHD"), std::string::npos);
}

TEST(Archives, ImagesAreCanonicalAndUniquelyNamed)
{
	TempDir dir;
	ASSERT_EQ(::mkdir((dir / "a").c_str(), 0755), 0);
	ASSERT_EQ(::mkdir((dir / "b").c_str(), 0755), 0);
	writeFile(dir / "a/disk.img", "x");
	writeFile(dir / "b/disk.img", "QFI\xfb");
	writeFile(dir / "b/other", "x");
	Result<std::vector<Archive>> one = imageArchives({dir / "a/../b/disk.img", dir / "b/other"});
	ASSERT_TRUE(one) << one.error().message();
	EXPECT_EQ((*one)[0].path, dir / "b/disk.img");
	EXPECT_EQ((*one)[0].format, ImageFormat::Qcow2);
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
