// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/host_tsc.h"

#include <gtest/gtest.h>

namespace fr {
namespace {

TEST(Tsc, HostFrequencyIsPlausibleAndStable)
{
	std::optional<std::uint64_t> a = measureHostTscKhz();
	std::optional<std::uint64_t> b = measureHostTscKhz();
	ASSERT_TRUE(a && b) << "no TSC frequency on this x86-64 machine";
	EXPECT_GT(*a, 500000U);
	EXPECT_LT(*a, 6000000U);
	// Two measurements agree to 0.5%.
	const double ratio = static_cast<double>(*a) / static_cast<double>(*b);
	EXPECT_NEAR(ratio, 1.0, 0.005);
	// What the client passes is one value per process.
	EXPECT_EQ(hostTscKhz(), hostTscKhz());
}

} // namespace
} // namespace fr
