// SPDX-License-Identifier: AGPL-3.0-or-later
// End to end (suite 'vm'): the real client, run as the unprivileged test
// user, through the real helper installed setuid root (tests/support), the
// real QEMU under TCG with the serial transport, and the real guest image,
// on disk images built here without mounting anything (mkfs.ext4 -d,
// sfdisk, dd). What is listed and extracted is compared with what was put
// in. VM boots are few: one snapshot VM reused by most tests, one --image
// VM, one restart after kill -9 of QEMU, one after a corrupt state map.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>

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

const std::string kClient = FR_CLIENT_BINARY;
const std::string kImageDir = FR_GUEST_IMAGE_DIR;
const std::string kSnapshot = "vm/100/2026-11-25T10:00:00Z";
const std::string kDisk = "drive-scsi0.img";
const std::string kNonUtf8Dir = "caf\xe9";          // latin-1 "café"
const std::string kNonUtf8File = "\xff\xfe-name.txt"; // not UTF-8 at all
constexpr std::size_t kBigSize = 96U << 20;

std::string sha256(const std::string &bytes)
{
	return sha256Hex(bytes);
}

// What the tests put into the root filesystem (partition 2): path -> bytes
// ("" with a trailing '/' in the key marks a directory).
struct Tree {
	std::map<std::string, std::string> files;
	std::set<std::string> dirs;
};

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

// Everything the suite shares: the installed helper, the images, the
// user's directories. Built once (SetUpTestSuite); torn down at the end.
struct World {
	std::unique_ptr<t::HelperInstall> install;
	t::TestUser user;
	std::string scratch;
	std::string runtime; // XDG_RUNTIME_DIR
	std::string repo;
	std::string imagePath; // an ad-hoc --image (whole-disk ext4)
	std::string targets;   // user-owned, for extraction targets
	Tree tree;
	std::string bigFile;
};
World *gWorld = nullptr;
std::string gSkip;

struct Ran {
	int code = -1;
	std::string out;
	std::string err;
};

Ran runAsUser(const std::vector<std::string> &argv, const std::string &path = kClient,
	      int timeoutSeconds = 300)
{
	t::RunOptions options;
	options.path = path;
	options.argv = argv;
	options.user = gWorld->user;
	options.env = {"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + gWorld->runtime,
		       "FILE_RESTORE_HELPER=" + gWorld->install->helperPath(),
		       "FILE_RESTORE_REPOSITORY=" + gWorld->repo, "HOME=" + gWorld->targets,
		       "CLIENT=" + kClient};
	options.timeoutSeconds = timeoutSeconds;
	t::RunResult r = t::run(options);
	fr::client::test::reapExited();
	return {r.exitCode, r.out, r.err};
}

Ran client(std::vector<std::string> args)
{
	args.insert(args.begin(), "file-restore");
	return runAsUser(args);
}

