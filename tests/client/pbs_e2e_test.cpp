// SPDX-License-Identifier: AGPL-3.0-or-later
// End to end on a Proxmox Backup Server datastore (suite 'vm', issue 13):
// the real client as the unprivileged test user, the real helper installed
// setuid root, the NBD server (Debian's nbdkit + our plugin) on a socket
// the helper hands to the real QEMU (TCG), the real guest. The datastore is
// written by tests/pbs/datastore_writer.h as PBS lays one out; what is
// listed and extracted is compared with what was put in. Three VM boots
// (one per snapshot, each shared by all its assertions; ~22 s in all under
// TCG on the 2-core CI machine): a plain snapshot, an encrypted one in a
// namespace (key files with kdf none, scrypt and pbkdf2; password from the
// environment and from an fd), one with a corrupt chunk.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/pbs/blob.h"
#include "client/pbs/image_reader.h"
#include "client/pbs/key_file.h"
#include "client/pbs/sandbox.h"
#include "reaper.h"
#include "shared/guest_abi.h"
#include "shared/landlock.h"
#include "tests/pbs/datastore_writer.h"
#include "tests/support/support.h"

namespace fr::client {
namespace {

using nlohmann::json;
namespace t = fr::test;

const std::string kClient = FR_CLIENT_BINARY;
const std::string kImageDir = FR_GUEST_IMAGE_DIR;
const std::string kPlugin = FR_PBS_PLUGIN;
const std::string kPlain = "vm/100/2026-11-25T10:00:00Z";
const std::string kEncrypted = "vm/101/2026-11-26T10:00:00Z"; // in namespace "team"
const std::string kCorrupt = "vm/102/2026-11-27T10:00:00Z";
const std::string kPassword = "correct horse battery";
constexpr std::uint64_t kChunk = 1 << 20;
constexpr std::size_t kRandomSize = 6 << 20;

std::string randomBytes(std::size_t size, unsigned seed)
{
	std::string out(size, '\0');
	std::mt19937_64 rng(seed);
	for (std::size_t i = 0; i + 8 <= size; i += 8) {
		const std::uint64_t v = rng();
		std::memcpy(out.data() + i, &v, 8);
	}
	return out;
}

struct World : t::ClientWorld {
	std::string datastore;
	std::string keyFile;       // scrypt, kPassword
	std::string pbkdf2KeyFile; // the same key, pbkdf2, kPassword
	std::string plainKeyFile;  // the same key, kdf none
	std::string wrongKeyFile;  // kdf none, another key
	std::string keyFingerprint;
	std::string wrongFingerprint;
	std::string hostname = "pbs-restore-test\n";
	std::string randomPlain;   // data/random.bin of kPlain and kEncrypted
	std::string randomCorrupt; // data/random.bin of kCorrupt
	std::string corruptDigest; // hex digest of the chunk made bad
};
World *gWorld = nullptr;
std::string gSkip;

struct Ran {
	int code = -1;
	std::string out;
	std::string err;
	bool timedOut = false;
};

Ran client(std::vector<std::string> args, std::vector<std::string> extraEnv = {},
	   std::vector<std::pair<int, int>> fds = {})
{
	args.insert(args.begin(), "file-restore");
	t::RunOptions options;
	options.path = kClient;
	options.argv = args;
	options.user = gWorld->user;
	options.env = {"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + gWorld->runtime,
		       "FILE_RESTORE_HELPER=" + gWorld->install->helperPath(),
		       "FILE_RESTORE_NBDKIT_PLUGIN=" + kPlugin,
		       "FILE_RESTORE_REPOSITORY=" + gWorld->datastore};
	options.env.insert(options.env.end(), extraEnv.begin(), extraEnv.end());
	options.fds = fds;
	options.timeoutSeconds = 240;
	t::RunResult r = t::run(options);
	fr::client::test::reapExited();
	return {r.exitCode, r.out, r.err, r.timedOut};
}

void mustRun(const std::vector<std::string> &argv, const std::string &stdinData = "")
{
	t::RunOptions options;
	options.path = argv[0];
	options.argv = argv;
	options.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
	options.stdinData = stdinData;
	t::RunResult r = t::run(options);
	if (r.exitCode != 0)
		throw std::runtime_error(argv[0] + " failed: " + r.err);
}

// GPT, one ext4 partition at 1 MiB holding etc/hostname and
// data/random.bin; 42 MiB + 64 KiB: the last 1 MiB chunk is short.
std::string buildDisk(const std::string &work, const std::string &random)
{
	t::removeTree(work);
	t::makeDir(work, 0755);
	t::makeDir(work + "/root", 0755);
	t::makeDir(work + "/root/etc", 0755);
	t::makeDir(work + "/root/data", 0755);
	t::writeFile(work + "/root/etc/hostname", gWorld->hostname);
	t::writeFile(work + "/root/data/random.bin", random);
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "root", "-d", work + "/root", work + "/p1.img",
		 "40M"});
	const std::string disk = work + "/disk.img";
	mustRun({"/usr/bin/truncate", "-s", std::to_string((42 << 20) + (64 << 10)), disk});
	mustRun({"/usr/sbin/sfdisk", "-q", disk}, "label: gpt\nstart=2048, size=81920, name=root\n");
	mustRun({"/usr/bin/dd", "if=" + work + "/p1.img", "of=" + disk, "bs=1M", "seek=1",
		 "conv=notrunc", "status=none"});
	return t::readFile(disk);
}

