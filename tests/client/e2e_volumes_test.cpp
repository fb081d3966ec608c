// SPDX-License-Identifier: AGPL-3.0-or-later
// The volume layers end to end (suite 'vm', issue 14): the real client, run
// as the unprivileged test user, through the real helper installed setuid
// root (tests/support), the real QEMU under TCG and the real guest image,
// on the disks the volume suite builds (tests/guest/volume-disks.sh, cached
// in $FR_TEST_DISK_CACHE, default /var/tmp/file-restore-test-disks). The
// disks are hard-linked (copied when the cache is on another filesystem or
// not readable by others) into one snapshot directory of a repository, each
// an archive `<name>.img`; one VM serves them all. Each layout is listed
// and a file extracted byte for byte (`seq 1 20000` and the hostname texts
// that tests/guest/volume-disks-guest.sh wrote): LVM LVs, a thin LV and
// its snapshot, a VG spanning two archives (/lvm/...), md raid1 and a
// degraded raid5 (/md/...), LUKS2 and LUKS1 locked (a reason, no "I/O
// error"), with a wrong --luks-key-file (refused, saying so, also by
// `mount`) and with the right one (the first call an extract to stdout; a
// FUSE mount of an opened volume), LVM on LUKS and LUKS on LVM, NTFS with non-ASCII names, btrfs subvolumes and a
// snapshot, crash-consistent ext4/xfs/btrfs with their newest changes,
// exfat, udf, a hybrid ISO under both paths; the hostile disks (damaged LVM
// metadata, an md superblock claiming 1000 members, absurd LUKS key
// derivation costs, an NTFS ntfs-3g refuses) listed with a JSON `reason`
// while the others still serve. The guest-side logic of the same layouts
// is tested without the client by tests/guest/vm_volumes_test.cpp.
//
// At the end the VM is stopped, no QEMU of this test is left, and the
// cached disks were neither written nor joined by anything.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/encoding.h"
#include "client/process.h"
#include "reaper.h"
#include "shared/guest_abi.h"
#include "tests/support/support.h"

