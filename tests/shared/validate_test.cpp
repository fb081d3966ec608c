// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/validate.h"

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fr {
namespace {

TEST(ParseDecimal, AcceptsPlainDecimalInRange)
{
	EXPECT_EQ(*parseDecimal("0", 0, 10, "n"), 0U);
	EXPECT_EQ(*parseDecimal("10", 0, 10, "n"), 10U);
	EXPECT_EQ(*parseDecimal("18446744073709551615", 0, UINT64_MAX, "n"), UINT64_MAX);
}

TEST(ParseDecimal, RefusesEverythingElse)
{
	for (const char *bad : {"", "+1", "-1", " 1", "1 ", "0x10", "010", "00", "1e3", "1.0", "١",
				"4294967296x", "1\n", "18446744073709551616", "99999999999999999999",
				"123456789012345678901"}) {
		Result<std::uint64_t> r = parseDecimal(bad, 0, UINT64_MAX, "--cid");
		EXPECT_FALSE(r) << "accepted '" << bad << "'";
		if (!r) {
			EXPECT_STREQ(r.error().call(), "--cid");
		}
	}
}

TEST(ParseDecimal, RangeErrorsNameTheBounds)
{
	Result<std::uint64_t> r = parseDecimal("99999", 64, 16384, "--memory");
	ASSERT_FALSE(r);
	EXPECT_EQ(r.error().errnum(), ERANGE);
	EXPECT_EQ(r.error().message(), "--memory(99999): out of range 64..16384");
	EXPECT_FALSE(parseDecimal("63", 64, 16384, "--memory"));
}

TEST(ParseDecimal, OverflowIsRangeError)
{
	Result<std::uint64_t> r = parseDecimal("18446744073709551616", 0, UINT64_MAX, "n");
	ASSERT_FALSE(r);
	EXPECT_EQ(r.error().errnum(), ERANGE);
}

TEST(CharSet, MembershipIsExact)
{
	for (int c = 0; c < 256; ++c) {
		const bool expected = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
				      (c >= 'A' && c <= 'Z') || c == ':' || c == '_' || c == '.' || c == '-' ||
				      c == '\\';
		EXPECT_EQ(kVmNameChars.contains(static_cast<unsigned char>(c)), expected) << c;
	}
}

TEST(CheckVmName, AcceptsEscapedNames)
{
	EXPECT_TRUE(checkVmName("qemu_-srv-backup-vm\\x2d100-2026\\x2d11", "--name"));
	EXPECT_TRUE(checkVmName("qemu_-srv-backup-vm-100-2026:11:25T10:00:00Z", "--name"));
	EXPECT_TRUE(checkVmName(std::string(255, 'a'), "--name"));
}

TEST(CheckVmName, RefusesQemuSyntaxAndBadLengths)
{
	for (const std::string &bad : std::vector<std::string>{"", ".", "..", "a,b", "a=b", "a b", "a/b", "a\nb",
				      std::string("a\0b", 3), std::string(256, 'a'), "caf\xc3\xa9"}) {
		Status s = checkVmName(bad, "--name");
		EXPECT_FALSE(s) << bad;
	}
	Status s = checkVmName("x,readonly=off", "--name");
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().message(),
		  "--name(x,readonly=off): byte \\x2c at offset 1 is not allowed");
}

TEST(CheckAbsolutePath, StructuralRules)
{
	EXPECT_TRUE(checkAbsolutePath("/", "p"));
	EXPECT_TRUE(checkAbsolutePath("/srv/backup/vm 100/disk,1.img", "p"));
	EXPECT_TRUE(checkAbsolutePath("/a/.hidden/..x/x..", "p"));
	for (const std::string &bad : std::vector<std::string>{"", "relative", "./x", "/a//b", "/a/", "/a/./b", "/a/../b",
				      "/..", "/a/..", "/a\nb", "/a\x7f", std::string("/a\0b", 4),
				      "/" + std::string(4095, 'a')}) {
		EXPECT_FALSE(checkAbsolutePath(bad, "p")) << bad;
	}
}

TEST(CheckAbsolutePath, SafeCharsetRefusesQemuSyntax)
{
	EXPECT_TRUE(checkAbsolutePath("/run/user/1000/file-restore/qemu_x.sock", kSafePathChars, "--socket"));
	for (const char *bad : {"/run/a,b", "/run/a=b", "/run/a b", "/run/a:b", "/run/\"a\""})
		EXPECT_FALSE(checkAbsolutePath(bad, kSafePathChars, "--socket")) << bad;
}

TEST(CheckLowerHex, ExactLengthAndDigits)
{
	EXPECT_TRUE(checkLowerHex(std::string(64, 'a'), 64, "ticket"));
	EXPECT_FALSE(checkLowerHex(std::string(63, 'a'), 64, "ticket"));
	EXPECT_FALSE(checkLowerHex(std::string(65, 'a'), 64, "ticket"));
	EXPECT_FALSE(checkLowerHex(std::string(63, 'a') + "A", 64, "ticket"));
	EXPECT_FALSE(checkLowerHex(std::string(63, 'a') + "g", 64, "ticket"));
	// The secret itself is never echoed in the error.
	Status s = checkLowerHex(std::string(63, 'a') + "g", 64, "ticket");
	EXPECT_EQ(std::string(s.error().object()), "");
}

} // namespace
} // namespace fr
