// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/display.h"

#include <gtest/gtest.h>

namespace fr {
namespace {

TEST(EscapeForDisplay, KeepsPrintableAsciiAndUtf8)
{
	EXPECT_EQ(escapeForDisplay("etc/hostname"), "etc/hostname");
	EXPECT_EQ(escapeForDisplay("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(EscapeForDisplay, EscapesControlsAndTerminalAttacks)
{
	EXPECT_EQ(escapeForDisplay("a\nb\tc\rd"), "a\\nb\\tc\\rd");
	EXPECT_EQ(escapeForDisplay("\x1b[31mred"), "\\u{001b}[31mred");
	EXPECT_EQ(escapeForDisplay("\x7f"), "\\u{007f}");
	EXPECT_EQ(escapeForDisplay("\xc2\x9b"), "\\u{009b}");         // C1 CSI
	EXPECT_EQ(escapeForDisplay("\xe2\x80\xae"), "\\u{202e}");     // RIGHT-TO-LEFT OVERRIDE
	EXPECT_EQ(escapeForDisplay("a\\b"), "a\\\\b");
	EXPECT_EQ(escapeForDisplay(std::string("a\0b", 3)), "a\\u{0000}b");
}

TEST(EscapeForDisplay, EscapesMalformedUtf8ByteByByte)
{
	EXPECT_EQ(escapeForDisplay("\xff\xfe"), "\\xff\\xfe");
	EXPECT_EQ(escapeForDisplay("\xc0\xaf"), "\\xc0\\xaf");         // overlong '/'
	EXPECT_EQ(escapeForDisplay("\xed\xa0\x80"), "\\xed\\xa0\\x80"); // surrogate
	EXPECT_EQ(escapeForDisplay("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); // > U+10FFFF
	EXPECT_EQ(escapeForDisplay("\xe2\x82"), "\\xe2\\x82");         // truncated
}

TEST(EscapeForDisplay, OutputIsAlwaysPrintable)
{
	std::string all;
	for (int c = 0; c < 256; ++c)
		all += static_cast<char>(c);
	const std::string out = escapeForDisplay(all);
	for (unsigned char c : out)
		EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
}

} // namespace
} // namespace fr
