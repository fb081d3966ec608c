// SPDX-License-Identifier: AGPL-3.0-or-later
// Debian's real QEMU started the way the helper starts it (launch(): new
// session, fd layout, identity drop to the test user, no_new_privs, the
// embedded seccomp filter) with the helper's own device command line for
// every image format, under TCG; it must answer QMP, show the disks
// read-only, and quit cleanly without SIGSYS.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "helper/process.h"
#include "shared/qemu_command.h"
#include "seccomp-profiles/qemu_seccomp_bpf.h"
#include "tests/support/support.h"
#include "shared/unique_fd.h"
#include "tests/support/test_config.h"

namespace fr::helper {
namespace {

class Qmp {
public:
	explicit Qmp(int fd) : fd_(fd) {}
	~Qmp() { ::close(fd_); }
	// Sends a command and returns everything up to its "return"/"error".
	std::string execute(const std::string &command)
	{
		const std::string line = "{\"execute\":\"" + command + "\"}\n";
		EXPECT_EQ(::write(fd_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
		return readUntil({"\"return\"", "\"error\""});
	}
	std::string readUntil(std::initializer_list<const char *> needles)
	{
		std::string got;
		for (;;) {
			for (const char *n : needles)
				if (got.find(n) != std::string::npos)
					return got;
			char buf[4096];
			const ssize_t r = ::read(fd_, buf, sizeof(buf));
			if (r <= 0)
				return got;
			got.append(buf, static_cast<std::size_t>(r));
		}
	}

private:
	int fd_;
};

int connectUnix(const std::string &path)
{
	for (int i = 0; i < 300; ++i) {
		const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
		if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0)
			return fd;
		::close(fd);
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	return -1;
}

TEST(RealQemu, StartsUnderTheEmbeddedFilterAndQuitsOverQmp)
{
	if (std::string why = test::privilegedSkipReason(); !why.empty())
		GTEST_SKIP() << why;
	if (::access(FR_TEST_QEMU_BINARY, X_OK) != 0)
		GTEST_SKIP() << "no " FR_TEST_QEMU_BINARY;
	const test::TestUser user = test::testUser();
	test::HelperInstall install(test::Variant::Probe); // for its scratch directory
	const std::string dir = install.scratchDir() + "/qemu";
	test::makeDir(dir, 0700, user.uid, user.gid);

	const std::vector<std::string> formats = {"raw", "qcow2", "vmdk", "vdi", "vhdx"};
	std::vector<int> imageFds;
	std::vector<ImageFormat> imageFormats;
	for (const std::string &f : formats) {
		imageFormats.push_back(*contract::parseFormatName(f));
		const std::string path = dir + "/disk." + f;
		test::RunResult r = test::runCommand({"/usr/bin/qemu-img", "create", "-q", "-f", f, path, "16M"});
		ASSERT_EQ(r.exitCode, 0) << r.err;
		imageFds.push_back(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
		ASSERT_GE(imageFds.back(), 0);
	}
	const int devNull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
	const int log = ::open((dir + "/log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_GE(log, 0);
	Identity who{user.uid, user.gid, user.groups};
	Result<UniqueFd> channel = [&]() -> Result<UniqueFd> {
		const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_un addr{};
		addr.sun_family = AF_UNIX;
		std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", (dir + "/serial.sock").c_str());
		EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
		EXPECT_EQ(::listen(fd, 1), 0);
		return UniqueFd(fd);
	}();

	QemuConfig config;
	config.qemuBinary = FR_TEST_QEMU_BINARY;
	config.name = "seccomp-test";
	config.memoryMiB = 128;
	config.kernelCmdline = "unused";
	config.transport = Transport::Serial;
	config.formats = imageFormats;
	std::vector<std::string> argv;
	// No guest kernel in this test: microvm's firmware finds nothing to boot
	// and idles, which is all QMP needs.
	const QemuCommand command =
		buildQemuCommand(config, QemuFds{devNull, log, devNull, devNull, channel->get(), imageFds});
	const std::vector<std::string> &full = command.argv;
	for (std::size_t i = 0; i < full.size(); ++i) {
		if (full[i] == "-kernel" || full[i] == "-initrd" || full[i] == "-append") {
			++i;
			continue;
		}
		argv.push_back(full[i]);
	}
	const std::string qmpPath = dir + "/qmp.sock";
	argv.insert(argv.end(), {"-qmp", "unix:" + qmpPath + ",server=on,wait=off"});

	Launch l;
	l.identity = who;
	l.binary = FR_TEST_QEMU_BINARY;
	l.argv = argv;
	l.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
	l.fds = command.fds;
	l.filter = kQemuSeccompFilter;
	l.filterLength = sizeof(kQemuSeccompFilter) / sizeof(kQemuSeccompFilter[0]);
	Result<pid_t> pid = launch(l);
	ASSERT_TRUE(pid) << pid.error().message();

	const int qmpFd = connectUnix(qmpPath);
	if (qmpFd < 0) {
		::kill(*pid, SIGKILL);
		::waitpid(*pid, nullptr, 0);
		FAIL() << "no QMP socket; QEMU log:\n" << test::readFile(dir + "/log");
	}
	Qmp qmp(qmpFd);
	EXPECT_NE(qmp.readUntil({"\"QMP\""}).find("\"QMP\""), std::string::npos);
	EXPECT_NE(qmp.execute("qmp_capabilities").find("\"return\""), std::string::npos);
	// Let the guest firmware run for a moment under TCG.
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	const std::string blocks = qmp.execute("query-block");
	for (std::size_t i = 0; i < formats.size(); ++i) {
		const std::string node = "\"node-name\": \"frdisk" + std::to_string(i) + "\"";
		const std::size_t at = blocks.find(node);
		ASSERT_NE(at, std::string::npos) << blocks;
	}
	EXPECT_EQ(blocks.find("\"ro\": false"), std::string::npos) << blocks;
	for (const std::string &f : formats)
		EXPECT_NE(blocks.find("\"drv\": \"" + f + "\""), std::string::npos) << f << "\n" << blocks;
	const std::string status = qmp.execute("query-status");
	EXPECT_NE(status.find("\"running\": true"), std::string::npos) << status;
	qmp.execute("quit");

	int wstatus = 0;
	ASSERT_EQ(::waitpid(*pid, &wstatus, 0), *pid);
	const std::string qemuLog = test::readFile(dir + "/log");
	EXPECT_FALSE(WIFSIGNALED(wstatus)) << "killed by signal " << WTERMSIG(wstatus) << "\n" << qemuLog;
	ASSERT_TRUE(WIFEXITED(wstatus));
	EXPECT_EQ(WEXITSTATUS(wstatus), 0) << qemuLog;
	for (int fd : imageFds)
		::close(fd);
	::close(devNull);
	::close(log);
}

} // namespace
} // namespace fr::helper