namespace fr::client {
namespace {

using nlohmann::json;
namespace t = fr::test;
using Names = std::set<std::string>;

const std::string kClient = FR_CLIENT_BINARY;
const std::string kImageDir = FR_GUEST_IMAGE_DIR;
const std::string kVolumeDisks = FR_VOLUME_DISKS;
const std::string kSnapshot = "vm/140/2026-11-30T08:00:00Z";
const std::string kPassphrase = "test-passphrase"; // volume-disks-guest.sh's key, no newline

// The cached disks this test serves (md-c, raid5's third member, is left
// out: the array is degraded). Each is the archive "<name>.img".
const std::vector<std::string> kDisks = {"lvm",        "span-a",    "span-b",   "md-a",     "md-b",
					 "luks",       "ntfs",      "btrfs",    "ext4-dirty", "xfs-dirty",
					 "btrfs-log",  "lvm-bad",   "md-1000",  "luks-kdf", "ntfs-bad",
					 "exfat",      "udf",       "hybrid"};

std::string archive(const std::string &disk)
{
	return "/" + disk + ".img";
}

std::string numbers()
{
	std::string out;
	for (int i = 1; i <= 20000; ++i)
		out += std::to_string(i) + "\n";
	return out;
}

// What the cache holds before the test: its entries, and each disk's
// size and modification time (a write through QEMU would change them).
struct CacheState {
	std::set<std::string> entries;
	std::map<std::string, std::pair<off_t, timespec>> disks;
};

struct World : t::ClientWorld { // targets: also for the key files
	std::string cacheDir;
	CacheState cache;
	std::string keyFile;
	std::string wrongKeyFile;
};
World *gWorld = nullptr;
std::string gSkip;
std::string gFailure;

CacheState cacheState(const std::string &dir)
{
	CacheState state;
	DIR *d = ::opendir(dir.c_str());
	if (d == nullptr)
		return state;
	while (const dirent *e = ::readdir(d))
		if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
			state.entries.insert(e->d_name);
	::closedir(d);
	for (const std::string &disk : kDisks) {
		struct stat st {};
		if (::stat((dir + "/" + disk + ".img").c_str(), &st) == 0)
			state.disks[disk] = {st.st_size, st.st_mtim};
	}
	return state;
}

struct Ran {
	int code = -1;
	std::string out;
	std::string err;
};

Ran client(std::vector<std::string> args)
{
	args.insert(args.begin(), "file-restore");
	t::RunOptions options;
	options.path = kClient;
	options.argv = args;
	options.user = gWorld->user;
	options.env = {"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + gWorld->runtime,
		       "FILE_RESTORE_HELPER=" + gWorld->install->helperPath(),
		       "FILE_RESTORE_REPOSITORY=" + gWorld->repo, "HOME=" + gWorld->targets};
	options.timeoutSeconds = 600;
	t::RunResult r = t::run(options);
	fr::client::test::reapExited();
	return {r.exitCode, r.out, r.err};
}

// A shell script as the user, with the client's environment ($CLIENT: the
// client binary).
Ran shellAsUser(const std::string &script)
{
	t::RunOptions options;
	options.path = "/bin/sh";
	options.argv = {"sh", "-c", script};
	options.user = gWorld->user;
	options.env = {"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + gWorld->runtime,
		       "FILE_RESTORE_HELPER=" + gWorld->install->helperPath(),
		       "FILE_RESTORE_REPOSITORY=" + gWorld->repo, "HOME=" + gWorld->targets, "CLIENT=" + kClient};
	options.timeoutSeconds = 600;
	t::RunResult r = t::run(options);
	fr::client::test::reapExited();
	return {r.exitCode, r.out, r.err};
}

Ran runAs(const std::vector<std::string> &argv)
{
	t::RunOptions options;
	options.path = argv[0];
	options.argv = argv;
	options.user = gWorld->user;
	options.env = {"PATH=/usr/bin:/bin"};
	t::RunResult r = t::run(options);
	return {r.exitCode, r.out, r.err};
}

// QEMUs of this test (their console log is in our runtime directory).
std::vector<pid_t> ourQemus()
{
	std::vector<pid_t> pids;
	DIR *proc = ::opendir("/proc");
	const std::string marker = std::string("guest=") + abi::kQemuNamePrefix;
	while (const dirent *e = ::readdir(proc)) {
		const int pid = std::atoi(e->d_name);
		if (pid <= 1)
			continue;
		const std::string cmdline = t::readFile("/proc/" + std::to_string(pid) + "/cmdline");
		if (cmdline.find(marker) == std::string::npos || cmdline.compare(0, 1, "-") == 0)
			continue;
		// Ours: its console log (stdout) is in our runtime directory.
		if (fdTarget(pid, 1).rfind(gWorld->runtime + "/", 0) != 0)
			continue;
		pids.push_back(pid);
	}
	::closedir(proc);
	return pids;
}

int ourQemuCount()
{
	return static_cast<int>(ourQemus().size());
}

// Runs tests/guest/volume-disks.sh (it returns at once when the disks are
// cached); "" and the directory, or the reason to skip (exit 77) or fail.
std::string buildDisks(std::string &dir)
{
	const char *cache = std::getenv("FR_TEST_DISK_CACHE");
	const std::string cacheRoot = cache != nullptr && *cache != '\0' ? cache : "/var/tmp/file-restore-test-disks";
	t::RunOptions options;
	options.path = "/bin/bash";
	options.argv = {"bash", kVolumeDisks, kImageDir, cacheRoot};
	options.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
	options.timeoutSeconds = 1500;
	t::RunResult r = t::run(options);
	if (r.exitCode == 77) {
		gSkip = "test disks not built: " + r.err;
		return gSkip;
	}
	if (r.exitCode != 0) {
		gFailure = "tests/guest/volume-disks.sh failed (exit " + std::to_string(r.exitCode) + "):\n" + r.err;
		return gFailure;
	}
	dir = r.out;
	while (!dir.empty() && dir.back() == '\n')
		dir.pop_back();
	return {};
}

// Puts the cached disks into the snapshot: hard links (the test only reads
// them; the cache is root's and never written), or sparse copies where a
// link cannot be made or the cached file is not readable by others (the
// copy is made so; the cache is left as it is).
void fillSnapshot(World &w)
{
	t::makeDir(w.repo + "/vm", 0755);
	t::makeDir(w.repo + "/vm/140", 0755);
	const std::string snapDir = w.repo + "/" + kSnapshot;
	t::makeDir(snapDir, 0755);
	for (const std::string &disk : kDisks) {
		const std::string from = w.cacheDir + "/" + disk + ".img";
		const std::string to = snapDir + "/" + disk + ".img";
		struct stat st {};
		if (::stat(from.c_str(), &st) != 0)
			throw std::runtime_error("missing test disk " + from);
		if ((st.st_mode & S_IROTH) != 0 && ::link(from.c_str(), to.c_str()) == 0)
			continue;
		if (errno != EXDEV && errno != EPERM && (st.st_mode & S_IROTH) != 0)
			throw std::runtime_error("link " + from + ": " + std::strerror(errno));
		t::RunResult r = t::runCommand({"/bin/cp", "--sparse=always", from, to});
		if (r.exitCode != 0 || ::chmod(to.c_str(), 0644) != 0)
			throw std::runtime_error("cp " + from + ": " + r.err);
	}
	t::writeFile(snapDir + "/index.json", "{}\n");
}

class VolumesEndToEnd : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		fr::client::test::becomeSubreaper();
		gSkip = t::vmSkipReason(kImageDir, FR_QEMU_BINARY);
		if (!gSkip.empty())
			return;
		std::string cacheDir;
		if (!buildDisks(cacheDir).empty())
			return;
		gWorld = new World;
		World &w = *gWorld;
		w.cacheDir = cacheDir;
		w.cache = cacheState(cacheDir);
		t::setUpClientWorld(w, kImageDir, "vol-e2e");
		try {
			fillSnapshot(w);
		} catch (const std::exception &e) {
			gFailure = e.what();
			return;
		}
		// The key files are the user's (the client reads them as the user):
		// the whole file is the key.
		w.keyFile = w.targets + "/luks.key";
		t::writeFile(w.keyFile, kPassphrase, 0600, w.user.uid, w.user.gid);
		w.wrongKeyFile = w.targets + "/wrong.key";
		t::writeFile(w.wrongKeyFile, "not the passphrase", 0600, w.user.uid, w.user.gid);
	}
	static void TearDownTestSuite()
	{
		if (gWorld == nullptr)
			return;
		const bool started = ourQemuCount() > 0;
		Ran stop = client({"stop", "--all"});
		if (started) {
			EXPECT_EQ(stop.code, 0) << stop.err;
			EXPECT_NE(stop.out.find("powered off"), std::string::npos) << stop.out << stop.err;
		}
		for (int i = 0; i < 100 && ourQemuCount() > 0; ++i) {
			fr::client::test::reapExited();
			::usleep(50000);
		}
		EXPECT_EQ(ourQemuCount(), 0) << "a QEMU is left running after stop --all";
		for (const pid_t pid : ourQemus())
			::kill(pid, SIGKILL);
		fr::client::test::reapExited();
		// Nothing leaked into the cache: no new entry, no disk written.
		const CacheState after = cacheState(gWorld->cacheDir);
		EXPECT_EQ(after.entries, gWorld->cache.entries) << "the disk cache " << gWorld->cacheDir << " changed";
		for (const auto &[disk, before] : gWorld->cache.disks) {
			const auto it = after.disks.find(disk);
			ASSERT_NE(it, after.disks.end()) << disk;
			EXPECT_EQ(it->second.first, before.first) << disk << ".img changed size";
			EXPECT_TRUE(it->second.second.tv_sec == before.second.tv_sec &&
				    it->second.second.tv_nsec == before.second.tv_nsec)
				<< disk << ".img was written";
		}
		t::removeTree(gWorld->runtime);
		delete gWorld; // removes the snapshot (its links) with the install
		gWorld = nullptr;
	}
	void SetUp() override
	{
		if (!gSkip.empty())
			GTEST_SKIP() << gSkip;
		ASSERT_TRUE(gFailure.empty()) << gFailure;
	}

