// SPDX-License-Identifier: AGPL-3.0-or-later
// The installed helper (root:root 4755, probe build) called as the
// unprivileged test user: every helper requirement of DESIGN.md, proven
// through what the probe (standing in for QEMU) recorded, or through the
// refusal: exit code, empty stdout, one line on stderr, no QEMU started and
// nothing left behind.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "shared/initramfs.h"
#include "tests/support/support.h"
#include "tests/support/test_config.h"

namespace fr::test {
namespace {

// What the probe wrote, parsed.
struct Record {
	std::vector<std::string> argv;
	std::map<std::string, std::string> status; // "Uid" -> "999 999 999 999"
	std::vector<std::string> env;
	std::map<int, std::string> fds;            // fd -> "mode=r cloexec=0 target=..."
	std::map<std::string, std::string> syscalls;
	std::map<std::string, std::string> opens;
	std::string sidLine;
	std::string initrdHex;
	bool complete = false;
};

std::string unescape(const std::string &s)
{
	std::string out;
	for (std::size_t i = 0; i < s.size(); ++i) {
		if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
			out += static_cast<char>(std::stoi(s.substr(i + 2, 2), nullptr, 16));
			i += 3;
		} else {
			out += s[i];
		}
	}
	return out;
}

Record parseRecord(const std::string &text)
{
	Record r;
	std::istringstream in(text);
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind("argv=", 0) == 0) {
			r.argv.push_back(unescape(line.substr(5)));
		} else if (line.rfind("env=", 0) == 0) {
			r.env.push_back(unescape(line.substr(4)));
		} else if (line.rfind("fd=", 0) == 0) {
			const std::size_t space = line.find(' ');
			r.fds[std::stoi(line.substr(3, space - 3))] = unescape(line.substr(space + 1));
		} else if (line.rfind("syscall=", 0) == 0) {
			const std::size_t space = line.find(' ');
			r.syscalls[line.substr(8, space - 8)] = line.substr(space + 8);
		} else if (line.rfind("open=", 0) == 0) {
			const std::size_t space = line.find(' ');
			r.opens[line.substr(5, space - 5)] = line.substr(space + 8);
		} else if (line.rfind("sid=", 0) == 0) {
			r.sidLine = line;
		} else if (line.rfind("content fd=4 hex=", 0) == 0) {
			r.initrdHex = line.substr(17);
		} else if (line == "end") {
			r.complete = true;
		} else if (const std::size_t colon = line.find(':'); colon != std::string::npos) {
			std::string value = line.substr(colon + 1);
			while (!value.empty() && value.front() == ' ')
				value.erase(0, 1);
			while (!value.empty() && value.back() == ' ')
				value.pop_back();
			r.status[line.substr(0, colon)] = value;
		}
	}
	return r;
}

std::string hex(const std::string &bytes)
{
	std::string out;
	for (unsigned char c : bytes) {
		char two[3];
		std::snprintf(two, sizeof(two), "%02x", c);
		out += two;
	}
	return out;
}

// Tasks (threads included, as RLIMIT_NPROC counts them) of the test user
// now, from /proc; read before the fork of the helper.
rlim_t gTestUserTasks = 0;
rlim_t kTasksOfTheTestUser() { return gTestUserTasks; }
rlim_t countTasks(uid_t uid)
{
	rlim_t tasks = 0;
	DIR *proc = ::opendir("/proc");
	while (const dirent *entry = proc ? ::readdir(proc) : nullptr) {
		if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
			continue;
		std::ifstream status(std::string("/proc/") + entry->d_name + "/status");
		std::string line;
		bool mine = false;
		while (std::getline(status, line)) {
			if (line.rfind("Uid:", 0) == 0)
				mine = std::stoul(line.substr(5)) == uid;
			if (mine && line.rfind("Threads:", 0) == 0)
				tasks += std::stoul(line.substr(8));
		}
	}
	if (proc)
		::closedir(proc);
	return tasks;
}

struct Outcome {
	RunResult run;
	std::string log;
	Record record;
	int pid = -1;
};

struct Call {
	std::vector<std::string> args;     // after "start"; defaults added for missing options
	bool rawArgs = false;              // use `args` as the whole argv tail as is
	std::optional<TestUser> user;      // default: the test user; nullopt with asRoot
	bool asRoot = false;
	std::vector<std::string> env;
	std::function<void()> beforeExec;
	std::vector<int> closeFds;
	std::vector<std::pair<int, int>> extraFds;
	std::string ticket;                // default: a fresh random one
	bool emptyArgv = false;
	std::optional<std::string> argv0;
	bool keepSocketPath = false;       // leave what the test put at the socket path
};