pbs::SnapshotId snapshotId(const std::string &text, const std::string &ns = "")
{
	fr::Result<pbs::SnapshotId> id = pbs::parseSnapshotId(text, ns);
	if (!id)
		throw std::runtime_error(id.error().message());
	return *id;
}

void buildDatastore(World &w)
{
	fr::Result<pbs::test::DatastoreWriter> writer =
		pbs::test::DatastoreWriter::create(w.datastore);
	if (!writer)
		throw std::runtime_error(writer.error().message());
	const auto fail = [](const fr::Error &e) { throw std::runtime_error(e.message()); };
	const pbs::test::ImageOptions zstd{kChunk, true, nullptr};

	w.randomPlain = randomBytes(kRandomSize, 11);
	const std::string disk = buildDisk(w.scratch + "/disk1", w.randomPlain);
	const pbs::ByteView diskBytes(reinterpret_cast<const std::uint8_t *>(disk.data()), disk.size());
	const pbs::SnapshotId plain = snapshotId(kPlain);
	auto image = writer->addImage(plain, "drive-scsi0.img.fidx", diskBytes, zstd);
	if (!image)
		fail(image.error());
	if (Status s = writer->finishSnapshot(plain, {*image}, nullptr); !s)
		fail(s.error());

	// The encrypted snapshot: a password-protected key (scrypt, as
	// `proxmox-backup-client key create` makes them).
	pbs::Key key{};
	key.fill(0x5c);
	fr::Result<pbs::CryptConfig> crypt = pbs::CryptConfig::create(key);
	fr::Result<std::string> keyText = pbs::encodeKeyFile(key, pbs::Kdf::Scrypt, kPassword, "the usual");
	if (!crypt || !keyText)
		throw std::runtime_error("key");
	w.keyFile = w.scratch + "/encryption-key.json";
	t::writeFile(w.keyFile, *keyText, 0644);
	w.keyFingerprint = pbs::formatFingerprint(crypt->fingerprint());
	fr::Result<std::string> pbkdf2Text = pbs::encodeKeyFile(key, pbs::Kdf::Pbkdf2, kPassword);
	fr::Result<std::string> plainText = pbs::encodeKeyFile(key, pbs::Kdf::None, "");
	if (!pbkdf2Text || !plainText)
		throw std::runtime_error("key");
	w.pbkdf2KeyFile = w.scratch + "/pbkdf2-key.json";
	t::writeFile(w.pbkdf2KeyFile, *pbkdf2Text, 0644);
	w.plainKeyFile = w.scratch + "/plain-key.json";
	t::writeFile(w.plainKeyFile, *plainText, 0644);
	pbs::Key other{};
	other.fill(0x5d);
	fr::Result<std::string> otherText = pbs::encodeKeyFile(other, pbs::Kdf::None, "");
	w.wrongKeyFile = w.scratch + "/wrong-key.json";
	t::writeFile(w.wrongKeyFile, *otherText, 0644);
	w.wrongFingerprint = pbs::formatFingerprint(pbs::CryptConfig::create(other)->fingerprint());
	const pbs::SnapshotId encrypted = snapshotId(kEncrypted, "team");
	image = writer->addImage(encrypted, "drive-scsi0.img.fidx", diskBytes,
				 {kChunk, true, &*crypt});
	if (!image)
		fail(image.error());
	if (Status s = writer->finishSnapshot(encrypted, {*image}, &*crypt); !s)
		fail(s.error());

	// The corrupt one: its own data, and one chunk that lies wholly inside
	// data/random.bin damaged (a flipped byte: the CRC catches it).
	w.randomCorrupt = randomBytes(kRandomSize, 12);
	const std::string disk3 = buildDisk(w.scratch + "/disk3", w.randomCorrupt);
	const std::size_t at = disk3.find(w.randomCorrupt.substr(0, 4096));
	if (at == std::string::npos)
		throw std::runtime_error("random.bin not found in the disk");
	const std::size_t chunk = (at + kChunk - 1) / kChunk;
	if ((chunk + 1) * kChunk > at + kRandomSize ||
	    disk3.compare(chunk * kChunk, kChunk, w.randomCorrupt, chunk * kChunk - at, kChunk) != 0)
		throw std::runtime_error("random.bin is not contiguous on the disk");
	const pbs::SnapshotId corrupt = snapshotId(kCorrupt);
	image = writer->addImage(corrupt, "drive-scsi0.img.fidx",
				 pbs::ByteView(reinterpret_cast<const std::uint8_t *>(disk3.data()),
					       disk3.size()),
				 zstd);
	if (!image)
		fail(image.error());
	if (Status s = writer->finishSnapshot(corrupt, {*image}, nullptr); !s)
		fail(s.error());
	fr::Result<std::vector<pbs::Digest>> digests =
		writer->indexDigests(corrupt, "drive-scsi0.img.fidx");
	if (!digests)
		fail(digests.error());
	if (Status s = writer->flipPayloadByte((*digests)[chunk]); !s)
		fail(s.error());
	w.corruptDigest = pbs::hex((*digests)[chunk]);
}