	// `list --output-format json` of a path: the entries (an error object
	// fails the test).
	static json listJson(const std::string &path, const std::vector<std::string> &extra = {})
	{
		std::vector<std::string> args = {"list", "--output-format", "json"};
		args.insert(args.end(), extra.begin(), extra.end());
		args.push_back(kSnapshot);
		args.push_back(path);
		Ran r = client(args);
		EXPECT_EQ(r.code, 0) << path << ": " << r.err;
		json doc = json::parse(r.out, nullptr, false);
		EXPECT_TRUE(doc.is_array()) << path << ": " << r.out << r.err;
		return doc.is_array() ? doc : json::array();
	}
	static Names names(const std::string &path, const std::vector<std::string> &extra = {})
	{
		Names out;
		for (const json &entry : listJson(path, extra))
			out.insert(entry["text"].get<std::string>());
		return out;
	}
	// The `reason` of the entry `name` in the JSON listing of `parent`
	// ("" without one, "(not listed)" when there is no such entry).
	static std::string reasonOf(const std::string &parent, const std::string &name,
				    const std::vector<std::string> &extra = {})
	{
		for (const json &entry : listJson(parent, extra)) {
			if (entry["text"] != name)
				continue;
			EXPECT_EQ(entry["filepath"], base64Encode(parent + "/" + name)) << entry.dump();
			return entry.contains("reason") ? entry["reason"].get<std::string>() : std::string();
		}
		return "(not listed)";
	}
	// A file's bytes, extracted to stdout.
	static std::string file(const std::string &path, const std::vector<std::string> &extra = {})
	{
		std::vector<std::string> args = {"extract"};
		args.insert(args.end(), extra.begin(), extra.end());
		args.insert(args.end(), {kSnapshot, path, "-"});
		Ran r = client(args);
		EXPECT_EQ(r.code, 0) << path << ": " << r.err;
		return r.out;
	}
	// Asking inside a volume that cannot be opened: a failure whose message
	// gives the reason.
	static Ran expectRefused(const std::vector<std::string> &args, const std::string &want)
	{
		Ran r = client(args);
		EXPECT_NE(r.code, 0) << r.out;
		EXPECT_NE(r.err.find(want), std::string::npos) << "wanted \"" << want << "\" in: " << r.err;
		// In the user's terms: the guest's disk names stay inside.
		EXPECT_EQ(r.err.find("/disk"), std::string::npos) << r.err;
		return r;
	}
	static void expectListRefused(const std::string &path, const std::string &want)
	{
		expectRefused({"list", kSnapshot, path}, want);
	}
	static std::string userDir(const std::string &name)
	{
		const std::string path = gWorld->targets + "/" + name;
		t::makeDir(path, 0755, gWorld->user.uid, gWorld->user.gid);
		return path;
	}
};

