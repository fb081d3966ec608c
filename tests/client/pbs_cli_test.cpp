// SPDX-License-Identifier: AGPL-3.0-or-later
// The CLI on a PBS datastore inside one process, without a VM: the
// snapshot listing, the archives, and every check that must fail before
// the helper is ever run (keys, passwords, snapshot arguments, options on a
// plain repository, an NBD server that cannot start). The fake helper
// ($FAKE_HELPER) records whether it was called.
#include "client/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/pbs/key_file.h"
#include "reaper.h"
#include "test_util.h"
#include "tests/pbs/datastore_writer.h"

namespace fr::client {
namespace {

using nlohmann::json;
using test::readFile;
using test::TempDir;

constexpr std::uint64_t kChunk = 64 << 10;

// No VM may be reached in these tests.
class NoSessions final : public SessionFactory {
public:
	Result<std::unique_ptr<VmSession>> open(UniqueFd, std::string_view,
						   std::chrono::milliseconds,
						   std::chrono::milliseconds) override
	{
		return Error::invalid(EHOSTDOWN, "test", "", "no VM expected");
	}
};

struct Outcome {
	int code;
	std::string out;
	std::string err;
};

class PbsCliTest : public ::testing::Test {
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
		::unsetenv("FILE_RESTORE_KEY_PASSWORD");
		store_ = scratch_ / "datastore";
		::setenv("FILE_RESTORE_REPOSITORY", store_.c_str(), 1);

		Result<pbs::test::DatastoreWriter> writer = pbs::test::DatastoreWriter::create(store_);
		ASSERT_TRUE(writer);
		const pbs::Bytes disk(3 * kChunk + 512, 7);
		Result<pbs::SnapshotId> plain = pbs::parseSnapshotId("vm/100/2026-11-25T10:00:00Z", "");
		Result<pbs::ManifestFile> file =
			writer->addImage(*plain, "drive-scsi0.img.fidx", disk, {kChunk, true, nullptr});
		ASSERT_TRUE(file);
		ASSERT_TRUE(writer->finishSnapshot(*plain, {*file}, nullptr));

		key_.fill(0x21);
		crypt_ = *pbs::CryptConfig::create(key_);
		Result<pbs::SnapshotId> enc = pbs::parseSnapshotId("vm/200/2026-11-25T10:00:00Z", "a/b");
		file = writer->addImage(*enc, "drive-virtio0.img.fidx", disk, {kChunk, true, &*crypt_});
		ASSERT_TRUE(file);
		ASSERT_TRUE(writer->finishSnapshot(*enc, {*file}, &*crypt_));
		test::writeFile(scratch_ / "key.json", *pbs::encodeKeyFile(key_, pbs::Kdf::Pbkdf2, "secret!"));
		pbs::Key other;
		other.fill(0x22);
		test::writeFile(scratch_ / "other.json", *pbs::encodeKeyFile(other, pbs::Kdf::None, ""));
		otherFingerprint_ = pbs::formatFingerprint(pbs::CryptConfig::create(other)->fingerprint());
	}
	void TearDown() override
	{
		::unsetenv("FILE_RESTORE_REPOSITORY");
		::unsetenv("FILE_RESTORE_NBDKIT_PLUGIN");
		test::reapExited();
	}

	Outcome run(std::vector<std::string> args)
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
		::dup2(outFd, 1);
		::dup2(errFd, 2);
		NoSessions sessions;
		const int code = runCli(static_cast<int>(args.size()), argv.data(), sessions);
		::dup2(savedOut, 1);
		::dup2(savedErr, 2);
		::close(savedOut);
		::close(savedErr);
		::close(outFd);
		::close(errFd);
		return {code, readFile(scratch_ / "out"), readFile(scratch_ / "err")};
	}
	bool helperRan() const { return test::exists(scratch_ / "calls"); }
	std::string fingerprint() const { return pbs::formatFingerprint(crypt_->fingerprint()); }

	TempDir runtime_;
	TempDir scratch_;
	std::string store_;
	pbs::Key key_{};
	std::optional<pbs::CryptConfig> crypt_;
	std::string otherFingerprint_;
};

TEST_F(PbsCliTest, ListsSnapshotsAndArchivesWithoutAVm)
{
	Outcome all = run({"list"});
	ASSERT_EQ(all.code, 0) << all.err;
	EXPECT_NE(all.out.find("vm/100/2026-11-25T10:00:00Z  0.0 GiB  not encrypted\n"),
		  std::string::npos)
		<< all.out;
	EXPECT_NE(all.out.find("ns/a/ns/b/vm/200/2026-11-25T10:00:00Z  0.0 GiB  encrypted\n"),
		  std::string::npos)
		<< all.out;

	Outcome inNs = run({"--output-format", "json", "list", "--ns", "a"});
	ASSERT_EQ(inNs.code, 0) << inNs.err;
	const json rows = json::parse(inNs.out);
	ASSERT_EQ(rows.size(), 1U) << inNs.out; // a/b is below a
	EXPECT_EQ(rows[0]["snapshot"], "ns/a/ns/b/vm/200/2026-11-25T10:00:00Z");
	EXPECT_EQ(rows[0]["group"], "ns/a/ns/b/vm/200");
	EXPECT_EQ(rows[0]["encrypted"], true);
	EXPECT_EQ(rows[0]["size"], 3 * kChunk + 512);

	Outcome root = run({"--output-format", "json", "list", "vm/100/2026-11-25T10:00:00Z", "/"});
	ASSERT_EQ(root.code, 0) << root.err;
	const json archives = json::parse(root.out);
	ASSERT_EQ(archives.size(), 1U);
	EXPECT_EQ(archives[0]["text"], "drive-scsi0.img.fidx");
	EXPECT_EQ(archives[0]["size"], 3 * kChunk + 512);
	EXPECT_FALSE(helperRan());
}

