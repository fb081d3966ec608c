// SPDX-License-Identifier: AGPL-3.0-or-later
// End-to-end tests of the volume layers (suite 'vm'): LVM (two LVs, a thin
// LV and its snapshot on a read-only thin pool), a VG on two disks, md
// raid1 and a degraded raid5, LUKS2 and LUKS1 (locked, a wrong key, the
// key), LVM on LUKS and LUKS on LVM, NTFS through ntfs-3g, btrfs
// subvolumes and a snapshot, crash-consistent ext4/xfs/btrfs (the journal
// replayed into a throwaway layer), exfat, udf, a hybrid ISO, and hostile
// metadata (damaged LVM metadata, an md superblock claiming 1000 members,
// LUKS headers with absurd key derivation costs, an NTFS ntfs-3g refuses):
// each hostile volume answers a reason and the guest keeps serving the
// others.
//
// The disks are built once per test-script version by
// tests/guest/volume-disks.sh inside a VM of our own kernel and tools (this
// machine's kernel has no device-mapper or md), cached in
// $FR_TEST_DISK_CACHE (default /var/tmp/file-restore-test-disks). One VM
// (256 MiB) serves every case.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "shared/guest_session.h"
#include "guest/disks.h"
#include "shared/guest_abi.h"
#include "shared/protocol.h"
#include "vm_util.h"

namespace fr::test {
namespace {

using proto::Entry;

// Disk order = the VM's disk<N>.
const std::vector<std::string> kDisks = {"lvm",        "span-a",    "span-b",    "md-a",     "md-b",
					 "luks",       "ntfs",      "btrfs",     "ext4-dirty", "xfs-dirty",
					 "btrfs-log",  "lvm-bad",   "md-1000",   "luks-kdf", "ntfs-bad",
					 "exfat",      "udf",       "hybrid"};

std::string numbers()
{
	std::string out;
	for (int i = 1; i <= 20000; ++i)
		out += std::to_string(i) + "\n";
	return out;
}

// A 64 MiB sparse image whose ZFS labels (at 0, 256 KiB, end - 512 KiB,
// end - 256 KiB) hold uberblocks (magic 0x00bab10c, version 5000) at 128 KiB.
bool writeZfsMember(const std::string &path)
{
	constexpr std::uint64_t kSize = 64ULL << 20;
	FILE *f = std::fopen(path.c_str(), "wb");
	if (f == nullptr)
		return false;
	bool ok = ::ftruncate(::fileno(f), static_cast<off_t>(kSize)) == 0;
	for (const std::uint64_t label : {0ULL, 256ULL << 10, kSize - (512ULL << 10), kSize - (256ULL << 10)})
		for (std::uint64_t i = 0; ok && i < 128; ++i) {
			const std::uint64_t ub[5] = {0x00bab10cULL, 5000, 10 + i, 0x1234, 1700000000};
			ok = std::fseek(f, static_cast<long>(label + (128ULL << 10) + i * 1024), SEEK_SET) == 0 &&
			     std::fwrite(ub, sizeof(ub), 1, f) == 1;
		}
	return std::fclose(f) == 0 && ok;
}

struct VolumesVm {
	TempDir dir;
	proto::Key ticket = proto::randomTicket();
	std::unique_ptr<Vm> vm;
	std::string disks;
	std::map<std::string, std::string> shas;
	std::string skipReason;
	std::string failure;
	bool ready = false;