TEST_F(VolumesEndToEnd, ArchivesAreListedWithoutAVmAndReadableByTheUser)
{
	const json root = listJson("/");
	Names want;
	for (const std::string &disk : kDisks)
		want.insert(disk + ".img");
	Names got;
	for (const json &entry : root) {
		got.insert(entry["text"].get<std::string>());
		EXPECT_EQ(entry["type"], "v") << entry.dump();
		EXPECT_FALSE(entry.contains("reason")) << entry.dump();
		EXPECT_GT(entry["size"].get<std::uint64_t>(), 0U) << entry.dump();
	}
	EXPECT_EQ(got, want);
	// The helper opens the images with the caller's identity (the policy
	// grants no image directory): the user must be able to read each.
	for (const std::string &disk : kDisks) {
		Ran r = runAs({"/usr/bin/head", "-c", "1", gWorld->repo + "/" + kSnapshot + "/" + disk + ".img"});
		EXPECT_EQ(r.code, 0) << disk << ": " << r.err;
	}
	EXPECT_EQ(ourQemuCount(), 0);
}

TEST_F(VolumesEndToEnd, LvmLogicalVolumesAThinVolumeAndItsSnapshot)
{
	const std::string lvm = archive("lvm");
	EXPECT_EQ(names(lvm), (Names{"lvm", "part"}));
	EXPECT_EQ(ourQemuCount(), 1);
	// The physical volume is still listed, with where its content is.
	EXPECT_EQ(names(lvm + "/part"), Names{"1"});
	const std::string pv = reasonOf(lvm + "/part", "1");
	EXPECT_NE(pv.find("LVM2_member: physical volume of volume group vgtest"), std::string::npos) << pv;
	expectListRefused(lvm + "/part/1", "physical volume of volume group vgtest");
	EXPECT_EQ(names(lvm + "/lvm"), Names{"vgtest"});
	EXPECT_EQ(names(lvm + "/lvm/vgtest"), (Names{"data", "root", "thin", "thinsnap"}));
	EXPECT_EQ(reasonOf(lvm + "/lvm/vgtest", "thin"), "");
	EXPECT_EQ(names(lvm + "/lvm/vgtest/root"), (Names{"data", "etc", "lost+found"}));
	EXPECT_EQ(file(lvm + "/lvm/vgtest/root/etc/hostname"), "lvm-root-host\n");
	EXPECT_EQ(file(lvm + "/lvm/vgtest/data/etc/hostname"), "lvm-data-host\n");
	EXPECT_EQ(file(lvm + "/lvm/vgtest/thin/etc/hostname"), "lvm-thin-host\n");
	EXPECT_EQ(file(lvm + "/lvm/vgtest/thinsnap/etc/hostname"), "lvm-thin-host\n");
	// The thin LV's directory into a directory of the user's (the safe
	// writer), byte for byte.
	const std::string target = userDir("thin");
	Ran r = client({"extract", kSnapshot, lvm + "/lvm/vgtest/thin/data", target});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(sha256Hex(t::readFile(target + "/data/numbers")), sha256Hex(numbers()));
	struct stat st {};
	ASSERT_EQ(::stat((target + "/data/numbers").c_str(), &st), 0);
	EXPECT_EQ(st.st_uid, gWorld->user.uid);
}