// QEMUs of this test (console log in our runtime directory).
int ourQemuCount()
{
	int count = 0;
	DIR *proc = ::opendir("/proc");
	const std::string marker = std::string("guest=") + abi::kQemuNamePrefix;
	while (const dirent *e = ::readdir(proc)) {
		const int pid = std::atoi(e->d_name);
		if (pid <= 1)
			continue;
		const std::string cmdline = t::readFile("/proc/" + std::to_string(pid) + "/cmdline");
		if (cmdline.find(marker) == std::string::npos || cmdline.find(gWorld->runtime) == std::string::npos)
			continue;
		++count;
	}
	::closedir(proc);
	return count;
}

class PbsEndToEnd : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		fr::client::test::becomeSubreaper();
		gSkip = t::vmSkipReason(kImageDir, FR_QEMU_BINARY);
		if (!gSkip.empty())
			return;
		if (::access(FR_NBDKIT_BINARY, X_OK) != 0) {
			gSkip = "no nbdkit at " FR_NBDKIT_BINARY " (Debian: nbdkit)";
			return;
		}
		if (landlock::abi() <= 0) {
			gSkip = "the kernel has no Landlock: the datastore reader refuses to run";
			return;
		}
		gWorld = new World;
		World &w = *gWorld;
		t::setUpClientWorld(w, kImageDir, "pbs-e2e");
		w.datastore = w.scratch + "/datastore";
		buildDatastore(w);
	}
	static void TearDownTestSuite()
	{
		if (gWorld == nullptr)
			return;
		client({"stop", "--all"});
		::usleep(300000);
		fr::client::test::reapExited();
		t::removeTree(gWorld->runtime);
		delete gWorld;
		gWorld = nullptr;
	}
	void SetUp() override
	{
		if (!gSkip.empty())
			GTEST_SKIP() << gSkip;
	}
};

TEST_F(PbsEndToEnd, ListsSnapshotsAndArchivesWithoutAVm)
{
	Ran snapshots = client({"list", "--output-format", "json"});
	ASSERT_EQ(snapshots.code, 0) << snapshots.err;
	const json all = json::parse(snapshots.out, nullptr, false);
	ASSERT_TRUE(all.is_array() && all.size() == 3) << snapshots.out;
	std::map<std::string, json> bySnapshot;
	for (const json &row : all)
		bySnapshot[row["snapshot"].get<std::string>()] = row;
	ASSERT_TRUE(bySnapshot.count(kPlain) && bySnapshot.count("ns/team/" + kEncrypted) &&
		    bySnapshot.count(kCorrupt))
		<< snapshots.out;
	EXPECT_EQ(bySnapshot[kPlain]["encrypted"], false);
	EXPECT_EQ(bySnapshot["ns/team/" + kEncrypted]["encrypted"], true);
	EXPECT_EQ(bySnapshot[kPlain]["size"], (42 << 20) + (64 << 10));

	Ran inNs = client({"list", "--ns", "team"});
	ASSERT_EQ(inNs.code, 0) << inNs.err;
	EXPECT_NE(inNs.out.find(kEncrypted), std::string::npos) << inNs.out;
	EXPECT_EQ(inNs.out.find(kPlain), std::string::npos) << inNs.out;

	Ran root = client({"list", "--output-format", "json", kPlain, "/"});
	ASSERT_EQ(root.code, 0) << root.err;
	const json archives = json::parse(root.out, nullptr, false);
	ASSERT_EQ(archives.size(), 1U) << root.out;
	EXPECT_EQ(archives[0]["text"], "drive-scsi0.img.fidx");
	EXPECT_EQ(archives[0]["size"], (42 << 20) + (64 << 10));
	// The human listing: the archive with its size.
	Ran human = client({"list", kPlain, "/"});
	ASSERT_EQ(human.code, 0) << human.err;
	EXPECT_NE(human.out.find(std::to_string((42 << 20) + (64 << 10))), std::string::npos) << human.out;
	EXPECT_NE(human.out.find("drive-scsi0.img.fidx"), std::string::npos) << human.out;
	// An unknown snapshot: "not found", before any VM.
	Ran missing = client({"list", "vm/999/2026-11-25T10:00:00Z", "/"});
	EXPECT_EQ(missing.code, 3) << missing.err; // not found
	EXPECT_NE(missing.err.find("vm/999"), std::string::npos) << missing.err;
	EXPECT_EQ(ourQemuCount(), 0);
}