	void build()
	{
		const char *script = std::getenv("FR_TEST_VOLUME_DISKS");
		const char *imageDir = std::getenv("FR_TEST_IMAGE_DIR");
		if (script == nullptr || imageDir == nullptr || testKernel().empty()) {
			skipReason = "needs the VM image and FR_TEST_VOLUME_DISKS (run through meson test)";
			return;
		}
		const char *cache = std::getenv("FR_TEST_DISK_CACHE");
		const std::string cacheRoot = cache != nullptr && *cache != '\0' ? cache : "/var/tmp/file-restore-test-disks";
		const std::string out = dir / "disks.txt";
		const int status = run({"sh", "-c", "\"$0\" \"$1\" \"$2\" >\"$3\"", script, imageDir, cacheRoot, out},
				       dir / "builder.log");
		if (status == 77) {
			skipReason = "test disks not built: " + readFile(dir / "builder.log");
			return;
		}
		if (status != 0) {
			failure = "tests/guest/volume-disks.sh failed:\n" + readFile(dir / "builder.log");
			return;
		}
		disks = readFile(out);
		while (!disks.empty() && disks.back() == '\n')
			disks.pop_back();
		VmOptions options;
		options.kernel = testKernel();
		options.initramfs = dir / "initramfs.img";
		writeTicketInitramfs(testInitramfs(), proto::ticketToHex(ticket), options.initramfs);
		for (const std::string &name : kDisks) {
			const std::string path = disks + "/" + name + ".img";
			if (::access(path.c_str(), R_OK) != 0) {
				failure = "missing test disk " + path;
				return;
			}
			shas[name] = sha256File(path);
			options.disks.push_back({path});
		}
		// A ZFS member as libblkid 2.38 (the guest's) knows one: its four
		// labels' uberblock rings. No pool behind it: ZFS is not in the
		// image, and the member must be listed with that reason.
		const std::string zfs = dir / "zfs.img";
		if (!writeZfsMember(zfs)) {
			failure = "cannot write " + zfs;
			return;
		}
		options.disks.push_back({zfs});
		options.memoryMiB = 256; // the documented default: one disk's layers fit
		options.socketPath = dir / "serial.sock";
		options.consoleLog = dir / "console.log";
		vm = std::make_unique<Vm>(options);
		ready = vm->start();
		if (!ready)
			failure = "QEMU did not start";
	}
};

VolumesVm *gVm = nullptr;

class VmVolumes : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		gVm = new VolumesVm;
		gVm->build();
	}
	static void TearDownTestSuite()
	{
		session_.reset();
		if (gVm->ready && gVm->vm->running()) {
			Result<GuestSession> session = gVm->vm->connect(gVm->ticket);
			if (session) {
				EXPECT_TRUE(session->stop());
			}
			EXPECT_TRUE(gVm->vm->waitExit(30000)) << "QEMU did not exit after stop";
			// Replays went into the throwaway layer: no disk was written.
			for (const auto &[name, sha] : gVm->shas)
				EXPECT_EQ(sha256File(gVm->disks + "/" + name + ".img"), sha) << name << " was written";
		}
		delete gVm;
		gVm = nullptr;
	}
	void SetUp() override
	{
		if (!gVm->skipReason.empty())
			GTEST_SKIP() << gVm->skipReason;
		ASSERT_TRUE(gVm->failure.empty()) << gVm->failure;
		ASSERT_TRUE(gVm->vm->running()) << gVm->vm->console();
		if (!session_) {
			Result<GuestSession> s = gVm->vm->connect(gVm->ticket);
			ASSERT_TRUE(s) << s.error().message() << "\n" << gVm->vm->console();
			session_ = std::make_unique<GuestSession>(std::move(*s));
		}
	}
	void TearDown() override
	{
		if (HasFailure() && gVm->ready)
			std::fprintf(stderr, "--- VM console ---\n%s\n", gVm->vm->console().c_str());
	}