Ran shellAsUser(const std::string &script, int timeoutSeconds = 300)
{
	return runAsUser({"sh", "-c", script}, "/bin/sh", timeoutSeconds);
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

void writeTree(const std::string &root, const Tree &tree)
{
	for (const std::string &dir : tree.dirs)
		t::makeDir(root + "/" + dir, dir == "etc/private" ? 0750 : 0755);
	for (const auto &[path, bytes] : tree.files)
		t::writeFile(root + "/" + path, bytes, path == "etc/shadow" ? 0600 : 0644);
}

// The snapshot's disk: GPT, partition 1 a small ext4 (boot), partition 2
// the ext4 root holding `tree`. Built with mkfs.ext4 -d and dd, never
// mounted.
void buildImages(World &w)
{
	Tree &tree = w.tree;
	tree.dirs = {"etc", "etc/ssh", "etc/private", "data", "big", kNonUtf8Dir, "deep", "deep/a",
		     "deep/a/b", "deep/a/b/c"};
	tree.files["etc/hostname"] = "restore-test\n";
	tree.files["etc/ssh/sshd_config"] = "Port 22\nPermitRootLogin no\n";
	tree.files["etc/private/key"] = "secret\n";
	tree.files["etc/shadow"] = "root:*:19000:0:99999:7:::\n";
	tree.files["data/random.bin"] = randomBytes(3U << 20, 1);
	tree.files[kNonUtf8Dir + "/" + kNonUtf8File] = "non-UTF-8 names\n";
	tree.files[kNonUtf8Dir + "/plain.txt"] = "plain\n";
	tree.files["deep/a/b/c/leaf"] = "leaf\n";
	w.bigFile = randomBytes(kBigSize, 2);
	const std::string src = w.scratch + "/src";
	t::makeDir(src, 0755);
	t::makeDir(src + "/root", 0755);
	writeTree(src + "/root", tree);
	t::writeFile(src + "/root/big/big.bin", w.bigFile, 0644);
	if (::symlink("/proc/mounts", (src + "/root/etc/mtab").c_str()) != 0)
		throw std::runtime_error("symlink");
	t::makeDir(src + "/boot", 0755);
	t::makeDir(src + "/boot/grub", 0755);
	t::writeFile(src + "/boot/grub/grub.cfg", "set timeout=0\n");

	const std::string work = w.scratch + "/work";
	t::makeDir(work, 0755);
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "boot", "-d", src + "/boot", work + "/p1.img", "16M"});
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "root", "-d", src + "/root", work + "/p2.img", "160M"});
	const std::string snapDir = w.repo + "/" + kSnapshot;
	t::makeDir(w.repo + "/vm", 0755);
	t::makeDir(w.repo + "/vm/100", 0755);
	t::makeDir(snapDir, 0755);
	const std::string disk = snapDir + "/" + kDisk;
	mustRun({"/usr/bin/truncate", "-s", "180M", disk});
	// 1 MiB alignment: p1 at 1 MiB (16 MiB), p2 at 17 MiB (160 MiB).
	mustRun({"/usr/sbin/sfdisk", "-q", disk},
		"label: gpt\nstart=2048, size=32768, name=boot\nstart=34816, size=327680, name=root\n");
	mustRun({"/usr/bin/dd", "if=" + work + "/p1.img", "of=" + disk, "bs=1M", "seek=1", "conv=notrunc",
		 "status=none"});
	mustRun({"/usr/bin/dd", "if=" + work + "/p2.img", "of=" + disk, "bs=1M", "seek=17", "conv=notrunc",
		 "status=none"});
	::chmod(disk.c_str(), 0644);
	t::writeFile(snapDir + "/index.json", "{}\n");

	// An ad-hoc image: a filesystem on the whole disk (no partition table).
	t::makeDir(src + "/adhoc", 0755);
	t::writeFile(src + "/adhoc/notes.txt", "ad-hoc image\n");
	t::makeDir(w.scratch + "/images", 0755);
	w.imagePath = w.scratch + "/images/data.img";
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "data", "-d", src + "/adhoc", w.imagePath, "16M"});
	::chmod(w.imagePath.c_str(), 0644);
}

// QEMU processes whose console log is in our runtime directory, by VM name.
std::map<std::string, pid_t> ourQemus()
{
	std::map<std::string, pid_t> out;
	DIR *proc = ::opendir("/proc");
	const std::string prefix = std::string("guest=") + abi::kQemuNamePrefix;
	while (const dirent *e = ::readdir(proc)) {
		const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
		if (pid <= 1)
			continue;
		std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
		const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
		const std::size_t at = cmdline.find(prefix);
		if (at == std::string::npos || cmdline.compare(0, 1, "-") == 0)
			continue;
		if (fdTarget(pid, 1).rfind(gWorld->runtime + "/", 0) != 0)
			continue;
		const std::string rest = cmdline.substr(at + prefix.size());
		out[rest.substr(0, rest.find_first_of(std::string(",\0", 2)))] = pid;
	}
	::closedir(proc);
	return out;
}

json statusJson()
{
	Ran r = client({"status", "--output-format", "json"});
	EXPECT_EQ(r.code, 0) << r.err;
	return json::parse(r.out, nullptr, false);
}

std::set<std::string> namesOf(const json &listing)
{
	std::set<std::string> names;
	for (const json &entry : listing)
		names.insert(entry["text"].get<std::string>());
	return names;
}

