// SPDX-License-Identifier: AGPL-3.0-or-later
// The helper's file handling, called directly (the setuid tests prove the
// same through the installed helper).
#include "helper/files.h"

#include <sys/syscall.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <string>

#include <gtest/gtest.h>

#include "helper/caller_agent.h"
#include "shared/policy.h"
#include "tests/support/support.h"

namespace fr::helper {
namespace {

class Files : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = ::testing::TempDir() + "/fr-files-test-" + std::to_string(::getpid());
		test::removeTree(dir_);
		test::makeDir(dir_, 0700, ::getuid(), ::getgid());
		self_ = *callerIdentity();
	}
	void TearDown() override { test::removeTree(dir_); }
	std::string file(const std::string &name, const std::string &content = "data")
	{
		test::writeFile(dir_ + "/" + name, content, 0600, ::getuid(), ::getgid());
		return dir_ + "/" + name;
	}
	std::string dir_;
	Identity self_;
};

// What the helper does with an image the caller agent opened: the agent's
// open (as the caller), then checkImageFd (regular file, disk filesystem,
// header) and O_NONBLOCK cleared.
Result<UniqueFd> openChecked(CallerAgent &agent, const std::string &path)
{
	Result<UniqueFd> fd = agent.request(CallerAgent::Op::OpenImage, path);
	if (!fd)
		return fd;
	if (Status ok = checkImageFd(fd->get(), contract::ImageFormat::Raw, path); !ok)
		return ok.error();
	return fd;
}

