// SPDX-License-Identifier: AGPL-3.0-or-later
// The daemon's request handling (guest/tree.h, extract.h, fsutil.h) on the
// host, against plain directories standing in for mounted filesystems, and
// through the real protocol (host session <-> daemon connection over a
// socketpair): listing, raw/tar/zip/zstd extraction, symlinks never
// followed, paths never leaving their filesystem, the idle timer.
#include "guest/activity.h"
#include "guest/server.h"
#include "guest/stream.h"
#include "guest/tree.h"
#include "guest/vpath.h"
#include "shared/guest_session.h"
#include "archive_reader.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <clocale>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

namespace fr::guest {
namespace {

// The daemon runs under C.UTF-8 (guest/main.cpp); so do these tests.
const bool gUtf8Locale = std::setlocale(LC_CTYPE, "C.UTF-8") != nullptr;

// Directories as disks: disk0 has partitions 1 and 2, disk1 a whole-disk
// filesystem, disk2 a locked LUKS partition.
class DirVolumes : public Volumes {
public:
	explicit DirVolumes(const std::string &base)
	{
		for (const char *d : {"p1", "p2", "raw"}) {
			const std::string path = base + "/" + d;
			::mkdir(path.c_str(), 0755);
			roots_[d] = UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
		}
	}
	// The shape SystemVolumes gives (guest/vpath.h): disk0/part/{1,2},
	// disk1/raw, disk2 with a partition that cannot be opened.
	Result<Resolved> resolve(const std::vector<std::string_view> &c) override
	{
		Resolved out;
		auto fs = [&](const char *root, std::size_t from) -> Result<Resolved> {
			out.isFilesystem = true;
			out.root = roots_[root].get();
			out.rest = joinComponents(c, from);
			return out;
		};
		if (c.empty()) {
			out.entries = {{"disk0", 0, {}}, {"disk1", 0, {}}, {"disk2", 0, {}}};
			return out;
		}
		if (c[0] == "disk0") {
			if (c.size() == 1)
				out.entries = {{"part", 0, {}}};
			else if (c[1] != "part")
				return Error(ENOENT, "bucket");
			else if (c.size() == 2)
				out.entries = {{"1", 1024, {}}, {"2", 2048, {}}};
			else if (c[2] == "1" || c[2] == "2")
				return fs(c[2] == "1" ? "p1" : "p2", 3);
			else
				return Error(ENOENT, "partition");
			return out;
		}
		if (c[0] == "disk1") {
			if (c.size() == 1) {
				out.entries = {{"raw", 4096, {}}};
				return out;
			}
			if (c[1] != "raw")
				return Error(ENOENT, "bucket");
			return fs("raw", 2);
		}
		if (c[0] == "disk2") {
			if (c.size() == 1)
				out.entries = {{"part", 0, {}}};
			else if (c.size() == 2 && c[1] == "part")
				out.entries = {{"1", 512, "crypto_LUKS: locked: no key given"}};
			else
				return Error::invalid(ENOKEY, "volume", "disk2", "crypto_LUKS: locked: no key given");
			return out;
		}
		return Error(ENOENT, "disk");
	}
	std::uint32_t diskCount() override { return 3; }
	std::uint32_t mountCount() override { return 2; }

private:
	std::map<std::string, UniqueFd> roots_;
};

class TreeTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/fr-tree-test.XXXXXX";
		ASSERT_NE(::mkdtemp(tmpl), nullptr);
		base_ = tmpl;
		volumes_ = std::make_unique<DirVolumes>(base_);
		const std::string p1 = base_ + "/p1";
		mkdir(p1 + "/dir");
		write(p1 + "/dir/a.txt", "alpha\n", 0640);
		write(p1 + "/dir/b.bin", std::string(300000, 'b'), 0600);
		mkdir(p1 + "/dir/sub");
		write(p1 + "/dir/sub/c.txt", "gamma\n", 0644);
		write(p1 + std::string("/dir/\xff\xfe-name"), "binary name\n", 0644);
		ASSERT_EQ(::symlink("a.txt", (p1 + "/dir/link").c_str()), 0);
		ASSERT_EQ(::symlink("../../..", (p1 + "/dir/up").c_str()), 0);
		ASSERT_EQ(::mkfifo((p1 + "/dir/fifo").c_str(), 0644), 0);
		// Outside every "filesystem": must never be reachable.
		write(base_ + "/outside.txt", "host secret\n", 0644);
		ASSERT_EQ(::symlink((base_ + "/outside.txt").c_str(), (p1 + "/abs-link").c_str()), 0);

