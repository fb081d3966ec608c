// SPDX-License-Identifier: AGPL-3.0-or-later
// The mount's filesystem logic (client/mount_fs.h), the FUSE operations
// table without libfuse: it runs where /dev/fuse does not (the real mount
// is tested end to end in e2e_test.cpp). A guest in memory stands in for
// the VM: attributes, listings, chunked reads with read-ahead and a bounded
// cache, symlinks, xattrs, errors, and a VM that dies.
#include "client/mount_fs.h"

#include <fcntl.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

namespace fr::client {
namespace {

std::string bytes(std::size_t size, unsigned seed)
{
	std::string out(size, '\0');
	std::mt19937 rng(seed);
	for (char &c : out)
		c = static_cast<char>(rng());
	return out;
}

// A guest in memory: path -> entry, directory -> names, file -> bytes.
struct MemGuest {
	std::map<std::string, GuestEntry> entries;
	std::map<std::string, std::vector<std::string>> dirs;
	std::map<std::string, std::string> files;
	std::map<std::string, std::vector<std::pair<std::string, std::string>>> xattrs;
	std::atomic<int> stats{0};
	std::atomic<int> lists{0};
	std::atomic<int> reads{0};
	std::atomic<bool> dead{false};
	std::mutex mutex;

	void add(const std::string &path, GuestEntry entry, const std::string &content = "")
	{
		entry.name = path.substr(path.rfind('/') + 1);
		if (entry.type == EntryType::File)
			entry.size = content.size();
		entries[path] = entry;
		files[path] = content;
		const std::string parent = path.substr(0, path.rfind('/'));
		dirs[parent].push_back(entry.name);
		if (entry.type == EntryType::Directory)
			dirs[path];
	}
};

Error guestError(int err, const std::string &path, const char *text)
{
	return Error::invalid(err, "guest", path, "%s", text).withKind(ErrorKind::Guest);
}

class MemSession final : public VmSession {
public:
	explicit MemSession(MemGuest &guest) : g_(guest) {}