class Setuid : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (std::string why = privilegedSkipReason(); !why.empty())
			GTEST_SKIP() << why;
		install_ = std::make_unique<HelperInstall>(Variant::Probe);
		user_ = testUser();
		other_ = otherTestUser();
		dir_ = install_->scratchDir() + "/user";
		makeDir(dir_, 0755, user_.uid, user_.gid);
		image_ = dir_ + "/disk.raw";
		writeFile(image_, std::string(65536, '\0'), 0644, user_.uid, user_.gid);
		socket_ = dir_ + "/vm.sock";
		install_->setPolicy("allow everyone\n");
	}
	void TearDown() override
	{
		for (int pid : holding_)
			::kill(pid, SIGKILL);
		install_.reset();
	}

	bool has(const std::vector<std::string> &args, const std::string &option)
	{
		for (const std::string &a : args)
			if (a == option)
				return true;
		return false;
	}

	Outcome call(Call c)
	{
		std::vector<std::string> argv = {c.argv0.value_or(install_->helperPath())};
		if (c.rawArgs) {
			argv.insert(argv.end(), c.args.begin(), c.args.end());
		} else {
			argv.push_back("start");
			argv.insert(argv.end(), c.args.begin(), c.args.end());
			const bool vsock = [&] {
				for (std::size_t i = 0; i + 1 < c.args.size(); ++i)
					if (c.args[i] == "--transport" && c.args[i + 1] == "vsock")
						return true;
				return false;
			}();
			if (!has(c.args, "--name"))
				argv.insert(argv.end(), {"--name", "vm-1"});
			if (!has(c.args, "--transport"))
				argv.insert(argv.end(), {"--transport", "serial"});
			if (!vsock && !has(c.args, "--socket"))
				argv.insert(argv.end(), {"--socket", socket_});
			if (!has(c.args, "--ticket-fd"))
				argv.insert(argv.end(), {"--ticket-fd", "3"});
			if (!has(c.args, "--log-fd"))
				argv.insert(argv.end(), {"--log-fd", "4"});
			if (!has(c.args, "--image"))
				argv.insert(argv.end(), {"--image", "raw:" + image_});
		}
		// The socket of an earlier successful start belongs to that VM; from
		// here on, any socket is this call's.
		if (!c.keepSocketPath)
			::unlink(socket_.c_str());
		ticket_ = c.ticket.empty() ? randomTicket() : c.ticket;
		auto [ticketRead, ticketWrite] = makePipe();
		EXPECT_EQ(::write(ticketWrite, ticket_.data(), ticket_.size()), static_cast<ssize_t>(ticket_.size()));
		::close(ticketWrite);
		const std::string logPath = dir_ + "/log";
		::unlink(logPath.c_str());
		const int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		EXPECT_GE(log, 0);
		EXPECT_EQ(::fchown(log, user_.uid, user_.gid), 0);

		RunOptions options;
		options.path = install_->helperPath();
		options.argv = argv;
		options.emptyArgv = c.emptyArgv;
		options.env = c.env;
		if (!c.asRoot)
			options.user = c.user.value_or(user_);
		options.fds = {{3, ticketRead}, {4, log}};
		options.fds.insert(options.fds.end(), c.extraFds.begin(), c.extraFds.end());
		options.closeFds = c.closeFds;
		options.beforeExec = c.beforeExec;
		options.timeoutSeconds = 60;
		Outcome o;
		o.run = run(options);
		::close(ticketRead);
		::close(log);
		if (o.run.exitCode == 0 && o.run.out.rfind("{\"pid\":", 0) == 0) {
			// The probe writes its record in one go and then exits (or
			// holds): wait for "end".
			for (int i = 0; i < 500; ++i) {
				o.log = readFile(logPath);
				if (o.log.find("\nend\n") != std::string::npos)
					break;
				std::this_thread::sleep_for(std::chrono::milliseconds(20));
			}
			o.record = parseRecord(o.log);
			const std::string prefix = "{\"pid\":";
			if (o.run.out.rfind(prefix, 0) == 0)
				o.pid = std::stoi(o.run.out.substr(prefix.size()));
		} else {
			// Give a wrongly started probe time to show up.
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
			o.log = readFile(logPath);
		}
		return o;
	}

	Outcome callWith(std::vector<std::string> args)
	{
		Call c;
		c.args = std::move(args);
		return call(c);
	}

	// A refusal: the exit code, nothing on stdout, exactly one line on
	// stderr naming the problem, QEMU never started, the socket gone.
	void expectRefused(const Outcome &o, int exitCode, const std::string &message)
	{
		EXPECT_EQ(o.run.exitCode, exitCode) << o.run.err;
		EXPECT_EQ(o.run.termSignal, 0);
		EXPECT_EQ(o.run.out, "");
		EXPECT_EQ(o.run.err.rfind("file-restore-helper: ", 0), 0U) << o.run.err;
		EXPECT_EQ(std::count(o.run.err.begin(), o.run.err.end(), '\n'), 1) << o.run.err;
		EXPECT_NE(o.run.err.find(message), std::string::npos) << o.run.err;
		EXPECT_EQ(o.log, "") << "QEMU (the probe) ran";
		struct stat st {};
		EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "socket left behind";
	}

	void expectStarted(const Outcome &o)
	{
		ASSERT_EQ(o.run.exitCode, 0) << o.run.err;
		ASSERT_TRUE(o.record.complete) << o.log;
		EXPECT_GT(o.pid, 0) << o.run.out;
	}

	std::unique_ptr<HelperInstall> install_;
	TestUser user_, other_;
	std::string dir_, image_, socket_, ticket_;
	std::vector<int> holding_;
};

const std::string kSigsys = "killed:" + std::to_string(SIGSYS);

TEST_F(Setuid, SerialStartHandsQemuExactlyWhatItNeedsAndNothingElse)
{
	Outcome o = call({});
	expectStarted(o);
	EXPECT_EQ(o.run.out, "{\"pid\":" + std::to_string(o.pid) + ",\"cid\":null}\n");
	EXPECT_EQ(o.run.err, "file-restore-helper: KVM unusable (/dev/kvm cannot be opened by QEMU's user): "
			     "QEMU runs under TCG (slow)\n");
	const Record &r = o.record;
	// The caller's ids everywhere, its own groups, no capabilities.
	const std::string uid = std::to_string(user_.uid), gid = std::to_string(user_.gid);
	EXPECT_EQ(r.status.at("Uid"), uid + " " + uid + " " + uid + " " + uid);
	EXPECT_EQ(r.status.at("Gid"), gid + " " + gid + " " + gid + " " + gid);
	std::set<std::string> groups;
	std::istringstream in(r.status.at("Groups"));
	for (std::string g; in >> g;)
		groups.insert(g);
	std::set<std::string> expectedGroups;
	for (gid_t g : user_.groups)
		expectedGroups.insert(std::to_string(g));
	EXPECT_EQ(groups, expectedGroups);
	for (const char *set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
		EXPECT_EQ(r.status.at(set), "0000000000000000") << set;
	EXPECT_EQ(r.status.at("NoNewPrivs"), "1");
	EXPECT_EQ(r.status.at("Seccomp"), "2");
	EXPECT_EQ(r.status.at("SigIgn"), "0000000000000000");
	EXPECT_EQ(r.status.at("SigBlk"), "0000000000000000");
	// Its own session.
	EXPECT_EQ(r.sidLine.rfind("sid=" + std::to_string(o.pid) + " pid=" + std::to_string(o.pid), 0), 0U)
		<< r.sidLine;
	EXPECT_EQ(r.env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "LC_ALL=C"}));
	// Exactly these fds; images read-only.
	const std::map<int, std::string> fds = {
		{0, "mode=rw cloexec=0 target=/dev/null"},
		{1, "mode=w cloexec=0 target=" + dir_ + "/log"},
		{2, "mode=w cloexec=0 target=" + dir_ + "/log"},
		{3, "mode=r cloexec=0 target=" + install_->imageDir() + "/vmlinuz"},
		{4, "mode=r cloexec=0 target=/memfd:file-restore-initramfs (deleted)"},
		{6, "mode=r cloexec=0 target=" + image_},
	};
	for (const auto &[fd, what] : fds)
		EXPECT_EQ(r.fds.count(fd) ? r.fds.at(fd) : "missing", what) << "fd " << fd;
	ASSERT_EQ(r.fds.count(5), 1U);
	EXPECT_EQ(r.fds.at(5).rfind("mode=rw cloexec=0 target=socket:[", 0), 0U) << r.fds.at(5);
	EXPECT_EQ(r.fds.size(), 7U);
	// The initramfs: the base image, then the ticket archive.
	EXPECT_EQ(r.initrdHex, hex("base initramfs" + ticketArchive(ticket_, 14)));
	// The filter kills what it must and leaves unix sockets.
	for (const char *call : {"ptrace", "bpf", "mount", "unshare_user", "socket_inet", "socket_inet6",
				 "socket_netlink", "keyctl", "clone_newns", "ioctl_tiocsti",
				 "ioctl_tiocsti_highbits", "x32_getpid"})
		EXPECT_EQ(r.syscalls.at(call), kSigsys) << call;
	EXPECT_EQ(r.syscalls.at("socket_unix"), "ok");
	EXPECT_EQ(r.syscalls.at("getpid"), "ok");
	// Landlock (issue 11, finding 3): "QEMU" reads what it loads and
	// nothing else, and writes nowhere; not even the caller's own files.
	const std::string eacces = "errno:" + std::to_string(EACCES);
	EXPECT_EQ(r.opens.at("self"), "ok");
	for (const char *denied : {"passwd", "tmp-create", "log-by-path", "image-by-path"})
		EXPECT_EQ(r.opens.at(denied), eacces) << denied;
	// The caller owns the socket, mode 0600.
	struct stat st {};
	ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(st.st_uid, user_.uid);
	EXPECT_EQ(st.st_mode & 07777, 0600U);
}