TEST_F(PbsEndToEnd, MissingOrWrongKeyFailsBeforeAnyVmStarts)
{
	const std::string path = "/drive-scsi0.img/part/1/etc";
	Ran noKey = client({"list", "--ns", "team", kEncrypted, path});
	EXPECT_NE(noKey.code, 0);
	EXPECT_NE(noKey.err.find(gWorld->keyFingerprint), std::string::npos) << noKey.err;

	Ran wrongKey = client({"list", "--ns", "team", "--keyfile", gWorld->wrongKeyFile, kEncrypted, path});
	EXPECT_NE(wrongKey.code, 0);
	EXPECT_NE(wrongKey.err.find(gWorld->keyFingerprint), std::string::npos) << wrongKey.err;
	EXPECT_NE(wrongKey.err.find(gWorld->wrongFingerprint), std::string::npos) << wrongKey.err;

	Ran wrongPassword = client({"list", "--ns", "team", "--keyfile", gWorld->keyFile, kEncrypted, path},
				   {"FILE_RESTORE_KEY_PASSWORD=not the password"});
	EXPECT_NE(wrongPassword.code, 0);
	EXPECT_NE(wrongPassword.err.find("wrong password (hint: the usual)"), std::string::npos)
		<< wrongPassword.err;

	// No terminal, no password given: says how to give one.
	Ran noPassword = client({"list", "--ns", "team", "--keyfile", gWorld->keyFile, kEncrypted, path});
	EXPECT_NE(noPassword.code, 0);
	EXPECT_NE(noPassword.err.find("FILE_RESTORE_KEY_PASSWORD"), std::string::npos) << noPassword.err;
	EXPECT_EQ(ourQemuCount(), 0);
}

TEST_F(PbsEndToEnd, ListsAndExtractsFromAPlainDatastore)
{
	// "drive-scsi0.img" stands for "drive-scsi0.img.fidx".
	Ran etc = client({"list", kPlain, "/drive-scsi0.img/part/1/etc"});
	ASSERT_EQ(etc.code, 0) << etc.err;
	EXPECT_NE(etc.out.find("hostname"), std::string::npos) << etc.out;
	Ran hostname = client({"extract", kPlain, "/drive-scsi0.img.fidx/part/1/etc/hostname", "-"});
	ASSERT_EQ(hostname.code, 0) << hostname.err;
	EXPECT_EQ(hostname.out, gWorld->hostname);
	Ran random = client({"extract", kPlain, "/drive-scsi0.img/part/1/data/random.bin", "-"});
	ASSERT_EQ(random.code, 0) << random.err;
	EXPECT_TRUE(random.out == gWorld->randomPlain) << random.out.size() << " bytes";
	// Into a directory, as `extract SNAPSHOT PATH ./out` does.
	const std::string out = gWorld->scratch + "/out-plain";
	t::makeDir(out, 0700, gWorld->user.uid, gWorld->user.gid);
	Ran toDir = client({"extract", kPlain, "/drive-scsi0.img/part/1/etc", out});
	ASSERT_EQ(toDir.code, 0) << toDir.err;
	EXPECT_EQ(t::readFile(out + "/etc/hostname"), gWorld->hostname);

	Ran human = client({"status"});
	ASSERT_EQ(human.code, 0) << human.err;
	EXPECT_NE(human.out.find("datastore " + gWorld->datastore + ", snapshot " + kPlain),
		  std::string::npos)
		<< human.out;
	Ran status = client({"status", "--output-format", "json"});
	ASSERT_EQ(status.code, 0) << status.err;
	// proxmox-file-restore's shape: {"Qemu": {"ids": {ID: VM, ...}}}.
	const json doc = json::parse(status.out, nullptr, false);
	ASSERT_TRUE(doc.contains("Qemu")) << status.out;
	const json vms = doc["Qemu"].value("ids", json::object());
	bool found = false;
	for (const auto &[id, vm] : vms.items())
		if (vm.value("snapshot", "") == kPlain) {
			found = true;
			EXPECT_EQ(vm["datastore"], gWorld->datastore);
			EXPECT_EQ(vm["archives"][0], "drive-scsi0.img.fidx");
		}
	EXPECT_TRUE(found) << status.out;
}