	Result<GuestStatus> status(bool) override { return GuestStatus{}; }
	Status stop() override { return {}; }
	Status list(std::string_view path, EntryCallback onEntry) override
	{
		if (g_.dead)
			return Error(ECONNRESET, "read", "guest connection");
		++g_.lists;
		const auto it = g_.dirs.find(std::string(path));
		if (it == g_.dirs.end())
			return guestError(ENOENT, std::string(path), "NotFound");
		for (const std::string &name : it->second)
			if (Status ok = onEntry(g_.entries.at(std::string(path) + "/" + name)); !ok)
				return ok;
		return {};
	}
	Status extract(std::string_view, ExtractFormat, bool, EntryCallback, DataCallback) override
	{
		return Error(ENOSYS, "extract", "mount");
	}
	Result<GuestEntry> stat(std::string_view path) override
	{
		if (g_.dead)
			return Error(ECONNRESET, "read", "guest connection");
		++g_.stats;
		if (path == "/disk0/part/1/refused")
			return guestError(EPERM, std::string(path), "Refused: goes through a symlink");
		const auto it = g_.entries.find(std::string(path));
		if (it == g_.entries.end())
			return guestError(ENOENT, std::string(path), "NotFound");
		return it->second;
	}
	Result<std::uint64_t> read(std::string_view path, std::uint64_t offset, std::uint32_t length,
				   DataCallback onData) override
	{
		if (g_.dead)
			return Error(ECONNRESET, "read", "guest connection");
		++g_.reads;
		const std::string &data = g_.files.at(std::string(path));
		if (offset >= data.size())
			return std::uint64_t{0};
		const std::string_view part = std::string_view(data).substr(offset, length);
		for (std::size_t at = 0; at < part.size(); at += 256 << 10)
			if (Status ok = onData(part.substr(at, 256 << 10)); !ok)
				return ok.error();
		return static_cast<std::uint64_t>(part.size());
	}
	Status xattrs(std::string_view path, XattrCallback onXattr) override
	{
		if (g_.dead)
			return Error(ECONNRESET, "read", "guest connection");
		if (auto it = g_.xattrs.find(std::string(path)); it != g_.xattrs.end())
			for (const auto &[name, value] : it->second)
				if (Status ok = onXattr(name, value); !ok)
					return ok;
		return {};
	}

private:
	MemGuest &g_;
};

// As the mount's pool does: a session per use (here: any number), and
// EHOSTDOWN once the VM is gone.
class MemPool final : public SessionPool {
public:
	explicit MemPool(MemGuest &guest) : guest_(guest) {}
	Status with(const Use &use) override
	{
		if (guest_.dead)
			return Error::invalid(EHOSTDOWN, "VM", "mount", "the restore VM is gone");
		MemSession session(guest_);
		Status result = use(session);
		if (!result && result.error().kind() != ErrorKind::Guest && guest_.dead)
			return Error::invalid(EHOSTDOWN, "VM", "mount", "the restore VM is gone");
		return result;
	}

private:
	MemGuest &guest_;
};

class MountFsTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		guest_.entries["/disk0/part/1"] = {.name = "1", .type = EntryType::Directory, .mode = 0755,
						   .mtime = 1600000000};
		guest_.dirs["/disk0/part/1"];
		guest_.add("/disk0/part/1/etc", {.type = EntryType::Directory, .mode = 0750, .mtime = 1650000000});
		guest_.add("/disk0/part/1/etc/hostname", {.type = EntryType::File, .mode = 0644, .mtime = 1700000000},
			   "restore-test\n");
		guest_.add("/disk0/part/1/etc/shadow", {.type = EntryType::File, .mode = 0000, .mtime = 1}, "root:*:\n");
		guest_.add("/disk0/part/1/etc/mtab",
			   {.type = EntryType::Symlink, .mode = 0777, .linkTarget = "/proc/mounts"});
		guest_.add("/disk0/part/1/big", {.type = EntryType::File, .mode = 0600}, big_);
		guest_.xattrs["/disk0/part/1/etc/hostname"] = {{"user.comment", "hello"},
							       {"security.selinux", std::string("label\0", 6)}};
		options_.uid = 1234;
		options_.gid = 5678;
	}
	std::unique_ptr<MountFs> make() { return std::make_unique<MountFs>(pool_, "/disk0/part/1", options_); }

	const std::string big_ = bytes(3 * MountFs::kChunkSize + 12345, 7);
	MemGuest guest_;
	MemPool pool_{guest_};
	MountFsOptions options_;
};

TEST_F(MountFsTest, AttributesOfTheRootAndBelow)
{
	auto fs = make();
	struct stat st {};
	ASSERT_EQ(fs->getattr("/", st), 0);
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	EXPECT_EQ(st.st_mode & 07777, 0755U);
	EXPECT_EQ(st.st_mtime, 1600000000);
	EXPECT_EQ(st.st_uid, 1234U); // everything is the mounting user's
	EXPECT_EQ(st.st_gid, 5678U);
	ASSERT_EQ(fs->getattr("/etc/hostname", st), 0);
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(st.st_size, 13);
	EXPECT_EQ(st.st_mode & 07777, 0644U);
	EXPECT_EQ(st.st_mtime, 1700000000);
	ASSERT_EQ(fs->getattr("/etc/mtab", st), 0);
	EXPECT_TRUE(S_ISLNK(st.st_mode));
	EXPECT_EQ(st.st_size, 12);
	EXPECT_EQ(fs->getattr("/etc/nope", st), -ENOENT);
	EXPECT_EQ(fs->getattr("/refused", st), -EACCES);
}