TEST_F(Setuid, GoldenQemuArgvForATypicalStart)
{
	Outcome o = callWith({"--name", "qemu_backup-vm-100", "--memory", "512", "--timeout", "300",
			      "--tsc-khz", "2500000"});
	expectStarted(o);
	const std::vector<std::string> argv = o.record.argv;
	const std::vector<std::string> expected = {
		install_->qemuBinary(),
		"-name", "guest=file-restore:qemu_backup-vm-100",
		"-machine", "microvm",
		"-accel", "tcg",
		"-m", "512",
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nic", "none", "-display", "none", "-monitor", "none",
		"-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-serial", "stdio",
		"-kernel", "/proc/self/fd/3",
		"-initrd", "/proc/self/fd/4",
		"-append", "console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off "
			   "tsc_early_khz=2500000 fr.idle=300 fr.transport=serial",
		"-add-fd", "fd=6,set=0",
		"-blockdev", "{\"driver\":\"raw\",\"node-name\":\"frdisk0\",\"read-only\":true,\"file\":"
			     "{\"driver\":\"file\",\"filename\":\"/dev/fdset/0\",\"read-only\":true}}",
		"-device", "virtio-blk-device,drive=frdisk0,serial=frdisk0,scsi=off",
		"-chardev", "socket,id=frchannel,fd=5,server=on,wait=off",
		"-device", "virtio-serial-device",
		"-device", "virtserialport,chardev=frchannel,name=org.file-restore.0",
	};
	EXPECT_EQ(argv, expected);
}

TEST_F(Setuid, VsockReservesTheFirstFreeCidAndPassesTheDeviceFd)
{
	Outcome o = callWith({"--transport", "vsock", "--cid", "12"});
	expectStarted(o);
	// The simulated device answers EADDRINUSE below kProbeBusyCidsBelow.
	EXPECT_EQ(o.run.out, "{\"pid\":" + std::to_string(o.pid) + ",\"cid\":" +
				     std::to_string(kProbeBusyCidsBelow) + "}\n");
	EXPECT_EQ(o.record.argv.back(),
		  "vhost-vsock-device,guest-cid=" + std::to_string(kProbeBusyCidsBelow) + ",vhostfd=5");
	EXPECT_EQ(o.record.fds.at(5), "mode=rw cloexec=0 target=/dev/null");
	EXPECT_NE(o.record.argv[29].find("fr.transport=vsock"), std::string::npos);
	struct stat st {};
	EXPECT_NE(::lstat(socket_.c_str(), &st), 0);
}

TEST_F(Setuid, CidExhaustionIsALimit)
{
	install_->setPolicy("allow everyone\ncid-range 10 19\n");
	expectRefused(callWith({"--transport", "vsock", "--cid", "15"}), 4, "no free CID in 10..19");
}

TEST_F(Setuid, ArgcZeroAndEmptyArgv0AreRefused)
{
	// Since Linux 5.18 the kernel turns argc == 0 into argv = {""}: both
	// reach the helper as an empty argv[0].
	Call zero;
	zero.emptyArgv = true;
	expectRefused(call(zero), 2, "argv(): argv[0] missing or empty");
	Call empty;
	empty.argv0 = "";
	expectRefused(call(empty), 2, "argv[0] missing or empty");
	// Nothing is derived from argv[0] either.
	Call other;
	other.argv0 = "/usr/bin/qemu-system-x86_64";
	expectStarted(call(other));
}

TEST_F(Setuid, HostileEnvironmentNeitherReachesTheHelperNorQemu)
{
	const std::string lib = dir_ + "/marker.so";
	copyFile(FR_TEST_PRELOAD_MARKER, lib, 0755);
	const std::string marker = dir_ + "/marker-created";
	makeDir(dir_ + "/gconv", 0755, user_.uid, user_.gid);
	const std::vector<std::string> env = {
		"LD_PRELOAD=" + lib, "LD_LIBRARY_PATH=" + dir_, "FR_PRELOAD_MARKER=" + marker,
		"GCONV_PATH=" + dir_ + "/gconv", "CHARSET=../../../../" + dir_ + "/gconv/x",
		"GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=A", "LANG=de_DE.UTF-8",
		"LC_ALL=tr_TR.UTF-8", "LANGUAGE=de", "POSIXLY_CORRECT=1", "PATH=" + dir_,
		"IFS=/", "TMPDIR=" + dir_, "MALLOC_CHECK_=3", "HOME=" + dir_,
	};
	// Control: the marker library works for an ordinary program.
	RunOptions control;
	control.path = "/bin/true";
	control.argv = {"true"};
	control.env = env;
	control.user = user_;
	ASSERT_EQ(run(control).exitCode, 0);
	struct stat st {};
	ASSERT_EQ(::lstat(marker.c_str(), &st), 0) << "the marker library did not load for /bin/true";
	ASSERT_EQ(::unlink(marker.c_str()), 0);

	Call c;
	c.env = env;
	Outcome o = call(c);
	expectStarted(o);
	EXPECT_NE(::lstat(marker.c_str(), &st), 0) << "LD_PRELOAD ran in the setuid helper or in QEMU";
	EXPECT_EQ(o.record.env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "LC_ALL=C"}));
	// POSIXLY_CORRECT changes nothing in the grammar; errors stay English.
	Call bad;
	bad.env = env;
	bad.args = {"--memory", "lots"};
	expectRefused(call(bad), 2, "--memory(lots): must be a decimal integer from 64 to 65536");
}

TEST_F(Setuid, ClosedStandardFdsAreRefused)
{
	for (int fd : {0, 1, 2}) {
		Call c;
		c.closeFds = {fd};
		Outcome o = call(c);
		EXPECT_EQ(o.run.exitCode, 1) << "fd " << fd << " closed: " << o.run.err;
		EXPECT_EQ(o.run.out, "") << fd;
		EXPECT_EQ(o.log, "") << fd;
		// glibc puts a wrong-mode /dev/full or /dev/null on a closed
		// standard fd of a setuid program; the helper refuses those too.
		if (fd != 2) {
			EXPECT_NE(o.run.err.find("fd(" + std::to_string(fd) + "): closed or opened with the wrong access mode"),
				  std::string::npos) << o.run.err;
		}
		struct stat st {};
		EXPECT_NE(::lstat(socket_.c_str(), &st), 0);
	}
}

