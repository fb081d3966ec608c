// SPDX-License-Identifier: AGPL-3.0-or-later
// The argv handed to the helper, the ticket on its pipe, the log fd, and
// how its answers and failures come back (with a fake helper: $FAKE_HELPER).
#include "client/helper_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <gtest/gtest.h>

#include "shared/host_tsc.h"

#include "client/process.h"
#include "test_util.h"

namespace fr::client {
namespace {

using test::readFile;
using test::TempDir;

HelperRequest sampleRequest(const std::string &socketPath)
{
	HelperRequest r;
	r.name = "qemu_-srv-b-vm-100-s";
	r.transport = Transport::Serial;
	r.socketPath = socketPath;
	r.memoryMib = 256;
	r.idleTimeout = 600;
	r.images = {{"a.img", ImageFormat::Raw, "/srv/b/vm/100/s/a.img"},
		    {"b.qcow2", ImageFormat::Qcow2, "/srv/b/vm/100/s/b,qcow2"}};
	return r;
}

TEST(HelperArgv, FollowsTheInterface)
{
	const std::vector<std::string> expected = {
		"/usr/libexec/file-restore-helper", "start", "--name", "qemu_-srv-b-vm-100-s",
		"--transport", "serial", "--socket", "/run/user/1000/file-restore/vm-1.sock",
		"--memory", "256", "--timeout", "600", "--ticket-fd", "3", "--log-fd", "4",
		"--image", "raw:/srv/b/vm/100/s/a.img", "--image", "qcow2:/srv/b/vm/100/s/b,qcow2"};
	EXPECT_EQ(helperArgv("/usr/libexec/file-restore-helper",
			     sampleRequest("/run/user/1000/file-restore/vm-1.sock")),
		  expected);

	HelperRequest vsock = sampleRequest("");
	vsock.transport = Transport::Vsock;
	vsock.cid = 77;
	vsock.memoryMib.reset();
	vsock.idleTimeout.reset();
	vsock.images.resize(1);
	EXPECT_EQ(helperArgv("/h", vsock),
		  (std::vector<std::string>{"/h", "start", "--name", "qemu_-srv-b-vm-100-s",
					    "--transport", "vsock", "--cid", "77", "--ticket-fd", "3",
					    "--log-fd", "4", "--image", "raw:/srv/b/vm/100/s/a.img"}));
}

TEST(HelperArgv, EnvironmentOverridesThePath)
{
	::setenv("FILE_RESTORE_HELPER", "/tmp/other-helper", 1);
	EXPECT_EQ(helperPath(), "/tmp/other-helper");
	::setenv("FILE_RESTORE_HELPER", "", 1);
	EXPECT_NE(helperPath(), "");
	EXPECT_EQ(helperPath().front(), '/');
	::unsetenv("FILE_RESTORE_HELPER");
}

class SpawnTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		const char *fake = std::getenv("FAKE_HELPER");
		ASSERT_NE(fake, nullptr) << "FAKE_HELPER must name the fake helper (meson sets it)";
		fake_ = fake;
		::setenv("FAKE_HELPER_LOG", (dir_ / "calls").c_str(), 1);
		logFd_ = ::open((dir_ / "vm.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		ASSERT_GE(logFd_, 0);
	}
	void TearDown() override
	{
		::close(logFd_);
		::unsetenv("FAKE_HELPER_MODE");
		::unsetenv("FAKE_HELPER_LOG");
	}
	Result<HelperOutput> run(const char *mode, Transport transport = Transport::Serial,
				 std::chrono::milliseconds timeout = std::chrono::seconds(10))
	{
		::setenv("FAKE_HELPER_MODE", mode, 1);
		HelperRequest request = sampleRequest(dir_ / "vm.sock");
		request.transport = transport;
		return runner_.start(request, std::string(64, 'c'), logFd_, Clock::now() + timeout);
	}
	void reap(const Result<HelperOutput> &out)
	{
		if (out)
			::kill(out->pid, SIGKILL);
	}

	TempDir dir_;
	std::string fake_;
	SpawnHelperRunner runner_{std::getenv("FAKE_HELPER") ? std::getenv("FAKE_HELPER") : ""};
	int logFd_ = -1;
};

TEST_F(SpawnTest, PassesArgvTicketAndLogAndParsesTheAnswer)
{
	Result<HelperOutput> out = run("ok");
	ASSERT_TRUE(out) << out.error().message();
	EXPECT_GT(out->pid, 1);
	EXPECT_FALSE(out->cid);
	const std::string calls = readFile(dir_ / "calls");
	// The host's TSC frequency, measured by the runner, travels along.
	// It is measured (a busy machine moves the last digits between two
	// measurements): the value the runner passed, if near this one.
	HelperRequest expected = sampleRequest(dir_ / "vm.sock");
	if (const std::optional<std::uint64_t> khz = hostTscKhz()) {
		const std::string flag = "--tsc-khz\x1f";
		const std::size_t at = calls.find(flag);
		ASSERT_NE(at, std::string::npos) << calls;
		const std::uint64_t passed = std::stoull(calls.substr(at + flag.size()));
		EXPECT_LT(passed > *khz ? passed - *khz : *khz - passed, *khz / 200) << passed << " vs " << *khz;
		expected.tscKhz = static_cast<std::uint32_t>(passed);
	}
	std::string argv;
	for (const std::string &arg : helperArgv(fake_, expected))
		argv += (argv.empty() ? "" : "\x1f") + arg;
	// The ticket arrived on fd 3 (and only there: not in argv), the log
	// on a writable fd 4.
	EXPECT_EQ(calls, argv + "|ticket=" + std::string(64, 'c') + "|log=ok\n");
	// The fake QEMU writes its console to the log fd.
	for (int i = 0; i < 100 && readFile(dir_ / "vm.log").empty(); ++i)
		::usleep(20000);
	EXPECT_NE(readFile(dir_ / "vm.log").find("fake qemu: booting"), std::string::npos);
	reap(out);
}

TEST_F(SpawnTest, VsockAnswerCarriesTheCid)
{
	Result<HelperOutput> out = run("ok", Transport::Vsock);
	ASSERT_TRUE(out) << out.error().message();
	EXPECT_EQ(*out->cid, 42U);
	reap(out);
}

TEST_F(SpawnTest, FailuresCarryExitCodeAndMessage)
{
	Result<HelperOutput> denied = run("denied");
	ASSERT_FALSE(denied);
	EXPECT_EQ(denied.error().errnum(), EACCES);
	EXPECT_NE(denied.error().message().find("user not allowed"), std::string::npos);
	// The cause once (the helper's line, without its program name) and
	// what to do; no "exit 3" (issue 15: it read like a second cause).
	EXPECT_EQ(denied.error().message().find("exit 3"), std::string::npos);
	EXPECT_EQ(denied.error().message().find("file-restore-helper: "), std::string::npos);
	EXPECT_NE(denied.error().message().find("docs/helper-policy.md"), std::string::npos)
		<< denied.error().message();

	EXPECT_EQ(run("limit").error().errnum(), EUSERS);
	Result<HelperOutput> broken = run("broken");
	EXPECT_EQ(broken.error().errnum(), EIO);
	EXPECT_NE(broken.error().message().find("No such file"), std::string::npos);
	// pid 1 (or any out-of-range answer) is refused.
	EXPECT_EQ(run("garbage").error().errnum(), EPROTO);
}

TEST_F(SpawnTest, HungHelperIsKilledAtTheDeadline)
{
	const auto before = Clock::now();
	Result<HelperOutput> out = run("hang", Transport::Serial, std::chrono::milliseconds(400));
	ASSERT_FALSE(out);
	EXPECT_EQ(out.error().errnum(), ETIMEDOUT);
	EXPECT_LT(Clock::now() - before, std::chrono::seconds(5));
}

TEST_F(SpawnTest, QemuHoldingTheStdoutPipeDoesNotHangUs)
{
	const auto before = Clock::now();
	Result<HelperOutput> out = run("leak");
	ASSERT_TRUE(out) << out.error().message();
	EXPECT_LT(Clock::now() - before, std::chrono::seconds(5));
	reap(out);
}

TEST_F(SpawnTest, MissingHelperIsAClearError)
{
	SpawnHelperRunner missing("/nonexistent/file-restore-helper");
	Result<HelperOutput> out = missing.start(sampleRequest(dir_ / "s"), std::string(64, 'c'),
						 logFd_, Clock::now() + std::chrono::seconds(5));
	ASSERT_FALSE(out);
	EXPECT_NE(out.error().message().find("/nonexistent/file-restore-helper"), std::string::npos);
}

} // namespace
} // namespace fr::client

