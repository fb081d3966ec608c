// SPDX-License-Identifier: AGPL-3.0-or-later
// VM names: systemd-escape compatibility, the escape/unescape round trip
// back to "qemu_<repository>/<snapshot>", deterministic shortening.
#include "client/vm_name.h"

#include <cstdio>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "shared/unit_name.h"
#include "shared/validate.h"

namespace fr::client {
namespace {

TEST(VmName, SnapshotNameIsEscapedQemuRepositorySnapshot)
{
	const std::string name = snapshotVmName("/srv/backup", "vm/100/2026-11-25T10:00:00Z");
	EXPECT_EQ(name, "qemu_-srv-backup-vm-100-2026\\x2d11\\x2d25T10:00:00Z");
	EXPECT_TRUE(checkVmName(name, "name"));
	const std::optional<std::string> back = unescapeUnitName(name);
	ASSERT_TRUE(back);
	EXPECT_EQ(*back, "qemu_/srv/backup/vm/100/2026-11-25T10:00:00Z");
}

TEST(VmName, MatchesSystemdEscape)
{
	if (std::system("command -v systemd-escape >/dev/null 2>&1") != 0)
		GTEST_SKIP() << "systemd-escape not installed (unit_name_test covers the escaper)";
	FILE *p = ::popen("systemd-escape 'qemu_/srv/b ack\\up/vm/100/snap-1'", "r");
	ASSERT_NE(p, nullptr);
	char buf[512] = {};
	ASSERT_NE(std::fgets(buf, sizeof(buf), p), nullptr);
	::pclose(p);
	std::string expected(buf);
	expected.pop_back();
	EXPECT_EQ(snapshotVmName("/srv/b ack\\up", "vm/100/snap-1"), expected);
}

TEST(VmName, RoundTripsArbitraryBytes)
{
	std::mt19937 rng(7);
	for (int i = 0; i < 500; ++i) {
		std::string repo = "/";
		std::string snap;
		for (int j = static_cast<int>(rng() % 20); j > 0; --j)
			repo += static_cast<char>(rng() % 255 + 1);
		for (int j = static_cast<int>(rng() % 20) + 1; j > 0; --j)
			snap += static_cast<char>(rng() % 255 + 1);
		const std::string name = snapshotVmName(repo, snap);
		ASSERT_TRUE(checkVmName(name, "name")) << name;
		if (name.size() < kVmNameMax) {
			const std::optional<std::string> back = unescapeUnitName(name);
			ASSERT_TRUE(back);
			EXPECT_EQ(*back, "qemu_" + repo + "/" + snap);
		}
	}
}

TEST(VmName, LongNamesAreShortenedDeterministically)
{
	const std::string repo = "/srv/" + std::string(300, 'r');
	const std::string a = snapshotVmName(repo, "vm/100/a");
	const std::string b = snapshotVmName(repo, "vm/100/b");
	EXPECT_LE(a.size(), kVmNameMax);
	EXPECT_TRUE(checkVmName(a, "name"));
	EXPECT_EQ(a, snapshotVmName(repo, "vm/100/a"));
	EXPECT_NE(a, b);
	EXPECT_EQ(a.substr(0, 20), "qemu_-srv-rrrrrrrrrr");
	EXPECT_EQ(a[a.size() - 33], '_');
}

TEST(VmName, ShorteningNeverSplitsAnEscape)
{
	// Every byte escapes to 4: the cut must land on an escape boundary.
	for (std::size_t pad = 0; pad < 8; ++pad) {
		const std::string name = snapshotVmName("/" + std::string(pad, 'a') + std::string(100, '-'), "s");
		ASSERT_LE(name.size(), kVmNameMax);
		const std::string kept = name.substr(0, name.size() - 33);
		ASSERT_TRUE(unescapeUnitName(kept).has_value()) << kept;
	}
}

TEST(VmName, ImageNamesAreUniquePerPathList)
{
	EXPECT_EQ(imageVmName({"/srv/a.img"}), "qemu_image-srv-a.img");
	std::set<std::string> names = {
		imageVmName({"/a/b", "/c"}),
		imageVmName({"/a", "/b/c"}),
		imageVmName({"/a/b/c"}),
		imageVmName({"/c", "/a/b"}),
	};
	EXPECT_EQ(names.size(), 4U);
	for (const std::string &name : names)
		EXPECT_TRUE(checkVmName(name, "name"));
}

TEST(VmName, FileStemIsShortAndStable)
{
	const std::string stem = vmFileStem("qemu_x");
	EXPECT_EQ(stem.size(), 19U);
	EXPECT_EQ(stem.substr(0, 3), "vm-");
	EXPECT_EQ(stem, vmFileStem("qemu_x"));
	EXPECT_NE(stem, vmFileStem("qemu_y"));
}

} // namespace
} // namespace fr::client
