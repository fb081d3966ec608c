// SPDX-License-Identifier: AGPL-3.0-or-later
//
// The NBD server's confinement, entered in a forked child and probed from
// inside: Landlock leaves the datastore readable and nothing else, seccomp
// kills on a call outside the list and refuses opens that write.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include <gtest/gtest.h>

#include "client/pbs/sandbox.h"
#include "shared/landlock.h"
#include "tests/pbs/test_util.h"

namespace fr::pbs {
namespace {

// Runs `body` in a child; returns its wait status. The child reports a
// failed expectation through its exit code (the line number).
int inChild(const std::function<int()> &body)
{
	const pid_t pid = ::fork();
	if (pid == 0)
		::_exit(body());
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return status;
}

#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return __LINE__ % 250 + 1;                                                 \
	} while (0)

class Sandbox : public ::testing::Test {
protected:
	void SetUp() override
	{
		if (landlock::abi() <= 0)
			GTEST_SKIP() << "the kernel offers no Landlock (the server refuses to "
					"start there; see docs/client.md)";
		ASSERT_EQ(::mkdir((dir_ / "store").c_str(), 0755), 0);
		const int fd = ::open((dir_ / "store/file").c_str(), O_WRONLY | O_CREAT, 0644);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(::write(fd, "data", 4), 4);
		::close(fd);
		const int outside = ::open((dir_ / "outside").c_str(), O_WRONLY | O_CREAT, 0644);
		ASSERT_GE(outside, 0);
		::close(outside);
	}
	test::TempDir dir_;
};

TEST_F(Sandbox, LandlockLeavesOnlyTheDatastoreReadable)
{
	const std::string store = dir_ / "store";
	const std::string outside = dir_ / "outside";
	const int status = inChild([&] {
		if (!restrictFilesystem({store, "/dev/null"}, {"/dev/null"}))
			return 200;
		char buf[8];
		const int in = ::open((store + "/file").c_str(), O_RDONLY);
		CHILD_CHECK(in >= 0 && ::read(in, buf, 4) == 4);
		CHILD_CHECK(::open(outside.c_str(), O_RDONLY) < 0 && errno == EACCES);
		CHILD_CHECK(::open("/etc/passwd", O_RDONLY) < 0 && errno == EACCES);
		CHILD_CHECK(::open((store + "/file").c_str(), O_WRONLY) < 0 && errno == EACCES);
		CHILD_CHECK(::open((store + "/new").c_str(), O_WRONLY | O_CREAT, 0644) < 0);
		CHILD_CHECK(::mkdir((store + "/d").c_str(), 0755) < 0 && errno == EACCES);
		CHILD_CHECK(::unlink((store + "/file").c_str()) < 0 && errno == EACCES);
		CHILD_CHECK(::open("/dev/null", O_WRONLY) >= 0);
		char *const argv[] = {const_cast<char *>("/bin/true"), nullptr};
		::execv("/bin/true", argv);
		CHILD_CHECK(errno == EACCES);
		return 0;
	});
	ASSERT_TRUE(WIFEXITED(status)) << status;
	EXPECT_EQ(WEXITSTATUS(status), 0) << "failed check near line " << WEXITSTATUS(status);
	struct stat st {};
	EXPECT_EQ(::stat((store + "/file").c_str(), &st), 0); // nothing was removed
}

TEST_F(Sandbox, SeccompRefusesWritingOpensAndKillsOnOtherCalls)
{
	const std::string store = dir_ / "store";
	const int refused = inChild([&] {
		if (!loadServerSeccomp())
			return 200;
		CHILD_CHECK(::open((store + "/file").c_str(), O_RDONLY) >= 0);
		CHILD_CHECK(::open((store + "/file").c_str(), O_RDWR) < 0 && errno == EACCES);
		CHILD_CHECK(::open((store + "/x").c_str(), O_WRONLY | O_CREAT, 0644) < 0 &&
			    errno == EACCES);
		CHILD_CHECK(::open((store + "/file").c_str(), O_WRONLY | O_TRUNC) < 0 &&
			    errno == EACCES);
		return 0;
	});
	ASSERT_TRUE(WIFEXITED(refused)) << refused;
	EXPECT_EQ(WEXITSTATUS(refused), 0) << "failed check near line " << WEXITSTATUS(refused);

	const int killed = inChild([&] {
		if (!loadServerSeccomp())
			return 200;
		(void)::socket(AF_INET, SOCK_STREAM, 0); // not on the list
		return 0;
	});
	ASSERT_TRUE(WIFSIGNALED(killed)) << killed;
	EXPECT_EQ(WTERMSIG(killed), SIGSYS);

	const int forked = inChild([&] {
		if (!loadServerSeccomp())
			return 200;
		(void)::fork(); // processes, unlike threads, are not allowed
		return 0;
	});
	ASSERT_TRUE(WIFSIGNALED(forked)) << forked;
	EXPECT_EQ(WTERMSIG(forked), SIGSYS);
}

} // namespace
} // namespace fr::pbs
