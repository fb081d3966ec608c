// SPDX-License-Identifier: AGPL-3.0-or-later
// Safe extraction against hostile archives: "../", absolute names, a
// symlink then a file through it, hardlinks, device nodes, FIFOs, setuid
// bits, huge names, truncation; staging, commit and leftover cleanup.
#include "client/safe_writer.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "client/process.h"
#include "tar_builder.h"
#include "test_util.h"

namespace fr::client {
namespace {

using test::buildTar;
using test::exists;
using test::Member;
using test::modeOf;
using test::readFile;
using test::TempDir;

std::vector<std::string> listDir(const std::string &path)
{
	std::vector<std::string> out;
	DIR *d = ::opendir(path.c_str());
	if (d == nullptr)
		return out;
	while (const dirent *e = ::readdir(d))
		if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..")
			out.emplace_back(e->d_name);
	::closedir(d);
	std::sort(out.begin(), out.end());
	return out;
}

class UnpackTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_EQ(::mkdir((dir_ / "root").c_str(), 0700), 0);
		ASSERT_EQ(::mkdir((dir_ / "outside").c_str(), 0700), 0);
		rootFd_ = ::open((dir_ / "root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ASSERT_GE(rootFd_, 0);
	}
	void TearDown() override { ::close(rootFd_); }

	// Streams `tar` through a TarSink in small chunks, as a session would.
	Status unpack(const std::string &tar, UnpackOptions options = {})
	{
		options.umask = 022;
		TarSink sink(rootFd_, options);
		Status started = sink.start();
		if (!started)
			return started;
		Status writing;
		for (std::size_t at = 0; at < tar.size() && writing; at += 3000)
			writing = sink.write(std::string_view(tar).substr(at, 3000));
		Status done = sink.finish();
		report_ = sink.report();
		return writing ? done : writing;
	}
	std::string root(const std::string &name = "") const
	{
		return dir_ / ("root" + (name.empty() ? "" : "/" + name));
	}

	TempDir dir_;
	int rootFd_ = -1;
	UnpackReport report_;
};

TEST_F(UnpackTest, ExtractsAnOrdinaryTree)
{
	const std::string big(300000, 'b');
	ASSERT_TRUE(unpack(buildTar({
		{.name = "etc", .type = AE_IFDIR, .perm = 0755},
		{.name = "etc/hostname", .content = "guest\n", .perm = 0640, .mtime = 1600000000},
		{.name = "etc/big", .content = big},
		{.name = "etc/sub/deep/file", .content = "implicit parents"},
		{.name = "\xff\xfe-latin1-\xe9", .content = "bytes"},
		{.name = "etc/ro", .type = AE_IFDIR, .perm = 0555},
		{.name = "etc/ro/inside", .content = "x", .perm = 0444},
	})));
	EXPECT_EQ(readFile(root("etc/hostname")), "guest\n");
	EXPECT_EQ(modeOf(root("etc/hostname")) & 07777, 0640U);
	struct stat st {};
	ASSERT_EQ(::stat(root("etc/hostname").c_str(), &st), 0);
	EXPECT_EQ(st.st_mtime, 1600000000);
	EXPECT_EQ(readFile(root("etc/big")), big);
	EXPECT_EQ(readFile(root("etc/sub/deep/file")), "implicit parents");
	EXPECT_EQ(readFile(root("\xff\xfe-latin1-\xe9")), "bytes");
	EXPECT_EQ(modeOf(root("etc")) & 07777, 0755U);
	EXPECT_EQ(modeOf(root("etc/ro")) & 07777, 0555U);
	EXPECT_EQ(readFile(root("etc/ro/inside")), "x");
	EXPECT_EQ(report_.files, 5U);
	EXPECT_EQ(report_.bytes, 6U + big.size() + 16U + 5U + 1U);
	EXPECT_TRUE(report_.skipped.empty());
	EXPECT_FALSE(report_.singleFile);
}

TEST_F(UnpackTest, ZeroRunsBecomeHoles)
{
	// 1 MiB of zeros, one byte of data in a block of its own, 2 MiB of
	// zeros, a short tail of zeros: same bytes back, most of them holes
	// (the file's size set although the stream ends in zeros).
	std::string content(std::size_t{1} << 20, '\0');
	content += std::string(65536, '\0');
	content[(std::size_t{1} << 20) + 7] = 'x';
	content += std::string(std::size_t{2} << 20, '\0');
	content += std::string(1000, '\0');
	ASSERT_TRUE(unpack(buildTar({{.name = "sparse.img", .content = content}})));
	EXPECT_EQ(readFile(root("sparse.img")), content);
	struct stat st {};
	ASSERT_EQ(::stat(root("sparse.img").c_str(), &st), 0);
	EXPECT_EQ(static_cast<std::size_t>(st.st_size), content.size());
	// Allocated: the data block and the unaligned tail, not 3 MiB. (A
	// filesystem without holes would fail this; the test dir is on the
	// build's filesystem.)
	EXPECT_LT(st.st_blocks * 512, 512 * 1024) << "allocated " << st.st_blocks * 512 << " bytes";
	EXPECT_EQ(report_.bytes, content.size());
}

TEST_F(UnpackTest, SingleFileIsReported)
{
	ASSERT_TRUE(unpack(buildTar({{.name = "hostname", .content = "h"}})));
	ASSERT_TRUE(report_.singleFile);
	EXPECT_EQ(*report_.singleFile, "hostname");
}

TEST_F(UnpackTest, DotDotAndAbsoluteNamesAreRefused)
{
	for (const char *name : {"../escaped", "a/../../escaped", "/tmp/escaped-abs", "./../escaped"}) {
		Status status = unpack(buildTar({{.name = "fine", .content = "1"},
						 {.name = name, .content = "evil"}}));
		EXPECT_FALSE(status) << name;
	}
	EXPECT_EQ(listDir(dir_.path()), (std::vector<std::string>{"outside", "root"}));
	EXPECT_FALSE(exists("/tmp/escaped-abs"));
}

TEST_F(UnpackTest, NoFileIsWrittenThroughASymlink)
{
	const std::string outside = dir_ / "outside";
	UnpackOptions withSymlinks;
	withSymlinks.symlinks = true;
	Status status = unpack(buildTar({
				       {.name = "link", .type = AE_IFLNK, .perm = 0777, .link = outside},
				       {.name = "link/planted", .content = "evil"},
			       }),
			       withSymlinks);
	EXPECT_FALSE(status);
	EXPECT_TRUE(listDir(outside).empty());
	// The same with a relative link climbing out, and a dir entry through it.
	ASSERT_EQ(::unlink(root("link").c_str()), 0);
	status = unpack(buildTar({
				{.name = "up", .type = AE_IFLNK, .perm = 0777, .link = "../outside"},
				{.name = "up/sub", .type = AE_IFDIR, .perm = 0755},
			}),
			withSymlinks);
	EXPECT_FALSE(status);
	EXPECT_TRUE(listDir(outside).empty());
	// A file replacing the symlink's own name is refused too (O_EXCL).
	ASSERT_EQ(::unlink(root("up").c_str()), 0);
	status = unpack(buildTar({
				{.name = "victim", .type = AE_IFLNK, .perm = 0777, .link = outside + "/x"},
				{.name = "victim", .content = "evil"},
			}),
			withSymlinks);
	EXPECT_FALSE(status);
	EXPECT_TRUE(listDir(outside).empty());
}

TEST_F(UnpackTest, SymlinksOnlyWhenAskedFor)
{
	const std::string tar = buildTar({{.name = "target", .content = "t"},
					  {.name = "link", .type = AE_IFLNK, .perm = 0777, .link = "target"}});
	ASSERT_TRUE(unpack(tar));
	EXPECT_FALSE(exists(root("link")));
	ASSERT_EQ(report_.skipped.size(), 1U);
	EXPECT_NE(report_.skipped[0].find("--symlinks"), std::string::npos);

	ASSERT_EQ(::unlink(root("target").c_str()), 0);
	UnpackOptions withSymlinks;
	withSymlinks.symlinks = true;
	ASSERT_TRUE(unpack(tar, withSymlinks));
	EXPECT_TRUE(S_ISLNK(modeOf(root("link"))));
	char buf[64] = {};
	ASSERT_EQ(::readlink(root("link").c_str(), buf, sizeof(buf)), 6);
	EXPECT_STREQ(buf, "target");
}

TEST_F(UnpackTest, SymlinksKeepTheirMtime)
{
	// docs/client.md: modification times are kept, a symlink's too (it got
	// the time of the extraction).
	UnpackOptions withSymlinks;
	withSymlinks.symlinks = true;
	ASSERT_TRUE(unpack(buildTar({{.name = "dir", .type = AE_IFDIR, .perm = 0755, .mtime = 1500000000},
				     {.name = "dir/link", .type = AE_IFLNK, .perm = 0777, .link = "../nowhere",
				      .mtime = 1600000000}}),
			   withSymlinks));
	struct stat st {};
	ASSERT_EQ(::lstat(root("dir/link").c_str(), &st), 0);
	ASSERT_TRUE(S_ISLNK(st.st_mode));
	EXPECT_EQ(st.st_mtime, 1600000000);
	// The directory keeps its own (set after the link was created in it).
	ASSERT_EQ(::lstat(root("dir").c_str(), &st), 0);
	EXPECT_EQ(st.st_mtime, 1500000000);
}

TEST_F(UnpackTest, HardlinksBecomeCopiesAndCannotEscape)
{
	ASSERT_TRUE(unpack(buildTar({
		{.name = "a", .content = "shared bytes", .perm = 0600},
		{.name = "b", .hardlink = "a"},
		{.name = "c", .hardlink = "missing"},
	})));
	EXPECT_EQ(readFile(root("b")), "shared bytes");
	struct stat a {}, b {};
	ASSERT_EQ(::stat(root("a").c_str(), &a), 0);
	ASSERT_EQ(::stat(root("b").c_str(), &b), 0);
	EXPECT_NE(a.st_ino, b.st_ino);
	EXPECT_EQ(b.st_nlink, 1U);
	EXPECT_FALSE(exists(root("c")));
	EXPECT_EQ(report_.skipped.size(), 1U);

	// A hardlink naming a file outside the root is refused outright.
	test::writeFile(dir_ / "outside/secret", "secret");
	EXPECT_FALSE(unpack(buildTar({{.name = "leak", .hardlink = "../outside/secret"}})));
	EXPECT_FALSE(unpack(buildTar({{.name = "leak2", .hardlink = dir_ / "outside/secret"}})));
	EXPECT_FALSE(exists(root("leak")));
	EXPECT_FALSE(exists(root("leak2")));
}

TEST_F(UnpackTest, DevicesAndFifosAreSkipped)
{
	ASSERT_TRUE(unpack(buildTar({
		{.name = "null", .type = AE_IFCHR, .perm = 0666},
		{.name = "sda", .type = AE_IFBLK, .perm = 0660},
		{.name = "fifo", .type = AE_IFIFO, .perm = 0644},
		{.name = "kept", .content = "k"},
	})));
	// (tar cannot carry sockets; an unknown type flag reads as a regular
	// file, which is harmless.)
	EXPECT_EQ(listDir(root()), std::vector<std::string>{"kept"});
	EXPECT_EQ(report_.skipped.size(), 3U);
}

TEST_F(UnpackTest, SpecialModeBitsAreMasked)
{
	ASSERT_TRUE(unpack(buildTar({
		{.name = "suid", .content = "#!/bin/sh\n", .perm = 04755},
		{.name = "sgid-dir", .type = AE_IFDIR, .perm = 02775},
		{.name = "sticky", .type = AE_IFDIR, .perm = 01777},
		{.name = "world", .content = "w", .perm = 0666},
	})));
	EXPECT_EQ(modeOf(root("suid")) & 07777, 0755U);
	EXPECT_EQ(modeOf(root("sgid-dir")) & 07777, 0755U); // umask 022 too
	EXPECT_EQ(modeOf(root("sticky")) & 07777, 0755U);
	EXPECT_EQ(modeOf(root("world")) & 07777, 0644U);
}

TEST_F(UnpackTest, HugeNamesAreRefused)
{
	EXPECT_FALSE(unpack(buildTar({{.name = std::string(300, 'n'), .content = "x"}})));
	std::string deep;
	while (deep.size() < 5000)
		deep += "dddddddddd/";
	EXPECT_FALSE(unpack(buildTar({{.name = deep + "f", .content = "x"}})));
	EXPECT_TRUE(listDir(root()).empty());
}

TEST_F(UnpackTest, DuplicatesAndTypeClashesAreRefused)
{
	EXPECT_FALSE(unpack(buildTar({{.name = "f", .content = "1"}, {.name = "f", .content = "2"}})));
	EXPECT_EQ(readFile(root("f")), "1");
	EXPECT_FALSE(unpack(buildTar({{.name = "g", .content = "1"},
				      {.name = "g", .type = AE_IFDIR, .perm = 0755}})));
	EXPECT_FALSE(unpack(buildTar({{.name = "h", .content = "1"}, {.name = "h/x", .content = "2"}})));
}

TEST_F(UnpackTest, TruncatedAndGarbageStreamsFail)
{
	const std::string tar = buildTar({{.name = "f", .content = std::string(100000, 'x')}});
	EXPECT_FALSE(unpack(tar.substr(0, 50000)));
	EXPECT_FALSE(unpack(std::string(10240, '\x42')));
}

TEST_F(UnpackTest, AHostileReaderFailureDoesNotBlockTheWriter)
{
	// The unpacker gives up on the first member; the rest (megabytes) must
	// not wedge the sending side.
	std::vector<Member> members = {{.name = "../x", .content = "e"}};
	for (int i = 0; i < 40; ++i)
		members.push_back({.name = "f" + std::to_string(i), .content = std::string(100000, 'z')});
	EXPECT_FALSE(unpack(buildTar(members)));
}

TEST(Staging, CommitsWithoutReplacingAndCleansUp)
{
	TempDir dir;
	TempDir journal;
	const int targetFd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const int journalFd = ::open(journal.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	{
		Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd, dir.path(), journalFd);
		ASSERT_TRUE(staging) << staging.error().message();
		EXPECT_EQ(modeOf(dir / (*staging)->name()) & 07777, 0700U);
		EXPECT_EQ(listDir(journal.path()).size(), 1U);
		test::writeFile(dir / ((*staging)->name() + "/hostname"), "h");
		ASSERT_TRUE((*staging)->commit("hostname", "hostname"));
	}
	EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"hostname"});
	EXPECT_TRUE(listDir(journal.path()).empty());
	{
		Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd, dir.path(), journalFd);
		ASSERT_TRUE(staging);
		test::writeFile(dir / ((*staging)->name() + "/hostname"), "other");
		Status refused = (*staging)->commit("hostname", "hostname");
		ASSERT_FALSE(refused);
		EXPECT_EQ(refused.error().errnum(), EEXIST);
	}
	EXPECT_EQ(readFile(dir / "hostname"), "h");
	EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"hostname"});
	{
		// Abandoned (an error): everything goes, even read-only trees.
		Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd, dir.path(), journalFd);
		ASSERT_TRUE(staging);
		const std::string sub = dir / ((*staging)->name() + "/ro");
		ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
		test::writeFile(sub + "/f", "x");
		ASSERT_EQ(::chmod(sub.c_str(), 0), 0);
	}
	EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"hostname"});
	EXPECT_TRUE(listDir(journal.path()).empty());
	// The whole staging directory as the result (a directory extraction).
	{
		Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd, dir.path(), -1);
		ASSERT_TRUE(staging);
		test::writeFile(dir / ((*staging)->name() + "/inner"), "i");
		ASSERT_TRUE((*staging)->commit("", "tree"));
	}
	EXPECT_EQ(readFile(dir / "tree/inner"), "i");
	::close(targetFd);
	::close(journalFd);
}

