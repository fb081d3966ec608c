// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace fr {
namespace {

bool isOpen(int fd)
{
	return ::fcntl(fd, F_GETFD) != -1;
}

int openNull()
{
	const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	EXPECT_GE(fd, 0);
	return fd;
}

TEST(UniqueFd, DefaultIsInvalid)
{
	UniqueFd fd;
	EXPECT_FALSE(fd.isValid());
	EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, ClosesOnDestruction)
{
	int raw;
	{
		UniqueFd fd(openNull());
		raw = fd.get();
		EXPECT_TRUE(fd.isValid());
		EXPECT_TRUE(isOpen(raw));
	}
	EXPECT_FALSE(isOpen(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnership)
{
	UniqueFd fd(openNull());
	const int raw = fd.release();
	EXPECT_FALSE(fd.isValid());
	EXPECT_TRUE(isOpen(raw));
	::close(raw);
}

TEST(UniqueFd, MoveTransfersOwnership)
{
	UniqueFd a(openNull());
	const int raw = a.get();
	UniqueFd b(std::move(a));
	EXPECT_FALSE(a.isValid()); // NOLINT(bugprone-use-after-move): checking the moved-from state
	EXPECT_EQ(b.get(), raw);
	UniqueFd c;
	c = std::move(b);
	EXPECT_EQ(c.get(), raw);
	EXPECT_TRUE(isOpen(raw));
}

TEST(UniqueFd, MoveAssignClosesPrevious)
{
	UniqueFd a(openNull());
	UniqueFd b(openNull());
	const int oldB = b.get();
	b = std::move(a);
	EXPECT_FALSE(isOpen(oldB));
	EXPECT_TRUE(b.isValid());
}

TEST(UniqueFd, ResetClosesAndTakesNew)
{
	UniqueFd fd(openNull());
	const int first = fd.get();
	const int second = openNull();
	fd.reset(second);
	EXPECT_FALSE(isOpen(first));
	EXPECT_EQ(fd.get(), second);
	fd.reset(second); // resetting to the same fd must not close it
	EXPECT_TRUE(isOpen(second));
	fd.reset();
	EXPECT_FALSE(isOpen(second));
}

} // namespace
} // namespace fr
