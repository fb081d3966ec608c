// SPDX-License-Identifier: AGPL-3.0-or-later
// The CID reservation loop through its seam: this machine has no
// /dev/vhost-vsock, so the kernel's answers are simulated.
#include "helper/vsock.h"

#include <cerrno>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace fr::helper {
namespace {

std::set<std::uint64_t> gBusy;
std::vector<std::uint64_t> gTried;
int gOtherErrno = 0;

int fakeSetCid(int, std::uint64_t cid)
{
	gTried.push_back(cid);
	if (gOtherErrno != 0) {
		errno = gOtherErrno;
		return -1;
	}
	if (gBusy.count(cid) != 0) {
		errno = EADDRINUSE;
		return -1;
	}
	return 0;
}

class Vsock : public ::testing::Test {
protected:
	void SetUp() override
	{
		gBusy.clear();
		gTried.clear();
		gOtherErrno = 0;
	}
	VsockDevice device_{"/dev/fake-vhost-vsock", fakeSetCid};
};

TEST_F(Vsock, TakesTheWantedCidWhenFree)
{
	Result<std::uint32_t> cid = reserveCid(device_, 3, 100, 10, 200);
	ASSERT_TRUE(cid);
	EXPECT_EQ(*cid, 100U);
	EXPECT_EQ(gTried, std::vector<std::uint64_t>{100});
}

TEST_F(Vsock, StepsUpOnAddressInUse)
{
	gBusy = {100, 101, 102};
	Result<std::uint32_t> cid = reserveCid(device_, 3, 100, 10, 200);
	ASSERT_TRUE(cid);
	EXPECT_EQ(*cid, 103U);
	EXPECT_EQ(gTried, (std::vector<std::uint64_t>{100, 101, 102, 103}));
}

TEST_F(Vsock, WrapsOnceToTheStartOfTheRange)
{
	gBusy = {19, 20};
	Result<std::uint32_t> cid = reserveCid(device_, 3, 19, 10, 20);
	ASSERT_TRUE(cid);
	EXPECT_EQ(*cid, 10U);
}

TEST_F(Vsock, ExhaustionIsAddressInUseAfterTryingEachCidOnce)
{
	for (std::uint64_t c = 10; c <= 19; ++c)
		gBusy.insert(c);
	Result<std::uint32_t> cid = reserveCid(device_, 3, 15, 10, 19);
	ASSERT_FALSE(cid);
	EXPECT_EQ(cid.error().errnum(), EADDRINUSE);
	EXPECT_EQ(gTried.size(), 10U);
	EXPECT_EQ(std::set<std::uint64_t>(gTried.begin(), gTried.end()).size(), 10U);
}

TEST_F(Vsock, NeverBelowTheMinimumCidAndClampedIntoTheRange)
{
	Result<std::uint32_t> cid = reserveCid(device_, 3, 3, 0, 50);
	ASSERT_TRUE(cid);
	EXPECT_EQ(*cid, 10U);
	cid = reserveCid(device_, 3, 5000, 20, 50);
	ASSERT_TRUE(cid);
	EXPECT_EQ(*cid, 20U);
	for (std::uint64_t tried : gTried)
		EXPECT_GE(tried, 10U);
}

TEST_F(Vsock, OtherErrorsStopAtOnce)
{
	gOtherErrno = ENODEV;
	Result<std::uint32_t> cid = reserveCid(device_, 3, 100, 10, 200);
	ASSERT_FALSE(cid);
	EXPECT_EQ(cid.error().errnum(), ENODEV);
	EXPECT_EQ(gTried.size(), 1U);
}

TEST_F(Vsock, AttemptsAreBounded)
{
	gOtherErrno = 0;
	for (std::uint64_t c = 10; c < 10 + kMaxCidAttempts + 5; ++c)
		gBusy.insert(c);
	Result<std::uint32_t> cid = reserveCid(device_, 3, 10, 10, 0xfffffffeU);
	ASSERT_FALSE(cid);
	EXPECT_EQ(gTried.size(), kMaxCidAttempts);
}

TEST(VsockDeviceOpen, MissingDeviceIsAClearError)
{
	VsockDevice missing{"/nonexistent/vhost-vsock", nullptr};
	Result<UniqueFd> fd = openVsockDevice(missing);
	ASSERT_FALSE(fd);
	EXPECT_EQ(fd.error().message(), "open(/nonexistent/vhost-vsock): No such file or directory");
}

TEST(VsockDeviceOpen, RealDeviceWhenPresent)
{
	Result<UniqueFd> fd = openVsockDevice(realVsockDevice());
	if (!fd)
		GTEST_SKIP() << "no usable /dev/vhost-vsock here: " << fd.error().message();
	// A CID far from anything in use; the reservation ends with the fd.
	Result<std::uint32_t> cid = reserveCid(realVsockDevice(), fd->get(), 3000000000U, 10, 0xfffffffeU);
	ASSERT_TRUE(cid) << cid.error().message();
	EXPECT_GE(*cid, 3000000000U);
}

} // namespace
} // namespace fr::helper