		int fds[2];
		ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
		key_ = proto::randomTicket();
		stream_ = std::make_unique<GuestStream>(UniqueFd(fds[1]), false);
		handler_ = std::make_unique<TreeHandler>(*volumes_, activity_);
		server_ = std::thread([this] { Connection(*stream_, key_, *handler_, {}).run(); });
		Result<GuestSession> s = GuestSession::open(UniqueFd(fds[0]), key_, 5000);
		ASSERT_TRUE(s) << s.error().message();
		session_ = std::make_unique<GuestSession>(std::move(*s));
	}
	void TearDown() override
	{
		session_.reset();
		if (server_.joinable())
			server_.join();
		std::error_code ec;
		std::filesystem::remove_all(base_, ec);
	}

	static void mkdir(const std::string &path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0); }
	static void write(const std::string &path, const std::string &data, unsigned mode)
	{
		const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
		::fchmod(fd, mode);
		::close(fd);
	}

	std::map<std::string, proto::Entry> list(const std::string &path, Status *status = nullptr)
	{
		std::map<std::string, proto::Entry> out;
		Status ok = session_->list(path, [&](const proto::Entry &e) noexcept {
			out[e.name] = e;
			return Status{};
		});
		if (status != nullptr)
			*status = ok;
		else
			EXPECT_TRUE(ok) << ok.error().message();
		return out;
	}

	Result<std::string> extract(const std::string &path, proto::ExtractFormat format,
				    proto::Compression compression = proto::Compression::None,
				    proto::Entry *start = nullptr)
	{
		std::string bytes;
		Status ok = session_->extract(
			path, format, compression,
			[&](const proto::Entry &e) noexcept {
				if (start != nullptr)
					*start = e;
				return Status{};
			},
			[&](std::span<const std::uint8_t> chunk) noexcept {
				bytes.append(reinterpret_cast<const char *>(chunk.data()), chunk.size());
				return Status{};
			});
		if (!ok)
			return ok.error();
		return bytes;
	}

	std::string base_;
	std::unique_ptr<DirVolumes> volumes_;
	Activity activity_{600};
	proto::Key key_{};
	std::unique_ptr<GuestStream> stream_;
	std::unique_ptr<TreeHandler> handler_;
	std::thread server_;
	std::unique_ptr<GuestSession> session_;
};

using Member = test::ArchiveMember;
using test::readArchive;

TEST_F(TreeTest, VirtualDirectories)
{
	EXPECT_TRUE(gUtf8Locale);
	auto root = list("/");
	ASSERT_EQ(root.size(), 3U);
	EXPECT_EQ(root["disk0"].type, proto::EntryType::Directory);
	EXPECT_EQ(root["disk0"].mode, 0555U);
	auto disk0 = list("/disk0");
	EXPECT_EQ(disk0.size(), 1U);
	EXPECT_EQ(disk0.count("part"), 1U);
	auto disk1 = list("/disk1");
	EXPECT_EQ(disk1.size(), 1U);
	EXPECT_EQ(disk1.count("raw"), 1U);
	// A volume that cannot be opened is listed all the same, and asking
	// inside it answers its reason.
	auto locked = list("/disk2/part");
	ASSERT_EQ(locked.size(), 1U);
	EXPECT_EQ(locked["1"].type, proto::EntryType::Directory);
	Status inside;
	list("/disk2/part/1", &inside);
	ASSERT_FALSE(inside);
	EXPECT_NE(inside.error().message().find("no key given"), std::string::npos) << inside.error().message();
	auto parts = list("/disk0/part");
	ASSERT_EQ(parts.size(), 2U);
	EXPECT_EQ(parts["2"].size, 2048U);
	Status status;
	list("/disk1/part", &status);
	EXPECT_EQ(status.error().errnum(), ENOENT);
	list("/disk9", &status);
	EXPECT_EQ(status.error().errnum(), ENOENT);
	list("/disk0/part/3", &status);
	EXPECT_EQ(status.error().errnum(), ENOENT);
}

