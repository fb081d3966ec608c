// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/result.h"

#include <cerrno>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace fr {
namespace {

Result<int> half(int n)
{
	if (n % 2 != 0)
		return Error::invalid(EINVAL, "half", std::to_string(n), "odd number %d", n);
	return n / 2;
}

TEST(Result, HoldsValue)
{
	Result<int> r = half(8);
	ASSERT_TRUE(r);
	EXPECT_TRUE(r.hasValue());
	EXPECT_EQ(*r, 4);
	EXPECT_EQ(r.value(), 4);
}

TEST(Result, HoldsError)
{
	Result<int> r = half(7);
	ASSERT_FALSE(r);
	EXPECT_EQ(r.error().errnum(), EINVAL);
	EXPECT_STREQ(r.error().call(), "half");
	EXPECT_STREQ(r.error().object(), "7");
	EXPECT_EQ(r.error().message(), "half(7): odd number 7");
}

TEST(Result, ErrnoReasonUsesDescriptionWithoutLocale)
{
	Error e(ENOENT, "open", "/nonexistent");
	EXPECT_EQ(e.message(), "open(/nonexistent): No such file or directory");
	char buf[128];
	const std::size_t n = e.format(buf, sizeof(buf));
	EXPECT_EQ(std::string(buf), e.message());
	EXPECT_EQ(n, e.message().size());
}

TEST(Result, FormatTruncatesSafely)
{
	Error e(EACCES, "open", std::string(1000, 'a'));
	EXPECT_EQ(std::string(e.object()).size(), Error::kObjectMax);
	char small[16];
	const std::size_t n = e.format(small, sizeof(small));
	EXPECT_GT(n, sizeof(small));
	EXPECT_EQ(std::string(small), "open(aaaaaaaaaa");
}

TEST(Result, MoveOnlyValue)
{
	Result<std::unique_ptr<int>> r(std::make_unique<int>(5));
	ASSERT_TRUE(r);
	std::unique_ptr<int> p = std::move(r).value();
	EXPECT_EQ(*p, 5);
}

TEST(Result, CopyAndAssign)
{
	Result<std::string> a(std::string("x"));
	Result<std::string> b(Error(EIO, "read", "f"));
	b = a;
	ASSERT_TRUE(b);
	EXPECT_EQ(*b, "x");
	a = Result<std::string>(Error(EIO, "read", "g"));
	ASSERT_FALSE(a);
	EXPECT_STREQ(a.error().object(), "g");
}

TEST(Result, VoidStatus)
{
	Status ok;
	EXPECT_TRUE(ok);
	Status bad(Error(EPERM, "setresuid", "0"));
	ASSERT_FALSE(bad);
	EXPECT_EQ(bad.error().message(), "setresuid(0): Operation not permitted");
}

TEST(ResultDeathTest, WrongAlternativeTraps)
{
	Result<int> r = half(3);
	EXPECT_DEATH({ (void)r.value(); }, "");
	Status ok;
	EXPECT_DEATH({ (void)ok.error(); }, "");
}

} // namespace
} // namespace fr