// What a client killed with SIGKILL mid-extraction leaves behind, and the
// next call's cleanup.
TEST(Staging, LeftoversOfAKilledClientAreRemoved)
{
	TempDir target;
	TempDir journal;
	const int targetFd = ::open(target.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const int journalFd = ::open(journal.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ready[2];
	ASSERT_EQ(::pipe(ready), 0);
	const pid_t child = ::fork();
	if (child == 0) {
		Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd, target.path(), journalFd);
		if (staging) {
			test::writeFile(target / ((*staging)->name() + "/partial"), "half");
			(void)!::write(ready[1], "x", 1);
		}
		::pause();
		_exit(0);
	}
	char c;
	ASSERT_EQ(::read(ready[0], &c, 1), 1);
	// While the extraction runs, nobody touches its staging directory.
	cleanLeftovers(targetFd);
	cleanJournal(journalFd);
	EXPECT_EQ(listDir(target.path()).size(), 1U);
	EXPECT_EQ(listDir(journal.path()).size(), 1U);
	::kill(child, SIGKILL);
	::waitpid(child, nullptr, 0);
	// Another user's (or a live) staging dir with a plausible name stays.
	const std::string alive = ".file-restore-tmp-1-" + std::to_string(*readStartTime(1)) + "-aa";
	ASSERT_EQ(::mkdir((target / alive).c_str(), 0700), 0);
	cleanJournal(journalFd);
	EXPECT_EQ(listDir(target.path()), std::vector<std::string>{alive});
	EXPECT_TRUE(listDir(journal.path()).empty());
	// And the target directory's own scan finds leftovers without a journal.
	ASSERT_EQ(::mkdir((target / ".file-restore-tmp-999999-1-bb").c_str(), 0700), 0);
	test::writeFile(target / ".file-restore-tmp-999999-1-bb/x", "x");
	cleanLeftovers(targetFd);
	EXPECT_EQ(listDir(target.path()), std::vector<std::string>{alive});
	::close(targetFd);
	::close(journalFd);
	::close(ready[0]);
	::close(ready[1]);
}

} // namespace
} // namespace fr::client