TEST_F(VolumesEndToEnd, AVolumeGroupSpanningTwoArchives)
{
	// Not under either archive: at the snapshot's root (docs/client.md).
	EXPECT_EQ(names("/lvm"), Names{"vgspan"});
	EXPECT_EQ(names("/lvm/vgspan"), Names{"wide"});
	EXPECT_EQ(file("/lvm/vgspan/wide/etc/hostname"), "lvm-span-host\n");
	EXPECT_EQ(sha256Hex(file("/lvm/vgspan/wide/data/numbers")), sha256Hex(numbers()));
	for (const char *member : {"span-a", "span-b"}) {
		const std::string reason = reasonOf(archive(member), "raw");
		EXPECT_NE(reason.find("physical volume of volume group vgspan (its logical volumes are under lvm/vgspan)"),
			  std::string::npos)
			<< member << ": " << reason;
	}
	expectListRefused(archive("span-b") + "/raw", "volume group vgspan");
}

TEST_F(VolumesEndToEnd, MdRaid1AndADegradedRaid5)
{
	const Names md = names("/md");
	for (const char *array : {"r1", "r5", "m1000"})
		EXPECT_TRUE(md.count(array)) << array;
	EXPECT_EQ(file("/md/r1/etc/hostname"), "md-r1-host\n");
	EXPECT_EQ(sha256Hex(file("/md/r1/data/numbers")), sha256Hex(numbers()));
	// raid5 with its third member missing (not in the snapshot): readable.
	EXPECT_EQ(file("/md/r5/etc/hostname"), "md-r5-host\n");
	EXPECT_EQ(sha256Hex(file("/md/r5/data/numbers")), sha256Hex(numbers()));
	const std::string member = reasonOf(archive("md-a") + "/part", "1");
	EXPECT_NE(member.find("linux_raid_member: member of md array r1"), std::string::npos) << member;
	expectListRefused(archive("md-b") + "/part/2", "member of md array r5");
}

