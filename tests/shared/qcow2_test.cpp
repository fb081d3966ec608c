// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/qcow2.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/support.h"

namespace fr {
namespace {

void put(std::string &s, std::size_t at, std::uint64_t value, std::size_t width)
{
	for (std::size_t i = 0; i < width; ++i)
		s[at + i] = static_cast<char>((value >> (8 * (width - 1 - i))) & 0xff);
}

// A minimal v3 header (104 bytes) followed by the end-of-extensions marker.
std::string v3()
{
	std::string s(4096, '\0');
	s.replace(0, 4, "QFI\xfb");
	put(s, 4, 3, 4);
	put(s, 20, 16, 4);     // 64 KiB clusters
	put(s, 24, 1 << 20, 8); // size
	put(s, 96, 4, 4);      // refcount order
	put(s, 100, 104, 4);   // header length
	return s;
}

std::string v2()
{
	std::string s(4096, '\0');
	s.replace(0, 4, "QFI\xfb");
	put(s, 4, 2, 4);
	put(s, 20, 16, 4);
	return s;
}

TEST(Qcow2, AcceptsPlainImages)
{
	EXPECT_TRUE(checkQcow2Header(v3(), "a"));
	EXPECT_TRUE(checkQcow2Header(v2(), "a"));
	std::string dirtyCorruptCompressedExtL2 = v3();
	put(dirtyCorruptCompressedExtL2, 72, 0x1b, 8);
	EXPECT_TRUE(checkQcow2Header(dirtyCorruptCompressedExtL2, "a"));
	std::string withExtensions = v3();
	put(withExtensions, 104, 0xe2792aca, 4); // backing format name: harmless alone
	put(withExtensions, 108, 5, 4);
	withExtensions.replace(112, 5, "qcow2");
	put(withExtensions, 120, 0x6803f857, 4); // feature table
	put(withExtensions, 124, 48, 4);
	EXPECT_TRUE(checkQcow2Header(withExtensions, "a"));
}

TEST(Qcow2, RefusesWhatWouldOpenOtherFiles)
{
	std::string backing = v3();
	put(backing, 8, 512, 8);
	put(backing, 16, 9, 4);
	Status s = checkQcow2Header(backing, "/b/x.qcow2");
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().errnum(), EPERM);
	EXPECT_EQ(s.error().message(),
		  "qcow2(/b/x.qcow2): has a backing file (refused: it would be opened by name)");
	std::string backingSizeOnly = v2();
	put(backingSizeOnly, 16, 9, 4);
	EXPECT_FALSE(checkQcow2Header(backingSizeOnly, "a"));
	std::string dataFile = v3();
	put(dataFile, 72, 1 << 2, 8);
	s = checkQcow2Header(dataFile, "a");
	ASSERT_FALSE(s);
	EXPECT_STREQ(s.error().reason(), "uses an external data file (refused)");
	std::string dataFileName = v3();
	put(dataFileName, 104, 0x44415441, 4);
	put(dataFileName, 108, 9, 4);
	dataFileName.replace(112, 9, "/etc/x.raw");
	s = checkQcow2Header(dataFileName, "a");
	ASSERT_FALSE(s);
	EXPECT_STREQ(s.error().reason(), "names an external data file (refused)");
}

TEST(Qcow2, RefusesUnknownAndBroken)
{
	std::string unknown = v3();
	put(unknown, 72, 1ULL << 5, 8);
	EXPECT_STREQ(checkQcow2Header(unknown, "a").error().reason(),
		     "has unknown incompatible feature bits");
	std::string high = v3();
	put(high, 72, 1ULL << 63, 8);
	EXPECT_FALSE(checkQcow2Header(high, "a"));
	std::string encrypted = v3();
	put(encrypted, 32, 2, 4);
	EXPECT_STREQ(checkQcow2Header(encrypted, "a").error().reason(), "is encrypted");
	EXPECT_FALSE(checkQcow2Header("QFI", "a"));
	EXPECT_FALSE(checkQcow2Header(std::string(4096, '\0'), "a"));
	std::string v4 = v3();
	put(v4, 4, 4, 4);
	EXPECT_FALSE(checkQcow2Header(v4, "a"));
	std::string clusters = v3();
	put(clusters, 20, 30, 4);
	EXPECT_FALSE(checkQcow2Header(clusters, "a"));
	std::string length = v3();
	put(length, 100, 101, 4);
	EXPECT_FALSE(checkQcow2Header(length, "a"));
	EXPECT_FALSE(checkQcow2Header(v3().substr(0, 100), "a"));
	// Extensions that never end inside the read area / first cluster.
	std::string runaway = v3();
	put(runaway, 104, 0x12345678, 4);
	put(runaway, 108, 0xfffffff0, 4);
	EXPECT_FALSE(checkQcow2Header(runaway, "a"));
	EXPECT_FALSE(checkQcow2Header(v3().substr(0, 108), "a"));
}

class Qcow2Files : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (::access("/usr/bin/qemu-img", X_OK) != 0)
			GTEST_SKIP() << "no /usr/bin/qemu-img";
		dir_ = ::testing::TempDir() + "/fr-qcow2-test-" + std::to_string(::getpid());
		test::removeTree(dir_);
		test::makeDir(dir_, 0700, ::getuid(), ::getgid());
	}
	void TearDown() override
	{
		if (!dir_.empty())
			test::removeTree(dir_);
	}
	Status check(const std::string &name)
	{
		const int fd = ::open((dir_ + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
		EXPECT_GE(fd, 0);
		Status s = checkQcow2File(fd, name);
		::close(fd);
		return s;
	}
	void img(std::vector<std::string> args)
	{
		args.insert(args.begin(), "/usr/bin/qemu-img");
		test::RunResult r = test::runCommand(args);
		ASSERT_EQ(r.exitCode, 0) << r.err;
	}
	std::string dir_;
};

TEST_F(Qcow2Files, RealImagesFromQemuImg)
{
	img({"create", "-q", "-f", "qcow2", dir_ + "/plain.qcow2", "64M"});
	img({"create", "-q", "-f", "qcow2", "-o", "compat=0.10", dir_ + "/v2.qcow2", "64M"});
	img({"create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", dir_ + "/big.qcow2", "64M"});
	img({"create", "-q", "-f", "qcow2", "-b", dir_ + "/plain.qcow2", "-F", "qcow2",
	     dir_ + "/overlay.qcow2"});
	img({"create", "-q", "-f", "qcow2", "-o", "data_file=" + dir_ + "/data.raw",
	     dir_ + "/external.qcow2", "64M"});
	EXPECT_TRUE(check("plain.qcow2"));
	EXPECT_TRUE(check("v2.qcow2"));
	EXPECT_TRUE(check("big.qcow2"));
	Status overlay = check("overlay.qcow2");
	ASSERT_FALSE(overlay);
	EXPECT_EQ(overlay.error().message(),
		  "qcow2(overlay.qcow2): has a backing file (refused: it would be opened by name)");
	Status external = check("external.qcow2");
	ASSERT_FALSE(external);
	EXPECT_STREQ(external.error().reason(), "uses an external data file (refused)");
	Status raw = check("data.raw");
	ASSERT_FALSE(raw);
	EXPECT_EQ(raw.error().errnum(), EINVAL);
}

TEST(Qcow2File, ReadErrors)
{
	Status s = checkQcow2File(-1, "x");
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().message(), "pread(x): Bad file descriptor");
}

} // namespace
} // namespace fr