TEST_F(TreeTest, ListsAFilesystemDirectory)
{
	auto dir = list("/disk0/part/1/dir");
	EXPECT_EQ(dir.size(), 7U);
	EXPECT_EQ(dir["a.txt"].type, proto::EntryType::File);
	EXPECT_EQ(dir["a.txt"].size, 6U);
	EXPECT_EQ(dir["a.txt"].mode, 0640U);
	EXPECT_EQ(dir["b.bin"].size, 300000U);
	EXPECT_EQ(dir["sub"].type, proto::EntryType::Directory);
	EXPECT_EQ(dir["link"].type, proto::EntryType::Symlink);
	EXPECT_EQ(dir["link"].linkTarget, "a.txt");
	EXPECT_EQ(dir["up"].linkTarget, "../../..");
	EXPECT_EQ(dir["fifo"].type, proto::EntryType::Fifo);
	EXPECT_EQ(dir.count("\xff\xfe-name"), 1U);
	Status status;
	list("/disk0/part/1/dir/a.txt", &status);
	EXPECT_EQ(status.error().errnum(), ENOTDIR);
}

TEST_F(TreeTest, ListsALargeDirectoryInBatchesEachNameOnce)
{
	// More entries than one stat batch (65,536, sorted by inode number
	// inside a batch): every name comes exactly once, with its own size.
	const std::string big = base_ + "/p1/big";
	mkdir(big);
	constexpr int kCount = 70000;
	for (int i = 0; i < kCount; ++i) {
		const std::string name = big + "/n" + std::to_string(i);
		const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		ASSERT_GE(fd, 0);
		if (i % 1000 == 0) { // some sizes to check entries are not mixed up
			ASSERT_EQ(::ftruncate(fd, i), 0);
		}
		::close(fd);
	}
	std::map<std::string, int> seen;
	std::uint64_t sizes = 0;
	Status ok = session_->list("/disk0/part/1/big", [&](const proto::Entry &e) noexcept {
		++seen[e.name];
		sizes += e.size;
		return Status{};
	});
	ASSERT_TRUE(ok) << ok.error().message();
	ASSERT_EQ(seen.size(), static_cast<std::size_t>(kCount));
	for (const auto &[name, times] : seen)
		ASSERT_EQ(times, 1) << name;
	std::uint64_t expected = 0;
	for (int i = 0; i < kCount; i += 1000)
		expected += static_cast<std::uint64_t>(i);
	EXPECT_EQ(sizes, expected);
}

TEST_F(TreeTest, SymlinksAreNeverFollowed)
{
	Status status;
	// Through a symlink to a directory outside: refused, not followed.
	list("/disk0/part/1/dir/up/outside.txt", &status);
	ASSERT_FALSE(status);
	EXPECT_EQ(status.error().errnum(), EPERM);
	list("/disk0/part/1/dir/up", &status);
	EXPECT_EQ(status.error().errnum(), ENOTDIR);
	// An absolute symlink as the last component: described, not opened.
	Result<std::string> raw = extract("/disk0/part/1/abs-link", proto::ExtractFormat::Raw);
	ASSERT_FALSE(raw);
	EXPECT_EQ(raw.error().errnum(), EOPNOTSUPP);
	proto::Entry start;
	Result<std::string> tar = extract("/disk0/part/1/abs-link", proto::ExtractFormat::Tar,
					  proto::Compression::None, &start);
	ASSERT_TRUE(tar) << tar.error().message();
	EXPECT_EQ(start.type, proto::EntryType::Symlink);
	auto members = readArchive(*tar);
	ASSERT_EQ(members.size(), 1U);
	EXPECT_EQ(members["abs-link"].type, static_cast<unsigned>(AE_IFLNK));
	EXPECT_EQ(tar->find("host secret"), std::string::npos);
	EXPECT_TRUE(session_->usable());
}