namespace fr::client {
namespace {

// A PBS datastore's disks: one socket per nbd image, as fds 5, 6, ...
TEST(SpawnNbd, PassesNbdSocketsAsFdsFiveOnwards)
{
	const char *fake = std::getenv("FAKE_HELPER");
	ASSERT_NE(fake, nullptr);
	TempDir dir;
	::setenv("FAKE_HELPER_LOG", (dir / "calls").c_str(), 1);
	::setenv("FAKE_HELPER_MODE", "ok", 1);
	const int logFd = ::open((dir / "vm.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_GE(logFd, 0);
	int a[2];
	int b[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	HelperRequest request;
	request.name = "qemu_-store-vm-100";
	request.socketPath = dir / "vm.sock";
	request.images = {{"drive-scsi0.img.fidx", ImageFormat::Nbd, "/store/a"},
			  {"drive-scsi1.img.fidx", ImageFormat::Nbd, "/store/b"}};
	request.nbdFds = {a[0], b[0]};
	const std::vector<std::string> argv = helperArgv(fake, request);
	const std::vector<std::string> want = {"--image", "nbd:5", "--image", "nbd:6"};
	EXPECT_NE(std::search(argv.begin(), argv.end(), want.begin(), want.end()), argv.end());
	SpawnHelperRunner runner(fake);
	Result<HelperOutput> out =
		runner.start(request, std::string(64, 'c'), logFd, Clock::now() + std::chrono::seconds(10));
	ASSERT_TRUE(out) << out.error().message();
	const std::string calls = readFile(dir / "calls");
	EXPECT_NE(calls.find("|nbd5=socket|nbd6=socket\n"), std::string::npos) << calls;
	::kill(out->pid, SIGKILL);

	request.nbdFds = {a[0]}; // one socket for two nbd images
	Result<HelperOutput> mismatch =
		runner.start(request, std::string(64, 'c'), logFd, Clock::now() + std::chrono::seconds(10));
	ASSERT_FALSE(mismatch);
	EXPECT_EQ(mismatch.error().errnum(), EINVAL);
	for (int fd : {a[0], a[1], b[0], b[1], logFd})
		::close(fd);
	::unsetenv("FAKE_HELPER_MODE");
	::unsetenv("FAKE_HELPER_LOG");
}

} // namespace
} // namespace fr::client
