// SPDX-License-Identifier: AGPL-3.0-or-later
// The CLI end to end inside one process: argument handling, output formats,
// exit codes, extraction into directories and to stdout, with the fake
// helper ($FAKE_HELPER) and a fake guest protocol.
#include "client/cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>

#include <gtest/gtest.h>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "client/encoding.h"
#include "client/output.h"
#include "client/process.h"
#include "fake_session.h"
#include "reaper.h"
#include "tar_builder.h"
#include "test_util.h"

namespace fr::client {
namespace {

using nlohmann::json;
using test::Member;
using test::readFile;
using test::TempDir;

struct Outcome {
	int code;
	std::string out;
	std::string err;
};

class CliTest : public ::testing::Test {
protected:
	static void SetUpTestSuite() { test::becomeSubreaper(); }
	void SetUp() override
	{
		ASSERT_NE(std::getenv("FAKE_HELPER"), nullptr);
		ASSERT_EQ(::chmod(runtime_.path().c_str(), 0700), 0);
		::setenv("XDG_RUNTIME_DIR", runtime_.path().c_str(), 1);
		::setenv("FILE_RESTORE_HELPER", std::getenv("FAKE_HELPER"), 1);
		::setenv("FAKE_HELPER_MODE", "ok", 1);
		::setenv("FAKE_HELPER_LOG", (scratch_ / "calls").c_str(), 1);
		::unsetenv("FILE_RESTORE_REPOSITORY");
		ASSERT_EQ(::mkdir((repo_ / "vm").c_str(), 0755), 0);
		ASSERT_EQ(::mkdir((repo_ / "vm/100").c_str(), 0755), 0);
		ASSERT_EQ(::mkdir((repo_ / "vm/100/snap").c_str(), 0755), 0);
		test::writeFile(repo_ / "vm/100/snap/drive-scsi0.img", std::string(1024, '\0'));
		// A real qcow2 header (v3, 64 KiB clusters, no extensions): the
		// client checks that an archive's bytes agree with its name.
		std::string qcow2("QFI\xfb\0\0\0\3", 8);
		qcow2.resize(104, '\0');
		qcow2[23] = 16;  // cluster bits
		qcow2[103] = 104; // header length
		qcow2.resize(4096, '\0');
		test::writeFile(repo_ / "vm/100/snap/drive-scsi1.qcow2", qcow2);
		test::writeFile(repo_ / "vm/100/snap/index.json", "{}");

		guest_.dirs["/"] = {
			{.name = "disk0", .type = EntryType::Virtual},
			{.name = "disk1", .type = EntryType::Virtual},
			{.name = "lvm", .type = EntryType::Virtual},
		};
		guest_.dirs["/disk0/part/1/etc"] = {
			{.name = "hostname", .type = EntryType::File, .size = 6, .mode = 0100644, .mtime = 1700000000},
			{.name = "bad\xff\x1b[31mname", .type = EntryType::File, .size = 1, .mode = 0100600, .mtime = 0},
			{.name = "ssh", .type = EntryType::Directory, .size = 4096, .mode = 040755, .mtime = 1},
			{.name = "mtab", .type = EntryType::Symlink, .mode = 0120777, .linkTarget = "/proc/mounts"},
		};
		guest_.data["/disk0/part/1/etc/hostname"] = "guest\n";
		// Members relative to the directory, which is no member itself; its
		// metadata comes with the leading entry (docs/protocol.md).
		guest_.data["/disk0/part/1/etc/ssh"] = test::buildTar({
			{.name = "sshd_config", .content = "Port 22\n"},
			{.name = "moduli.d", .type = AE_IFDIR, .perm = 0700},
			{.name = "moduli.d/x", .content = "x", .perm = 04644},
		});
		guest_.objects["/disk0/part/1/etc/ssh"] = {.name = "ssh", .type = EntryType::Directory,
							   .mode = 0750, .mtime = 1600000000};
		guest_.data["/disk0/part/1/etc/hostname#tar"] =
			test::buildTar({{.name = "hostname", .content = "guest\n", .perm = 0640}});
	}
	void TearDown() override
	{
		run({"stop", "--all"});
		test::reapExited();
	}