	std::vector<std::string> names(const std::string &path)
	{
		std::vector<std::string> out;
		Status ok = session_->list(path, [&](const Entry &e) noexcept {
			out.push_back(e.name);
			return Status{};
		});
		EXPECT_TRUE(ok) << path << ": " << (ok ? "" : ok.error().message());
		std::sort(out.begin(), out.end());
		return out;
	}
	// The reason the listing of `parent` gives for its entry `name` ("" if
	// it has none; "(not listed)" if it is not there).
	std::string reasonOf(const std::string &parent, const std::string &name)
	{
		std::string reason = "(not listed)";
		Status ok = session_->list(parent, [&](const Entry &e) noexcept {
			if (e.name == name) {
				EXPECT_TRUE(e.isVirtual) << parent << "/" << name;
				reason = e.reason;
			}
			return Status{};
		});
		EXPECT_TRUE(ok) << parent << ": " << (ok ? "" : ok.error().message());
		return reason;
	}
	Status listStatus(const std::string &path)
	{
		return session_->list(path, [](const Entry &) noexcept { return Status{}; });
	}
	std::string file(const std::string &path)
	{
		std::string bytes;
		Status ok = session_->extract(
			path, proto::ExtractFormat::Raw, proto::Compression::None, [](const Entry &) noexcept { return Status{}; },
			[&](std::span<const std::uint8_t> chunk) noexcept {
				bytes.append(reinterpret_cast<const char *>(chunk.data()), chunk.size());
				return Status{};
			});
		EXPECT_TRUE(ok) << path << ": " << (ok ? "" : ok.error().message());
		return bytes;
	}
	// A volume that cannot be opened: listed in its parent, and asking
	// inside it answers why.
	void expectReason(const std::string &path, const std::string &want)
	{
		Status ok = listStatus(path);
		ASSERT_FALSE(ok) << path << " opened";
		EXPECT_TRUE((ok.error().kind() == ErrorKind::Guest));
		EXPECT_NE(ok.error().message().find(want), std::string::npos) << path << ": " << ok.error().message();
	}

	static std::unique_ptr<GuestSession> session_;
};

std::unique_ptr<GuestSession> VmVolumes::session_;

using V = std::vector<std::string>;

TEST_F(VmVolumes, RootShowsDisksAndTheLayersSpanningThem)
{
	const V root = names("/");
	for (std::size_t i = 0; i < kDisks.size(); ++i)
		EXPECT_NE(std::find(root.begin(), root.end(), "disk" + std::to_string(i)), root.end()) << i;
	EXPECT_NE(std::find(root.begin(), root.end(), "lvm"), root.end());
	EXPECT_NE(std::find(root.begin(), root.end(), "md"), root.end());
}

TEST_F(VmVolumes, LvmLogicalVolumesThinAndItsSnapshot)
{
	EXPECT_EQ(names("/disk0"), (V{"lvm", "part"}));
	// The PV is still listed (it never vanishes), with a reason.
	EXPECT_EQ(names("/disk0/part"), V{"1"});
	expectReason("/disk0/part/1", "physical volume of volume group vgtest");
	EXPECT_EQ(names("/disk0/lvm"), V{"vgtest"});
	EXPECT_EQ(names("/disk0/lvm/vgtest"), (V{"data", "root", "thin", "thinsnap"}));
	EXPECT_EQ(file("/disk0/lvm/vgtest/root/etc/hostname"), "lvm-root-host\n");
	EXPECT_EQ(file("/disk0/lvm/vgtest/data/etc/hostname"), "lvm-data-host\n");
}

TEST_F(VmVolumes, LvmThinVolumesOnAReadOnlyPool)
{
	// The pool's table is built with its read_only feature; the thin LV
	// and its snapshot read back what was written.
	EXPECT_EQ(reasonOf("/disk0/lvm/vgtest", "thin"), "");
	EXPECT_EQ(file("/disk0/lvm/vgtest/thin/etc/hostname"), "lvm-thin-host\n");
	EXPECT_EQ(file("/disk0/lvm/vgtest/thinsnap/etc/hostname"), "lvm-thin-host\n");
	EXPECT_EQ(sha256Hex(file("/disk0/lvm/vgtest/thin/data/numbers")), sha256Hex(numbers()));
	const std::string console = gVm->vm->console();
	EXPECT_EQ(console.find("thin pool vgtest/pool not readable"), std::string::npos) << console;
}

TEST_F(VmVolumes, VolumeGroupOnTwoDisks)
{
	EXPECT_EQ(names("/lvm"), V{"vgspan"});
	EXPECT_EQ(names("/lvm/vgspan"), V{"wide"});
	EXPECT_EQ(file("/lvm/vgspan/wide/etc/hostname"), "lvm-span-host\n");
	EXPECT_EQ(sha256Hex(file("/lvm/vgspan/wide/data/numbers")), sha256Hex(numbers()));
	expectReason("/disk1/raw", "volume group vgspan");
}

