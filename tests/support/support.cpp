// SPDX-License-Identifier: AGPL-3.0-or-later
#include "tests/support/support.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "tests/support/test_config.h"

namespace fr::test {

namespace {

[[noreturn]] void fail(const std::string &what)
{
	throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::string variantName(Variant variant)
{
	return variant == Variant::Probe ? "probe" : "qemu";
}

// test_root must be a real directory owned by root and writable by nobody
// else: tests run as root inside it, and /var/tmp is world-writable, so a
// user could otherwise plant a symlink there.
std::string checkTestRoot()
{
	struct stat st {};
	if (::lstat(FR_TEST_ROOT, &st) != 0) {
		if (errno != ENOENT)
			return std::string("lstat(" FR_TEST_ROOT "): ") + std::strerror(errno);
		if (::mkdir(FR_TEST_ROOT, 0755) != 0 && errno != EEXIST)
			return std::string("mkdir(" FR_TEST_ROOT "): ") + std::strerror(errno);
		if (::lstat(FR_TEST_ROOT, &st) != 0)
			return std::string("lstat(" FR_TEST_ROOT "): ") + std::strerror(errno);
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0)
		return "test_root " FR_TEST_ROOT " is not a root-owned directory closed to others";
	struct statvfs vfs {};
	if (::statvfs(FR_TEST_ROOT, &vfs) != 0)
		return std::string("statvfs(" FR_TEST_ROOT "): ") + std::strerror(errno);
	if ((vfs.f_flag & ST_NOSUID) != 0)
		return "test_root " FR_TEST_ROOT " is on a nosuid filesystem (set -Dtest_root=...)";
	return {};
}

std::optional<TestUser> lookupUser(const char *name)
{
	struct passwd pw {};
	struct passwd *found = nullptr;
	std::vector<char> buf(16384);
	if (::getpwnam_r(name, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
		return std::nullopt;
	TestUser user;
	user.name = name;
	user.uid = pw.pw_uid;
	user.gid = pw.pw_gid;
	int count = 64;
	std::vector<gid_t> groups(static_cast<std::size_t>(count));
	if (::getgrouplist(name, pw.pw_gid, groups.data(), &count) < 0)
		throw std::runtime_error(std::string("getgrouplist(") + name + ")");
	groups.resize(static_cast<std::size_t>(count));
	user.groups = groups;
	return user;
}

// useradd and groupadd lock /etc/passwd; parallel test programs may collide.
void runWithRetries(const std::vector<std::string> &argv)
{
	for (int attempt = 0;; ++attempt) {
		RunResult r = runCommand(argv);
		if (r.exitCode == 0)
			return;
		// 9: the name exists (another test program was faster).
		if (r.exitCode == 9)
			return;
		if (attempt == 20)
			throw std::runtime_error(argv[0] + " failed: " + r.err);
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
	}
}

void ensureAccounts()
{
	if (::getgrnam(kExtraGroup) == nullptr)
		runWithRetries({"/usr/sbin/groupadd", "--system", kExtraGroup});
	if (!lookupUser(kTestUserName))
		runWithRetries({"/usr/sbin/useradd", "--system", "--no-create-home", "--user-group",
				"--shell", "/usr/sbin/nologin", "--groups", kExtraGroup, kTestUserName});
	if (!lookupUser(kOtherUserName))
		runWithRetries({"/usr/sbin/useradd", "--system", "--no-create-home", "--user-group",
				"--shell", "/usr/sbin/nologin", kOtherUserName});
}

TestUser requireUser(const char *name)
{
	ensureAccounts();
	std::optional<TestUser> user = lookupUser(name);
	if (!user)
		throw std::runtime_error(std::string("no user ") + name + " after useradd");
	return *user;
}

void writeAll(int fd, std::string_view data)
{
	while (!data.empty()) {
		const ssize_t n = ::write(fd, data.data(), data.size());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		data.remove_prefix(static_cast<std::size_t>(n));
	}
}

// In the forked child: moves each requested fd into place without letting
// one dup2 clobber the source of another (first everything goes above the
// highest target, then down).
void placeFds(const std::vector<std::pair<int, int>> &fds)
{
	int top = 2;
	for (const auto &[target, source] : fds)
		top = std::max(top, target);
	std::vector<int> temps;
	for (const auto &[target, source] : fds) {
		const int temp = ::fcntl(source, F_DUPFD_CLOEXEC, top + 1);
		if (temp < 0)
			::_exit(125);
		temps.push_back(temp);
	}
	for (std::size_t i = 0; i < fds.size(); ++i)
		if (::dup2(temps[i], fds[i].first) < 0)
			::_exit(125);
}

} // namespace

std::string privilegedSkipReason()
{
	if (::geteuid() != 0)
		return "needs root (installs a setuid helper and creates test users)";
	return checkTestRoot();
}

std::string vmSkipReason(const std::string &imageDir, const std::string &qemu)
{
	if (std::string why = privilegedSkipReason(); !why.empty())
		return why;
	if (::access((imageDir + "/vmlinuz").c_str(), R_OK) != 0 ||
	    ::access((imageDir + "/initramfs.img").c_str(), R_OK) != 0)
		return "no guest image in " + imageDir + " (build the guest first)";
	if (::access(qemu.c_str(), X_OK) != 0)
		return "no QEMU at " + qemu;
	return "";
}

TestUser testUser() { return requireUser(kTestUserName); }
TestUser otherTestUser() { return requireUser(kOtherUserName); }

gid_t extraGroupId()
{
	ensureAccounts();
	struct group *group = ::getgrnam(kExtraGroup);
	if (group == nullptr)
		throw std::runtime_error(std::string("no group ") + kExtraGroup);
	return group->gr_gid;
}

RunResult run(const RunOptions &options)
{
	int outPipe[2], errPipe[2], inPipe[2];
	if (::pipe2(outPipe, O_CLOEXEC) != 0 || ::pipe2(errPipe, O_CLOEXEC) != 0 ||
	    ::pipe2(inPipe, O_CLOEXEC) != 0)
		fail("pipe2");
	std::vector<std::string> argvCopy = options.argv;
	std::vector<char *> argv;
	if (!options.emptyArgv)
		for (std::string &a : argvCopy)
			argv.push_back(a.data());
	argv.push_back(nullptr);
	std::vector<std::string> envCopy = options.env;
	std::vector<char *> envp;
	for (std::string &e : envCopy)
		envp.push_back(e.data());
	envp.push_back(nullptr);

	const pid_t pid = ::fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		std::vector<std::pair<int, int>> fds = {
			{0, inPipe[0]}, {1, outPipe[1]}, {2, errPipe[1]}};
		fds.insert(fds.end(), options.fds.begin(), options.fds.end());
		placeFds(fds);
		int keepTop = 2;
		for (const auto &[target, source] : fds)
			keepTop = std::max(keepTop, target);
		// Everything else this (test) process holds must not leak into the
		// program under test: a leaked fd would hide the helper's own fd
		// hygiene.
		::close_range(static_cast<unsigned>(keepTop + 1), ~0U, 0);
		for (int fd = 3; fd <= keepTop; ++fd) {
			bool wanted = false;
			for (const auto &[target, source] : fds)
				wanted = wanted || target == fd;
			if (!wanted)
				::close(fd);
		}
		::signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		::sigprocmask(SIG_SETMASK, &none, nullptr);
		if (options.user) {
			const TestUser &u = *options.user;
			if (::setgroups(u.groups.size(), u.groups.data()) != 0 ||
			    ::setresgid(u.gid, u.gid, u.gid) != 0 || ::setresuid(u.uid, u.uid, u.uid) != 0)
				::_exit(126);
		}
		for (int fd : options.closeFds)
			::close(fd);
		if (options.beforeExec)
			options.beforeExec();
		::execve(options.path.c_str(), argv.data(), envp.data());
		::_exit(127);
	}
	::close(outPipe[1]);
	::close(errPipe[1]);
	::close(inPipe[0]);
	// stdin data is small: a pipe buffer holds it, so write it all now.
	writeAll(inPipe[1], options.stdinData);
	::close(inPipe[1]);

	RunResult result;
	const auto deadline =
		std::chrono::steady_clock::now() + std::chrono::seconds(options.timeoutSeconds);
	pollfd pfds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
	std::string *sinks[2] = {&result.out, &result.err};
	int open = 2;
	while (open > 0) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		if (left.count() <= 0) {
			result.timedOut = true;
			::kill(pid, SIGKILL);
			break;
		}
		const int n = ::poll(pfds, 2, static_cast<int>(left.count()));
		if (n < 0 && errno != EINTR)
			fail("poll");
		for (int i = 0; i < 2; ++i) {
			if (pfds[i].fd < 0 || pfds[i].revents == 0)
				continue;
			char buf[4096];
			const ssize_t got = ::read(pfds[i].fd, buf, sizeof(buf));
			if (got > 0) {
				sinks[i]->append(buf, static_cast<std::size_t>(got));
			} else if (got == 0 || errno != EINTR) {
				::close(pfds[i].fd);
				pfds[i].fd = -1;
				--open;
			}
		}
	}
	for (pollfd &p : pfds)
		if (p.fd >= 0)
			::close(p.fd);
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	if (WIFEXITED(status))
		result.exitCode = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		result.termSignal = WTERMSIG(status);
	return result;
}

RunResult runCommand(const std::vector<std::string> &argv)
{
	RunOptions options;
	options.path = argv.at(0);
	options.argv = argv;
	options.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
	return run(options);
}

void writeFile(const std::string &path, std::string_view content, mode_t mode, uid_t uid,
	       gid_t gid)
{
	::unlink(path.c_str());
	const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		fail("open(" + path + ")");
	writeAll(fd, content);
	if (::fchown(fd, uid, gid) != 0 || ::fchmod(fd, mode) != 0)
		fail("fchown/fchmod(" + path + ")");
	::close(fd);
}

std::string readFile(const std::string &path)
{
	const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open(" + path + ")");
	std::string out;
	char buf[65536];
	ssize_t n;
	while ((n = ::read(fd, buf, sizeof(buf))) > 0)
		out.append(buf, static_cast<std::size_t>(n));
	::close(fd);
	return out;
}

void makeDir(const std::string &path, mode_t mode, uid_t uid, gid_t gid)
{
	if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
		fail("mkdir(" + path + ")");
	struct stat st {};
	if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
		fail("not a directory: " + path);
	if (::chown(path.c_str(), uid, gid) != 0 || ::chmod(path.c_str(), mode) != 0)
		fail("chown/chmod(" + path + ")");
}

void removeTree(const std::string &path)
{
	struct stat st {};
	if (::lstat(path.c_str(), &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		::chmod(path.c_str(), 0700);
		if (DIR *dir = ::opendir(path.c_str())) {
			std::vector<std::string> names;
			while (dirent *entry = ::readdir(dir)) {
				const std::string name = entry->d_name;
				if (name != "." && name != "..")
					names.push_back(name);
			}
			::closedir(dir);
			for (const std::string &name : names)
				removeTree(path + "/" + name);
		}
		::rmdir(path.c_str());
	} else {
		::unlink(path.c_str());
	}
}

void copyFile(const std::string &from, const std::string &to, mode_t mode, uid_t uid, gid_t gid)
{
	writeFile(to, readFile(from), mode, uid, gid);
}

std::pair<int, int> makePipe()
{
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		fail("pipe2");
	return {fds[0], fds[1]};
}

std::string randomTicket()
{
	unsigned char bytes[32];
	if (::getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes)))
		fail("getrandom");
	std::string hex;
	for (unsigned char b : bytes) {
		char two[3];
		std::snprintf(two, sizeof(two), "%02x", b);
		hex += two;
	}
	return hex;
}

HelperInstall::HelperInstall(Variant variant)
	: variant_(variant), base_(std::string(FR_TEST_BASE) + "/" + variantName(variant)),
	  policyDir_(variant == Variant::Probe ? FR_TEST_PROBE_POLICY_DIR : FR_TEST_QEMU_POLICY_DIR)
{
	if (std::string why = privilegedSkipReason(); !why.empty())
		throw std::runtime_error(why);
	makeDir(FR_TEST_BASE);
	removeTree(base_);
	makeDir(base_);
	makeDir(base_ + "/libexec");
	makeDir(base_ + "/bin");
	makeDir(base_ + "/scratch");
	makeDir(imageDir());
	// The policy's directory: every ancestor root-owned and closed to others
	// (the helper checks that). /run is 0755 root.
	makeDir(FR_TEST_POLICY_ROOT);
	makeDir(FR_TEST_POLICY_BASE);
	removeTree(policyDir_);
	makeDir(policyDir_);

	helperPath_ = base_ + "/libexec/file-restore-helper";
	copyFile(variant == Variant::Probe ? FR_TEST_PROBE_HELPER_BUILD : FR_TEST_QEMU_HELPER_BUILD,
		 helperPath_, 04755);
	if (variant == Variant::Probe) {
		copyFile(FR_TEST_PROBE_BUILD, FR_TEST_PROBE_QEMU, 0755);
		// The probe never boots anything, but the helper reads both files
		// (the initramfs into its memfd).
		writeFile(imageDir() + "/vmlinuz", "not a kernel\n");
		writeFile(imageDir() + "/initramfs.img", "base initramfs");
	}
}

HelperInstall::~HelperInstall()
{
	removeTree(base_);
	removeTree(policyDir_);
	// The per-build directories go too once empty (rmdir fails otherwise).
	::rmdir(FR_TEST_BASE);
	::rmdir(FR_TEST_POLICY_BASE);
}

std::string HelperInstall::scratchDir() const { return base_ + "/scratch"; }

std::string HelperInstall::policyPath() const
{
	return variant_ == Variant::Probe ? FR_TEST_PROBE_POLICY : FR_TEST_QEMU_POLICY;
}

std::string HelperInstall::imageDir() const
{
	return variant_ == Variant::Probe ? FR_TEST_PROBE_IMAGE_DIR : FR_TEST_QEMU_IMAGE_DIR;
}

std::string HelperInstall::qemuBinary() const
{
	return variant_ == Variant::Probe ? FR_TEST_PROBE_QEMU : FR_TEST_QEMU_BINARY;
}

void HelperInstall::setPolicy(std::string_view text, mode_t mode, uid_t uid, gid_t gid)
{
	writeFile(policyPath(), text, mode, uid, gid);
}

void HelperInstall::removePolicy() { removeTree(policyPath()); }

void HelperInstall::installImage(const std::string &vmlinuz, const std::string &initramfs)
{
	copyFile(vmlinuz, imageDir() + "/vmlinuz", 0644);
	copyFile(initramfs, imageDir() + "/initramfs.img", 0644);
}

void setUpClientWorld(ClientWorld &w, const std::string &imageDir, const std::string &tag)
{
	w.install = std::make_unique<HelperInstall>(Variant::RealQemu);
	w.install->setPolicy("allow everyone\ntcg allow\nlimit vms 8\n");
	w.install->installImage(imageDir + "/vmlinuz", imageDir + "/initramfs.img");
	w.user = testUser();
	w.scratch = w.install->scratchDir();
	w.runtime = "/run/fr-" + tag + "-" + std::to_string(::getpid());
	removeTree(w.runtime);
	makeDir(w.runtime, 0700, w.user.uid, w.user.gid);
	w.repo = w.scratch + "/repo";
	makeDir(w.repo, 0755);
	w.targets = w.scratch + "/home";
	makeDir(w.targets, 0755, w.user.uid, w.user.gid);
}

std::string fuseSkipReason()
{
	if (::access("/dev/fuse", F_OK) != 0)
		return "no /dev/fuse on this machine (the FUSE logic is tested in mount_fs_test)";
	struct stat st {};
	if (::stat("/usr/bin/fusermount3", &st) != 0 || (st.st_mode & S_ISUID) == 0)
		return "no setuid /usr/bin/fusermount3 (Debian's fuse3)";
	return {};
}

bool isMounted(const std::string &mountpoint)
{
	return readFile("/proc/self/mountinfo").find(" " + mountpoint + " ") != std::string::npos;
}

} // namespace fr::test