	// The fake session streams data["<path>#tar"] when the CLI asks for a
	// tar of <path> into a directory; tests register both forms.
	// stdoutFd: where stdout goes (default: a file read back into `out`).
	Outcome run(std::vector<std::string> args, int stdoutFd = -1)
	{
		args.insert(args.begin(), "file-restore");
		std::vector<char *> argv;
		for (std::string &a : args)
			argv.push_back(a.data());
		argv.push_back(nullptr);
		const int savedOut = ::dup(1);
		const int savedErr = ::dup(2);
		const int outFd = ::open((scratch_ / "out").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
		const int errFd = ::open((scratch_ / "err").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
		::dup2(stdoutFd >= 0 ? stdoutFd : outFd, 1);
		::dup2(errFd, 2);
		TarAwareFactory factory(guest_);
		const int code = runCli(static_cast<int>(args.size()), argv.data(), factory);
		::dup2(savedOut, 1);
		::dup2(savedErr, 2);
		::close(savedOut);
		::close(savedErr);
		::close(outFd);
		::close(errFd);
		return {code, readFile(scratch_ / "out"), readFile(scratch_ / "err")};
	}

	// Serves "<path>#tar" for tar requests, "<path>" for raw ones.
	class TarAwareFactory final : public SessionFactory {
	public:
		explicit TarAwareFactory(test::FakeGuest &guest) : inner_(guest), guest_(guest) {}
		Result<std::unique_ptr<VmSession>> open(UniqueFd fd, std::string_view ticket,
							   std::chrono::milliseconds handshake,
							   std::chrono::milliseconds io) override
		{
			Result<std::unique_ptr<VmSession>> session =
				inner_.open(std::move(fd), ticket, handshake, io);
			if (!session)
				return session;
			return std::unique_ptr<VmSession>(new Session(std::move(*session), guest_));
		}

	private:
		class Session final : public VmSession {
		public:
			Session(std::unique_ptr<VmSession> inner, test::FakeGuest &guest)
				: inner_(std::move(inner)), guest_(guest)
			{
			}
			Result<GuestStatus> status(bool keep) override { return inner_->status(keep); }
			Status stop() override { return inner_->stop(); }
			Status list(std::string_view path, EntryCallback cb) override
			{
				return inner_->list(path, cb);
			}
			Result<std::uint64_t> unlock(std::string_view key, std::chrono::milliseconds timeout) override
			{
				return inner_->unlock(key, timeout);
			}
			std::string warning() const override { return inner_->warning(); }
			Status extract(std::string_view path, ExtractFormat format, bool zstd,
				       EntryCallback onStart, DataCallback cb) override
			{
				std::string key(path);
				if (format == ExtractFormat::Tar &&
				    guest_.data.count(key + "#tar") != 0)
					key += "#tar";
				if (format == ExtractFormat::Zip &&
				    guest_.data.count(key + "#zip") != 0)
					key += "#zip";
				if (format == ExtractFormat::Raw && guest_.dirs.count(key) != 0 &&
				    guest_.data.count(key) == 0)
					return Error::invalid(EISDIR, "guest", key,
							      "IsDirectory: is a directory").withKind(ErrorKind::Guest);
				return inner_->extract(key, format, zstd, onStart, cb);
			}
			Result<GuestEntry> stat(std::string_view path) override { return inner_->stat(path); }
			Result<std::uint64_t> read(std::string_view path, std::uint64_t offset, std::uint32_t length,
						   DataCallback cb) override
			{
				return inner_->read(path, offset, length, cb);
			}
			Status xattrs(std::string_view path, XattrCallback cb) override
			{
				return inner_->xattrs(path, cb);
			}

		private:
			std::unique_ptr<VmSession> inner_;
			test::FakeGuest &guest_;
		};
		test::FakeSessionFactory inner_;
		test::FakeGuest &guest_;
	};

	std::vector<std::string> snap() const { return {"--repository", repo_.path(), "vm/100/snap"}; }
	std::vector<std::string> cmd(std::vector<std::string> head, std::vector<std::string> tail) const
	{
		std::vector<std::string> s = snap();
		head.insert(head.end(), s.begin(), s.end());
		head.insert(head.end(), tail.begin(), tail.end());
		return head;
	}

	TempDir runtime_;
	TempDir scratch_;
	TempDir repo_;
	TempDir target_;
	test::FakeGuest guest_;
};

TEST_F(CliTest, ListsArchivesWithoutAVmAndTheVolumeTreesByTheirPaths)
{
	// The archives, without a VM; the guest's trees that no one archive
	// holds (a volume group spanning archives) by their paths.
	Outcome r = run(cmd({"list"}, {"/"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("drive-scsi0.img\n"), std::string::npos);
	EXPECT_NE(r.out.find("drive-scsi1.qcow2\n"), std::string::npos);
	EXPECT_EQ(r.out.find("disk0"), std::string::npos) << r.out; // the guest's own names stay inside
	EXPECT_EQ(r.out.find("index.json"), std::string::npos);
	EXPECT_FALSE(test::exists(scratch_ / "calls")); // no VM was started

	r = run(cmd({"--output-format", "json", "list"}, {}));
	ASSERT_EQ(r.code, 0);
	const json doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 2U);
	EXPECT_EQ(doc[0]["filepath"], base64Encode("/drive-scsi0.img"));
	EXPECT_EQ(doc[0]["type"], "v");
	EXPECT_EQ(doc[0]["leaf"], false);

	// "/lvm/..." goes to the guest as it is.
	guest_.dirs["/lvm/vgspan"] = {{.name = "wide", .type = EntryType::Virtual}};
	r = run(cmd({"list"}, {"/lvm/vgspan"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find(" wide\n"), std::string::npos) << r.out;
	EXPECT_TRUE(test::exists(scratch_ / "calls")); // a VM was started
}

TEST_F(CliTest, ReasonsAndWarningsFromTheGuest)
{
	guest_.dirs["/disk0/part"] = {
		{.name = "1", .type = EntryType::Virtual},
		{.name = "2", .type = EntryType::Virtual, .reason = "crypto_LUKS: locked: no key given"},
	};
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find(" 2  [crypto_LUKS: locked: no key given]\n"), std::string::npos) << r.out;
	r = run(cmd({"--output-format", "json", "list"}, {"/drive-scsi0.img/part"}));
	ASSERT_EQ(r.code, 0) << r.err;
	json doc = json::parse(r.out);
	EXPECT_FALSE(doc[0].contains("reason"));
	EXPECT_EQ(doc[1]["reason"], "crypto_LUKS: locked: no key given");

	// A warning: once on stderr, on every entry in JSON, for extracts too.
	const std::string warning = "journal not replayed: the newest changes may be missing";
	guest_.warnings["/disk0/part/1"] = warning;
	r = run(cmd({"--output-format", "json", "list"}, {"/drive-scsi0.img/part/1/etc"}));
	ASSERT_EQ(r.code, 0) << r.err;
	doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 4U);
	for (const json &entry : doc)
		EXPECT_EQ(entry["warning"], warning);
	EXPECT_EQ(r.err, "file-restore: warning: " + warning + "\n");
	r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "guest\n");
	EXPECT_EQ(r.err, "file-restore: warning: " + warning + "\n");
	// Elsewhere: nothing.
	guest_.warnings.clear();
	r = run(cmd({"list"}, {"/drive-scsi0.img/part/1/etc"}));
	EXPECT_EQ(r.err, "");
}

TEST_F(CliTest, LuksKeysComeFromAFileOrADescriptorNeverTheCommandLine)
{
	test::writeFile(scratch_ / "key", std::string("\x01key\nfile\0", 10));
	Outcome r = run(cmd({"list", "--luks-key-file", scratch_ / "key"}, {"/drive-scsi0.img/part/1/etc"}));
	ASSERT_EQ(r.code, 0) << r.err;
	// Every byte of a key file, newlines and NULs included.
	ASSERT_EQ(guest_.keys.size(), 1U);
	EXPECT_EQ(guest_.keys[0], std::string("\x01key\nfile\0", 10));
	// Not in the helper's argv, nor anywhere the client wrote.
	EXPECT_EQ(readFile(scratch_ / "calls").find("key\nfile"), std::string::npos);

	// A passphrase from a descriptor: up to the newline.
	int fds[2];
	ASSERT_EQ(::pipe(fds), 0);
	ASSERT_EQ(::write(fds[1], "pass phrase\nrest", 16), 16);
	::close(fds[1]);
	r = run(cmd({"extract", "--luks-passphrase-fd", std::to_string(fds[0])},
		    {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	::close(fds[0]);
	ASSERT_EQ(r.code, 0) << r.err;
	ASSERT_EQ(guest_.keys.size(), 2U);
	EXPECT_EQ(guest_.keys[1], "pass phrase");

	// What cannot be a key fails before any VM is asked.
	test::writeFile(scratch_ / "empty", "");
	test::writeFile(scratch_ / "huge", std::string(4097, 'k'));
	for (const std::vector<std::string> &args :
	     {cmd({"list", "--luks-key-file", scratch_ / "empty"}, {"/drive-scsi0.img"}),
	      cmd({"list", "--luks-key-file", scratch_ / "huge"}, {"/drive-scsi0.img"}),
	      cmd({"list", "--luks-key-file", scratch_ / "missing"}, {"/drive-scsi0.img"}),
	      cmd({"list", "--luks-passphrase-fd", "987"}, {"/drive-scsi0.img"}),
	      cmd({"list", "--luks-passphrase-fd", "1"}, {"/drive-scsi0.img"}),
	      cmd({"list", "--luks-key-file", scratch_ / "key", "--luks-passphrase-fd", "0"}, {"/drive-scsi0.img"})}) {
		const std::size_t before = guest_.keys.size();
		r = run(args);
		EXPECT_NE(r.code, 0) << args[1];
		EXPECT_NE(r.err.find("luks"), std::string::npos) << r.err;
		EXPECT_EQ(guest_.keys.size(), before);
	}
}

// The LUKS key reaches the VM before anything is asked about the path (the
// volume it opens may hold it): an extract to stdout, which asks what the
// path is (file or directory) first, and a mount, which looks at its
// target. Here partition 1 is locked until a key is given.
TEST_F(CliTest, TheLuksKeyReachesTheVmBeforeThePathIsLookedAt)
{
	guest_.lockedBelow = "/disk0/part/1";
	test::writeFile(scratch_ / "key", "the key");
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	EXPECT_NE(r.code, 0);
	EXPECT_NE(r.err.find("extract(/drive-scsi0.img/part/1/etc/hostname): crypto_LUKS: locked: no key given"),
		  std::string::npos)
		<< r.err;
	r = run(cmd({"extract", "--luks-key-file", scratch_ / "key"}, {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "guest\n");
	ASSERT_EQ(guest_.keys.size(), 1U);
	EXPECT_EQ(guest_.keys[0], "the key");
}

TEST_F(CliTest, MountHandsTheLuksKeyToTheVmFirst)
{
	if (::access("/dev/fuse", R_OK | W_OK) != 0)
		GTEST_SKIP() << "no usable /dev/fuse: mount stops before the VM (the e2e_volumes test covers it)";
	guest_.lockedBelow = "/disk0/part/1";
	test::writeFile(scratch_ / "key", "the key");
	const std::string mnt = scratch_ / "mnt";
	ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
	// Mounting a file: refused once the VM has said what it is, after the
	// key and before FUSE mounts anything.
	Outcome r = run(cmd({"mount", "--luks-key-file", scratch_ / "key"}, {"/drive-scsi0.img/part/1/etc/hostname", mnt}));
	EXPECT_EQ(r.code, 2) << r.err;
	EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
	ASSERT_EQ(guest_.keys.size(), 1U);
	EXPECT_EQ(guest_.keys[0], "the key");
}

// Issue 14: an archive that cannot be used (here a VMDK whose extents are
// other files) no longer fails the whole snapshot: `/` lists it without a
// VM, a path into it says why before any VM starts, and the other archives
// are served by a VM that never sees it.
TEST_F(CliTest, EveryArchiveStandsAlone)
{
	test::writeFile(repo_ / "vm/100/snap/drive-scsi2.vmdk",
			"# Disk DescriptorFile\nversion=1\nRW 2048 SPARSE \"drive-scsi2-s001.vmdk\"\n");
	Outcome r = run(cmd({"list"}, {"/"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("drive-scsi0.img\n"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("drive-scsi2.vmdk"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("named vmdk, but:"), std::string::npos) << r.out; // with its reason
	EXPECT_FALSE(test::exists(scratch_ / "calls")); // no VM was started
	r = run(cmd({"--output-format", "json", "list"}, {"/"}));
	ASSERT_EQ(r.code, 0) << r.err;
	const json doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 3U) << r.out;
	EXPECT_FALSE(doc[0].contains("reason")) << r.out;
	EXPECT_NE(doc[2]["reason"].get<std::string>().find("descriptor"), std::string::npos) << r.out;

	r = run(cmd({"list"}, {"/drive-scsi2.vmdk/part"}));
	EXPECT_EQ(r.code, kExitFailure);
	EXPECT_NE(r.err.find("archive(drive-scsi2.vmdk): cannot be used: named vmdk, but:"), std::string::npos)
		<< r.err;
	EXPECT_NE(r.err.find("descriptor"), std::string::npos) << r.err;
	EXPECT_FALSE(test::exists(scratch_ / "calls")); // refused before any VM

	r = run(cmd({"list"}, {"/drive-scsi1.qcow2/part/1/etc"}));
	ASSERT_NE(r.code, kExitFailure) << r.err;
	ASSERT_TRUE(test::exists(scratch_ / "calls"));
	const std::string calls = readFile(scratch_ / "calls");
	EXPECT_NE(calls.find("drive-scsi1.qcow2"), std::string::npos) << calls;
	EXPECT_EQ(calls.find("drive-scsi2.vmdk"), std::string::npos) << calls; // never handed to the helper
}

TEST_F(CliTest, ListsADirectoryInTextAndJson)
{
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part/1/etc"}));
	ASSERT_EQ(r.code, 0) << r.err;
	// Hostile names are escaped: no raw ESC or invalid UTF-8 reaches the tty.
	EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
	EXPECT_NE(r.out.find("bad\\xff\\u{001b}[31mname"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("mtab -> /proc/mounts"), std::string::npos);
	EXPECT_NE(r.out.find("f rw-r--r--            6 "), std::string::npos) << r.out;

	r = run(cmd({"list", "--output-format", "json-pretty"}, {"/drive-scsi0.img/part/1/etc/"}));
	ASSERT_EQ(r.code, 0) << r.err;
	const json doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 4U);
	EXPECT_EQ(doc[0]["filepath"], base64Encode("/drive-scsi0.img/part/1/etc/hostname"));
	EXPECT_EQ(doc[0]["text"], "hostname");
	EXPECT_EQ(doc[0]["type"], "f");
	EXPECT_EQ(doc[0]["leaf"], true);
	EXPECT_EQ(doc[0]["size"], 6);
	EXPECT_EQ(doc[0]["mtime"], 1700000000);
	// filepath keeps the exact bytes.
	EXPECT_EQ(*base64Decode(doc[1]["filepath"].get<std::string>()),
		  "/drive-scsi0.img/part/1/etc/bad\xff\x1b[31mname");
	EXPECT_EQ(doc[2]["type"], "d");
	EXPECT_EQ(doc[2]["leaf"], false);
	EXPECT_EQ(doc[3]["type"], "l");
	EXPECT_EQ(r.out.substr(0, 4), "[\n  "); // json-pretty indents
}

TEST_F(CliTest, JsonListingsStreamAndKeepTheirFormat)
{
	// 5,000 entries: several flushes of the streamed output.
	std::vector<GuestEntry> many;
	for (int i = 0; i < 5000; ++i)
		many.push_back({.name = "file-" + std::to_string(i), .type = EntryType::File,
				.size = static_cast<std::uint64_t>(i), .mode = 0100644, .mtime = 1700000000 + i});
	guest_.dirs["/disk0/part/1/many"] = many;
	guest_.dirs["/disk0/part/1/empty"] = {};
	for (const char *format : {"json", "json-pretty"}) {
		SCOPED_TRACE(format);
		Outcome r = run(cmd({"list", "--output-format", format}, {"/drive-scsi0.img/part/1/many"}));
		ASSERT_EQ(r.code, 0) << r.err;
		const json doc = json::parse(r.out);
		ASSERT_EQ(doc.size(), 5000U);
		EXPECT_EQ(doc[4999]["text"], "file-4999");
		EXPECT_EQ(doc[4999]["size"], 4999);
		// Byte for byte what dumping the whole array at once gives.
		EXPECT_EQ(r.out, doc.dump(std::string(format) == "json" ? -1 : 2) + "\n");
		r = run(cmd({"list", "--output-format", format}, {"/drive-scsi0.img/part/1/empty"}));
		ASSERT_EQ(r.code, 0) << r.err;
		EXPECT_EQ(r.out, "[]\n");
	}
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part/1/many"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5000);

	// A guest error after output began: the error goes to stderr, stdout
	// holds an unterminated array (no parser takes it as a whole
	// listing), the exit code is not 0.
	guest_.listFailAfter = 4000;
	r = run(cmd({"list", "--output-format", "json"}, {"/drive-scsi0.img/part/1/many"}));
	EXPECT_NE(r.code, 0);
	EXPECT_FALSE(json::accept(r.out));
	EXPECT_EQ(r.out.substr(0, 2), "[{");
	EXPECT_EQ(json::parse(r.err)["exit_code"], r.code) << r.err;
	EXPECT_NE(r.err.find("Input/output error"), std::string::npos) << r.err;
}

TEST_F(CliTest, Base64PathsAndImages)
{
	Outcome r = run(cmd({"list", "--base64"}, {base64Encode("/drive-scsi0.img/part/1/etc")}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("hostname"), std::string::npos);
	r = run(cmd({"list", "--base64"}, {"not base64!"}));
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("base64"), std::string::npos);

	r = run({"list", "--image", repo_ / "vm/100/snap/drive-scsi0.img", "/drive-scsi0.img/part/1/etc"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("hostname"), std::string::npos);
	EXPECT_NE(readFile(scratch_ / "calls").find("--name\x1fqemu_image-"), std::string::npos);
}

TEST_F(CliTest, EnvironmentNamesTheRepository)
{
	Outcome r = run({"list", "vm/100/snap", "/"});
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("FILE_RESTORE_REPOSITORY"), std::string::npos);
	::setenv("FILE_RESTORE_REPOSITORY", repo_.path().c_str(), 1);
	r = run({"list", "vm/100/snap", "/"});
	EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(CliTest, MissingThingsExitThreeWithClearErrors)
{
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part/1/nope"}));
	EXPECT_EQ(r.code, kExitNotFound);
	// Named by the user's path, not the guest's "/disk0/...".
	EXPECT_NE(r.err.find("list(/drive-scsi0.img/part/1/nope): NotFound"), std::string::npos) << r.err;
	EXPECT_EQ(r.err.find("/disk0"), std::string::npos) << r.err;
	r = run(cmd({"list"}, {"/nosuch.img/x"}));
	EXPECT_EQ(r.code, kExitNotFound);
	EXPECT_NE(r.err.find("nosuch.img"), std::string::npos);
	r = run({"list", "--repository", repo_.path(), "vm/100/other", "/"});
	EXPECT_EQ(r.code, kExitNotFound);
	// JSON mode: the error is JSON too, as proxmox-file-restore answers a
	// failed list: the object on stdout and exit status 0 (its callers
	// read the object); our exit code is in it.
	r = run(cmd({"--output-format", "json", "list"}, {"/drive-scsi0.img/part/1/nope"}));
	EXPECT_EQ(r.code, 0);
	const json doc = json::parse(r.out);
	EXPECT_EQ(doc["exit_code"], kExitNotFound);
	EXPECT_EQ(doc["code"], 404);
	EXPECT_NE(doc["message"].get<std::string>().find("No such file"), std::string::npos);
	EXPECT_EQ(doc["error"], doc["message"]);
	// Every error says what to do next.
	EXPECT_NE(doc["message"].get<std::string>().find("list the parent directory"), std::string::npos);
	// A usage error stays one (exit 2), in JSON too.
	r = run({"--output-format", "json", "list", "--bogus"});
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_EQ(json::parse(r.out)["exit_code"], kExitUsage);
	EXPECT_EQ(json::parse(r.out)["code"], 400);
}

TEST_F(CliTest, ExtractsAFileIntoADirectoryWithoutReplacing)
{
	const std::string target = target_ / "out/deeper";
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/hostname", target}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(readFile(target + "/hostname"), "guest\n");
	EXPECT_EQ(test::modeOf(target + "/hostname") & 07777, 0640U & ~0022U);
	r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/hostname", target}));
	EXPECT_EQ(r.code, kExitExists);
	EXPECT_NE(r.err.find("exists already"), std::string::npos);
	EXPECT_EQ(readFile(target + "/hostname"), "guest\n");
}

TEST_F(CliTest, ExtractsADirectoryTree)
{
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/ssh", target_.path()}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(readFile(target_ / "ssh/sshd_config"), "Port 22\n");
	EXPECT_EQ(test::modeOf(target_ / "ssh/moduli.d/x") & 07777, 0644U);
	// The directory itself gets the leading entry's metadata.
	EXPECT_EQ(test::modeOf(target_ / "ssh") & 07777, 0750U);
	struct stat st {};
	ASSERT_EQ(::stat((target_ / "ssh").c_str(), &st), 0);
	EXPECT_EQ(st.st_mtime, 1600000000);
	// Only the tree: no staging directory left.
	DIR *d = ::opendir(target_.path().c_str());
	std::vector<std::string> names;
	while (const dirent *e = ::readdir(d))
		if (e->d_name[0] != '.' || std::string_view(e->d_name).size() > 2)
			names.emplace_back(e->d_name);
	::closedir(d);
	EXPECT_EQ(names, std::vector<std::string>{"ssh"});
}

TEST_F(CliTest, TruncatedStreamLeavesNothing)
{
	guest_.data["/disk0/part/1/etc/big#tar"] =
		test::buildTar({{.name = "big", .content = std::string(200000, 'b')}});
	guest_.truncateAfter = 100000;
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/big", target_.path()}));
	EXPECT_EQ(r.code, kExitFailure);
	EXPECT_NE(r.err.find("trailer"), std::string::npos) << r.err;
	DIR *d = ::opendir(target_.path().c_str());
	int entries = 0;
	while (const dirent *e = ::readdir(d))
		entries += std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..";
	::closedir(d);
	EXPECT_EQ(entries, 0);
	EXPECT_EQ(::access((runtime_ / "file-restore").c_str(), F_OK), 0);
}

TEST_F(CliTest, InterruptStopsTheTransferAndRemovesPartialOutput)
{
	guest_.data["/disk0/part/1/etc/big#tar"] =
		test::buildTar({{.name = "big", .content = std::string(200000, 'b')}});
	guest_.signalAfterFirstChunk = SIGINT;
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/big", target_.path()}));
	EXPECT_EQ(r.code, kExitInterrupted) << r.err;
	EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;
	DIR *d = ::opendir(target_.path().c_str());
	int entries = 0;
	while (const dirent *e = ::readdir(d))
		entries += std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..";
	::closedir(d);
	EXPECT_EQ(entries, 0);
	// The handler reset itself after one signal; restore ours for the rest.
	::signal(SIGINT, SIG_DFL);
}

TEST_F(CliTest, ExtractsToStdout)
{
	Outcome r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "guest\n");
	r = run(cmd({"extract", "--format", "tar"}, {"/drive-scsi0.img/part/1/etc/ssh"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, guest_.data["/disk0/part/1/etc/ssh"]);
	// A directory to stdout: a zip, as proxmox-file-restore does.
	guest_.data["/disk0/part/1/etc#zip"] = "PK-the-zip";
	r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc", "-"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "PK-the-zip");
	// --format plain of a directory: what cannot be done, and how.
	r = run(cmd({"extract", "--format", "plain"}, {"/drive-scsi0.img/part/1/etc", "-"}));
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("--format zip|tar"), std::string::npos) << r.err;
	// pxar: said why not.
	r = run(cmd({"extract", "--format", "pxar"}, {"/drive-scsi0.img/part/1/etc", "-"}));
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("pxar"), std::string::npos) << r.err;
	// JSON errors of an extraction to stdout go to stderr, not into the data.
	r = run(cmd({"--output-format", "json", "extract"}, {"/drive-scsi0.img/part/1/etc/nope", "-"}));
	EXPECT_EQ(r.code, kExitNotFound);
	EXPECT_EQ(r.out, "");
	EXPECT_EQ(json::parse(r.err, nullptr, false)["exit_code"], kExitNotFound) << r.err;
	r = run(cmd({"extract", "--format", "zip"}, {"/drive-scsi0.img/part/1/etc/ssh", target_.path()}));
	EXPECT_EQ(r.code, kExitUsage);
	// --zstd goes with anything written to stdout (the guest compresses).
	r = run(cmd({"extract", "--zstd"}, {"/drive-scsi0.img/part/1/etc/hostname", "-"}));
	EXPECT_EQ(r.code, 0) << r.err;
	r = run(cmd({"extract", "--zstd"}, {"/drive-scsi0.img/part/1/etc/ssh", target_.path()}));
	EXPECT_EQ(r.code, kExitUsage);
}

TEST_F(CliTest, AReaderThatWentAwayEndsTheOutputQuietly)
{
	// `file-restore ... | head`: every output mode stops with exit 1 and
	// says nothing (the one place a closed pipe is handled).
	::signal(SIGPIPE, SIG_IGN); // as main() does
	int fds[2];
	ASSERT_EQ(::pipe(fds), 0);
	::close(fds[0]);
	guest_.data["/disk0/part/1/etc/big"] = std::string(200000, 'b');
	guest_.objects["/disk0/part/1/etc/big"] = {.name = "big", .type = EntryType::File, .size = 200000, .mode = 0644};
	for (const std::vector<std::string> &args :
	     {cmd({"list"}, {"/drive-scsi0.img/part/1/etc"}), cmd({"list"}, {"/"}),
	      cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/big", "-"}),
	      cmd({"extract", "--format", "tar"}, {"/drive-scsi0.img/part/1/etc/ssh"}), {"status"}}) {
		Outcome r = run(args, fds[1]);
		EXPECT_EQ(r.code, kExitFailure) << args[0];
		EXPECT_EQ(r.err, "") << args[0];
	}
	::close(fds[1]);
	::signal(SIGPIPE, SIG_DFL);
}

TEST_F(CliTest, EachOutputModeSaysWhatItCannotDo)
{
	// Raw to stdout: a directory needs an archive format or a directory.
	Outcome r = run(cmd({"extract", "--format", "plain"}, {"/drive-scsi0.img/part/1/etc", "-"}));
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("a directory needs --format zip|tar"), std::string::npos) << r.err;
	// Into a directory: a symlink only with --symlinks; nothing is left.
	guest_.data["/disk0/part/1/etc/mtab#tar"] = test::buildTar(
		{{.name = "mtab", .type = AE_IFLNK, .perm = 0777, .link = "/proc/mounts"}});
	guest_.objects["/disk0/part/1/etc/mtab"] = {.name = "mtab", .type = EntryType::Symlink, .mode = 0777};
	r = run(cmd({"extract"}, {"/drive-scsi0.img/part/1/etc/mtab", target_.path()}));
	EXPECT_EQ(r.code, kExitUsage) << r.err;
	EXPECT_NE(r.err.find("--symlinks"), std::string::npos) << r.err;
	EXPECT_EQ(::access((target_ / "mtab").c_str(), F_OK), -1);
	r = run(cmd({"extract", "--symlinks"}, {"/drive-scsi0.img/part/1/etc/mtab", target_.path()}));
	ASSERT_EQ(r.code, 0) << r.err;
	char link[64] = {};
	ASSERT_GT(::readlink((target_ / "mtab").c_str(), link, sizeof(link) - 1), 0);
	EXPECT_STREQ(link, "/proc/mounts");
}

TEST_F(CliTest, StatusAndStop)
{
	Outcome r = run({"status"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "no VMs running\n");
	ASSERT_EQ(run(cmd({"list"}, {"/drive-scsi0.img/part/1/etc"})).code, 0);
	r = run({"status", "--output-format", "json"});
	ASSERT_EQ(r.code, 0) << r.err;
	// proxmox-file-restore's shape: {"Qemu": {"ids": {ID: {...}}}}, the ID
	// the unescaped name, with pid, cid, uptime and timeout (ours adds).
	const json doc = json::parse(r.out);
	ASSERT_TRUE(doc["Qemu"]["ids"].is_object()) << r.out;
	ASSERT_EQ(doc["Qemu"]["ids"].size(), 1U);
	const std::string id = doc["Qemu"]["ids"].begin().key();
	const json vm = doc["Qemu"]["ids"].begin().value();
	const std::string name = vm["name"];
	EXPECT_EQ(name.substr(0, 6), "qemu_-");
	EXPECT_EQ(id, "qemu_" + repo_.path() + "/vm/100/snap");
	EXPECT_GT(vm["pid"].get<int>(), 1);
	EXPECT_TRUE(vm["cid"].is_null());
	EXPECT_EQ(vm["timeout"], 595);
	EXPECT_EQ(vm["uptime"], 5);
	EXPECT_EQ(vm["transport"], "serial");
	EXPECT_EQ(vm["state"], "running");
	EXPECT_EQ(vm["idle_left"], 595);
	r = run({"status", "--names"});
	EXPECT_EQ(r.out, name + "\n");
	r = run({"status"});
	EXPECT_NE(r.out.find(name + "\n  pid "), std::string::npos) << r.out;

	// Stopped by the unescaped ID, as proxmox-file-restore's stop takes it;
	// it says what happened.
	r = run({"stop", id});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, name + ": powered off\n");
	EXPECT_EQ(run({"status"}).out, "no VMs running\n");
	EXPECT_EQ(json::parse(run({"status", "--output-format", "json"}).out), json::parse("{\"Qemu\":{}}"));
	r = run({"stop", name});
	EXPECT_EQ(r.code, kExitNotFound);
	EXPECT_NE(r.err.find("file-restore status"), std::string::npos) << r.err;
	EXPECT_EQ(run({"stop"}).code, kExitUsage);

	// A VM whose QEMU is gone: "was not running", not "stopped".
	ASSERT_EQ(run(cmd({"list"}, {"/drive-scsi0.img/part/1/etc"})).code, 0);
	const json again = json::parse(run({"status", "--output-format", "json"}).out);
	const pid_t pid = again["Qemu"]["ids"].begin().value()["pid"];
	ASSERT_EQ(::kill(pid, SIGKILL), 0);
	for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) {
		test::reapExited();
		::usleep(20000);
	}
	r = run({"stop", "--output-format", "json", name});
	ASSERT_EQ(r.code, 0) << r.err;
	const json stopped = json::parse(r.out);
	ASSERT_EQ(stopped.size(), 1U);
	EXPECT_EQ(stopped[0]["name"], name);
	EXPECT_EQ(stopped[0]["result"], "not-running");
	EXPECT_EQ(stopped[0]["stopped"], false);
}

TEST_F(CliTest, HelperRefusalAndUsageErrors)
{
	::setenv("FAKE_HELPER_MODE", "denied", 1);
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part"}));
	EXPECT_EQ(r.code, kExitRefused);
	EXPECT_NE(r.err.find("user not allowed"), std::string::npos);
	// The cause once, with what to do, and no helper exit status in an
	// error with another exit status.
	EXPECT_NE(r.err.find("ask the administrator"), std::string::npos) << r.err;
	EXPECT_EQ(r.err.find("exit 3"), std::string::npos) << r.err;
	EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
	::setenv("FAKE_HELPER_MODE", "broken", 1);
	EXPECT_EQ(run(cmd({"list"}, {"/drive-scsi0.img/part"})).code, kExitVmFailed);
	EXPECT_EQ(run({"list"}).code, kExitUsage);
	EXPECT_EQ(run(cmd({"list", "--memory", "0x100"}, {"/drive-scsi0.img/part"})).code, kExitUsage);
	EXPECT_EQ(run(cmd({"list", "--transport", "tcp"}, {"/"})).code, kExitUsage);
	EXPECT_EQ(run(cmd({"list"}, {"/a/../b"})).code, kExitUsage);
	EXPECT_EQ(run(cmd({"extract"}, {"/"})).code, kExitUsage);
	EXPECT_EQ(run({"--version"}).code, 0);
}

TEST_F(CliTest, MemoryAndIdleTimeoutReachTheHelper)
{
	ASSERT_EQ(run(cmd({"list", "--memory", "192", "--idle-timeout", "30"},
			  {"/drive-scsi0.img/part/1/etc"}))
			  .code,
		  0);
	const std::string calls = readFile(scratch_ / "calls");
	EXPECT_NE(calls.find("\x1f--memory\x1f" "192\x1f"), std::string::npos);
	EXPECT_NE(calls.find("\x1f--timeout\x1f" "30\x1f"), std::string::npos);
	EXPECT_NE(calls.find("\x1f--image\x1fraw:" + repo_ / "vm/100/snap/drive-scsi0.img"), std::string::npos);
	EXPECT_NE(calls.find("\x1f--image\x1fqcow2:" + repo_ / "vm/100/snap/drive-scsi1.qcow2"),
		  std::string::npos);
}

TEST_F(CliTest, CallsAsTheProxmoxVeApiMakesThem)
{
	// PVE::PBSClient's file_restore_list: booleans as values, options after
	// the positionals, crypt mode none, the repository last.
	Outcome r = run({"list", "vm/100/snap", base64Encode("/drive-scsi0.img/part/1/etc"), "--base64", "1",
			 "--timeout", "25", "--crypt-mode=none", "--output-format=json", "--repository", repo_.path()});
	ASSERT_EQ(r.code, 0) << r.err;
	json doc = json::parse(r.out);
	ASSERT_TRUE(doc.is_array()) << r.out;
	EXPECT_EQ(doc.size(), 4U);
	// The root ("/", --base64 0): the archives, with their sizes.
	r = run({"list", "vm/100/snap", "/", "--base64", "0", "--crypt-mode=none", "--output-format=json",
		 "--repository", repo_.path()});
	ASSERT_EQ(r.code, 0) << r.err;
	doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 2U);
	EXPECT_EQ(doc[0]["text"], "drive-scsi0.img");
	EXPECT_EQ(doc[0]["type"], "v");
	EXPECT_EQ(doc[0]["leaf"], false);
	EXPECT_EQ(doc[0]["size"], 1024);
	EXPECT_FALSE(doc[0].contains("mtime")); // left out, never null
	// A failed list: {"message", "code"} on stdout, exit 0.
	r = run({"list", "vm/100/snap", base64Encode("/drive-scsi0.img/part/1/nope"), "--base64", "1",
		 "--output-format=json", "--repository", repo_.path()});
	EXPECT_EQ(r.code, 0);
	doc = json::parse(r.out);
	EXPECT_TRUE(doc.is_object());
	EXPECT_EQ(doc["code"], 404);
	EXPECT_TRUE(doc["message"].is_string());
	// file_restore_extract: a file to stdout, a directory as tar with
	// zstd ("--zstd 1").
	r = run({"extract", "vm/100/snap", base64Encode("/drive-scsi0.img/part/1/etc/hostname"), "-", "--base64",
		 "1", "--crypt-mode=none", "--repository", repo_.path()});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "guest\n");
	r = run({"extract", "vm/100/snap", base64Encode("/drive-scsi0.img/part/1/etc/ssh"), "-", "--base64", "1",
		 "--format", "tar", "--zstd", "1", "--crypt-mode=none", "--repository", repo_.path()});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, guest_.data["/disk0/part/1/etc/ssh"]);
	// A key (a PBS datastore's) with a directory repository: a clear error,
	// before any VM.
	const std::string callsBefore = readFile(scratch_ / "calls");
	const int keyFd = ::open("/dev/null", O_RDONLY);
	r = run({"list", "vm/100/snap", "/", "--crypt-mode=encrypt", "--keyfd=" + std::to_string(keyFd),
		 "--repository", repo_.path()});
	::close(keyFd);
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("not a PBS datastore"), std::string::npos) << r.err;
	r = run({"list", "--ns", "team/a", "--repository", repo_.path(), "vm/100/snap", "/"});
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("not a PBS datastore"), std::string::npos) << r.err;
	r = run({"list", "--ns", "../x", "--repository", repo_.path(), "vm/100/snap", "/"});
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("--ns"), std::string::npos) << r.err;
	// A remote repository (user@host:store) is said to be one.
	r = run({"list", "--repository", "root@pam@pbs.example:store1", "vm/100/snap", "/"});
	EXPECT_EQ(r.code, kExitUsage);
	EXPECT_NE(r.err.find("remote"), std::string::npos) << r.err;
	EXPECT_EQ(readFile(scratch_ / "calls"), callsBefore);
}

TEST_F(CliTest, ListingAFileShowsItsEntry)
{
	// As proxmox-file-restore: a list of a file answers its own entry.
	guest_.data.erase("/disk0/part/1/etc/hostname#tar");
	Outcome r = run(cmd({"list", "--output-format", "json"}, {"/drive-scsi0.img/part/1/etc/hostname"}));
	ASSERT_EQ(r.code, 0) << r.err << r.out;
	const json doc = json::parse(r.out);
	ASSERT_EQ(doc.size(), 1U) << r.out;
	EXPECT_EQ(doc[0]["filepath"], base64Encode("/drive-scsi0.img/part/1/etc/hostname"));
	EXPECT_EQ(doc[0]["text"], "hostname");
	EXPECT_EQ(doc[0]["size"], 6);
}

TEST_F(CliTest, AStillStartingVmAnswers503AndKeepsBooting)
{
	::setenv("FAKE_HELPER_MODE", "mute", 1);
	Outcome r = run(cmd({"list", "--output-format", "json", "--timeout", "2"}, {"/drive-scsi0.img/part/1/etc"}));
	EXPECT_EQ(r.code, 0) << r.err;
	json doc = json::parse(r.out);
	EXPECT_EQ(doc["code"], 503) << r.out;
	EXPECT_EQ(doc["exit_code"], kExitVmFailed);
	EXPECT_NE(doc["message"].get<std::string>().find("still starting"), std::string::npos) << r.out;
	// The VM was left booting: the next call waits for the same one.
	r = run(cmd({"list", "--timeout", "1"}, {"/drive-scsi0.img/part/1/etc"}));
	EXPECT_EQ(r.code, kExitVmFailed);
	EXPECT_NE(r.err.find("still starting"), std::string::npos) << r.err;
	const std::string calls = readFile(scratch_ / "calls");
	EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), 1);
}

TEST_F(CliTest, TheGuestMustSendTheTypeItAnnounced)
{
	// Issue 11: with --symlinks, a guest that announces a regular file but
	// sends a symlink (or the reverse) must not get a symlink created where
	// a file was asked for. Nothing is left behind.
	guest_.objects["/disk0/part/1/etc/passwd"] = {.name = "passwd", .type = EntryType::File, .size = 5,
						      .mode = 0644};
	guest_.data["/disk0/part/1/etc/passwd#tar"] =
		test::buildTar({{.name = "passwd", .type = AE_IFLNK, .perm = 0777, .link = "/etc/shadow"}});
	Outcome r = run(cmd({"extract", "--symlinks"}, {"/drive-scsi0.img/part/1/etc/passwd", target_.path()}));
	EXPECT_NE(r.code, 0);
	EXPECT_NE(r.err.find("announced a regular file but sent a symlink"), std::string::npos) << r.err;
	struct stat st {};
	EXPECT_NE(::lstat((target_ / "passwd").c_str(), &st), 0);

	guest_.objects["/disk0/part/1/etc/link"] = {.name = "link", .type = EntryType::Symlink, .mode = 0777};
	guest_.data["/disk0/part/1/etc/link#tar"] = test::buildTar({{.name = "link", .content = "bytes"}});
	r = run(cmd({"extract", "--symlinks"}, {"/drive-scsi0.img/part/1/etc/link", target_.path()}));
	EXPECT_NE(r.code, 0);
	EXPECT_NE(r.err.find("announced a symlink but sent a regular file"), std::string::npos) << r.err;
	EXPECT_NE(::lstat((target_ / "link").c_str(), &st), 0);
	DIR *d = ::opendir(target_.path().c_str());
	int entries = 0;
	while (const dirent *e = ::readdir(d))
		entries += std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..";
	::closedir(d);
	EXPECT_EQ(entries, 0);
}

TEST(ProgressLine, SaysBytesRateAndTimeLeft)
{
	Progress known("receiving", false);
	known.expect(100U << 20);
	const std::string line = known.line(25U << 20, 5.0);
	EXPECT_NE(line.find("25.0 of 100.0 MiB (25%)"), std::string::npos) << line;
	EXPECT_NE(line.find("5.0 MiB/s"), std::string::npos) << line;
	EXPECT_NE(line.find("15s left"), std::string::npos) << line;
	Progress unknown("extracting", false);
	const std::string open = unknown.line(10U << 20, 2.0);
	EXPECT_NE(open.find("10.0 MiB, 5.0 MiB/s"), std::string::npos) << open;
	EXPECT_EQ(open.find("left"), std::string::npos) << open;
}

TEST_F(CliTest, NoProgressOnAPipe)
{
	// stderr is a file here, never a terminal: even a transfer longer than
	// a second prints no progress line.
	const int saved = ::dup(2);
	const int file = ::open((scratch_ / "progress").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
	::dup2(file, 2);
	{
		Progress progress("receiving");
		progress.expect(10U << 20);
		progress.add(1 << 20);
		::usleep(1100 * 1000);
		progress.add(1 << 20);
		::usleep(600 * 1000);
		progress.add(1 << 20);
	}
	::dup2(saved, 2);
	::close(saved);
	::close(file);
	EXPECT_EQ(readFile(scratch_ / "progress"), "");
	// Nor "starting restore VM" (a note for people at a terminal).
	Outcome r = run(cmd({"list"}, {"/drive-scsi0.img/part/1/etc"}));
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.err.find("starting restore VM"), std::string::npos) << r.err;
}

// Issue 11: an ad-hoc image's format is its name's, or what the user says
// with --image-format; its bytes only have to agree.
TEST_F(CliTest, ImageFormatIsTheUsersNotTheBytes)
{
	const std::string qcow2 = readFile(repo_ / "vm/100/snap/drive-scsi1.qcow2");
	test::writeFile(scratch_ / "disk", qcow2); // no extension: raw unless told
	ASSERT_EQ(run({"list", "--image", scratch_ / "disk", "/disk/part/1/etc"}).code, 0);
	EXPECT_NE(readFile(scratch_ / "calls").find("\x1f--image\x1fraw:" + scratch_ / "disk"), std::string::npos);
	run({"stop", "--all"});
	ASSERT_EQ(run({"list", "--image-format", "qcow2", "--image", scratch_ / "disk", "/disk/part/1/etc"}).code, 0);
	EXPECT_NE(readFile(scratch_ / "calls").find("\x1f--image\x1fqcow2:" + scratch_ / "disk"), std::string::npos);
	const Outcome wrong = run({"list", "--image-format", "vdi", "--image", scratch_ / "disk", "/disk/part/1"});
	EXPECT_NE(wrong.code, 0);
	EXPECT_NE(wrong.err.find("named vdi, but: not a vdi image"), std::string::npos) << wrong.err;
	const Outcome bad = run({"list", "--image-format", "nbd", "--image", scratch_ / "disk", "/disk/part/1"});
	EXPECT_EQ(bad.code, kExitUsage);
	EXPECT_NE(bad.err.find("--image-format"), std::string::npos) << bad.err;
}

} // namespace
} // namespace fr::client