TEST_F(TreeTest, RawExtract)
{
	proto::Entry start;
	Result<std::string> bytes = extract("/disk0/part/1/dir/b.bin", proto::ExtractFormat::Raw,
					    proto::Compression::None, &start);
	ASSERT_TRUE(bytes) << bytes.error().message();
	EXPECT_EQ(*bytes, std::string(300000, 'b'));
	EXPECT_EQ(start.name, "b.bin");
	EXPECT_EQ(start.size, 300000U);
	Result<std::string> dir = extract("/disk0/part/1/dir", proto::ExtractFormat::Raw);
	ASSERT_FALSE(dir);
	EXPECT_EQ(dir.error().errnum(), EISDIR);
	Result<std::string> fifo = extract("/disk0/part/1/dir/fifo", proto::ExtractFormat::Raw);
	ASSERT_FALSE(fifo);
	EXPECT_EQ(fifo.error().errnum(), EOPNOTSUPP);
	Result<std::string> virt = extract("/disk0/part", proto::ExtractFormat::Tar);
	ASSERT_FALSE(virt);
	EXPECT_EQ(virt.error().errnum(), EOPNOTSUPP);
}

TEST_F(TreeTest, RawZstdExtract)
{
	Result<std::string> packed = extract("/disk0/part/1/dir/b.bin", proto::ExtractFormat::Raw,
					     proto::Compression::Zstd);
	ASSERT_TRUE(packed) << packed.error().message();
	EXPECT_LT(packed->size(), 1000U);
	std::string plain(400000, '\0');
	const std::size_t n = ZSTD_decompress(plain.data(), plain.size(), packed->data(), packed->size());
	ASSERT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
	plain.resize(n);
	EXPECT_EQ(plain, std::string(300000, 'b'));
}

void expectDirMembers(const std::map<std::string, Member> &m, bool zip)
{
	EXPECT_EQ(m.at("a.txt").data, "alpha\n");
	EXPECT_EQ(m.at("a.txt").mode, 0640U);
	EXPECT_EQ(m.at("b.bin").data, std::string(300000, 'b'));
	EXPECT_EQ(m.at("sub").type, static_cast<unsigned>(AE_IFDIR));
	EXPECT_EQ(m.at("sub/c.txt").data, "gamma\n");
	// zip marks every name UTF-8 (libarchive under C.UTF-8): one that is
	// not valid UTF-8 comes back undecodable (docs/protocol.md); tar keeps
	// it as raw bytes (hdrcharset=BINARY).
	if (zip) {
		EXPECT_EQ(m.count("<undecodable name>"), 1U);
	} else {
		EXPECT_EQ(m.at("\xff\xfe-name").data, "binary name\n");
	}
	EXPECT_EQ(m.at("link").type, static_cast<unsigned>(AE_IFLNK));
	EXPECT_EQ(m.at("link").target, "a.txt");
	EXPECT_EQ(m.at("up").target, "../../..");
	if (zip) {
		EXPECT_EQ(m.count("fifo"), 0U);
	} else {
		EXPECT_EQ(m.at("fifo").type, static_cast<unsigned>(AE_IFIFO));
	}
	EXPECT_EQ(m.size(), zip ? 7U : 8U);
}