TEST_F(Setuid, LeakedFdsNeverReachQemu)
{
	auto [r1, w1] = makePipe();
	const int secret = ::open("/etc/shadow", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(secret, 0);
	Call c;
	c.extraFds = {{5, r1}, {7, w1}, {9, secret}, {100, secret}};
	Outcome o = call(c);
	::close(r1);
	::close(w1);
	::close(secret);
	expectStarted(o);
	EXPECT_EQ(o.record.fds.size(), 7U);
	for (const auto &[fd, what] : o.record.fds)
		EXPECT_EQ(what.find("shadow"), std::string::npos) << fd << " " << what;
	EXPECT_EQ(o.record.fds.at(5).find("pipe"), std::string::npos);
}

TEST_F(Setuid, IgnoredAndBlockedSignalsAreReset)
{
	Call c;
	c.beforeExec = [] {
		for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGXFSZ, SIGUSR1})
			::signal(sig, SIG_IGN);
		sigset_t blocked;
		sigemptyset(&blocked);
		for (int sig : {SIGTERM, SIGINT, SIGCHLD, SIGUSR2, SIGALRM})
			sigaddset(&blocked, sig);
		::sigprocmask(SIG_BLOCK, &blocked, nullptr);
	};
	Outcome o = call(c);
	expectStarted(o);
	EXPECT_EQ(o.record.status.at("SigIgn"), "0000000000000000");
	EXPECT_EQ(o.record.status.at("SigBlk"), "0000000000000000");
}

TEST_F(Setuid, LowRlimitsFailCleanly)
{
	struct Case {
		const char *name;
		int resource;
		rlim_t value;
		int exitCode;
		const char *message;
	};
	const Case cases[] = {
		// Not even the policy can be read: any doubt about it denies.
		{"RLIMIT_NOFILE", RLIMIT_NOFILE, 6, 3, "Too many open files"},
		// The initramfs copy hits the file size limit: EFBIG, not SIGXFSZ.
		{"RLIMIT_FSIZE", RLIMIT_FSIZE, 100, 1, "write(initramfs memfd): File too large"},
	};
	for (const Case &k : cases) {
		SCOPED_TRACE(k.name);
		Call c;
		const int resource = k.resource;
		const rlim_t value = k.value;
		c.beforeExec = [resource, value] {
			const rlimit limit{value, value};
			::setrlimit(static_cast<__rlimit_resource>(resource), &limit);
		};
		expectRefused(call(c), k.exitCode, k.message);
	}
	// RLIMIT_NPROC (issue 11): the helper forks QEMU as root, which the
	// kernel does not count against the caller's limit; the caller agent
	// must be able to fork as the caller first. The caller runs the helper
	// and the agent: two processes; the agent's probe and QEMU are a third.
	for (const rlim_t nproc : {rlim_t{0}, rlim_t{1}, rlim_t{2}}) {
		SCOPED_TRACE(nproc);
		Call c;
		c.beforeExec = [nproc] {
			const rlimit limit{nproc, nproc};
			::setrlimit(RLIMIT_NPROC, &limit);
		};
		expectRefused(call(c), 4, "processes(RLIMIT_NPROC): the caller may not start another process");
	}
	gTestUserTasks = countTasks(user_.uid);
	Call enough;
	enough.beforeExec = [] {
		const rlimit limit{3 + kTasksOfTheTestUser(), 3 + kTasksOfTheTestUser()};
		::setrlimit(RLIMIT_NPROC, &limit);
	};
	expectStarted(call(enough));
}