TEST_F(PbsEndToEnd, ExtractsFromAnEncryptedDatastoreInANamespace)
{
	// scrypt with the password from the environment for the first call
	// (which starts the VM); kdf none; pbkdf2 into a directory; then the
	// scrypt key and its password on fds.
	Ran list = client({"list", "--ns", "team", "--keyfile", gWorld->keyFile, kEncrypted,
			   "/drive-scsi0.img/part/1/data"},
			  {"FILE_RESTORE_KEY_PASSWORD=" + kPassword});
	ASSERT_EQ(list.code, 0) << list.err;
	EXPECT_NE(list.out.find("random.bin"), std::string::npos) << list.out;
	Ran etc = client({"list", "--ns", "team", "--keyfile", gWorld->plainKeyFile, kEncrypted,
			  "/drive-scsi0.img.fidx/part/1/etc"});
	ASSERT_EQ(etc.code, 0) << etc.err;
	EXPECT_NE(etc.out.find("hostname"), std::string::npos) << etc.out;
	const std::string out = gWorld->scratch + "/out-encrypted";
	t::makeDir(out, 0700, gWorld->user.uid, gWorld->user.gid);
	Ran hostname = client({"extract", "--ns", "team", "--keyfile", gWorld->pbkdf2KeyFile, kEncrypted,
			       "/drive-scsi0.img.fidx/part/1/etc/hostname", out},
			      {"FILE_RESTORE_KEY_PASSWORD=" + kPassword});
	ASSERT_EQ(hostname.code, 0) << hostname.err;
	EXPECT_EQ(t::readFile(out + "/hostname"), gWorld->hostname);

	const int keyFd = ::open(gWorld->keyFile.c_str(), O_RDONLY | O_CLOEXEC);
	const auto [pwRead, pwWrite] = t::makePipe();
	ASSERT_EQ(::write(pwWrite, (kPassword + "\n").data(), kPassword.size() + 1),
		  static_cast<ssize_t>(kPassword.size() + 1));
	::close(pwWrite);
	Ran random = client({"extract", "--keyfd", "3", "--key-password-fd", "4",
			     "ns/team/" + kEncrypted, "/drive-scsi0.img/part/1/data/random.bin", "-"},
			    {}, {{3, keyFd}, {4, pwRead}});
	::close(keyFd);
	::close(pwRead);
	ASSERT_EQ(random.code, 0) << random.err;
	EXPECT_TRUE(random.out == gWorld->randomPlain) << random.out.size() << " bytes";
}

TEST_F(PbsEndToEnd, CorruptChunkIsAnIoErrorNamingTheChunk)
{
	Ran etc = client({"list", kCorrupt, "/drive-scsi0.img/part/1/etc"});
	ASSERT_EQ(etc.code, 0) << etc.err;
	const auto start = std::chrono::steady_clock::now();
	Ran random = client({"extract", kCorrupt, "/drive-scsi0.img/part/1/data/random.bin", "-"});
	EXPECT_FALSE(random.timedOut);
	EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(120));
	EXPECT_EQ(random.code, 1) << random.err;
	EXPECT_NE(random.err.find(gWorld->corruptDigest), std::string::npos) << random.err;
	EXPECT_NE(random.err.find("CRC"), std::string::npos) << random.err;
	EXPECT_NE(random.err.find("I/O error"), std::string::npos) << random.err;
	// The rest of the disk still reads: the VM and its server carry on.
	Ran hostname = client({"extract", kCorrupt, "/drive-scsi0.img/part/1/etc/hostname", "-"});
	ASSERT_EQ(hostname.code, 0) << hostname.err;
	EXPECT_EQ(hostname.out, gWorld->hostname);
}

} // namespace
} // namespace fr::client