TEST_F(PbsCliTest, KeyProblemsStopBeforeTheHelper)
{
	const std::vector<std::string> target = {"--ns", "a/b", "vm/200/2026-11-25T10:00:00Z",
						 "/drive-virtio0.img/part/1"};
	auto with = [&](std::vector<std::string> head) {
		head.insert(head.begin(), "list");
		head.insert(head.end(), target.begin(), target.end());
		return head;
	};
	Outcome missing = run(with({}));
	EXPECT_EQ(missing.code, 1);
	EXPECT_NE(missing.err.find("is encrypted with key " + fingerprint()), std::string::npos)
		<< missing.err;

	Outcome wrong = run(with({"--keyfile", scratch_ / "other.json"}));
	EXPECT_EQ(wrong.code, 1);
	EXPECT_NE(wrong.err.find(fingerprint()), std::string::npos) << wrong.err;
	EXPECT_NE(wrong.err.find(otherFingerprint_), std::string::npos) << wrong.err;

	::setenv("FILE_RESTORE_KEY_PASSWORD", "not it", 1);
	Outcome badPassword = run(with({"--keyfile", scratch_ / "key.json"}));
	::unsetenv("FILE_RESTORE_KEY_PASSWORD");
	EXPECT_EQ(badPassword.code, 1);
	EXPECT_NE(badPassword.err.find("wrong password"), std::string::npos) << badPassword.err;

	Outcome garbage = run(with({"--keyfile", scratch_ / "out"})); // not a key file
	EXPECT_EQ(garbage.code, 1);
	EXPECT_NE(garbage.err.find("key file"), std::string::npos) << garbage.err;
	EXPECT_FALSE(helperRan());
}

TEST_F(PbsCliTest, PasswordFromAnFdAndKeyFromAnFdAreRead)
{
	// The right key and password get as far as starting the NBD server;
	// with a plugin that does not exist it cannot start, which is an
	// error before the helper runs.
	::setenv("FILE_RESTORE_NBDKIT_PLUGIN", (scratch_ / "no-such-plugin.so").c_str(), 1);
	const int keyFd = ::open((scratch_ / "key.json").c_str(), O_RDONLY);
	int pw[2];
	ASSERT_EQ(::pipe(pw), 0);
	ASSERT_EQ(::write(pw[1], "secret!\n", 8), 8);
	::close(pw[1]);
	Outcome r = run({"list", "--keyfd", std::to_string(keyFd), "--key-password-fd",
			 std::to_string(pw[0]), "ns/a/ns/b/vm/200/2026-11-25T10:00:00Z",
			 "/drive-virtio0.img/part/1"});
	::close(keyFd);
	::close(pw[0]);
	EXPECT_NE(r.code, 0);
	EXPECT_NE(r.err.find("did not start serving"), std::string::npos) << r.err;
	EXPECT_EQ(r.err.find("wrong"), std::string::npos) << r.err; // the key was right
	EXPECT_FALSE(helperRan());
}

TEST_F(PbsCliTest, BadArgumentsAreUsageErrors)
{
	EXPECT_EQ(run({"list", "vm/100", "/"}).code, 2);
	EXPECT_EQ(run({"list", "--ns", "a/../b", "vm/100/2026-11-25T10:00:00Z", "/"}).code, 2);
	EXPECT_EQ(run({"list", "--ns", "a", "ns/a/vm/100/2026-11-25T10:00:00Z", "/"}).code, 2);
	Outcome missing = run({"list", "vm/100/2026-11-26T10:00:00Z", "/"});
	EXPECT_EQ(missing.code, 3) << missing.err;
	// --ns and --keyfile make no sense on a plain repository.
	TempDir plain;
	ASSERT_EQ(::mkdir((plain / "vm").c_str(), 0755), 0);
	Outcome r = run({"list", "--repository", plain.path(), "--ns", "a", "vm/1/x", "/"});
	EXPECT_EQ(r.code, 2);
	EXPECT_NE(r.err.find("datastore"), std::string::npos) << r.err;
	EXPECT_EQ(run({"list", "--repository", plain.path()}).code, 2);
	EXPECT_FALSE(helperRan());
}

} // namespace
} // namespace fr::client
