// SPDX-License-Identifier: AGPL-3.0-or-later
// Proves the test infrastructure itself: users, run(), HelperInstall.
#include "tests/support/support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace fr::test {
namespace {

#define SKIP_UNLESS_PRIVILEGED()                                                                   \
	do {                                                                                       \
		if (std::string why = privilegedSkipReason(); !why.empty())                        \
			GTEST_SKIP() << why;                                                       \
	} while (0)

TEST(Support, RunsAsTheTestUser)
{
	SKIP_UNLESS_PRIVILEGED();
	const TestUser user = testUser();
	EXPECT_NE(user.uid, 0U);
	EXPECT_NE(user.uid, otherTestUser().uid);
	RunOptions options;
	options.path = "/usr/bin/id";
	options.argv = {"id", "-u"};
	options.user = user;
	RunResult r = run(options);
	EXPECT_EQ(r.exitCode, 0) << r.err;
	EXPECT_EQ(r.out, std::to_string(user.uid) + "\n");
	// The extra group is a supplementary group of the test user.
	bool member = false;
	for (gid_t g : user.groups)
		member = member || g == extraGroupId();
	EXPECT_TRUE(member);
}

TEST(Support, PassesFdsAndStdinAndCapturesBothStreams)
{
	SKIP_UNLESS_PRIVILEGED();
	auto [readEnd, writeEnd] = makePipe();
	ASSERT_EQ(::write(writeEnd, "piped", 5), 5);
	::close(writeEnd);
	RunOptions options;
	options.path = "/bin/sh";
	options.argv = {"sh", "-c", "cat <&5; cat; echo err >&2; exit 7"};
	options.stdinData = "-stdin";
	options.fds = {{5, readEnd}};
	RunResult r = run(options);
	::close(readEnd);
	EXPECT_EQ(r.exitCode, 7);
	EXPECT_EQ(r.out, "piped-stdin");
	EXPECT_EQ(r.err, "err\n");
}

TEST(Support, InstallsTheHelperSetuidAndCleansUp)
{
	SKIP_UNLESS_PRIVILEGED();
	std::string helper, policy;
	{
		HelperInstall install(Variant::Probe);
		helper = install.helperPath();
		policy = install.policyPath();
		struct stat st {};
		ASSERT_EQ(::stat(helper.c_str(), &st), 0);
		EXPECT_EQ(st.st_mode & 07777, 04755U);
		EXPECT_EQ(st.st_uid, 0U);
		ASSERT_EQ(::stat(install.qemuBinary().c_str(), &st), 0);
		install.setPolicy("# empty\n");
		EXPECT_EQ(readFile(policy), "# empty\n");
		RunOptions options;
		options.path = helper;
		options.argv = {helper, "--version"};
		options.user = testUser();
		RunResult r = run(options);
		EXPECT_EQ(r.exitCode, 0) << r.err;
		EXPECT_NE(r.out.find("file-restore-helper"), std::string::npos) << r.out;
	}
	struct stat st {};
	EXPECT_NE(::lstat(helper.c_str(), &st), 0);
	EXPECT_NE(::lstat(policy.c_str(), &st), 0);
}

} // namespace
} // namespace fr::test