TEST_F(VmVolumes, MdRaid1AndDegradedRaid5)
{
	// (m1000 is the hostile array: HostileMetadata...)
	const V md = names("/md");
	EXPECT_NE(std::find(md.begin(), md.end(), "r1"), md.end());
	EXPECT_NE(std::find(md.begin(), md.end(), "m1000"), md.end());
	EXPECT_NE(std::find(md.begin(), md.end(), "r5"), md.end());
	EXPECT_EQ(file("/md/r1/etc/hostname"), "md-r1-host\n");
	// raid5 with its third member missing: still readable.
	EXPECT_EQ(file("/md/r5/etc/hostname"), "md-r5-host\n");
	EXPECT_EQ(sha256Hex(file("/md/r5/data/numbers")), sha256Hex(numbers()));
	expectReason("/disk3/part/1", "member of md array r1");
}

TEST_F(VmVolumes, LuksLockedThenOpenedWithItsKeyAlsoUnderAndOverLvm)
{
	EXPECT_EQ(names("/disk5/part"), (V{"1", "2", "3", "4"}));
	// No key yet: listed, locked, with the reason.
	EXPECT_EQ(reasonOf("/disk5/part", "1"), "crypto_LUKS: locked: no key given");
	expectReason("/disk5/part/2", "crypto_LUKS: locked: no key given");
	// LUKS on LVM: the LV is there, locked.
	EXPECT_EQ(names("/disk5/lvm/vgluks"), V{"cryptlv"});
	EXPECT_EQ(reasonOf("/disk5/lvm/vgluks", "cryptlv"), "crypto_LUKS: locked: no key given");

	// A wrong key opens nothing and says so.
	Result<std::uint64_t> wrong = session_->unlock("not the passphrase", 600000);
	ASSERT_TRUE(wrong) << wrong.error().message();
	EXPECT_EQ(*wrong, 0U);
	EXPECT_EQ(reasonOf("/disk5/part", "1"), "crypto_LUKS: locked: the key given does not open it");

	// The key: LUKS2, LUKS1, LVM on LUKS (partition 3), LUKS on LVM.
	Result<std::uint64_t> opened = session_->unlock("test-passphrase", 600000);
	ASSERT_TRUE(opened) << opened.error().message() << "\n" << gVm->vm->console();
	EXPECT_EQ(*opened, 4U);
	EXPECT_EQ(reasonOf("/disk5/part", "1"), "");
	EXPECT_EQ(names("/disk5/part/1"), V{"luks"});
	EXPECT_EQ(file("/disk5/part/1/luks/etc/hostname"), "luks2-host\n");
	EXPECT_EQ(sha256Hex(file("/disk5/part/1/luks/data/numbers")), sha256Hex(numbers()));
	EXPECT_EQ(file("/disk5/part/2/luks/etc/hostname"), "luks1-host\n");
	expectReason("/disk5/part/3/luks", "physical volume of volume group vgcrypt");
	EXPECT_EQ(names("/disk5/lvm"), (V{"vgcrypt", "vgluks"}));
	EXPECT_EQ(file("/disk5/lvm/vgcrypt/secret/etc/hostname"), "lvm-on-luks-host\n");
	EXPECT_EQ(file("/disk5/lvm/vgluks/cryptlv/luks/etc/hostname"), "luks-on-lvm-host\n");
	// Given again: nothing left to open, nothing reopened.
	Result<std::uint64_t> again = session_->unlock("test-passphrase", 600000);
	ASSERT_TRUE(again);
	EXPECT_EQ(*again, 0U);

	// Absurd key derivation costs: refused before anything runs them,
	// with the reason; the guest serves on.
	EXPECT_EQ(names("/disk13/part"), (V{"1", "2"}));
	const std::string pbkdf2 = reasonOf("/disk13/part", "1");
	EXPECT_NE(pbkdf2.find("4294967295 PBKDF2 iterations, over the limit"), std::string::npos) << pbkdf2;
	const std::string argon2 = reasonOf("/disk13/part", "2");
	EXPECT_NE(argon2.find("needs 4096 MiB for Argon2"), std::string::npos) << argon2;
	EXPECT_NE(argon2.find("--memory"), std::string::npos) << argon2;
	expectReason("/disk13/part/1", "crypto_LUKS: key slot 0 asks for 4294967295 PBKDF2 iterations");
	EXPECT_EQ(file("/disk5/part/1/luks/etc/hostname"), "luks2-host\n");
}