TEST_F(MountFsTest, ListingsFillTheAttributeCache)
{
	auto fs = make();
	std::map<std::string, struct stat> seen;
	ASSERT_EQ(fs->readdir("/etc", [&](const std::string &name, const struct stat &st) {
		seen[name] = st;
		return true;
	}),
		  0);
	ASSERT_EQ(seen.size(), 3U);
	EXPECT_TRUE(S_ISREG(seen["hostname"].st_mode));
	EXPECT_TRUE(S_ISLNK(seen["mtab"].st_mode));
	EXPECT_EQ(seen["shadow"].st_mode & 07777, 0U);
	// What a listing said is not asked again.
	const int stats = guest_.stats;
	struct stat st {};
	for (const char *path : {"/etc/hostname", "/etc/mtab", "/etc/shadow"})
		ASSERT_EQ(fs->getattr(path, st), 0) << path;
	EXPECT_EQ(guest_.stats, stats);
	// A full kernel buffer ends the filling.
	int filled = 0;
	ASSERT_EQ(fs->readdir("/etc", [&](const std::string &, const struct stat &) { return ++filled < 2; }), 0);
	EXPECT_EQ(filled, 2);
	EXPECT_EQ(fs->readdir("/etc/hostname", [](const std::string &, const struct stat &) { return true; }),
		  -ENOENT);
}

TEST_F(MountFsTest, ReadlinkOpenAndReadOnly)
{
	auto fs = make();
	std::string target;
	ASSERT_EQ(fs->readlink("/etc/mtab", target), 0);
	EXPECT_EQ(target, "/proc/mounts");
	EXPECT_EQ(fs->readlink("/etc/hostname", target), -EINVAL);
	EXPECT_EQ(fs->open("/etc/hostname", O_RDONLY), 0);
	EXPECT_EQ(fs->open("/etc/hostname", O_WRONLY), -EROFS);
	EXPECT_EQ(fs->open("/etc/hostname", O_RDWR), -EROFS);
	EXPECT_EQ(fs->open("/etc", O_RDONLY), -EISDIR);
	EXPECT_EQ(fs->open("/etc/none", O_RDONLY), -ENOENT);
}

TEST_F(MountFsTest, ReadsInChunksWithReadAheadAndACache)
{
	auto fs = make();
	// Sequential 128 KiB reads, as the kernel makes them.
	std::string got;
	std::vector<char> buf(128 << 10);
	for (off_t at = 0;; at += static_cast<off_t>(buf.size())) {
		const int n = fs->read("/big", buf.data(), buf.size(), at);
		ASSERT_GE(n, 0);
		if (n == 0)
			break;
		got.append(buf.data(), static_cast<std::size_t>(n));
	}
	EXPECT_EQ(got, big_);
	// One request per 1 MiB chunk (4 chunks), not per 128 KiB read; the
	// later chunks were fetched ahead.
	EXPECT_EQ(fs->readRequests(), 4U);
	EXPECT_EQ(guest_.reads, 4);
	EXPECT_GT(fs->cacheHits(), 20U);
	// A read across a chunk boundary, and past the end.
	const off_t at = static_cast<off_t>(MountFs::kChunkSize - 10);
	ASSERT_EQ(fs->read("/big", buf.data(), 20, at), 20);
	EXPECT_EQ(std::string(buf.data(), 20), big_.substr(static_cast<std::size_t>(at), 20));
	EXPECT_EQ(fs->read("/big", buf.data(), buf.size(), static_cast<off_t>(big_.size())), 0);
	EXPECT_EQ(fs->read("/big", buf.data(), buf.size(), static_cast<off_t>(big_.size()) - 5), 5);
	EXPECT_EQ(fs->read("/etc", buf.data(), buf.size(), 0), -EISDIR);
	EXPECT_EQ(fs->read("/big", buf.data(), buf.size(), -1), -EINVAL);
}

TEST_F(MountFsTest, TheCacheIsBounded)
{
	options_.cacheBytes = 2 * MountFs::kChunkSize;
	options_.readAhead = 0;
	auto fs = make();
	std::vector<char> buf(4096);
	for (int round = 0; round < 2; ++round)
		for (std::uint64_t chunk = 0; chunk < 4; ++chunk)
			ASSERT_EQ(fs->read("/big", buf.data(), buf.size(), static_cast<off_t>(chunk * MountFs::kChunkSize)),
				  4096);
	// Four chunks through a cache of two: the second round reads them all
	// again (least recently used first out).
	EXPECT_EQ(guest_.reads, 8);
}

