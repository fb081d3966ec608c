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
#include <sodium.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

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
// The parallel test extracts this while it lists (issue 15: 256 MiB).
constexpr std::size_t kBigSize = 256U << 20;
// A symlink's own mtime (kept by an extraction with --symlinks).
constexpr time_t kLinkMtime = 1234567890;

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

// 1 MiB of random bytes repeated, each MiB stamped with its index: cheap
// to make, and a misplaced or repeated block still shows.
std::string stampedBytes(std::size_t size, unsigned seed);

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

std::string stampedBytes(std::size_t size, unsigned seed)
{
	const std::string block = randomBytes(1U << 20, seed);
	std::string out;
	out.reserve(size);
	for (std::uint64_t i = 0; out.size() < size; ++i) {
		std::string b = block;
		std::memcpy(b.data(), &i, sizeof(i));
		out.append(b, 0, std::min(b.size(), size - out.size()));
	}
	return out;
}

// Everything the suite shares: the installed helper, the images, the
// user's directories. Built once (SetUpTestSuite); torn down at the end.
struct World : t::ClientWorld {
	std::string imagePath; // an ad-hoc --image (whole-disk ext4)
	Tree tree;
	std::string bigFile;
	bool hasXattr = false;
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
	w.bigFile = stampedBytes(kBigSize, 2);
	const std::string src = w.scratch + "/src";
	t::makeDir(src, 0755);
	t::makeDir(src + "/root", 0755);
	writeTree(src + "/root", tree);
	t::writeFile(src + "/root/big/big.bin", w.bigFile, 0644);
	if (::symlink("/proc/mounts", (src + "/root/etc/mtab").c_str()) != 0)
		throw std::runtime_error("symlink");
	const timespec linkTimes[2] = {{kLinkMtime, 0}, {kLinkMtime, 0}};
	::utimensat(AT_FDCWD, (src + "/root/etc/mtab").c_str(), linkTimes, AT_SYMLINK_NOFOLLOW);
	// An extended attribute (mkfs.ext4 -d copies them), for the mount.
	w.hasXattr = ::setxattr((src + "/root/etc/hostname").c_str(), "user.comment", "restore me", 10, 0) == 0;
	t::makeDir(src + "/boot", 0755);
	t::makeDir(src + "/boot/grub", 0755);
	t::writeFile(src + "/boot/grub/grub.cfg", "set timeout=0\n");