TEST_F(VolumesEndToEnd, LuksLockedAWrongKeyRefusedTheKeyOpensAlsoUnderAndOverLvm)
{
	// (One test: what the VM has opened stays open, so the order counts.)
	const std::string luks = archive("luks");
	EXPECT_EQ(names(luks + "/part"), (Names{"1", "2", "3", "4"}));
	// No key: listed, locked, with the reason; asking inside says it.
	EXPECT_EQ(reasonOf(luks + "/part", "1"), "crypto_LUKS: locked: no key given");
	EXPECT_EQ(reasonOf(luks + "/part", "2"), "crypto_LUKS: locked: no key given");
	Ran locked = expectRefused({"extract", kSnapshot, luks + "/part/1/luks/etc/hostname", "-"},
				   "crypto_LUKS: locked: no key given");
	// Not an I/O error, nor damage: the key is missing, and how to give it
	// is said.
	EXPECT_EQ(locked.err.find("I/O error"), std::string::npos) << locked.err;
	EXPECT_EQ(locked.err.find("damaged"), std::string::npos) << locked.err;
	EXPECT_NE(locked.err.find("--luks-key-file"), std::string::npos) << locked.err;
	EXPECT_EQ(locked.code, 1) << locked.err;
	EXPECT_EQ(names(luks + "/lvm"), Names{"vgluks"});
	EXPECT_EQ(reasonOf(luks + "/lvm/vgluks", "cryptlv"), "crypto_LUKS: locked: no key given");

	// A wrong key opens nothing, and the refusal says so: first given to
	// `mount` (which must hand it to the VM like list and extract do),
	// then to extract.
	const std::string fuseSkip = t::fuseSkipReason();
	const std::string mnt = userDir("luks-mnt");
	if (fuseSkip.empty()) {
		Ran m = shellAsUser("\"$CLIENT\" mount --luks-key-file '" + gWorld->wrongKeyFile + "' '" + kSnapshot + "' " +
				    luks + "/part/1/luks '" + mnt + "'");
		EXPECT_NE(m.code, 0) << m.out;
		EXPECT_NE(m.err.find("crypto_LUKS: locked: the key given does not open it"), std::string::npos) << m.err;
		EXPECT_FALSE(t::isMounted(mnt));
	} else {
		std::printf("mount with a LUKS key not tried: %s\n", fuseSkip.c_str());
	}
	const std::vector<std::string> wrong = {"--luks-key-file", gWorld->wrongKeyFile};
	Ran r = client({"extract", "--luks-key-file", gWorld->wrongKeyFile, kSnapshot, luks + "/part/1/luks/etc/hostname",
			"-"});
	EXPECT_NE(r.code, 0) << r.out;
	EXPECT_NE(r.err.find("crypto_LUKS: locked: the key given does not open it"), std::string::npos) << r.err;
	EXPECT_EQ(r.out, "");
	EXPECT_EQ(reasonOf(luks + "/part", "2", wrong), "crypto_LUKS: locked: the key given does not open it");
	// A key file the user cannot read: refused before anything is asked.
	expectRefused({"list", "--luks-key-file", gWorld->targets + "/missing.key", kSnapshot, luks + "/part"},
		      "--luks-key-file");

	// The key: LUKS2, LUKS1, LVM on LUKS (partition 3), LUKS on LVM. The
	// first call that gives it extracts a file to stdout (the key must
	// reach the VM before the path is looked at).
	const std::vector<std::string> key = {"--luks-key-file", gWorld->keyFile};
	EXPECT_EQ(file(luks + "/part/1/luks/etc/hostname", key), "luks2-host\n");
	EXPECT_EQ(reasonOf(luks + "/part", "1", key), "");
	EXPECT_EQ(names(luks + "/part/1", key), Names{"luks"});
	EXPECT_EQ(sha256Hex(file(luks + "/part/1/luks/data/numbers", key)), sha256Hex(numbers()));
	EXPECT_EQ(file(luks + "/part/2/luks/etc/hostname", key), "luks1-host\n");
	EXPECT_EQ(sha256Hex(file(luks + "/part/2/luks/data/numbers", key)), sha256Hex(numbers()));
	expectListRefused(luks + "/part/3/luks", "physical volume of volume group vgcrypt");
	EXPECT_EQ(names(luks + "/lvm", key), (Names{"vgcrypt", "vgluks"}));
	EXPECT_EQ(file(luks + "/lvm/vgcrypt/secret/etc/hostname", key), "lvm-on-luks-host\n");
	EXPECT_EQ(file(luks + "/lvm/vgluks/cryptlv/luks/etc/hostname", key), "luks-on-lvm-host\n");
	EXPECT_EQ(sha256Hex(file(luks + "/lvm/vgluks/cryptlv/luks/data/numbers", key)), sha256Hex(numbers()));
	// An opened LUKS volume mounted (FUSE) and read through the mount.
	if (fuseSkip.empty()) {
		Ran m = shellAsUser("\"$CLIENT\" mount --luks-key-file '" + gWorld->keyFile + "' '" + kSnapshot + "' " + luks +
				    "/part/2/luks '" + mnt + "' || exit 1\n"
				    "cat '" + mnt + "/etc/hostname'; sha256sum < '" + mnt + "/data/numbers'\n"
				    "\"$CLIENT\" umount '" + mnt + "'");
		EXPECT_EQ(m.code, 0) << m.err;
		EXPECT_EQ(m.out, "luks1-host\n" + sha256Hex(numbers()) + "  -\n");
		EXPECT_FALSE(t::isMounted(mnt));
	}

	// Absurd key derivation costs: refused before anything runs them, each
	// with its reason.
	const std::string kdf = archive("luks-kdf");
	EXPECT_EQ(names(kdf + "/part", key), (Names{"1", "2"}));
	const std::string pbkdf2 = reasonOf(kdf + "/part", "1", key);
	EXPECT_NE(pbkdf2.find("4294967295 PBKDF2 iterations, over the limit"), std::string::npos) << pbkdf2;
	const std::string argon2 = reasonOf(kdf + "/part", "2", key);
	EXPECT_NE(argon2.find("needs 4096 MiB for Argon2"), std::string::npos) << argon2;
	expectRefused({"list", "--luks-key-file", gWorld->keyFile, kSnapshot, kdf + "/part/1"},
		      "crypto_LUKS: key slot 0 asks for 4294967295 PBKDF2 iterations");
	EXPECT_EQ(file(luks + "/part/1/luks/etc/hostname", key), "luks2-host\n");
}

