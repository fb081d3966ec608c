// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/policy.h"

#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

namespace fr {
namespace {

std::optional<std::uint32_t> fakeNames(Principal::Kind kind, const std::string &name)
{
	static const std::map<std::string, std::uint32_t> users = {{"alice", 1000}, {"bob", 1001}};
	static const std::map<std::string, std::uint32_t> groups = {{"backup", 500}, {"ops", 501}};
	const auto &table = kind == Principal::Kind::User ? users : groups;
	auto it = table.find(name);
	if (it == table.end())
		return std::nullopt;
	return it->second;
}

Policy parsed(const std::string &text)
{
	Result<Policy> p = parsePolicy(text);
	EXPECT_TRUE(p) << p.error().message();
	if (!p)
		return {};
	Policy policy = *p;
	Status ok = resolvePolicyNames(policy, fakeNames);
	EXPECT_TRUE(ok) << ok.error().message();
	return policy;
}

TEST(Policy, TheExampleFileParses)
{
	std::ifstream in(std::string(FR_SOURCE_ROOT) + "/helper/helper.conf.example");
	ASSERT_TRUE(in);
	std::stringstream text;
	text << in.rdbuf();
	Result<Policy> p = parsePolicy(text.str());
	ASSERT_TRUE(p) << p.error().message();
	EXPECT_FALSE(p->allowed.empty());
}

TEST(Policy, DefaultsWithoutAFile)
{
	const Policy policy = defaultPolicy();
	const Grant grant = decide(policy, {1234, {1234}});
	EXPECT_TRUE(grant.allowed);
	EXPECT_TRUE(grant.imageDirs.empty());
	EXPECT_EQ(grant.maxVms, kDefaultMaxVms);
	EXPECT_EQ(grant.maxMemoryMiB, kDefaultMaxMemoryMiB);
	EXPECT_EQ(grant.maxDisks, kDefaultMaxDisks);
	EXPECT_EQ(grant.timeoutMin, kDefaultTimeoutMin);
	EXPECT_EQ(grant.timeoutMax, kDefaultTimeoutMax);
	EXPECT_EQ(policy.qemuUser, "nobody");
	EXPECT_TRUE(policy.tcgAllowed);
	EXPECT_EQ(policy.cidMin, 10U);
	EXPECT_EQ(policy.cidMax, 65535U);
}

TEST(Policy, AnEmptyPolicyAllowsOnlyRoot)
{
	const Policy policy = parsed("# nothing\n\n   \t\n");
	EXPECT_FALSE(decide(policy, {1000, {1000}}).allowed);
	EXPECT_TRUE(decide(policy, {0, {0}}).allowed);
}

TEST(Policy, WhoMayUseTheHelper)
{
	const Policy policy = parsed("allow user alice\nallow group backup   # operators\nallow user 2000\n");
	EXPECT_TRUE(decide(policy, {1000, {1000}}).allowed);
	EXPECT_FALSE(decide(policy, {1001, {1001}}).allowed);
	EXPECT_TRUE(decide(policy, {1001, {1001, 500}}).allowed);
	EXPECT_TRUE(decide(policy, {2000, {2000}}).allowed);
	EXPECT_TRUE(decide(parsed("allow everyone\n"), {4321, {}}).allowed);
}

TEST(Policy, ImageDirectoriesPerPrincipal)
{
	const Policy policy = parsed("allow everyone\n"
				     "image-dir /srv/backup user alice\n"
				     "image-dir /srv/other group ops\n"
				     "image-dir /srv/public everyone\n");
	EXPECT_EQ(decide(policy, {1000, {1000}}).imageDirs,
		  (std::vector<std::string>{"/srv/backup", "/srv/public"}));
	EXPECT_EQ(decide(policy, {1001, {1001, 501}}).imageDirs,
		  (std::vector<std::string>{"/srv/other", "/srv/public"}));
}

TEST(Policy, LimitPrecedence)
{
	const Policy policy = parsed("allow everyone\n"
				     "limit vms 2\n"
				     "limit memory 512\n"
				     "limit vms 3 group backup\n"
				     "limit vms 5 group ops\n"
				     "limit vms 1 user alice\n"
				     "limit timeout 60 1200 group backup\n"
				     "limit disks 4 user bob\n");
	const Grant plain = decide(policy, {3000, {3000}});
	EXPECT_EQ(plain.maxVms, 2U);
	EXPECT_EQ(plain.maxMemoryMiB, 512U);
	EXPECT_EQ(plain.maxDisks, kDefaultMaxDisks);
	const Grant groups = decide(policy, {3000, {3000, 500, 501}});
	EXPECT_EQ(groups.maxVms, 5U); // most generous group
	EXPECT_EQ(groups.timeoutMin, 60U);
	EXPECT_EQ(groups.timeoutMax, 1200U);
	const Grant alice = decide(policy, {1000, {1000, 501}});
	EXPECT_EQ(alice.maxVms, 1U); // the user's own rule wins over groups
	const Grant bob = decide(policy, {1001, {1001}});
	EXPECT_EQ(bob.maxDisks, 4U);
	EXPECT_EQ(bob.maxMemoryMiB, 512U);
}

TEST(Policy, RequireLandlock)
{
	EXPECT_FALSE(parsePolicy("")->requireLandlock);
	EXPECT_TRUE(parsePolicy("require-landlock yes\n")->requireLandlock);
	EXPECT_FALSE(parsePolicy("require-landlock no\n")->requireLandlock);
	EXPECT_FALSE(parsePolicy("require-landlock maybe\n"));
	EXPECT_FALSE(parsePolicy("require-landlock yes\nrequire-landlock yes\n"));
}

TEST(Policy, SingleValuedSettings)
{
	const Policy policy = parsed("qemu-user fr-qemu\ntcg deny\ncid-range 100 200\n");
	EXPECT_EQ(policy.qemuUser, "fr-qemu");
	EXPECT_FALSE(policy.tcgAllowed);
	EXPECT_EQ(policy.cidMin, 100U);
	EXPECT_EQ(policy.cidMax, 200U);
}

TEST(Policy, ErrorsNameTheLine)
{
	struct Case {
		const char *text;
		const char *message;
	};
	const Case cases[] = {
		{"allow\n", "policy(line 1): expected 'everyone', 'user NAME' or 'group NAME'"},
		{"\n\nallow users alice\n", "policy(line 3): expected 'everyone', 'user NAME' or 'group NAME', not 'users'"},
		{"allow user alice extra\n", "policy(line 1): expected 'everyone', 'user NAME' or 'group NAME'"},
		{"allow user a,b\n", "policy(line 1): 'a,b' is not a user or group name"},
		{"allow user -rf\n", "policy(line 1): '-rf' is not a user or group name"},
		{"frobnicate\n", "policy(line 1): unknown keyword 'frobnicate'"},
		{"tcg maybe\n", "policy(line 1): expected one 'tcg allow|deny' line"},
		{"tcg allow\ntcg deny\n", "policy(line 2): expected one 'tcg allow|deny' line"},
		{"qemu-user root\n", "policy(line 1): QEMU must not run as root"},
		{"qemu-user 0\n", "policy(line 1): QEMU must not run as root"},
		{"cid-range 5 100\n", "policy(line 1): '5' is not a decimal number from 10 to 4294967294"},
		{"cid-range 100 50\n", "policy(line 1): cid-range minimum above maximum"},
		{"limit vms -1\n", "policy(line 1): '-1' is not a decimal number from 0 to 1024"},
		{"limit memory 0x100\n", "policy(line 1): '0x100' is not a decimal number from 64 to 65536"},
		{"limit disks 65\n", "policy(line 1): '65' is not a decimal number from 1 to 64"},
		{"limit timeout 100 10\n", "policy(line 1): timeout minimum above maximum"},
		{"limit timeout 100\n", "policy(line 1): expected 'limit timeout MIN MAX'"},
		{"limit cpus 4\n", "policy(line 1): unknown limit 'cpus' (vms, memory, disks, timeout)"},
		{"limit vms 4 user\n", "policy(line 1): expected 'everyone', 'user NAME' or 'group NAME'"},
		{"image-dir relative user alice\n", "policy(line 1): 'relative' is not an absolute normalised directory other than /"},
		{"image-dir / everyone\n", "policy(line 1): '/' is not an absolute normalised directory other than /"},
		{"image-dir /srv/../etc everyone\n", "policy(line 1): '/srv/../etc' is not an absolute normalised directory other than /"},
		{"image-dir /srv/\n", "policy(line 1): expected 'image-dir PATH everyone|user NAME|group NAME'"},
		{"allow everyone\r\n", "policy(line 1): contains a byte that is not printable ASCII"},
		{"allow user \xc3\xa9\n", "policy(line 1): contains a byte that is not printable ASCII"},
	};
	for (const Case &c : cases) {
		Result<Policy> p = parsePolicy(c.text);
		ASSERT_FALSE(p) << c.text;
		EXPECT_EQ(p.error().message(), c.message) << c.text;
	}
	Result<Policy> nul = parsePolicy(std::string("allow everyone\0\n", 16));
	ASSERT_FALSE(nul);
	EXPECT_EQ(nul.error().message(), "policy(line 1): contains a byte that is not printable ASCII");
	EXPECT_FALSE(parsePolicy(std::string(2000, 'a')));
	EXPECT_FALSE(parsePolicy(std::string(kPolicyMaxBytes + 1, '\n')));
	EXPECT_FALSE(parsePolicy("allow user a b c d e f g h i\n"));
}

TEST(Policy, UnknownNamesAreErrorsNumbersAreIds)
{
	Result<Policy> p = parsePolicy("allow user mallory\n");
	ASSERT_TRUE(p);
	Policy policy = *p;
	Status ok = resolvePolicyNames(policy, fakeNames);
	ASSERT_FALSE(ok);
	EXPECT_EQ(ok.error().message(), "policy(mallory): unknown user");
	Policy numeric = parsed("allow user 4242\nallow group 77\n");
	EXPECT_TRUE(decide(numeric, {4242, {}}).allowed);
	EXPECT_TRUE(decide(numeric, {1, {77}}).allowed);
	EXPECT_FALSE(decide(numeric, {1, {78}}).allowed);
}

TEST(Policy, VmSizeWithinTheGrant)
{
	Grant grant;
	grant.maxMemoryMiB = 512;
	grant.maxDisks = 2;
	grant.timeoutMin = 60;
	grant.timeoutMax = 120;
	Result<VmSize> defaults = sizeVm(grant, std::nullopt, 2, std::nullopt);
	ASSERT_TRUE(defaults);
	EXPECT_EQ(defaults->memoryMiB, 256U);
	EXPECT_EQ(defaults->idleSeconds, 120U); // 600 clamped into 60..120
	grant.maxMemoryMiB = 128;
	EXPECT_EQ(sizeVm(grant, std::nullopt, 1, 90)->memoryMiB, 128U);
	EXPECT_EQ(sizeVm(grant, 256, 1, 90).error().message(), "--memory(256): above the limit of 128 MiB");
	EXPECT_EQ(sizeVm(grant, 64, 3, 90).error().message(), "--image(): more than 2 images");
	EXPECT_EQ(sizeVm(grant, 64, 1, 30).error().message(), "--timeout(30): outside the allowed 60..120 seconds");
	EXPECT_EQ(sizeVm(grant, 64, 1, 30).error().errnum(), EDQUOT);
}

TEST(Policy, PathBelow)
{
	EXPECT_EQ(pathBelow("/srv/backup/a/b.img", "/srv/backup"), "a/b.img");
	EXPECT_EQ(pathBelow("/srv/backup/x", "/srv/backup"), "x");
	EXPECT_FALSE(pathBelow("/srv/backup", "/srv/backup"));
	EXPECT_FALSE(pathBelow("/srv/backup/", "/srv/backup"));
	EXPECT_FALSE(pathBelow("/srv/backupx/a", "/srv/backup"));
	EXPECT_FALSE(pathBelow("/srv/a", "/srv/backup"));
}

} // namespace
} // namespace fr