json listJson(const std::string &path, std::vector<std::string> extra = {})
{
	std::vector<std::string> args = {"list", "--output-format", "json", kSnapshot, path};
	args.insert(args.end(), extra.begin(), extra.end());
	Ran r = client(args);
	EXPECT_EQ(r.code, 0) << path << ": " << r.err;
	json doc = json::parse(r.out, nullptr, false);
	EXPECT_TRUE(doc.is_array()) << r.out;
	return doc;
}

// Reads a tar or zip (optionally compressed) with libarchive: name -> bytes
// of every regular file, and the set of directories.
Tree readArchive(const std::string &bytes)
{
	Tree tree;
	archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	archive_read_support_filter_all(a);
	EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK);
	archive_entry *e = nullptr;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		std::string name = archive_entry_pathname(e);
		while (name.starts_with("./"))
			name = name.substr(2);
		if (!name.empty() && name.back() == '/')
			name.pop_back();
		if (archive_entry_filetype(e) == AE_IFDIR) {
			tree.dirs.insert(name);
			continue;
		}
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		std::string content;
		char buf[65536];
		la_ssize_t n;
		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			content.append(buf, static_cast<std::size_t>(n));
		tree.files[name] = content;
	}
	archive_read_free(a);
	return tree;
}

// The regular files and directories below `root` on disk.
void readTree(const std::string &root, const std::string &rel, Tree &tree)
{
	DIR *dir = ::opendir((root + (rel.empty() ? "" : "/" + rel)).c_str());
	ASSERT_NE(dir, nullptr) << root << "/" << rel;
	while (const dirent *e = ::readdir(dir)) {
		const std::string name = e->d_name;
		if (name == "." || name == "..")
			continue;
		const std::string path = rel.empty() ? name : rel + "/" + name;
		struct stat st {};
		ASSERT_EQ(::lstat((root + "/" + path).c_str(), &st), 0);
		if (S_ISDIR(st.st_mode)) {
			tree.dirs.insert(path);
			readTree(root, path, tree);
		} else if (S_ISREG(st.st_mode)) {
			tree.files[path] = t::readFile(root + "/" + path);
		} else {
			tree.files[path] = "<not a regular file>";
		}
	}
	::closedir(dir);
}

// `want` restricted to the subtree `prefix`, with paths made relative.
Tree subtree(const Tree &want, const std::string &prefix)
{
	Tree out;
	for (const auto &[path, bytes] : want.files)
		if (path.starts_with(prefix + "/"))
			out.files[path.substr(prefix.size() + 1)] = bytes;
	for (const std::string &dir : want.dirs)
		if (dir.starts_with(prefix + "/"))
			out.dirs.insert(dir.substr(prefix.size() + 1));
	return out;
}

std::string userDir(const std::string &name)
{
	const std::string path = gWorld->targets + "/" + name;
	t::makeDir(path, 0755, gWorld->user.uid, gWorld->user.gid);
	return path;
}