TEST_F(VolumesEndToEnd, NtfsWithNonAsciiNames)
{
	const std::string ntfs = archive("ntfs") + "/part/1";
	const Names root = names(ntfs);
	for (const char *name : {"hostname.txt", "Dokumente", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt", "ads.txt"})
		EXPECT_TRUE(root.count(name)) << name;
	EXPECT_EQ(file(ntfs + "/hostname.txt"), "ntfs-host\n");
	EXPECT_EQ(file(ntfs + "/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt"), "japanese\n");
	// The unnamed stream of a file with an alternate data stream.
	EXPECT_EQ(file(ntfs + "/ads.txt"), "the main stream\n");
	// A directory with a non-ASCII name in it, into a directory of the
	// user's: the names and bytes as they were.
	const std::string target = userDir("ntfs");
	Ran r = client({"extract", kSnapshot, ntfs + "/Dokumente", target});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(t::readFile(target + "/Dokumente/Gr\xc3\xbc\xc3\x9f" "e.txt"), "Gr\xc3\xbc\xc3\x9f" "e aus NTFS\n");
	EXPECT_EQ(sha256Hex(t::readFile(target + "/Dokumente/numbers")), sha256Hex(numbers()));
	// Addressed by its bytes through --base64 too.
	EXPECT_EQ(file(base64Encode(ntfs + "/Dokumente/Gr\xc3\xbc\xc3\x9f" "e.txt"), {"--base64"}),
		  "Gr\xc3\xbc\xc3\x9f" "e aus NTFS\n");
}

TEST_F(VolumesEndToEnd, BtrfsDefaultSubvolumeSubvolumesAndASnapshot)
{
	const std::string btrfs = archive("btrfs") + "/part/1";
	const Names root = names(btrfs);
	EXPECT_TRUE(root.count("subvol")) << btrfs;
	EXPECT_TRUE(root.count("numbers")) << btrfs;
	EXPECT_EQ(file(btrfs + "/etc/hostname"), "btrfs-host\n");
	EXPECT_EQ(sha256Hex(file(btrfs + "/numbers")), sha256Hex(numbers()));
	EXPECT_EQ(names(btrfs + "/subvol"), (Names{"@", "@home", "snapshots"}));
	EXPECT_EQ(names(btrfs + "/subvol/snapshots"), Names{"before"});
	EXPECT_EQ(file(btrfs + "/subvol/snapshots/before/etc/hostname"), "btrfs-old\n");
	EXPECT_EQ(file(btrfs + "/subvol/@home/user/notes.txt"), "user file\n");
	EXPECT_EQ(file(btrfs + "/subvol/@/etc/hostname"), "btrfs-host\n");
}

TEST_F(VolumesEndToEnd, CrashConsistentFilesystemsComeBackWithTheirNewestChanges)
{
	for (const char *disk : {"ext4-dirty", "xfs-dirty", "btrfs-log"}) {
		SCOPED_TRACE(disk);
		const std::string raw = archive(disk) + "/raw";
		EXPECT_EQ(file(raw + "/data/version.txt"), "new\n");
		EXPECT_EQ(file(raw + "/data/newest.txt"), "written last\n");
		EXPECT_EQ(sha256Hex(file(raw + "/data/numbers")), sha256Hex(numbers()));
	}
}

TEST_F(VolumesEndToEnd, ExfatUdfAndAHybridIso)
{
	EXPECT_EQ(file(archive("exfat") + "/raw/hostname.txt"), "exfat-host\n");
	EXPECT_EQ(sha256Hex(file(archive("exfat") + "/raw/numbers")), sha256Hex(numbers()));
	EXPECT_EQ(file(archive("udf") + "/raw/hostname.txt"), "udf-host\n");
	EXPECT_EQ(sha256Hex(file(archive("udf") + "/raw/numbers")), sha256Hex(numbers()));
	// iso9660 on the whole disk and in partition 1: both paths serve it.
	const std::string hybrid = archive("hybrid");
	EXPECT_EQ(names(hybrid), (Names{"part", "raw"}));
	EXPECT_EQ(file(hybrid + "/part/1/hostname.txt"), "iso-host\n");
	EXPECT_EQ(file(hybrid + "/raw/hostname.txt"), "iso-host\n");
	EXPECT_EQ(sha256Hex(file(hybrid + "/raw/docs/numbers")), sha256Hex(numbers()));
	EXPECT_EQ(sha256Hex(file(hybrid + "/part/1/docs/numbers")), sha256Hex(numbers()));
}

TEST_F(VolumesEndToEnd, HostileMetadataIsListedWithAReasonAndTheOthersStillServe)
{
	// Damaged LVM metadata.
	const std::string lvmBad = reasonOf(archive("lvm-bad"), "raw");
	EXPECT_NE(lvmBad.find("LVM2_member: no readable volume group"), std::string::npos) << lvmBad;
	expectListRefused(archive("lvm-bad") + "/raw", "no readable volume group");
	// An md superblock claiming 1000 members: the member names its array,
	// which is served (raid1: the member holds every byte).
	const std::string md1000 = reasonOf(archive("md-1000"), "raw");
	EXPECT_NE(md1000.find("linux_raid_member: member of md array m1000"), std::string::npos) << md1000;
	EXPECT_EQ(file("/md/m1000/etc/hostname"), "md-1000-host\n");
	// LUKS with absurd key derivation costs: locked, with a reason, in
	// either order with the LUKS test (with the key: the cost itself).
	for (const char *part : {"1", "2"}) {
		const std::string reason = reasonOf(archive("luks-kdf") + "/part", part);
		EXPECT_TRUE(reason.starts_with("crypto_LUKS: ")) << part << ": " << reason;
	}
	// An NTFS ntfs-3g refuses: asking inside fails with the reason, and
	// from then on its listing entry carries it.
	expectListRefused(archive("ntfs-bad") + "/raw", "ntfs");
	const std::string ntfsBad = reasonOf(archive("ntfs-bad"), "raw");
	EXPECT_TRUE(ntfsBad.starts_with("ntfs: ")) << ntfsBad;
	// The guest serves on.
	EXPECT_EQ(file(archive("lvm") + "/lvm/vgtest/root/etc/hostname"), "lvm-root-host\n");
	EXPECT_EQ(file("/md/r1/etc/hostname"), "md-r1-host\n");
	EXPECT_EQ(file(archive("ntfs") + "/part/1/hostname.txt"), "ntfs-host\n");
	EXPECT_EQ(ourQemuCount(), 1) << "one VM serves every archive";
}

} // namespace
} // namespace fr::client
