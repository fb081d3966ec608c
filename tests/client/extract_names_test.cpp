// SPDX-License-Identifier: AGPL-3.0-or-later
// Member names from the guest's archive stream.
#include "client/extract_names.h"

#include <gtest/gtest.h>

namespace fr::client {
namespace {

using V = std::vector<std::string>;

TEST(ExtractNames, NormalisesHarmlessForms)
{
	EXPECT_EQ(*memberComponents("etc/hostname"), (V{"etc", "hostname"}));
	EXPECT_EQ(*memberComponents("./etc//hostname/"), (V{"etc", "hostname"}));
	EXPECT_EQ(*memberComponents("."), V{});
	EXPECT_EQ(*memberComponents("./"), V{});
	EXPECT_EQ(*memberComponents("a/./b"), (V{"a", "b"}));
	EXPECT_EQ(*memberComponents("\xff\xfe/\x01name"), (V{"\xff\xfe", "\x01name"}));
	EXPECT_EQ(*memberComponents("..a/b.."), (V{"..a", "b.."}));
	EXPECT_TRUE(memberComponents(std::string(255, 'n')));
}

TEST(ExtractNames, RefusesEscapes)
{
	for (const char *name : {"", "/etc/passwd", "/", "../x", "a/../../x", "a/..", "..", "./../x"})
		EXPECT_FALSE(memberComponents(name)) << name;
	EXPECT_EQ(memberComponents(std::string("a\0b", 3)).error().errnum(), EINVAL);
	EXPECT_EQ(memberComponents(std::string(256, 'n')).error().errnum(), ENAMETOOLONG);
	std::string deep;
	while (deep.size() <= kMemberPathMax)
		deep += "d/";
	EXPECT_EQ(memberComponents(deep).error().errnum(), ENAMETOOLONG);
}

TEST(ExtractNames, SymlinkTargets)
{
	EXPECT_TRUE(checkSymlinkTarget("../../etc/passwd")); // stored, never followed
	EXPECT_FALSE(checkSymlinkTarget(""));
	EXPECT_FALSE(checkSymlinkTarget(std::string("a\0b", 3)));
	EXPECT_FALSE(checkSymlinkTarget(std::string(4096, 'x')));
}

TEST(ExtractNames, StagingNames)
{
	StagingOwner owner;
	ASSERT_TRUE(parseStagingName(".file-restore-tmp-123-4567-abcdef", owner));
	EXPECT_EQ(owner.pid, 123);
	EXPECT_EQ(owner.startTime, 4567U);
	EXPECT_FALSE(parseStagingName(".file-restore-tmp-123-4567-", owner));
	EXPECT_FALSE(parseStagingName(".file-restore-tmp-x-4567-ab", owner));
	EXPECT_FALSE(parseStagingName(".file-restore-tmp-0-4567-ab", owner));
	EXPECT_FALSE(parseStagingName("file-restore-tmp-1-2-ab", owner));
	EXPECT_FALSE(parseStagingName("hostname", owner));
}

} // namespace
} // namespace fr::client