TEST_F(MountFsTest, ConcurrentReadersGetTheSameBytes)
{
	auto fs = make();
	std::vector<std::thread> readers;
	std::atomic<int> wrong{0};
	for (int t = 0; t < 8; ++t)
		readers.emplace_back([&, t] {
			std::mt19937 rng(static_cast<unsigned>(t));
			std::vector<char> buf(100000);
			for (int i = 0; i < 50; ++i) {
				const std::size_t at = rng() % big_.size();
				const int n = fs->read("/big", buf.data(), buf.size(), static_cast<off_t>(at));
				const std::size_t want = std::min(buf.size(), big_.size() - at);
				if (n != static_cast<int>(want) || std::string(buf.data(), want) != big_.substr(at, want))
					++wrong;
			}
		});
	for (std::thread &t : readers)
		t.join();
	EXPECT_EQ(wrong, 0);
	// Each chunk was fetched once, however many readers wanted it.
	EXPECT_LE(guest_.reads, 4);
}

TEST_F(MountFsTest, ExtendedAttributes)
{
	auto fs = make();
	char list[256];
	const int needed = fs->listxattr("/etc/hostname", nullptr, 0);
	EXPECT_EQ(needed, static_cast<int>(sizeof("user.comment") + sizeof("security.selinux")));
	EXPECT_EQ(fs->listxattr("/etc/hostname", list, 5), -ERANGE);
	ASSERT_EQ(fs->listxattr("/etc/hostname", list, sizeof(list)), needed);
	EXPECT_EQ(std::string(list, static_cast<std::size_t>(needed)),
		  std::string("user.comment\0security.selinux\0", static_cast<std::size_t>(needed)));
	char value[64];
	EXPECT_EQ(fs->getxattr("/etc/hostname", "user.comment", nullptr, 0), 5);
	ASSERT_EQ(fs->getxattr("/etc/hostname", "user.comment", value, sizeof(value)), 5);
	EXPECT_EQ(std::string(value, 5), "hello");
	ASSERT_EQ(fs->getxattr("/etc/hostname", "security.selinux", value, sizeof(value)), 6);
	EXPECT_EQ(std::string(value, 6), std::string("label\0", 6));
	EXPECT_EQ(fs->getxattr("/etc/hostname", "user.comment", value, 2), -ERANGE);
	EXPECT_EQ(fs->getxattr("/etc/hostname", "user.none", value, sizeof(value)), -ENODATA);
	EXPECT_EQ(fs->listxattr("/etc/shadow", list, sizeof(list)), 0);
}

TEST_F(MountFsTest, AVmThatDiesAnswersEioAtOnce)
{
	auto fs = make();
	struct stat st {};
	ASSERT_EQ(fs->getattr("/etc/hostname", st), 0);
	guest_.dead = true;
	std::vector<char> buf(4096);
	// The first failure tells the filesystem; everything after is EIO
	// without asking (nothing waits for a VM that is gone).
	EXPECT_EQ(fs->read("/big", buf.data(), buf.size(), 0), -EIO);
	EXPECT_FALSE(fs->alive());
	EXPECT_EQ(fs->getattr("/etc/hostname", st), -EIO);
	EXPECT_EQ(fs->readdir("/", [](const std::string &, const struct stat &) { return true; }), -EIO);
	EXPECT_EQ(fs->open("/etc/hostname", O_RDONLY), -EIO);
	EXPECT_EQ(fs->listxattr("/etc/hostname", nullptr, 0), -EIO);
	// vmGone() from outside (the mount's keeper saw QEMU exit) does the same.
	guest_.dead = false;
	auto other = make();
	other->vmGone();
	EXPECT_EQ(other->getattr("/", st), -EIO);
}

} // namespace
} // namespace fr::client
