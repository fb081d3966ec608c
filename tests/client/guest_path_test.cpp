// SPDX-License-Identifier: AGPL-3.0-or-later
// The user's "/<archive>/..." paths and the guest's "/disk<N>/...".
#include "client/guest_path.h"

#include <gtest/gtest.h>

namespace fr::client {
namespace {

const std::vector<Archive> kArchives = {
	{"drive-scsi0.img", ImageFormat::Raw, "/r/s/drive-scsi0.img"},
	{"disk\xff.qcow2", ImageFormat::Qcow2, "/r/s/disk\xff.qcow2"},
};

TEST(GuestPath, SplitsAndNormalises)
{
	EXPECT_EQ(*splitUserPath("/"), std::vector<std::string>{});
	EXPECT_EQ(*splitUserPath(""), std::vector<std::string>{});
	EXPECT_EQ(*splitUserPath("a//b/./c/"), (std::vector<std::string>{"a", "b", "c"}));
	EXPECT_EQ(splitUserPath("/a/../b").error().errnum(), EINVAL);
	EXPECT_EQ(splitUserPath(std::string("/a\0b", 4)).error().errnum(), EINVAL);
	EXPECT_EQ(splitUserPath("/" + std::string(256, 'x')).error().errnum(), ENAMETOOLONG);
	EXPECT_TRUE(splitUserPath("/" + std::string(255, 'x')));
	std::string longPath;
	while (longPath.size() <= kUserPathMax)
		longPath += "/abcdefgh";
	EXPECT_EQ(splitUserPath(longPath).error().errnum(), ENAMETOOLONG);
}

TEST(GuestPath, MapsArchiveNamesToDiskIndices)
{
	Result<GuestTarget> root = mapToGuest(kArchives, "/");
	ASSERT_TRUE(root);
	EXPECT_TRUE(root->isRoot);

	Result<GuestTarget> first = mapToGuest(kArchives, "/drive-scsi0.img/part/2/etc/hostname");
	ASSERT_TRUE(first);
	EXPECT_FALSE(first->isRoot);
	EXPECT_EQ(first->disk, 0U);
	EXPECT_EQ(first->guestPath, "/disk0/part/2/etc/hostname");
	EXPECT_EQ(first->baseName, "hostname");
	EXPECT_EQ(first->userPath, "/drive-scsi0.img/part/2/etc/hostname");

	Result<GuestTarget> second = mapToGuest(kArchives, "disk\xff.qcow2//raw/");
	ASSERT_TRUE(second);
	EXPECT_EQ(second->guestPath, "/disk1/raw");
	EXPECT_EQ(second->userPath, "/disk\xff.qcow2/raw");

	Result<GuestTarget> archive = mapToGuest(kArchives, "/drive-scsi0.img");
	ASSERT_TRUE(archive);
	EXPECT_EQ(archive->guestPath, "/disk0");
	EXPECT_EQ(archive->baseName, "drive-scsi0.img");
}

TEST(GuestPath, VolumeTreesSpanningArchivesMapAsTheyAre)
{
	Result<GuestTarget> lv = mapToGuest(kArchives, "/lvm/vgspan/wide/etc//hostname");
	ASSERT_TRUE(lv);
	EXPECT_TRUE(lv->isVolumeTree);
	EXPECT_FALSE(lv->isRoot);
	EXPECT_EQ(lv->guestPath, "/lvm/vgspan/wide/etc/hostname");
	EXPECT_EQ(lv->userPath, "/lvm/vgspan/wide/etc/hostname");
	EXPECT_EQ(lv->baseName, "hostname");
	Result<GuestTarget> md = mapToGuest(kArchives, "md");
	ASSERT_TRUE(md);
	EXPECT_EQ(md->guestPath, "/md");
	Result<GuestTarget> zfs = mapToGuest(kArchives, "/zfs/tank/home");
	ASSERT_TRUE(zfs);
	EXPECT_EQ(zfs->guestPath, "/zfs/tank/home");
	// An archive of that name wins.
	std::vector<Archive> named = kArchives;
	named.push_back(Archive{"md", ImageFormat::Raw, "/srv/md"});
	Result<GuestTarget> archive = mapToGuest(named, "/md/raw");
	ASSERT_TRUE(archive);
	EXPECT_FALSE(archive->isVolumeTree);
	EXPECT_EQ(archive->guestPath, "/disk2/raw");
	EXPECT_FALSE(mapToGuest(kArchives, "/lvm/../disk0"));
}

TEST(GuestPath, TheGuestsWordsInTheUsersTerms)
{
	// The guest names its disk in its messages; the user named the archive.
	const GuestTarget second = *mapToGuest(kArchives, "/disk\xff.qcow2/part/3/luks/etc");
	EXPECT_EQ(toUserTerms("I/O error: volume(/disk1/part/3/luks): crypto_LUKS: locked: no key given", second),
		  "I/O error: volume(/disk\\xff.qcow2/part/3/luks): crypto_LUKS: locked: no key given");
	EXPECT_EQ(toUserTerms("/disk1 and /disk1: twice", second), "/disk\\xff.qcow2 and /disk\\xff.qcow2: twice");
	// Only the disk as a path of its own: not /disk12, /dev/disk1, xdisk1.
	EXPECT_EQ(toUserTerms("/disk12 /dev/disk1 x/disk1 a.disk1", second), "/disk12 /dev/disk1 x/disk1 a.disk1");
	// Another disk, and paths the user and the guest name alike, stay.
	const GuestTarget first = *mapToGuest(kArchives, "/drive-scsi0.img/raw");
	EXPECT_EQ(toUserTerms("stat(/disk0/raw): /disk1 too", first), "stat(/drive-scsi0.img/raw): /disk1 too");
	const GuestTarget lv = *mapToGuest(kArchives, "/lvm/vg/lv");
	EXPECT_EQ(toUserTerms("volume(/lvm/vg/lv): /disk0", lv), "volume(/lvm/vg/lv): /disk0");
}

TEST(GuestPath, UnknownArchiveIsNotFound)
{
	Result<GuestTarget> missing = mapToGuest(kArchives, "/disk0/part");
	ASSERT_FALSE(missing);
	EXPECT_EQ(missing.error().errnum(), ENOENT);
	EXPECT_NE(missing.error().message().find("disk0"), std::string::npos);
}

} // namespace
} // namespace fr::client