TEST_F(TreeTest, DirectoryAsTarZipAndZstd)
{
	for (auto format : {proto::ExtractFormat::Tar, proto::ExtractFormat::Zip}) {
		for (auto compression : {proto::Compression::None, proto::Compression::Zstd}) {
			SCOPED_TRACE(static_cast<int>(format) * 10 + static_cast<int>(compression));
			proto::Entry start;
			Result<std::string> bytes = extract("/disk0/part/1/dir", format, compression, &start);
			ASSERT_TRUE(bytes) << bytes.error().message();
			EXPECT_EQ(start.type, proto::EntryType::Directory);
			EXPECT_EQ(start.name, "dir");
			if (compression == proto::Compression::Zstd) {
				EXPECT_EQ(bytes->substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));
			}
			std::string error;
			auto members = readArchive(*bytes, &error);
			EXPECT_EQ(error, "");
			expectDirMembers(members, format == proto::ExtractFormat::Zip);
		}
	}
}

TEST_F(TreeTest, FilesystemRootAsTar)
{
	proto::Entry start;
	Result<std::string> bytes = extract("/disk0/part/1", proto::ExtractFormat::Tar, proto::Compression::None,
					    &start);
	ASSERT_TRUE(bytes) << bytes.error().message();
	EXPECT_EQ(start.name, "1");
	auto members = readArchive(*bytes);
	EXPECT_EQ(members.at("dir/a.txt").data, "alpha\n");
	EXPECT_EQ(members.count("outside.txt"), 0U);
}

TEST_F(TreeTest, ExtractHoldsTheIdleTimerOff)
{
	Activity activity(1);
	{
		Activity::Hold hold(activity);
		EXPECT_EQ(activity.active(), 1U);
		::usleep(1200 * 1000);
		EXPECT_FALSE(activity.expired());
		EXPECT_EQ(activity.idleLeftMs(), 1000U);
	}
	EXPECT_FALSE(activity.expired());
	::usleep(1100 * 1000);
	EXPECT_TRUE(activity.expired());
}

TEST_F(TreeTest, StatusKeepTimeoutDoesNotTouch)
{
	Result<proto::StatusInfo> info = session_->status(true);
	ASSERT_TRUE(info);
	EXPECT_EQ(info->diskCount, 3U);
	EXPECT_EQ(info->idleTimeoutS, 600U);
	::usleep(300 * 1000);
	info = session_->status(true);
	ASSERT_TRUE(info);
	EXPECT_LE(info->idleLeftMs, 600U * 1000U - 250U);
	info = session_->status(false); // resets
	ASSERT_TRUE(info);
	info = session_->status(true);
	ASSERT_TRUE(info);
	EXPECT_GE(info->idleLeftMs, 600U * 1000U - 100U);
}

TEST(VirtualPath, Splits)
{
	Result<VirtualPath> root = splitVirtualPath("/");
	ASSERT_TRUE(root);
	EXPECT_TRUE(root->components.empty());
	EXPECT_EQ(root->lastName, "");
	Result<VirtualPath> part = splitVirtualPath("/disk12/part/3/etc/hostname");
	ASSERT_TRUE(part);
	ASSERT_EQ(part->components.size(), 5U);
	EXPECT_EQ(part->components[2], "3");
	EXPECT_EQ(joinComponents(part->components, 3), "etc/hostname");
	EXPECT_EQ(part->lastName, "hostname");
	Result<VirtualPath> raw = splitVirtualPath("/disk0/raw/");
	ASSERT_TRUE(raw);
	EXPECT_EQ(raw->components.size(), 2U);
	EXPECT_EQ(raw->lastName, "raw");
	for (const char *bad : {"", "disk0", "/disk0/raw/../x", "/disk0//raw", "/disk0/raw/./x"}) {
		Result<VirtualPath> r = splitVirtualPath(bad);
		ASSERT_FALSE(r) << bad;
		EXPECT_EQ(r.error().errnum(), EINVAL) << bad;
	}
	std::uint32_t n = 0;
	EXPECT_TRUE(parseVirtualNumber("4096", 4096, n));
	EXPECT_EQ(n, 4096U);
	for (const char *bad : {"", "01", "4097", "x", "-1", "12345678901"})
		EXPECT_FALSE(parseVirtualNumber(bad, 4096, n)) << bad;
}

} // namespace
} // namespace fr::guest