class EndToEnd : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		fr::client::test::becomeSubreaper();
		gSkip = t::privilegedSkipReason();
		if (!gSkip.empty())
			return;
		if (::access((kImageDir + "/vmlinuz").c_str(), R_OK) != 0 ||
		    ::access((kImageDir + "/initramfs.img").c_str(), R_OK) != 0) {
			gSkip = "no guest image in " + kImageDir + " (build the guest first)";
			return;
		}
		if (::access(FR_QEMU_BINARY, X_OK) != 0) {
			gSkip = "no QEMU at " FR_QEMU_BINARY;
			return;
		}
		gWorld = new World;
		World &w = *gWorld;
		w.install = std::make_unique<t::HelperInstall>(t::Variant::RealQemu);
		w.install->setPolicy("allow everyone\ntcg allow\nlimit vms 8\n");
		w.install->installImage(kImageDir + "/vmlinuz", kImageDir + "/initramfs.img");
		w.user = t::testUser();
		w.scratch = w.install->scratchDir();
		// Short: the serial transport's socket path must fit 108 bytes (as
		// under /run/user/<uid>); test_root paths are long.
		w.runtime = "/run/fr-e2e-" + std::to_string(::getpid());
		t::removeTree(w.runtime);
		t::makeDir(w.runtime, 0700, w.user.uid, w.user.gid);
		w.repo = w.scratch + "/repo";
		t::makeDir(w.repo, 0755);
		w.targets = w.scratch + "/home";
		t::makeDir(w.targets, 0755, w.user.uid, w.user.gid);
		buildImages(w);
	}
	static void TearDownTestSuite()
	{
		if (gWorld == nullptr)
			return;
		client({"stop", "--all"});
		for (const auto &[name, pid] : ourQemus())
			::kill(pid, SIGKILL);
		::usleep(200000);
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

TEST_F(EndToEnd, ConcurrentFirstListsStartExactlyOneVm)
{
	ASSERT_TRUE(ourQemus().empty());
	const std::string out = userDir("concurrent");
	Ran r = shellAsUser("cd " + out + " && for i in 1 2 3 4 5 6 7 8; do "
			    "(\"$CLIENT\" list --output-format json '" + kSnapshot + "' /" + kDisk +
			    "/part/2/etc > out.$i 2> err.$i; echo $? > rc.$i) & done; wait");
	ASSERT_EQ(r.code, 0) << r.err;
	for (int i = 1; i <= 8; ++i) {
		const std::string n = std::to_string(i);
		EXPECT_EQ(t::readFile(out + "/rc." + n), "0\n")
			<< t::readFile(out + "/out." + n) << t::readFile(out + "/err." + n);
		const json listing = json::parse(t::readFile(out + "/out." + n), nullptr, false);
		ASSERT_TRUE(listing.is_array()) << t::readFile(out + "/err." + n);
		EXPECT_TRUE(namesOf(listing).count("hostname")) << listing.dump();
	}
	EXPECT_EQ(ourQemus().size(), 1U);
	const json status = statusJson();
	ASSERT_EQ(status.size(), 1U) << status.dump();
}

TEST_F(EndToEnd, ListsTheRootArchivesPartitionsAndDirectories)
{
	json root = listJson("/");
	ASSERT_EQ(root.size(), 1U);
	EXPECT_EQ(root[0]["text"], kDisk);
	EXPECT_EQ(root[0]["type"], "v");
	EXPECT_EQ(root[0]["filepath"], base64Encode("/" + kDisk));

	EXPECT_EQ(namesOf(listJson("/" + kDisk)), std::set<std::string>{"part"});
	EXPECT_EQ(namesOf(listJson("/" + kDisk + "/part")), (std::set<std::string>{"1", "2"}));
	EXPECT_EQ(namesOf(listJson("/" + kDisk + "/part/1/grub")), std::set<std::string>{"grub.cfg"});

	json etc = listJson("/" + kDisk + "/part/2/etc");
	EXPECT_EQ(namesOf(etc), (std::set<std::string>{"hostname", "ssh", "private", "shadow", "mtab"}));
	for (const json &entry : etc) {
		const std::string name = entry["text"];
		EXPECT_EQ(entry["filepath"], base64Encode("/" + kDisk + "/part/2/etc/" + name));
		if (name == "hostname") {
			EXPECT_EQ(entry["type"], "f");
			EXPECT_EQ(entry["leaf"], true);
			EXPECT_EQ(entry["size"], 13);
		} else if (name == "ssh") {
			EXPECT_EQ(entry["type"], "d");
			EXPECT_EQ(entry["leaf"], false);
		} else if (name == "mtab") {
			EXPECT_EQ(entry["type"], "l");
		}
	}
	// Text mode, one line per entry, the symlink's target shown.
	Ran text = client({"list", kSnapshot, "/" + kDisk + "/part/2/etc"});
	ASSERT_EQ(text.code, 0) << text.err;
	EXPECT_NE(text.out.find(" hostname\n"), std::string::npos) << text.out;
	EXPECT_NE(text.out.find("mtab -> /proc/mounts"), std::string::npos) << text.out;
}

TEST_F(EndToEnd, ListsNonUtf8NamesAlsoViaBase64)
{
	const std::string dirPath = "/" + kDisk + "/part/2/" + kNonUtf8Dir;
	json top = listJson("/" + kDisk + "/part/2");
	bool found = false;
	for (const json &entry : top)
		if (*base64Decode(entry["filepath"].get<std::string>()) == dirPath) {
			found = true;
			EXPECT_EQ(entry["text"], "caf\\xe9"); // escaped for display
		}
	EXPECT_TRUE(found) << top.dump();

	// The directory addressed by its exact bytes through --base64.
	json listing = listJson(base64Encode(dirPath), {"--base64"});
	std::set<std::string> paths;
	for (const json &entry : listing)
		paths.insert(*base64Decode(entry["filepath"].get<std::string>()));
	EXPECT_EQ(paths, (std::set<std::string>{dirPath + "/" + kNonUtf8File, dirPath + "/plain.txt"}));
	// Text mode shows no raw invalid bytes.
	Ran text = client({"list", "--base64", kSnapshot, base64Encode(dirPath)});
	ASSERT_EQ(text.code, 0) << text.err;
	EXPECT_NE(text.out.find("\\xff\\xfe-name.txt"), std::string::npos) << text.out;
	EXPECT_EQ(text.out.find('\xff'), std::string::npos);
}

TEST_F(EndToEnd, ExtractsAFileWithTheSameBytes)
{
	const std::string target = userDir("file");
	Ran r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/data/random.bin", target});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(sha256(t::readFile(target + "/random.bin")), sha256(gWorld->tree.files["data/random.bin"]));
	struct stat st {};
	ASSERT_EQ(::stat((target + "/random.bin").c_str(), &st), 0);
	EXPECT_EQ(st.st_uid, gWorld->user.uid);
	// To stdout, raw.
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/etc/hostname", "-"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "restore-test\n");
	// Never replaces what is there.
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/data/random.bin", target});
	EXPECT_EQ(r.code, 6) << r.err;
}

TEST_F(EndToEnd, ExtractsADirectoryAsTheSameTree)
{
	const std::string target = userDir("tree");
	Ran r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/etc", target});
	ASSERT_EQ(r.code, 0) << r.err;
	Tree got;
	readTree(target + "/etc", "", got);
	Tree want = subtree(gWorld->tree, "etc");
	EXPECT_EQ(got.dirs, want.dirs);
	EXPECT_EQ(got.files, want.files);
	// The symlink was skipped (not asked for) and said so.
	EXPECT_NE(r.err.find("mtab"), std::string::npos) << r.err;
	EXPECT_EQ(t::readFile(target + "/etc/private/key"), "secret\n");
	struct stat st {};
	ASSERT_EQ(::stat((target + "/etc/private").c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0750U);

	// With --symlinks the link is created as it is (and never followed).
	const std::string withLinks = userDir("links");
	r = client({"extract", "--symlinks", kSnapshot, "/" + kDisk + "/part/2/etc", withLinks});
	ASSERT_EQ(r.code, 0) << r.err;
	char buf[64] = {};
	ASSERT_GT(::readlink((withLinks + "/etc/mtab").c_str(), buf, sizeof(buf)), 0);
	EXPECT_STREQ(buf, "/proc/mounts");

	// A deep tree and non-UTF-8 names.
	const std::string deep = userDir("deep");
	r = client({"extract", "--base64", kSnapshot, base64Encode("/" + kDisk + "/part/2/" + kNonUtf8Dir), deep});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(t::readFile(deep + "/" + kNonUtf8Dir + "/" + kNonUtf8File), "non-UTF-8 names\n");
}

TEST_F(EndToEnd, ExtractsADirectoryAsTarAndZipOnStdout)
{
	const Tree want = subtree(gWorld->tree, "etc");
	for (const std::vector<std::string> &format :
	     {std::vector<std::string>{"--format", "tar"}, {"--format", "zip"}, {"--format", "tar", "--zstd"}}) {
		std::vector<std::string> args = {"extract"};
		args.insert(args.end(), format.begin(), format.end());
		args.insert(args.end(), {kSnapshot, "/" + kDisk + "/part/2/etc", "-"});
		Ran r = client(args);
		ASSERT_EQ(r.code, 0) << format[1] << ": " << r.err;
		const Tree got = readArchive(r.out);
		EXPECT_EQ(got.files, want.files) << format[1];
		for (const std::string &dir : want.dirs)
			EXPECT_TRUE(got.dirs.count(dir) || std::any_of(got.files.begin(), got.files.end(),
				[&](const auto &f) { return f.first.starts_with(dir + "/"); }))
				<< format[1] << " lacks " << dir;
	}
	if (::access("/usr/bin/zstd", X_OK) == 0) {
		Ran r = client({"extract", "--format", "tar", "--zstd", kSnapshot, "/" + kDisk + "/part/2/etc", "-"});
		EXPECT_EQ(r.out.substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4)); // zstd frame magic
	}
}

TEST_F(EndToEnd, MissingPathIsAClearError)
{
	Ran r = client({"list", kSnapshot, "/" + kDisk + "/part/2/etc/nope"});
	EXPECT_EQ(r.code, 3) << r.err;
	EXPECT_NE(r.err.find("/" + kDisk + "/part/2/etc/nope"), std::string::npos) << r.err;
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/9/x", userDir("missing")});
	EXPECT_EQ(r.code, 3) << r.err;
	r = client({"list", "--output-format", "json", kSnapshot, "/nosuch.img/part"});
	EXPECT_EQ(r.code, 3);
	EXPECT_EQ(json::parse(r.out, nullptr, false)["exit_code"], 3) << r.out;
	// Nothing partial in the target of the failed extraction.
	DIR *d = ::opendir((gWorld->targets + "/missing").c_str());
	int entries = 0;
	while (const dirent *e = ::readdir(d))
		entries += std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..";
	::closedir(d);
	EXPECT_EQ(entries, 0);
}

TEST_F(EndToEnd, KilledClientMidExtractLeavesNothingAndTheNextCallWorks)
{
	const std::string target = userDir("killed");
	ASSERT_EQ(client({"list", kSnapshot, "/" + kDisk}).code, 0);
	const std::map<std::string, pid_t> vmsBefore = ourQemus();
	// Start the big extraction, wait until its staging file is growing,
	// then SIGKILL the client.
	Ran r = shellAsUser("\"$CLIENT\" extract '" + kSnapshot + "' /" + kDisk + "/part/2/big/big.bin " + target +
			    " 2>/dev/null & pid=$!\n"
			    "for i in $(seq 1 600); do\n"
			    "  f=$(find " + target + " -path '*file-restore-tmp*' -type f -size +2M 2>/dev/null)\n"
			    "  [ -n \"$f\" ] && break; sleep 0.05\n"
			    "done\n"
			    "[ -n \"$f\" ] || { echo 'no staging file appeared'; kill -9 $pid; exit 1; }\n"
			    "kill -9 $pid; wait $pid; echo killed\n");
	ASSERT_EQ(r.code, 0) << r.out << r.err;
	ASSERT_NE(r.out.find("killed"), std::string::npos);
	// The kill left its staging directory behind (hidden) and no big.bin.
	EXPECT_FALSE(::access((target + "/big.bin").c_str(), F_OK) == 0);

	// The next call: works (the VM recovers from the abrupt disconnect) and
	// removes the leftovers.
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/etc/hostname", target});
	ASSERT_EQ(r.code, 0) << r.err;
	Tree left;
	readTree(target, "", left);
	EXPECT_TRUE(left.dirs.empty());
	EXPECT_EQ(left.files.size(), 1U);
	EXPECT_EQ(left.files["hostname"], "restore-test\n");
	// Served by the same VM: the abrupt disconnect did not cost a restart.
	EXPECT_EQ(ourQemus(), vmsBefore);

	// And the whole big file comes out intact now.
	const std::string again = userDir("big");
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/big/big.bin", again});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(sha256(t::readFile(again + "/big.bin")), sha256(gWorld->bigFile));
}

TEST_F(EndToEnd, StatusShowsTheVmsAndStopStopsOne)
{
	// A second VM, for an ad-hoc image (a filesystem on the whole disk).
	Ran r = client({"list", "--output-format", "json", "--image", gWorld->imagePath, "/data.img/raw"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_TRUE(namesOf(json::parse(r.out)).count("notes.txt")) << r.out;

	const json status = statusJson();
	ASSERT_EQ(status.size(), 2U) << status.dump();
	std::set<std::string> names;
	for (const json &vm : status) {
		names.insert(vm["name"].get<std::string>());
		EXPECT_GT(vm["pid"].get<int>(), 1);
		EXPECT_EQ(vm["transport"], "serial");
		EXPECT_EQ(vm["state"], "running") << vm.dump();
		EXPECT_TRUE(vm["idle_left"].is_number()) << vm.dump();
	}
	std::string imageName;
	for (const std::string &name : names)
		if (name.starts_with("qemu_image-"))
			imageName = name;
	ASSERT_FALSE(imageName.empty());
	Ran text = client({"status"});
	EXPECT_NE(text.out.find(imageName + "\n"), std::string::npos) << text.out;

	const pid_t imagePid = ourQemus().at(imageName);
	r = client({"stop", imageName});
	ASSERT_EQ(r.code, 0) << r.err;
	for (int i = 0; i < 100 && ourQemus().count(imageName); ++i) {
		fr::client::test::reapExited();
		::usleep(50000);
	}
	EXPECT_EQ(ourQemus().count(imageName), 0U) << "pid " << imagePid;
	EXPECT_EQ(statusJson().size(), 1U);
}

TEST_F(EndToEnd, KilledQemuIsRestartedByTheNextCall)
{
	ASSERT_EQ(client({"list", kSnapshot, "/" + kDisk}).code, 0);
	std::map<std::string, pid_t> before = ourQemus();
	ASSERT_EQ(before.size(), 1U);
	const pid_t old = before.begin()->second;
	::kill(old, SIGKILL);
	for (int i = 0; i < 100 && ourQemus().count(before.begin()->first); ++i) {
		fr::client::test::reapExited();
		::usleep(20000);
	}
	Ran r = client({"list", kSnapshot, "/" + kDisk + "/part/2/etc"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("hostname"), std::string::npos);
	std::map<std::string, pid_t> after = ourQemus();
	ASSERT_EQ(after.size(), 1U);
	EXPECT_NE(after.begin()->second, old);
}

TEST_F(EndToEnd, CorruptMapIsReportedKeptAsideAndRecoveredFrom)
{
	ASSERT_EQ(client({"list", kSnapshot, "/" + kDisk}).code, 0);
	const std::map<std::string, pid_t> before = ourQemus();
	ASSERT_EQ(before.size(), 1U);
	const std::string map = gWorld->runtime + "/file-restore/vm-map.json";
	t::writeFile(map, "{\"version\":1,\"vms\":[{\"name\":\"trunc", 0600, gWorld->user.uid, gWorld->user.gid);

	Ran r = client({"list", kSnapshot, "/" + kDisk + "/part/2/etc"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("hostname"), std::string::npos);
	EXPECT_NE(r.err.find("could not be read"), std::string::npos) << r.err;
	const std::size_t at = r.err.find("kept it as ");
	ASSERT_NE(at, std::string::npos) << r.err;
	const std::string kept = r.err.substr(at + 11, r.err.find(' ', at + 11) - at - 11);
	EXPECT_EQ(t::readFile(kept), "{\"version\":1,\"vms\":[{\"name\":\"trunc");
	// The VM the lost map listed was stopped (nobody could talk to it), and
	// a new one serves; the new map is valid.
	const std::map<std::string, pid_t> after = ourQemus();
	ASSERT_EQ(after.size(), 1U);
	EXPECT_NE(after.begin()->second, before.begin()->second);
	EXPECT_NE(r.err.find("stopped an earlier QEMU"), std::string::npos) << r.err;
	const json status = statusJson();
	ASSERT_EQ(status.size(), 1U);
	EXPECT_EQ(status[0]["state"], "running") << status.dump();
	EXPECT_EQ(status[0]["pid"], after.begin()->second);
}

} // namespace
} // namespace fr::client