TEST_F(Files, OpensARegularImageReadOnlyWithoutNonblock)
{
	CallerAgent agent = CallerAgent::start(self_).value();
	Result<UniqueFd> fd = openChecked(agent, file("a,b=c.img"));
	ASSERT_TRUE(fd) << fd.error().message();
	const int flags = ::fcntl(fd->get(), F_GETFL);
	EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
	EXPECT_EQ(flags & O_NONBLOCK, 0);
	EXPECT_EQ(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_F(Files, RefusesSymlinksFifosDirectoriesDevicesAndMagicLinks)
{
	CallerAgent agent = CallerAgent::start(self_).value();
	const std::string target = file("target.img");
	ASSERT_EQ(::symlink(target.c_str(), (dir_ + "/link.img").c_str()), 0);
	ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
	ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
	ASSERT_EQ(::symlink(dir_.c_str(), (dir_ + "/dirlink").c_str()), 0);
	struct Case {
		std::string path;
		int errnum;
	};
	const Case cases[] = {
		{dir_ + "/link.img", ELOOP},
		{dir_ + "/dirlink/target.img", ELOOP},
		{dir_ + "/fifo", EPERM},
		{dir_ + "/sub", EPERM},
		{"/dev/null", EPERM},
		{"/proc/self/fd/0", ELOOP},
		{"/proc/1/root/etc/hostname", ELOOP},
		{"/proc/self/exe", ELOOP},
		{"/proc/version", EPERM},
		{"/sys/kernel/notes", EPERM},
	};
	for (const Case &c : cases) {
		const auto start = std::chrono::steady_clock::now();
		Result<UniqueFd> fd = openChecked(agent, c.path);
		ASSERT_FALSE(fd) << c.path;
		EXPECT_EQ(fd.error().errnum(), c.errnum) << c.path << ": " << fd.error().message();
		// A FIFO without a writer must not hang the helper.
		EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
	}
}

TEST_F(Files, GrantedDirectoryStaysBeneathItself)
{
	const std::string img = file("in.img");
	ASSERT_EQ(::mkdir((dir_ + "/granted").c_str(), 0700), 0);
	test::writeFile(dir_ + "/granted/ok.img", "x", 0600, ::getuid(), ::getgid());
	ASSERT_EQ(::symlink(img.c_str(), (dir_ + "/granted/escape.img").c_str()), 0);
	ASSERT_EQ(::symlink("..", (dir_ + "/granted/up").c_str()), 0);
	const std::vector<std::string> granted = {dir_ + "/granted"};
	EXPECT_FALSE(openGrantedImage(img, granted)) << "not below a granted directory";
	EXPECT_TRUE(*openGrantedImage(dir_ + "/granted/ok.img", granted));
	Result<UniqueFd> escape = *openGrantedImage(dir_ + "/granted/escape.img", granted);
	ASSERT_FALSE(escape);
	EXPECT_EQ(escape.error().errnum(), ELOOP);
	EXPECT_FALSE(*openGrantedImage(dir_ + "/granted/up/in.img", granted));
	// /proc is another mount: RESOLVE_NO_XDEV.
	if (::getuid() == 0) {
		EXPECT_FALSE(*openGrantedImage("/proc/self/status", {"/proc"}));
	}
}

TEST_F(Files, TheAgentHasFullyBecomeTheCaller)
{
	if (::geteuid() != 0)
		GTEST_SKIP() << "needs root to create another user's file";
	const test::TestUser other = test::otherTestUser();
	const test::TestUser user = test::testUser();
	::chmod(dir_.c_str(), 0755);
	test::writeFile(dir_ + "/secret.img", "s", 0600, other.uid, other.gid);
	CallerAgent agent = CallerAgent::start({user.uid, user.gid, user.groups}).value();
	Result<UniqueFd> fd = agent.request(CallerAgent::Op::OpenImage, dir_ + "/secret.img");
	ASSERT_FALSE(fd);
	EXPECT_EQ(fd.error().errnum(), EACCES);
	// Capabilities would pass procfs's ptrace check on root's processes.
	Result<UniqueFd> maps = agent.request(CallerAgent::Op::OpenImage, "/proc/1/environ");
	ASSERT_FALSE(maps);
	EXPECT_EQ(maps.error().errnum(), EACCES);
	// The same file through a directory the policy grants: opened as root.
	EXPECT_TRUE(*openGrantedImage(dir_ + "/secret.img", {dir_}));
	// A root caller's agent stays root.
	CallerAgent rootAgent = CallerAgent::start(self_).value();
	EXPECT_TRUE(rootAgent.request(CallerAgent::Op::OpenImage, dir_ + "/secret.img"));
}

TEST_F(Files, SerialSocketIsTheCallersAndUndoneUnlessKept)
{
	const std::string path = dir_ + "/s.sock";
	{
		CallerAgent agent = CallerAgent::start(self_).value();
		Result<UniqueFd> fd = agent.request(CallerAgent::Op::Listen, path);
		ASSERT_TRUE(fd) << fd.error().message();
		struct stat st {};
		ASSERT_EQ(::lstat(path.c_str(), &st), 0);
		EXPECT_TRUE(S_ISSOCK(st.st_mode));
		EXPECT_EQ(st.st_mode & 07777, 0600U);
		EXPECT_EQ(st.st_uid, ::getuid());
		int listening = 0;
		socklen_t len = sizeof(listening);
		ASSERT_EQ(::getsockopt(fd->get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
		EXPECT_EQ(listening, 1);
		Result<UniqueFd> again = agent.request(CallerAgent::Op::Listen, path);
		ASSERT_FALSE(again);
		EXPECT_EQ(again.error().errnum(), EADDRINUSE);
		const std::string link = dir_ + "/dangling";
		ASSERT_EQ(::symlink((dir_ + "/nowhere").c_str(), link.c_str()), 0);
		EXPECT_FALSE(agent.request(CallerAgent::Op::Listen, link));
		EXPECT_NE(::access((dir_ + "/nowhere").c_str(), F_OK), 0);
		agent.finish(false);
		EXPECT_NE(::lstat(path.c_str(), &st), 0) << "not removed on failure";
	}
	CallerAgent agent = CallerAgent::start(self_).value();
	ASSERT_TRUE(agent.request(CallerAgent::Op::Listen, path));
	agent.finish(true);
	struct stat st {};
	EXPECT_EQ(::lstat(path.c_str(), &st), 0) << "removed although the start succeeded";
}

TEST_F(Files, TheAgentKillsTheWatchedProcessUnlessKept)
{
	for (bool keep : {false, true}) {
		const pid_t pid = ::fork();
		if (pid == 0) {
			for (;;)
				::pause();
		}
		const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
		ASSERT_GE(pidfd, 0);
		{
			CallerAgent agent = CallerAgent::start(self_).value();
			ASSERT_TRUE(agent.request(CallerAgent::Op::Watch, "QEMU", pidfd));
			if (keep)
				agent.finish(true);
		} // a helper that failed (or died): the agent's channel closes
		int status = 0;
		const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
		EXPECT_EQ(reaped == pid, !keep);
		if (reaped == pid) {
			EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		} else {
			::kill(pid, SIGKILL);
			::waitpid(pid, nullptr, 0);
		}
		::close(pidfd);
	}
}

TEST_F(Files, TicketComesFromAPipeExactly)
{
	auto ticketFrom = [](const std::string &bytes, bool close) -> Result<std::string> {
		auto [r, w] = test::makePipe();
		EXPECT_EQ(::write(w, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
		if (close)
			::close(w);
		Result<std::string> t = readTicket(r, 300);
		::close(r);
		if (!close)
			::close(w);
		return t;
	};
	const std::string good = test::randomTicket();
	Result<std::string> t = ticketFrom(good, true);
	ASSERT_TRUE(t) << t.error().message();
	EXPECT_EQ(*t, good);
	// The writer may keep its end open: 64 digits are enough.
	EXPECT_TRUE(ticketFrom(good, false));
	EXPECT_FALSE(ticketFrom(good + "\n", true));
	EXPECT_FALSE(ticketFrom(good + "0", true));
	EXPECT_FALSE(ticketFrom(good.substr(1), true));
	std::string upper = good;
	upper[0] = 'A';
	EXPECT_FALSE(ticketFrom(upper, true));
	Result<std::string> slow = ticketFrom(good.substr(0, 10), false);
	ASSERT_FALSE(slow);
	EXPECT_EQ(slow.error().errnum(), ETIMEDOUT);
	// A writer that trickles bytes past the deadline does not extend it.
	{
		auto [r, w] = test::makePipe();
		std::thread trickle([w = w] {
			for (int i = 0; i < 20; ++i) {
				if (::write(w, "a", 1) != 1)
					break;
				std::this_thread::sleep_for(std::chrono::milliseconds(40));
			}
			::close(w);
		});
		const auto start = std::chrono::steady_clock::now();
		Result<std::string> trickled = readTicket(r, 300);
		EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
		trickle.join();
		::close(r);
		ASSERT_FALSE(trickled);
		EXPECT_EQ(trickled.error().errnum(), ETIMEDOUT);
	}
	const std::string f = file("ticket", good);
	const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
	Result<std::string> notPipe = readTicket(fd, 300);
	::close(fd);
	ASSERT_FALSE(notPipe);
	EXPECT_EQ(notPipe.error().message(), "--ticket-fd(): not a pipe");
}

class PolicyFile : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (::geteuid() != 0)
			GTEST_SKIP() << "needs root to create root-owned policy directories";
		base_ = "/run/fr-policy-file-test-" + std::to_string(::getpid());
		test::removeTree(base_);
		test::makeDir(base_);
		test::makeDir(base_ + "/etc");
	}
	void TearDown() override
	{
		if (!base_.empty())
			test::removeTree(base_);
	}
	std::string base_;
};

TEST_F(PolicyFile, ReadsARootOwnedFile)
{
	test::writeFile(base_ + "/etc/helper.conf", "allow everyone\n", 0644);
	Result<std::optional<std::string>> text = readPolicyFile(base_ + "/etc/helper.conf");
	ASSERT_TRUE(text) << text.error().message();
	ASSERT_TRUE(text->has_value());
	EXPECT_EQ(**text, "allow everyone\n");
}

TEST_F(PolicyFile, MissingFileOrDirectoryMeansNoPolicy)
{
	Result<std::optional<std::string>> text = readPolicyFile(base_ + "/etc/helper.conf");
	ASSERT_TRUE(text);
	EXPECT_FALSE(text->has_value());
	text = readPolicyFile(base_ + "/nodir/helper.conf");
	ASSERT_TRUE(text);
	EXPECT_FALSE(text->has_value());
}

TEST_F(PolicyFile, DistrustsEverythingElse)
{
	const test::TestUser user = test::testUser();
	const std::string conf = base_ + "/etc/helper.conf";
	struct Case {
		const char *what;
		std::function<void()> make;
		const char *expect;
	};
	const Case cases[] = {
		{"wrong owner", [&] { test::writeFile(conf, "allow everyone\n", 0644, user.uid, user.gid); },
		 "not owned by root"},
		{"group-writable", [&] { test::writeFile(conf, "allow everyone\n", 0664); },
		 "writable by group or others"},
		{"world-writable", [&] { test::writeFile(conf, "allow everyone\n", 0646); },
		 "writable by group or others"},
		{"writable directory", [&] {
			 test::writeFile(conf, "allow everyone\n", 0644);
			 ASSERT_EQ(::chmod((base_ + "/etc").c_str(), 0775), 0);
		 }, "writable by group or others"},
		{"directory of another user", [&] {
			 test::writeFile(conf, "allow everyone\n", 0644);
			 ASSERT_EQ(::chown((base_ + "/etc").c_str(), user.uid, 0), 0);
		 }, "not owned by root"},
		{"symlinked file", [&] {
			 test::writeFile(base_ + "/real.conf", "allow everyone\n", 0644);
			 ASSERT_EQ(::symlink((base_ + "/real.conf").c_str(), conf.c_str()), 0);
		 }, "is a symlink or not a directory"},
		{"symlinked directory", [&] {
			 test::makeDir(base_ + "/real");
			 test::writeFile(base_ + "/real/helper.conf", "allow everyone\n", 0644);
			 test::removeTree(base_ + "/etc");
			 ASSERT_EQ(::symlink((base_ + "/real").c_str(), (base_ + "/etc").c_str()), 0);
		 }, "is a symlink or not a directory"},
		{"too large", [&] { test::writeFile(conf, std::string(kPolicyMaxBytes + 1, '#'), 0644); },
		 "larger than 65536 bytes"},
		{"a FIFO", [&] { ASSERT_EQ(::mkfifo(conf.c_str(), 0644), 0); }, "not a regular file"},
	};
	for (const Case &c : cases) {
		test::removeTree(base_ + "/etc");
		test::removeTree(base_ + "/real");
		test::removeTree(base_ + "/real.conf");
		test::makeDir(base_ + "/etc");
		c.make();
		Result<std::optional<std::string>> text = readPolicyFile(conf);
		ASSERT_FALSE(text) << c.what;
		EXPECT_NE(text.error().message().find(c.expect), std::string::npos)
			<< c.what << ": " << text.error().message();
	}
}

TEST(PolicyFileUnprivileged, AWorldWritableAncestorIsRefused)
{
	// /tmp is 1777: a policy below it is never trusted, whoever runs this.
	Result<std::optional<std::string>> text = readPolicyFile("/tmp/fr-no-such-dir/helper.conf");
	ASSERT_FALSE(text);
	EXPECT_EQ(text.error().message(), "policy(/tmp): writable by group or others");
}

} // namespace
} // namespace fr::helper