TEST_F(VmVolumes, NtfsThroughNtfs3g)
{
	const V root = names("/disk6/part/1");
	for (const char *name : {"hostname.txt", "Dokumente", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt", "ads.txt"})
		EXPECT_NE(std::find(root.begin(), root.end(), name), root.end()) << name;
	EXPECT_EQ(file("/disk6/part/1/hostname.txt"), "ntfs-host\n");
	EXPECT_EQ(file("/disk6/part/1/Dokumente/Gr\xc3\xbc\xc3\x9f" "e.txt"), "Gr\xc3\xbc\xc3\x9f" "e aus NTFS\n");
	EXPECT_EQ(sha256Hex(file("/disk6/part/1/Dokumente/numbers")), sha256Hex(numbers()));
	// The unnamed stream of a file with an alternate data stream.
	EXPECT_EQ(file("/disk6/part/1/ads.txt"), "the main stream\n");
}

TEST_F(VmVolumes, BtrfsDefaultSubvolumeSubvolumesAndASnapshot)
{
	// The default subvolume (@) is what the partition shows, plus "subvol".
	const V root = names("/disk7/part/1");
	EXPECT_NE(std::find(root.begin(), root.end(), "subvol"), root.end());
	EXPECT_NE(std::find(root.begin(), root.end(), "numbers"), root.end());
	EXPECT_EQ(file("/disk7/part/1/etc/hostname"), "btrfs-host\n");
	EXPECT_EQ(names("/disk7/part/1/subvol"), (V{"@", "@home", "snapshots"}));
	EXPECT_EQ(names("/disk7/part/1/subvol/snapshots"), V{"before"});
	EXPECT_EQ(file("/disk7/part/1/subvol/snapshots/before/etc/hostname"), "btrfs-old\n");
	EXPECT_EQ(file("/disk7/part/1/subvol/@home/user/notes.txt"), "user file\n");
	EXPECT_EQ(file("/disk7/part/1/subvol/@/etc/hostname"), "btrfs-host\n");
}

TEST_F(VmVolumes, CrashConsistentFilesystemsComeBackWithTheirNewestChanges)
{
	for (const char *disk : {"/disk8", "/disk9", "/disk10"}) {
		SCOPED_TRACE(disk);
		EXPECT_EQ(file(std::string(disk) + "/raw/data/version.txt"), "new\n");
		EXPECT_EQ(file(std::string(disk) + "/raw/data/newest.txt"), "written last\n");
		EXPECT_EQ(sha256Hex(file(std::string(disk) + "/raw/data/numbers")), sha256Hex(numbers()));
	}
	const std::string console = gVm->vm->console();
	EXPECT_NE(console.find("with its journal replayed into"), std::string::npos) << console;
}

// The same crash-consistent disks with the replay off (fr.replay=no, the
// path taken when the throwaway layer cannot be made): each is mounted as
// the disk holds it, its files still readable, and every response about it
// carries the warning that the newest changes may be missing. A second,
// small VM: the first keeps replaying.
TEST_F(VmVolumes, WithoutReplayTheFilesystemCarriesTheWarning)
{
	VmOptions options = gVm->vm->options();
	options.disks.clear();
	for (const char *name : {"ext4-dirty", "xfs-dirty", "btrfs-log"})
		options.disks.push_back({gVm->disks + "/" + name + ".img"});
	options.socketPath = gVm->dir / "noreplay.sock";
	options.consoleLog = gVm->dir / "noreplay-console.log";
	options.kernelArgs = std::string(abi::kCmdlineReplay) + "=no";
	Vm vm(options);
	ASSERT_TRUE(vm.start());
	Result<GuestSession> session = vm.connect(gVm->ticket);
	ASSERT_TRUE(session) << session.error().message() << "\n" << vm.console();
	// Each mounts, and its listing says what may be missing. What the
	// last clean point holds differs: xfs keeps even the data directory
	// of the last minute in its log only.
	for (const char *disk : {"/disk0", "/disk1", "/disk2"}) {
		SCOPED_TRACE(disk);
		Status ok = session->list(std::string(disk) + "/raw", [](const Entry &) noexcept { return Status{}; });
		ASSERT_TRUE(ok) << ok.error().message() << "\n" << vm.console();
		EXPECT_EQ(session->warning(), guest::kJournalWarning);
	}
	// ext4's numbers (synced before the newest changes) come back whole, the
	// extract carrying the warning too.
	std::string bytes;
	Status ok = session->extract(
		"/disk0/raw/data/numbers", proto::ExtractFormat::Raw, proto::Compression::None,
		[](const Entry &) noexcept { return Status{}; },
		[&](std::span<const std::uint8_t> chunk) noexcept {
			bytes.append(reinterpret_cast<const char *>(chunk.data()), chunk.size());
			return Status{};
		});
	ASSERT_TRUE(ok) << ok.error().message();
	EXPECT_EQ(session->warning(), guest::kJournalWarning);
	EXPECT_EQ(sha256Hex(bytes), sha256Hex(numbers()));
	EXPECT_NE(vm.console().find("WITHOUT journal replay"), std::string::npos) << vm.console();
	EXPECT_EQ(vm.console().find("with its journal replayed into"), std::string::npos) << vm.console();
	EXPECT_TRUE(session->stop());
	EXPECT_TRUE(vm.waitExit(30000)) << "QEMU did not exit after stop";
}

TEST_F(VmVolumes, HostileMetadataGivesReasonsAndTheOthersStillServe)
{
	expectReason("/disk11/raw", "no readable volume group");
	// A raid1 superblock claiming 1000 members, one present: the member
	// holds every byte of a raid1, so the array is served, degraded and
	// read-only (docs/client.md, "Volumes"); the kernel's bookkeeping for
	// 1000 slots is small and bounded.
	expectReason("/disk12/raw", "member of md array m1000");
	EXPECT_EQ(file("/md/m1000/etc/hostname"), "md-1000-host\n");
	EXPECT_EQ(sha256Hex(file("/md/m1000/data/numbers")), sha256Hex(numbers()));
	// (/disk13, absurd LUKS key derivations: the LUKS test, with a key.)
	expectReason("/disk14/raw", "ntfs");
	// Asked again: the same answer, from memory.
	expectReason("/disk14/raw", "ntfs");
	EXPECT_EQ(file("/disk0/lvm/vgtest/root/etc/hostname"), "lvm-root-host\n");
	EXPECT_EQ(file("/md/r1/etc/hostname"), "md-r1-host\n");
}

TEST_F(VmVolumes, ZfsMemberListedWithItsReason)
{
	// The disk after the built ones: listed, and asking inside says why.
	const std::string disk = "/disk" + std::to_string(kDisks.size());
	EXPECT_EQ(names(disk), V{"raw"});
	const std::string reason = reasonOf(disk, "raw");
	EXPECT_NE(reason.find("zfs_member: ZFS pool member: not supported"), std::string::npos) << reason;
	expectReason(disk + "/raw", "no ZFS module");
}

TEST_F(VmVolumes, ExfatUdfAndAHybridIso)
{
	EXPECT_EQ(file("/disk15/raw/hostname.txt"), "exfat-host\n");
	EXPECT_EQ(sha256Hex(file("/disk15/raw/numbers")), sha256Hex(numbers()));
	EXPECT_EQ(file("/disk16/raw/hostname.txt"), "udf-host\n");
	EXPECT_EQ(sha256Hex(file("/disk16/raw/numbers")), sha256Hex(numbers()));
	// iso9660 on the whole disk and in partition 1: both paths serve it.
	EXPECT_EQ(names("/disk17"), (V{"part", "raw"}));
	EXPECT_EQ(file("/disk17/part/1/hostname.txt"), "iso-host\n");
	EXPECT_EQ(file("/disk17/raw/hostname.txt"), "iso-host\n");
	EXPECT_EQ(sha256Hex(file("/disk17/raw/docs/numbers")), sha256Hex(numbers()));
}

} // namespace
} // namespace fr::test