	const std::string work = w.scratch + "/work";
	t::makeDir(work, 0755);
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "boot", "-d", src + "/boot", work + "/p1.img", "16M"});
	mustRun({"/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "root", "-d", src + "/root", work + "/p2.img", "320M"});
	// A filesystem the guest does not support (minix): reported as such.
	mustRun({"/usr/bin/truncate", "-s", "2M", work + "/p3.img"});
	mustRun({"/usr/sbin/mkfs.minix", work + "/p3.img"});
	const std::string snapDir = w.repo + "/" + kSnapshot;
	t::makeDir(w.repo + "/vm", 0755);
	t::makeDir(w.repo + "/vm/100", 0755);
	t::makeDir(snapDir, 0755);
	const std::string disk = snapDir + "/" + kDisk;
	mustRun({"/usr/bin/truncate", "-s", "342M", disk});
	// 1 MiB alignment: p1 at 1 MiB (16 MiB), p2 at 17 MiB (320 MiB), p3 at
	// 337 MiB (2 MiB).
	mustRun({"/usr/sbin/sfdisk", "-q", disk},
		"label: gpt\nstart=2048, size=32768, name=boot\nstart=34816, size=655360, name=root\n"
		"start=690176, size=4096, name=other\n");
	mustRun({"/usr/bin/dd", "if=" + work + "/p1.img", "of=" + disk, "bs=1M", "seek=1", "conv=notrunc",
		 "status=none"});
	mustRun({"/usr/bin/dd", "if=" + work + "/p2.img", "of=" + disk, "bs=1M", "seek=17", "conv=notrunc",
		 "status=none"});
	mustRun({"/usr/bin/dd", "if=" + work + "/p3.img", "of=" + disk, "bs=1M", "seek=337", "conv=notrunc",
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

// status --output-format json: proxmox-file-restore's {"Qemu": {"ids":
// {ID: VM}}}; the VMs, in ID order.
json statusJson()
{
	Ran r = client({"status", "--output-format", "json"});
	EXPECT_EQ(r.code, 0) << r.err;
	const json doc = json::parse(r.out, nullptr, false);
	EXPECT_TRUE(doc.is_object() && doc.contains("Qemu")) << r.out;
	json vms = json::array();
	if (doc.is_object() && doc["Qemu"].contains("ids"))
		for (const auto &[id, vm] : doc["Qemu"]["ids"].items())
			vms.push_back(vm);
	return vms;
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

// The SHA-256 of a file, read in pieces (256 MiB files are compared).
std::string fileSha256(const std::string &path)
{
	crypto_hash_sha256_state state;
	crypto_hash_sha256_init(&state);
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd.isValid())
		return "unreadable: " + path;
	std::vector<unsigned char> buf(1 << 20);
	ssize_t n;
	while ((n = ::read(fd.get(), buf.data(), buf.size())) > 0)
		crypto_hash_sha256_update(&state, buf.data(), static_cast<unsigned long long>(n));
	unsigned char out[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&state, out);
	return hexEncode(std::string(reinterpret_cast<char *>(out), sizeof(out)));
}

// upstream's ArchiveEntry (pbs-datastore catalog.rs): these keys only, of
// these types; size and mtime left out when they do not apply. Ours
// besides, only when there is something to say (docs/client.md): "reason"
// (a volume or archive that cannot be opened) and "warning".
void expectArchiveEntry(const json &entry)
{
	ASSERT_TRUE(entry.is_object()) << entry.dump();
	for (const auto &[key, value] : entry.items())
		EXPECT_TRUE(key == "filepath" || key == "text" || key == "type" || key == "leaf" || key == "size" ||
			    key == "mtime" || (key == "reason" && value.is_string() && !value.get<std::string>().empty()) ||
			    (key == "warning" && value.is_string() && !value.get<std::string>().empty()))
			<< "unexpected key " << key << " in " << entry.dump();
	ASSERT_TRUE(entry["filepath"].is_string()) << entry.dump();
	EXPECT_TRUE(base64Decode(entry["filepath"].get<std::string>())) << entry.dump();
	EXPECT_TRUE(entry["text"].is_string()) << entry.dump();
	ASSERT_TRUE(entry["type"].is_string()) << entry.dump();
	const std::string type = entry["type"];
	EXPECT_TRUE(type.size() == 1 && std::string("dflhbcpsv").find(type) != std::string::npos) << entry.dump();
	EXPECT_TRUE(entry["leaf"].is_boolean()) << entry.dump();
	EXPECT_EQ(entry["leaf"].get<bool>(), type != "d" && type != "v") << entry.dump();
	if (entry.contains("size")) {
		EXPECT_TRUE(entry["size"].is_number_unsigned()) << entry.dump();
	}
	if (entry.contains("mtime")) {
		EXPECT_TRUE(entry["mtime"].is_number_integer()) << entry.dump();
	}
	if (type == "f") {
		EXPECT_TRUE(entry.contains("size") && entry.contains("mtime")) << entry.dump();
	}
}

class EndToEnd : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		fr::client::test::becomeSubreaper();
		gSkip = t::vmSkipReason(kImageDir, FR_QEMU_BINARY);
		if (!gSkip.empty())
			return;
		gWorld = new World;
		World &w = *gWorld;
		t::setUpClientWorld(w, kImageDir, "e2e");
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
	// Partition 3 holds a filesystem the guest does not support: listed
	// all the same (docs/client.md), with its size.
	const json parts = listJson("/" + kDisk + "/part");
	EXPECT_EQ(namesOf(parts), (std::set<std::string>{"1", "2", "3"}));
	for (const json &part : parts) {
		// proxmox-file-restore's partitions: directories with a size.
		EXPECT_EQ(part["type"], "d") << part.dump();
		EXPECT_EQ(part["leaf"], false);
		EXPECT_GT(part["size"].get<std::uint64_t>(), 0U) << part.dump();
		EXPECT_FALSE(part.contains("mtime")) << part.dump();
	}
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
	// In JSON, as proxmox-file-restore: the error object, exit status 0.
	r = client({"list", "--output-format", "json", kSnapshot, "/nosuch.img/part"});
	EXPECT_EQ(r.code, 0);
	EXPECT_EQ(json::parse(r.out, nullptr, false)["exit_code"], 3) << r.out;
	EXPECT_EQ(json::parse(r.out, nullptr, false)["code"], 404) << r.out;
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

TEST_F(EndToEnd, AnUnsupportedFilesystemIsReportedAsSuch)
{
	// Issue 15: it read "not found" although docs/protocol.md promises
	// Unsupported.
	Ran r = client({"list", kSnapshot, "/" + kDisk + "/part/3"});
	EXPECT_EQ(r.code, 1) << r.err;
	EXPECT_NE(r.err.find("minix"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("not supported"), std::string::npos) << r.err;
	EXPECT_EQ(r.err.find("NotFound"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("docs/client.md"), std::string::npos) << r.err; // what to do next
}

TEST_F(EndToEnd, ExtractedSymlinksKeepTheirMtime)
{
	const std::string target = userDir("symlink-mtime");
	Ran r = client({"extract", "--symlinks", kSnapshot, "/" + kDisk + "/part/2/etc", target});
	ASSERT_EQ(r.code, 0) << r.err;
	struct stat st {};
	ASSERT_EQ(::lstat((target + "/etc/mtab").c_str(), &st), 0);
	ASSERT_TRUE(S_ISLNK(st.st_mode));
	EXPECT_EQ(st.st_mtime, kLinkMtime);
}

TEST_F(EndToEnd, CallsAsTheProxmoxVeApiMakesThem)
{
	// PVE::PBSClient: "proxmox-file-restore list SNAPSHOT FILEPATH --base64
	// 0|1 --timeout 25 --output-format=json --crypt-mode=none --repository
	// REPO", then extract to a pipe, tar+zstd for directories.
	const auto list = [](const std::string &path, bool base64) {
		Ran r = client({"list", kSnapshot, base64 ? base64Encode(path) : path, "--base64", base64 ? "1" : "0",
				"--timeout", "25", "--crypt-mode=none", "--output-format=json", "--repository",
				gWorld->repo});
		EXPECT_EQ(r.code, 0) << path << ": " << r.err;
		return json::parse(r.out, nullptr, false);
	};
	const json root = list("/", false);
	ASSERT_TRUE(root.is_array()) << root.dump();
	ASSERT_EQ(root.size(), 1U);
	expectArchiveEntry(root[0]);
	EXPECT_EQ(root[0]["size"], 342U << 20); // archives carry their size
	for (const std::string &path : std::vector<std::string>{"/" + kDisk, "/" + kDisk + "/part",
								 "/" + kDisk + "/part/2", "/" + kDisk + "/part/2/etc"}) {
		const json listing = list(path, true);
		ASSERT_TRUE(listing.is_array()) << path << ": " << listing.dump();
		ASSERT_FALSE(listing.empty()) << path;
		for (const json &entry : listing) {
			expectArchiveEntry(entry);
			// The PVE UI opens what it is given: the filepath names the
			// entry below what was listed (the text is escaped for
			// display; the filepath holds the exact bytes).
			const std::string full = *base64Decode(entry["filepath"].get<std::string>());
			EXPECT_TRUE(full.starts_with(path + "/") && full.find('/', path.size() + 1) == std::string::npos)
				<< entry.dump();
		}
	}
	// A file lists as itself.
	const json file = list("/" + kDisk + "/part/2/etc/hostname", true);
	ASSERT_EQ(file.size(), 1U) << file.dump();
	EXPECT_EQ(file[0]["size"], 13);
	// An error is an object with "message" and "code", exit 0.
	const json missing = list("/" + kDisk + "/part/2/nope", true);
	ASSERT_TRUE(missing.is_object()) << missing.dump();
	EXPECT_EQ(missing["code"], 404);
	EXPECT_TRUE(missing["message"].is_string());

	// file_restore_extract: a file's bytes, a directory as tar + zstd.
	Ran r = client({"extract", kSnapshot, base64Encode("/" + kDisk + "/part/2/etc/hostname"), "-", "--base64",
			"1", "--crypt-mode=none", "--repository", gWorld->repo});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out, "restore-test\n");
	r = client({"extract", kSnapshot, base64Encode("/" + kDisk + "/part/2/etc"), "-", "--base64", "1",
		    "--format", "tar", "--zstd", "1", "--crypt-mode=none", "--repository", gWorld->repo});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out.substr(0, 4), std::string("\x28\xb5\x2f\xfd", 4));
	EXPECT_EQ(readArchive(r.out).files, subtree(gWorld->tree, "etc").files);
	// Without --format, a directory comes as zip.
	r = client({"extract", kSnapshot, "/" + kDisk + "/part/2/etc/ssh", "-"});
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(r.out.substr(0, 2), "PK");
	EXPECT_EQ(readArchive(r.out).files, subtree(gWorld->tree, "etc/ssh").files);
}

TEST_F(EndToEnd, AVmStillStartingAnswers503UntilItIsUp)
{
	// The caller polls with a short --timeout while the VM boots: each
	// call answers 503, the VM boots on, and a later call finds it up
	// (one VM, one boot).
	const auto before = ourQemus();
	Ran r;
	json answer;
	int polls = 0;
	for (; polls < 60; ++polls) {
		r = client({"list", "--output-format", "json", "--timeout", "1", "--image", gWorld->imagePath,
			    "/data.img/raw"});
		ASSERT_EQ(r.code, 0) << r.err;
		answer = json::parse(r.out, nullptr, false);
		if (answer.is_array())
			break;
		ASSERT_TRUE(answer.is_object()) << r.out;
		EXPECT_EQ(answer["code"], 503) << r.out;
		EXPECT_NE(answer["message"].get<std::string>().find("still starting"), std::string::npos) << r.out;
	}
	ASSERT_TRUE(answer.is_array()) << r.out;
	EXPECT_TRUE(namesOf(answer).count("notes.txt")) << r.out;
	EXPECT_GE(polls, 1) << "the VM answered within a second: nothing was polled";
	EXPECT_EQ(ourQemus().size(), before.size() + 1);
}

TEST_F(EndToEnd, ListingsRunBesideALongExtractAndExtractsBesideEachOther)
{
	// Issue 15: a 256 MiB extract in progress and 20 listings of the same
	// VM; the extract's reader (here) is slow until the listings are done,
	// so they really run beside it.
	const std::string dir = userDir("parallel");
	const std::string fifo = dir + "/stream";
	ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
	ASSERT_EQ(::chown(fifo.c_str(), gWorld->user.uid, gWorld->user.gid), 0);
	std::string streamHash;
	std::uint64_t streamed = 0;
	std::thread reader([&] {
		UniqueFd fd(::open(fifo.c_str(), O_RDONLY | O_CLOEXEC));
		crypto_hash_sha256_state state;
		crypto_hash_sha256_init(&state);
		std::vector<unsigned char> buf(256 << 10);
		bool flowing = false;
		ssize_t n;
		while ((n = ::read(fd.get(), buf.data(), buf.size())) > 0) {
			crypto_hash_sha256_update(&state, buf.data(), static_cast<unsigned long long>(n));
			streamed += static_cast<std::uint64_t>(n);
			if (!flowing && streamed >= (1U << 20)) {
				t::writeFile(dir + "/flowing", "", 0644);
				flowing = true;
			}
			if (::access((dir + "/lists-done").c_str(), F_OK) != 0)
				std::this_thread::sleep_for(std::chrono::milliseconds(10)); // ~25 MiB/s
		}
		unsigned char out[crypto_hash_sha256_BYTES];
		crypto_hash_sha256_final(&state, out);
		streamHash = hexEncode(std::string(reinterpret_cast<char *>(out), sizeof(out)));
	});
	Ran r = shellAsUser(
		"cd " + dir + " || exit 1\n"
		"\"$CLIENT\" extract '" + kSnapshot + "' /" + kDisk + "/part/2/big/big.bin - > stream 2> extract.err &\n"
		"pid=$!\n"
		"for i in $(seq 1 1200); do [ -e flowing ] && break; sleep 0.05; done\n"
		"for i in $(seq 1 20); do\n"
		"  s=$(date +%s%N)\n"
		"  \"$CLIENT\" list --output-format json '" + kSnapshot + "' /" + kDisk + "/part/2/etc > list.$i 2> err.$i\n"
		"  echo $? > rc.$i\n"
		"  e=$(date +%s%N); echo $(( (e - s) / 1000000 )) >> times\n"
		"done\n"
		"kill -0 $pid 2>/dev/null && echo extract-still-running\n"
		": > lists-done\n"
		"wait $pid; echo $? > extract.rc\n",
		600);
	reader.join();
	ASSERT_EQ(r.code, 0) << r.out << r.err;
	EXPECT_NE(r.out.find("extract-still-running"), std::string::npos)
		<< "the listings did not run while the extract did";
	EXPECT_EQ(t::readFile(dir + "/extract.rc"), "0\n") << t::readFile(dir + "/extract.err");
	EXPECT_EQ(streamed, kBigSize);
	EXPECT_EQ(streamHash, sha256(gWorld->bigFile));
	std::vector<long> times;
	std::istringstream in(t::readFile(dir + "/times"));
	for (long ms; in >> ms;)
		times.push_back(ms);
	ASSERT_EQ(times.size(), 20U);
	for (int i = 1; i <= 20; ++i) {
		const std::string n = std::to_string(i);
		EXPECT_EQ(t::readFile(dir + "/rc." + n), "0\n") << t::readFile(dir + "/err." + n);
		const json listing = json::parse(t::readFile(dir + "/list." + n), nullptr, false);
		EXPECT_TRUE(namesOf(listing).count("hostname")) << t::readFile(dir + "/list." + n);
		// Not queued behind the extract (it ran for many seconds more);
		// the figures are printed below; a hyperfine benchmark of them is
		// still to be written (bench/).
		EXPECT_LT(times[static_cast<std::size_t>(i - 1)], 5000) << "listing " << i;
	}
	std::sort(times.begin(), times.end());
	std::printf("20 listings beside a 256 MiB extract: median %ld ms, slowest %ld ms\n", times[10], times.back());

	// Two extracts of the same file at once: both complete and identical.
	r = shellAsUser("cd " + dir + " && mkdir a b || exit 1\n"
			"(\"$CLIENT\" extract '" + kSnapshot + "' /" + kDisk + "/part/2/big/big.bin a; echo $? > a.rc) &\n"
			"(\"$CLIENT\" extract '" + kSnapshot + "' /" + kDisk + "/part/2/big/big.bin b; echo $? > b.rc) &\n"
			"wait\n",
			600);
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_EQ(t::readFile(dir + "/a.rc"), "0\n");
	EXPECT_EQ(t::readFile(dir + "/b.rc"), "0\n");
	const std::string want = sha256(gWorld->bigFile);
	EXPECT_EQ(fileSha256(dir + "/a/big.bin"), want);
	EXPECT_EQ(fileSha256(dir + "/b/big.bin"), want);
}

TEST_F(EndToEnd, MountShowsThePartitionAsItIs)
{
	if (const std::string reason = t::fuseSkipReason(); !reason.empty())
		GTEST_SKIP() << reason;
	const std::string dir = userDir("mount");
	const std::string mnt = dir + "/mnt";
	t::makeDir(mnt, 0755, gWorld->user.uid, gWorld->user.gid);
	Ran r = shellAsUser(
		"cd " + dir + " || exit 1\n"
		"\"$CLIENT\" mount '" + kSnapshot + "' /" + kDisk + "/part/2 mnt || exit 1\n"
		"(cd mnt && find . | LC_ALL=C sort) > find.out\n"
		"mkdir copy && cp -a mnt/etc copy/ ; echo $? > cp.rc\n"
		"(cd mnt && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > sums; echo $? > sums.rc\n"
		"mkdir rsync-target && rsync -a --dry-run mnt/ rsync-target/ > rsync.out 2>&1; echo $? > rsync.rc\n"
		"stat -c %Y mnt/etc/mtab > link.mtime 2>&1\n"
		"\"$CLIENT\" umount mnt; echo $? > umount.rc\n",
		600);
	ASSERT_EQ(r.code, 0) << r.out << r.err;
	EXPECT_FALSE(t::isMounted(mnt));
	EXPECT_EQ(t::readFile(dir + "/umount.rc"), "0\n");

	// find: every name that was put in (and mkfs's lost+found).
	std::set<std::string> want = {".", "./lost+found", "./big", "./big/big.bin", "./etc/mtab"};
	for (const std::string &d : gWorld->tree.dirs)
		want.insert("./" + d);
	for (const auto &[path, bytes] : gWorld->tree.files)
		want.insert("./" + path);
	std::set<std::string> found;
	std::istringstream lines(t::readFile(dir + "/find.out"));
	for (std::string line; std::getline(lines, line);)
		found.insert(line);
	EXPECT_EQ(found, want);

	// cp -a: the same tree, modes, the symlink as a symlink with its
	// mtime, the extended attribute.
	EXPECT_EQ(t::readFile(dir + "/cp.rc"), "0\n");
	Tree copied;
	readTree(dir + "/copy/etc", "", copied);
	Tree expected = subtree(gWorld->tree, "etc");
	expected.files["mtab"] = "<not a regular file>";
	EXPECT_EQ(copied.dirs, expected.dirs);
	EXPECT_EQ(copied.files, expected.files);
	struct stat st {};
	ASSERT_EQ(::lstat((dir + "/copy/etc/private").c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0750U);
	ASSERT_EQ(::lstat((dir + "/copy/etc/mtab").c_str(), &st), 0);
	EXPECT_EQ(st.st_mtime, kLinkMtime);
	if (gWorld->hasXattr) {
		char value[64] = {};
		const ssize_t n = ::getxattr((dir + "/copy/etc/hostname").c_str(), "user.comment", value, sizeof(value));
		EXPECT_EQ(std::string(value, n > 0 ? static_cast<std::size_t>(n) : 0), "restore me");
	}

	// sha256sum over every file: the image's content, the 256 MiB file
	// included (read through read-ahead).
	EXPECT_EQ(t::readFile(dir + "/sums.rc"), "0\n");
	std::map<std::string, std::string> sums;
	std::istringstream sumLines(t::readFile(dir + "/sums"));
	for (std::string line; std::getline(sumLines, line);)
		if (line.size() > 66)
			sums[line.substr(66)] = line.substr(0, 64);
	std::map<std::string, std::string> wantSums = {{"./big/big.bin", sha256(gWorld->bigFile)}};
	for (const auto &[path, bytes] : gWorld->tree.files)
		wantSums["./" + path] = sha256(bytes);
	EXPECT_EQ(sums, wantSums);
	// rsync --dry-run walks the whole tree.
	EXPECT_EQ(t::readFile(dir + "/rsync.rc"), "0\n") << t::readFile(dir + "/rsync.out");
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
	EXPECT_EQ(r.out, imageName + ": powered off\n");
	for (int i = 0; i < 100 && ourQemus().count(imageName); ++i) {
		fr::client::test::reapExited();
		::usleep(50000);
	}
	EXPECT_EQ(ourQemus().count(imageName), 0U) << "pid " << imagePid;
	EXPECT_EQ(statusJson().size(), 1U);
}

TEST_F(EndToEnd, KilledQemuIsRestartedByTheNextCall)
{
	// With a mount on it: the mount answers EIO (no hang) and can be
	// unmounted; the next call (a mount again) starts a new VM, which the
	// mount keeps alive past its idle timeout.
	const std::string fuseSkip = t::fuseSkipReason();
	const std::string dir = userDir("killed-mount");
	t::makeDir(dir + "/mnt", 0755, gWorld->user.uid, gWorld->user.gid);
	t::makeDir(dir + "/mnt2", 0755, gWorld->user.uid, gWorld->user.gid);
	if (fuseSkip.empty()) {
		Ran r = shellAsUser("cd " + dir + " && \"$CLIENT\" mount '" + kSnapshot + "' /" + kDisk +
				    "/part/2 mnt && cat mnt/etc/hostname");
		ASSERT_EQ(r.code, 0) << r.err;
		EXPECT_EQ(r.out, "restore-test\n");
	} else {
		ASSERT_EQ(client({"list", kSnapshot, "/" + kDisk}).code, 0);
	}
	std::map<std::string, pid_t> before = ourQemus();
	ASSERT_EQ(before.size(), 1U);
	const pid_t old = before.begin()->second;
	::kill(old, SIGKILL);
	for (int i = 0; i < 100 && ourQemus().count(before.begin()->first); ++i) {
		fr::client::test::reapExited();
		::usleep(20000);
	}
	if (fuseSkip.empty()) {
		const auto start = std::chrono::steady_clock::now();
		Ran r = shellAsUser("cd " + dir + " && cat mnt/etc/ssh/sshd_config; echo \"cat=$?\"; "
				    "\"$CLIENT\" umount mnt; echo \"umount=$?\"");
		ASSERT_EQ(r.code, 0) << r.err;
		EXPECT_NE(r.err.find("Input/output error"), std::string::npos) << r.out << r.err;
		EXPECT_NE(r.out.find("cat=1"), std::string::npos) << r.out;
		EXPECT_NE(r.out.find("umount=0"), std::string::npos) << r.out << r.err;
		EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30)) << "it hung";
		EXPECT_FALSE(t::isMounted(dir + "/mnt"));

		// A new VM; with the policy's shortest idle timeout (10 s), kept
		// alive by the mount past it.
		r = shellAsUser("cd " + dir + " && \"$CLIENT\" mount --idle-timeout 10 '" + kSnapshot + "' /" + kDisk +
				"/part/2 mnt2 && sleep 14 && cat mnt2/etc/hostname && \"$CLIENT\" umount mnt2");
		ASSERT_EQ(r.code, 0) << r.out << r.err;
		EXPECT_EQ(r.out, "restore-test\n");
		std::map<std::string, pid_t> after = ourQemus();
		ASSERT_EQ(after.size(), 1U);
		EXPECT_NE(after.begin()->second, old);
		return;
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