bool markerRunning(const std::string &name)
{
	const std::string needle = std::string("guest=file-restore:") + name;
	DIR *proc = ::opendir("/proc");
	bool found = false;
	while (const dirent *entry = proc ? ::readdir(proc) : nullptr) {
		if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
			continue;
		const int fd = ::open(("/proc/" + std::string(entry->d_name) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		char buf[8192];
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		::close(fd);
		if (n > 0 && std::string(buf, static_cast<std::size_t>(n)).find(needle + std::string(1, '\0')) != std::string::npos)
			found = true;
	}
	if (proc)
		::closedir(proc);
	return found;
}

TEST_F(Setuid, UnreportableStartIsUndone)
{
	// stdout is a pipe nobody reads: the JSON line cannot be delivered, so
	// the helper must stop the QEMU it started (it would run unknown).
	auto [readEnd, writeEnd] = makePipe();
	::close(readEnd);
	Call c;
	c.args = {"--name", "hold-unreported"};
	c.extraFds = {{1, writeEnd}};
	Outcome o = call(c);
	::close(writeEnd);
	EXPECT_EQ(o.run.exitCode, 1) << o.run.err;
	EXPECT_NE(o.run.err.find("write(stdout): Broken pipe"), std::string::npos) << o.run.err;
	EXPECT_FALSE(markerRunning("hold-unreported"));
}

TEST_F(Setuid, ArgumentCountLengthDuplicatesAndNumbers)
{
	std::vector<std::string> many;
	for (int i = 0; i < 100; ++i)
		many.insert(many.end(), {"--image", "raw:" + image_});
	expectRefused(callWith(many), 2, "more than 160 arguments");
	expectRefused(callWith({"--name", std::string(5000, 'a')}), 2, "argument longer than 4200 bytes");
	expectRefused(callWith({"--name", std::string(256, 'a')}), 2, "longer than 255 bytes");
	expectRefused(callWith({"--name", "a", "--name", "b"}), 2, "usage(--name): option given twice");
	expectRefused(callWith({"--nam", "a"}), 2, "usage(--nam): unknown option");
	expectRefused(callWith({"--name=a", "a"}), 2, "usage(--name=a): unknown option");
	for (const char *bad : {"+256", "-1", "0x100", "0256", "256k", "99999999999999999999", "18446744073709551616"})
		expectRefused(callWith({"--memory", bad}), 2, std::string("--memory(") + bad + ")");
	expectRefused(callWith({"--ticket-fd", "0x3"}), 2, "--ticket-fd(0x3)");
	expectRefused(callWith({"--transport", "vsock", "--cid", "4294967296"}), 2, "--cid(4294967296)");
	expectRefused(callWith({"--timeout", "-5"}), 2, "--timeout(-5)");
	Call nothing;
	nothing.rawArgs = true;
	expectRefused(call(nothing), 2, "usage(): file-restore-helper start");
}

TEST_F(Setuid, NoQemuSyntaxFromAnyArgument)
{
	expectRefused(callWith({"--name", "vm,debug-threads=on"}), 2, "--name(vm,debug-threads=on): byte \\x2c");
	expectRefused(callWith({"--name", "a=b"}), 2, "--name(a=b)");
	expectRefused(callWith({"--socket", dir_ + "/a,server=off.sock"}), 2, "--socket(");
	expectRefused(callWith({"--transport", "serial,x"}), 2, "--transport(serial,x): must be vsock or serial");
	expectRefused(callWith({"--image", "raw,file.locking=off:" + image_}), 2, "--image(");
	// A file name full of QEMU syntax is fine: it never reaches the command line.
	const std::string tricky = dir_ + "/a,b=c,format=qcow2,file=x.img";
	writeFile(tricky, std::string(4096, '\0'), 0644, user_.uid, user_.gid);
	Outcome o = callWith({"--image", "raw:" + tricky});
	expectStarted(o);
	for (const std::string &arg : o.record.argv)
		EXPECT_EQ(arg.find("format=qcow2"), std::string::npos) << arg;
	EXPECT_EQ(o.record.fds.at(6), "mode=r cloexec=0 target=" + tricky);
}

TEST_F(Setuid, ImagesThatMustNotBeOpened)
{
	const std::string secret = dir_ + "/other-users.img";
	writeFile(secret, "secret", 0600, other_.uid, other_.gid);
	ASSERT_EQ(::symlink(image_.c_str(), (dir_ + "/link.img").c_str()), 0);
	ASSERT_EQ(::mkfifo((dir_ + "/fifo.img").c_str(), 0666), 0);
	ASSERT_EQ(::mknod((dir_ + "/null.img").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
	makeDir(dir_ + "/dir.img", 0755, user_.uid, user_.gid);
	struct Case {
		std::string path;
		int exitCode;
		std::string message;
	};
	const Case cases[] = {
		{dir_ + "/link.img", 3, "open(" + dir_ + "/link.img): Too many levels of symbolic links"},
		{dir_ + "/fifo.img", 3, "not a regular file"},
		{dir_ + "/null.img", 3, "not a regular file"},
		{dir_ + "/dir.img", 3, "not a regular file"},
		{"/proc/self/fd/3", 3, "Too many levels of symbolic links"},
		{"/proc/1/root/etc/shadow", 3, ""},
		{"/etc/shadow", 3, "Permission denied"},
		{secret, 3, "open(" + secret + "): Permission denied"},
		{dir_ + "/missing.img", 1, "No such file or directory"},
		{dir_ + "/../user/disk.raw", 2, "'.' or '..' path component"},
		{"relative.img", 2, "must be an absolute path"},
	};
	for (const Case &k : cases) {
		SCOPED_TRACE(k.path);
		const auto start = std::chrono::steady_clock::now();
		expectRefused(callWith({"--image", "raw:" + k.path}), k.exitCode, k.message);
		EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
	}
	// Only the first bad image matters: nothing opened earlier leaks either.
	expectRefused(callWith({"--image", "raw:" + image_, "--image", "raw:" + secret}), 3, "Permission denied");
}

// Finding 1 of the outside attack (issue 11): images were opened "as the
// caller" with setfsuid() alone, so the effective uid stayed 0 and root's
// CAP_SYS_PTRACE, CAP_SYSLOG and CAP_SYS_ADMIN still applied to the open.
// /proc/kallsyms then gave real kernel addresses (the caller reading it
// directly sees zeros), and /proc/<pid>/maps of root's and other users'
// processes opened too; the fd lived on in a QEMU the caller can ptrace.
// Kernel filesystems are never disk images: refused whoever could open them.
TEST_F(Setuid, KernelFilesystemsAreNeverImages)
{
	// A process of another user, whose memory map is none of ours.
	const pid_t other = ::fork();
	ASSERT_GE(other, 0);
	if (other == 0) {
		if (::setresgid(other_.gid, other_.gid, other_.gid) != 0 ||
		    ::setresuid(other_.uid, other_.uid, other_.uid) != 0)
			::_exit(1);
		for (;;)
			::pause();
	}
	// A root-owned, world-readable regular file on devtmpfs.
	const std::string onDevtmpfs = "/dev/fr-test-image-" + std::to_string(::getpid());
	writeFile(onDevtmpfs, std::string(4096, '\0'), 0644);
	std::vector<std::string> paths = {
		"/proc/kallsyms", "/proc/iomem", "/proc/1/maps", "/proc/" + std::to_string(other) + "/maps",
		"/proc/sys/kernel/randomize_va_space", "/proc/sys/kernel/kptr_restrict", "/proc/self/status",
		"/sys/kernel/notes", onDevtmpfs,
	};
	// Whatever cgroup file system this machine mounts (v1 or v2).
	for (const char *candidate : {"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers",
				      "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/memory/memory.usage_in_bytes"})
	{
		if (::access(candidate, R_OK) == 0) {
			paths.emplace_back(candidate);
			break;
		}
	}
	for (const char *candidate : {"/sys/kernel/security/lsm", "/sys/kernel/debug/sched/features"}) {
		if (::access(candidate, R_OK) == 0)
			paths.emplace_back(candidate);
	}
	for (const std::string &path : paths) {
		SCOPED_TRACE(path);
		struct stat st {};
		if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		expectRefused(callWith({"--image", "raw:" + path}), 3, path);
	}
	::kill(other, SIGKILL);
	::waitpid(other, nullptr, 0);
	::unlink(onDevtmpfs.c_str());
}

// Finding 2 of the outside attack (issue 11), the helper's half: a VMDK
// text descriptor ("RW 8 FLAT \"/etc/passwd\" 0") makes QEMU open any file
// the caller can read and show it to the guest. Each image must be what its
// format says and must not make QEMU open another file by name.
TEST_F(Setuid, ImageHeadersThatNameOtherFilesAreRefused)
{
	auto qemuImg = [this](std::vector<std::string> args) {
		args.insert(args.begin(), "/usr/bin/qemu-img");
		RunResult r = runCommand(args);
		ASSERT_EQ(r.exitCode, 0) << r.err;
		DIR *d = ::opendir(dir_.c_str());
		while (const dirent *e = ::readdir(d)) {
			if (e->d_name[0] != '.') {
				EXPECT_EQ(::chown((dir_ + "/" + e->d_name).c_str(), user_.uid, user_.gid), 0);
			}
		}
		::closedir(d);
	};
	const std::string descriptor = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
				       "createType=\"monolithicFlat\"\n\nRW 8 FLAT \"/etc/passwd\" 0\n";
	writeFile(dir_ + "/descriptor.vmdk", descriptor, 0644, user_.uid, user_.gid);
	qemuImg({"create", "-q", "-f", "vmdk", dir_ + "/sparse.vmdk", "16M"});
	qemuImg({"create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", dir_ + "/stream.vmdk", "16M"});
	qemuImg({"create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", dir_ + "/split.vmdk", "16M"});
	qemuImg({"create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", dir_ + "/flat.vmdk", "16M"});
	qemuImg({"create", "-q", "-f", "vdi", dir_ + "/plain.vdi", "16M"});
	qemuImg({"create", "-q", "-f", "vhdx", dir_ + "/plain.vhdx", "16M"});
	for (const char *ok : {"vmdk:sparse.vmdk", "vmdk:stream.vmdk", "vdi:plain.vdi", "vhdx:plain.vhdx"}) {
		SCOPED_TRACE(ok);
		const std::string arg(ok);
		const std::string format = arg.substr(0, arg.find(':'));
		Outcome o = callWith({"--image", format + ":" + dir_ + "/" + arg.substr(arg.find(':') + 1)});
		expectStarted(o);
		bool explicitDriver = false;
		for (const std::string &a : o.record.argv)
			explicitDriver = explicitDriver || a.find("{\"driver\":\"" + format + "\"") == 0;
		EXPECT_TRUE(explicitDriver);
	}
	expectRefused(callWith({"--image", "vmdk:" + dir_ + "/descriptor.vmdk"}), 3, "text descriptor");
	expectRefused(callWith({"--image", "vmdk:" + dir_ + "/split.vmdk"}), 3, "text descriptor");
	expectRefused(callWith({"--image", "vmdk:" + dir_ + "/flat.vmdk"}), 3, "text descriptor");
	// A binary sparse header whose capacity is 0 makes QEMU read its
	// embedded descriptor as a text descriptor, extents and all.
	std::string zeroCapacity = readFile(dir_ + "/sparse.vmdk").substr(0, 65536);
	zeroCapacity.replace(12, 8, std::string(8, '\0'));
	writeFile(dir_ + "/zero.vmdk", zeroCapacity, 0644, user_.uid, user_.gid);
	expectRefused(callWith({"--image", "vmdk:" + dir_ + "/zero.vmdk"}), 3, "capacity");
	// An ESX "COWD" extent belongs to a descriptor.
	writeFile(dir_ + "/cowd.vmdk", std::string("COWD") + std::string(4092, '\0'), 0644, user_.uid, user_.gid);
	expectRefused(callWith({"--image", "vmdk:" + dir_ + "/cowd.vmdk"}), 3, "COWD");
	// A differencing VDI (image type 4) and a VHDX with a parent.
	std::string diffVdi = readFile(dir_ + "/plain.vdi");
	diffVdi[0x4c] = 4;
	writeFile(dir_ + "/diff.vdi", diffVdi, 0644, user_.uid, user_.gid);
	expectRefused(callWith({"--image", "vdi:" + dir_ + "/diff.vdi"}), 3, "differencing");
	// The names say which format; the content must agree.
	expectRefused(callWith({"--image", "vdi:" + image_}), 3, "not a vdi image");
	expectRefused(callWith({"--image", "vhdx:" + image_}), 3, "not a vhdx image");
	expectRefused(callWith({"--image", "vmdk:" + image_}), 3, "");
	// As raw, the descriptor is only bytes: QEMU reads it as a disk.
	Outcome raw = callWith({"--image", "raw:" + dir_ + "/descriptor.vmdk"});
	expectStarted(raw);
	for (const std::string &a : raw.record.argv)
		EXPECT_EQ(a.find("\"driver\":\"vmdk\""), std::string::npos) << a;
}

TEST_F(Setuid, PolicyGrantedImageDirectory)
{
	const std::string store = install_->scratchDir() + "/store";
	makeDir(store, 0700, other_.uid, other_.gid);
	writeFile(store + "/vm.img", "x", 0600, other_.uid, other_.gid);
	ASSERT_EQ(::symlink("/etc/shadow", (store + "/escape.img").c_str()), 0);
	install_->setPolicy("allow everyone\nimage-dir " + store + " user " + kTestUserName + "\n");
	Outcome o = callWith({"--image", "raw:" + store + "/vm.img"});
	expectStarted(o);
	EXPECT_EQ(o.record.fds.at(6), "mode=r cloexec=0 target=" + store + "/vm.img");
	expectRefused(callWith({"--image", "raw:" + store + "/escape.img"}), 3, "Too many levels of symbolic links");
	// Granted to someone else: the caller's own identity applies.
	install_->setPolicy("allow everyone\nimage-dir " + store + " user " + kOtherUserName + "\n");
	expectRefused(callWith({"--image", "raw:" + store + "/vm.img"}), 3, "Permission denied");
	install_->setPolicy("allow everyone\nimage-dir " + store + " group " + kExtraGroup + "\n");
	expectStarted(callWith({"--image", "raw:" + store + "/vm.img"}));
}

TEST_F(Setuid, UntrustworthyPolicyDeniesEverything)
{
	const std::string policy = install_->policyPath();
	struct Case {
		const char *name;
		std::function<void()> make;
		const char *message;
	};
	const Case cases[] = {
		{"wrong owner", [&] { writeFile(policy, "allow everyone\n", 0644, user_.uid, user_.gid); }, "not owned by root"},
		{"group-writable", [&] { writeFile(policy, "allow everyone\n", 0664); }, "writable by group or others"},
		{"world-writable", [&] { writeFile(policy, "allow everyone\n", 0666); }, "writable by group or others"},
		{"writable directory", [&] {
			 writeFile(policy, "allow everyone\n", 0644);
			 ASSERT_EQ(::chmod(FR_TEST_PROBE_POLICY_DIR, 0777), 0);
		 }, "writable by group or others"},
		{"symlink", [&] {
			 writeFile(std::string(FR_TEST_PROBE_POLICY_DIR) + "/real.conf", "allow everyone\n", 0644);
			 ::unlink(policy.c_str());
			 ASSERT_EQ(::symlink("real.conf", policy.c_str()), 0);
		 }, "is a symlink or not a directory"},
		{"too large", [&] { writeFile(policy, std::string(70000, '#'), 0644); }, "larger than 65536 bytes"},
		{"parse error", [&] { writeFile(policy, "allow everyone\nallow nobody at all\n", 0644); }, "policy(line 2)"},
		{"unknown user", [&] { writeFile(policy, "allow user fr-no-such-user\n", 0644); }, "unknown user"},
		{"not allowed", [&] { writeFile(policy, std::string("allow user ") + kOtherUserName + "\n", 0644); },
		 "may not use file-restore-helper"},
	};
	for (const Case &k : cases) {
		SCOPED_TRACE(k.name);
		ASSERT_EQ(::chmod(FR_TEST_PROBE_POLICY_DIR, 0755), 0);
		::unlink((std::string(FR_TEST_PROBE_POLICY_DIR) + "/real.conf").c_str());
		::unlink(policy.c_str());
		k.make();
		expectRefused(call({}), 3, k.message);
	}
	ASSERT_EQ(::chmod(FR_TEST_PROBE_POLICY_DIR, 0755), 0);
	// Allowed through a supplementary group; and no policy at all: defaults.
	install_->setPolicy(std::string("allow group ") + kExtraGroup + "\n");
	expectStarted(call({}));
	// No policy file: only root may use the helper (issue 11), and the
	// message says where the policy belongs and where it is explained.
	install_->removePolicy();
	expectRefused(call({}), 3, "policy(" + install_->policyPath() +
					   "): missing: only root may use the helper without one (see "
					   "docs/helper-policy.md)");
}

TEST_F(Setuid, Qcow2ImagesAreCheckedFromTheFd)
{
	auto qemuImg = [](std::vector<std::string> args) {
		args.insert(args.begin(), "/usr/bin/qemu-img");
		RunResult r = runCommand(args);
		ASSERT_EQ(r.exitCode, 0) << r.err;
	};
	qemuImg({"create", "-q", "-f", "qcow2", dir_ + "/plain.qcow2", "16M"});
	qemuImg({"create", "-q", "-f", "qcow2", "-b", image_, "-F", "raw", dir_ + "/overlay.qcow2"});
	qemuImg({"create", "-q", "-f", "qcow2", "-o", "data_file=" + dir_ + "/data.raw", dir_ + "/ext.qcow2", "16M"});
	for (const char *f : {"plain.qcow2", "overlay.qcow2", "ext.qcow2", "data.raw"})
		ASSERT_EQ(::chown((dir_ + "/" + f).c_str(), user_.uid, user_.gid), 0);
	Outcome o = callWith({"--image", "qcow2:" + dir_ + "/plain.qcow2"});
	expectStarted(o);
	bool backingNull = false;
	for (const std::string &a : o.record.argv)
		backingNull = backingNull || (a.find("\"driver\":\"qcow2\"") != std::string::npos &&
					      a.find("\"backing\":null") != std::string::npos);
	EXPECT_TRUE(backingNull);
	expectRefused(callWith({"--image", "qcow2:" + dir_ + "/overlay.qcow2"}), 3, "has a backing file");
	expectRefused(callWith({"--image", "qcow2:" + dir_ + "/ext.qcow2"}), 3, "uses an external data file");
	expectRefused(callWith({"--image", "qcow2:" + image_}), 3, "not a qcow2 image");
}

TEST_F(Setuid, LimitsFromThePolicy)
{
	install_->setPolicy("allow everyone\nlimit memory 512\nlimit disks 1\nlimit timeout 60 120\nlimit vms 1\n");
	expectRefused(callWith({"--memory", "1024"}), 4, "--memory(1024): above the limit of 512 MiB");
	expectRefused(callWith({"--image", "raw:" + image_, "--image", "raw:" + image_}), 4, "more than 1 images");
	expectRefused(callWith({"--timeout", "30"}), 4, "--timeout(30): outside the allowed 60..120 seconds");
	// Without --timeout the default is clamped into the range.
	Outcome held = callWith({"--name", "hold-1", "--memory", "512"});
	expectStarted(held);
	holding_.push_back(held.pid);
	EXPECT_NE(held.record.argv[29].find("fr.idle=120"), std::string::npos) << held.record.argv[29];
	expectRefused(callWith({"--name", "vm-2"}), 4, "vms(): 1 VMs already running");
	// Another user's VMs do not count.
	::kill(held.pid, SIGKILL);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	expectStarted(callWith({"--name", "vm-3"}));
}

TEST_F(Setuid, TcgCanBeDenied)
{
	if (::access("/dev/kvm", F_OK) == 0)
		GTEST_SKIP() << "this machine has /dev/kvm";
	install_->setPolicy("allow everyone\ntcg deny\n");
	expectRefused(call({}), 3, "policy(tcg): no usable /dev/kvm and TCG is denied");
}

TEST_F(Setuid, RootCallerRunsQemuAsThePolicyUser)
{
	install_->setPolicy(std::string("qemu-user ") + kOtherUserName + "\n");
	Call c;
	c.asRoot = true;
	Outcome o = call(c);
	expectStarted(o);
	const std::string uid = std::to_string(other_.uid);
	EXPECT_EQ(o.record.status.at("Uid"), uid + " " + uid + " " + uid + " " + uid);
	EXPECT_EQ(o.record.status.at("CapBnd"), "0000000000000000");
	EXPECT_EQ(o.record.status.at("CapPrm"), "0000000000000000");
	// No policy: nobody.
	install_->removePolicy();
	::unlink(socket_.c_str());
	Outcome d = call(c);
	expectStarted(d);
	EXPECT_EQ(d.record.status.at("Uid").substr(0, 6), "65534 ");
	// By number.
	install_->setPolicy("qemu-user " + std::to_string(other_.uid) + "\n");
	::unlink(socket_.c_str());
	Outcome n = call(c);
	expectStarted(n);
	EXPECT_EQ(n.record.status.at("Uid"), uid + " " + uid + " " + uid + " " + uid);
	install_->setPolicy("qemu-user fr-no-such-user\n");
	::unlink(socket_.c_str());
	expectRefused(call(c), 3, "qemu-user(fr-no-such-user): no such user");
}

TEST_F(Setuid, TicketMustBeExact)
{
	Call shortTicket;
	shortTicket.ticket = std::string(63, 'a');
	expectRefused(call(shortTicket), 2, "--ticket-fd(): must be exactly 64 hexadecimal digits");
	Call upper;
	upper.ticket = std::string(64, 'A');
	expectRefused(call(upper), 2, "not a lowercase hex digit");
	Call longer;
	longer.ticket = std::string(64, 'a') + "\n";
	expectRefused(call(longer), 2, "--ticket-fd()");
	// A regular file is not a pipe.
	const std::string file = dir_ + "/ticket";
	writeFile(file, std::string(64, 'a'), 0600, user_.uid, user_.gid);
	const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
	Call notPipe;
	notPipe.args = {"--ticket-fd", "5"};
	notPipe.extraFds = {{5, fd}};
	expectRefused(call(notPipe), 2, "--ticket-fd(): not a pipe");
	::close(fd);
	Call closedFd;
	closedFd.args = {"--ticket-fd", "8"};
	expectRefused(call(closedFd), 2, "--ticket-fd(): Bad file descriptor");
}

TEST_F(Setuid, SocketIsNeverCreatedOverSomethingOrAsRoot)
{
	writeFile(socket_, "existing", 0644, user_.uid, user_.gid);
	Call c;
	c.keepSocketPath = true;
	Outcome o = call(c);
	EXPECT_EQ(o.run.exitCode, 1);
	EXPECT_EQ(o.run.out, "");
	EXPECT_NE(o.run.err.find("bind(" + socket_ + "): Address already in use"), std::string::npos) << o.run.err;
	EXPECT_EQ(readFile(socket_), "existing");
	::unlink(socket_.c_str());
	// Where only root could create it.
	const std::string rootOnly = install_->scratchDir() + "/root-only";
	makeDir(rootOnly, 0755);
	Outcome denied = callWith({"--socket", rootOnly + "/vm.sock"});
	EXPECT_EQ(denied.run.exitCode, 1);
	EXPECT_NE(denied.run.err.find("bind(" + rootOnly + "/vm.sock): Permission denied"), std::string::npos)
		<< denied.run.err;
	struct stat st {};
	EXPECT_NE(::lstat((rootOnly + "/vm.sock").c_str(), &st), 0);
}

// Issue 11: the helper's one stderr line reaches the caller's terminal; a
// value that holds ESC or a newline must not (terminal escapes, a forged
// second line).
TEST_F(Setuid, ErrorLinesCarryNoControlBytes)
{
	const std::string name = "vm\x1b[2J\x1b]0;owned\x07\nfile-restore-helper: fake line";
	Outcome o = callWith({"--name", name});
	expectRefused(o, 2, "--name(vm\\x1b[2J\\x1b]0;owned\\x07\\x0afile-restore-helper: fake line)");
	Outcome p = callWith({"--image", "raw:/tmp/a\r\x1b[1A.img"});
	expectRefused(p, 2, "--image(/tmp/a\\x0d\\x1b[1A.img)");
	for (const Outcome *out : {&o, &p})
		for (std::size_t i = 0; i + 1 < out->run.err.size(); ++i) {
			const auto c = static_cast<unsigned char>(out->run.err[i]);
			EXPECT_TRUE(c >= 0x20 && c != 0x7f) << "control byte " << int(c) << " in " << out->run.err;
		}
}

// Issue 11: a helper killed after QEMU started but before it reported
// leaves neither QEMU nor the socket behind (nobody would know of them).
TEST_F(Setuid, HelperKilledMidStartLeavesNothingBehind)
{
	// stdout is a full pipe: the helper blocks writing its JSON line with
	// QEMU (the probe, holding) already running.
	auto [readEnd, writeEnd] = makePipe();
	ASSERT_EQ(::fcntl(writeEnd, F_SETFL, O_NONBLOCK), 0);
	const std::string filler(4096, 'x');
	while (::write(writeEnd, filler.data(), filler.size()) > 0) {
	}
	ASSERT_EQ(::fcntl(writeEnd, F_SETFL, 0), 0);
	const std::string logPath = dir_ + "/log-killed";
	const int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_EQ(::fchown(log, user_.uid, user_.gid), 0);
	const std::string ticket = randomTicket();
	auto [ticketRead, ticketWrite] = makePipe();
	ASSERT_EQ(::write(ticketWrite, ticket.data(), ticket.size()), 64);
	::close(ticketWrite);
	::unlink(socket_.c_str());
	const pid_t helper = ::fork();
	ASSERT_GE(helper, 0);
	if (helper == 0) {
		// Above everything first, then into place (dup2 clears CLOEXEC).
		const int high[] = {::fcntl(writeEnd, F_DUPFD, 100), ::fcntl(ticketRead, F_DUPFD, 100),
				    ::fcntl(log, F_DUPFD, 100)};
		if (::dup2(high[0], 1) != 1 || ::dup2(high[1], 3) != 3 || ::dup2(high[2], 4) != 4)
			::_exit(125);
		if (::setgroups(user_.groups.size(), user_.groups.data()) != 0 ||
		    ::setresgid(user_.gid, user_.gid, user_.gid) != 0 ||
		    ::setresuid(user_.uid, user_.uid, user_.uid) != 0)
			::_exit(126);
		const std::string h = install_->helperPath();
		const std::string imageArg = "raw:" + image_;
		const char *argv[] = {h.c_str(), "start", "--name", "hold-killed", "--transport", "serial",
				      "--socket", socket_.c_str(), "--ticket-fd", "3", "--log-fd", "4",
				      "--image", imageArg.c_str(), nullptr};
		const char *envp[] = {nullptr};
		::execve(h.c_str(), const_cast<char **>(argv), const_cast<char **>(envp));
		::_exit(127);
	}
	::close(ticketRead);
	::close(log);
	// The probe writes "end" once it runs.
	bool started = false;
	for (int i = 0; i < 500 && !started; ++i) {
		started = readFile(logPath).find("\nend\n") != std::string::npos;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	ASSERT_TRUE(started) << readFile(logPath);
	EXPECT_TRUE(markerRunning("hold-killed"));
	struct stat st {};
	EXPECT_EQ(::lstat(socket_.c_str(), &st), 0);
	::kill(helper, SIGKILL);
	::waitpid(helper, nullptr, 0);
	bool gone = false;
	for (int i = 0; i < 250 && !gone; ++i) {
		gone = !markerRunning("hold-killed") && ::lstat(socket_.c_str(), &st) != 0;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	EXPECT_FALSE(markerRunning("hold-killed")) << "QEMU outlived the killed helper";
	EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "the socket outlived the killed helper";
	::close(readEnd);
	::close(writeEnd);
}

// Issue 11: on nested hosts without VMX (this kind of machine) /dev/kvm
// opens and answers, but QEMU then hangs without guest output. A caller who
// may use /dev/kvm gets TCG and one line saying why.
TEST_F(Setuid, KvmThatCannotRunAGuestFallsBackToTcg)
{
	struct stat kvm {};
	if (::stat("/dev/kvm", &kvm) != 0)
		GTEST_SKIP() << "no /dev/kvm here";
	// The test user's group fr-test-extra gets /dev/kvm for this test.
	const gid_t extra = extraGroupId();
	ASSERT_EQ(::chown("/dev/kvm", kvm.st_uid, extra), 0);
	ASSERT_EQ(::chmod("/dev/kvm", 0660), 0);
	Outcome o = call({});
	ASSERT_EQ(::chown("/dev/kvm", kvm.st_uid, kvm.st_gid), 0);
	ASSERT_EQ(::chmod("/dev/kvm", kvm.st_mode & 07777), 0);
	expectStarted(o);
	const bool tcg = std::find(o.record.argv.begin(), o.record.argv.end(), "tcg") != o.record.argv.end();
	if (tcg) {
		EXPECT_NE(o.run.err.find("KVM unusable (a test vCPU did not fill 4 MiB of guest memory within "
					 "500 ms"),
			  std::string::npos)
			<< o.run.err;
	} else {
		// A host whose KVM runs guests: the same check lets it through.
		EXPECT_NE(std::find(o.record.argv.begin(), o.record.argv.end(), "kvm"), o.record.argv.end());
		EXPECT_EQ(o.run.err, "");
	}
	std::printf("accelerator chosen for a caller with /dev/kvm: %s\n", tcg ? "tcg" : "kvm");
}

TEST_F(Setuid, VersionNeedsNothingElse)
{
	Call c;
	c.rawArgs = true;
	c.args = {"--version"};
	Outcome o = call(c);
	EXPECT_EQ(o.run.exitCode, 0);
	EXPECT_EQ(o.run.out.rfind("file-restore-helper ", 0), 0U) << o.run.out;
	EXPECT_EQ(o.log, "");
}

} // namespace
} // namespace fr::test
