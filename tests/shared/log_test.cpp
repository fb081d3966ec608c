// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/log.h"

#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

namespace fr {
namespace {

class LogTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_EQ(::pipe(fds_), 0);
		setLogFd(fds_[1]);
		setLogIdentity("test");
		setLogLevel(LogLevel::Info);
	}
	void TearDown() override
	{
		setLogFd(2);
		setLogIdentity(nullptr);
		::close(fds_[0]);
		::close(fds_[1]);
	}
	std::string drain()
	{
		::close(fds_[1]);
		fds_[1] = -1;
		std::string out;
		char buf[4096];
		ssize_t n;
		while ((n = ::read(fds_[0], buf, sizeof(buf))) > 0)
			out.append(buf, static_cast<std::size_t>(n));
		return out;
	}
	int fds_[2] = {-1, -1};
};

TEST_F(LogTest, FormatsOneLineWithIdentity)
{
	logf(LogLevel::Info, "disk %d: %s", 3, "ok");
	EXPECT_EQ(drain(), "test: disk 3: ok\n");
}

TEST_F(LogTest, DropsLinesBelowLevel)
{
	logf(LogLevel::Debug, "hidden");
	setLogLevel(LogLevel::Debug);
	logf(LogLevel::Debug, "shown");
	EXPECT_EQ(drain(), "test: shown\n");
}

TEST_F(LogTest, TruncatesLongLinesAndKeepsNewline)
{
	const std::string big(5000, 'x');
	logf(LogLevel::Error, "%s", big.c_str());
	const std::string out = drain();
	EXPECT_EQ(out.size(), 1023U);
	EXPECT_EQ(out.back(), '\n');
}

TEST_F(LogTest, LogErrorAndErrnoPreserved)
{
	errno = EBADF;
	logError(Error(ENOENT, "open", "/x"));
	EXPECT_EQ(errno, EBADF);
	EXPECT_EQ(drain(), "test: open(/x): No such file or directory\n");
}

} // namespace
} // namespace fr
