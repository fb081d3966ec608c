// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/landlock.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace fr::landlock {

namespace {

constexpr unsigned kRulePathBeneath = 1;
constexpr unsigned kCreateRulesetVersion = 1U << 0;

struct RulesetAttr {
	std::uint64_t handledFs;
	std::uint64_t handledNet; // ABI 4: bind/connect TCP
	std::uint64_t scoped;     // ABI 6: abstract unix sockets, signals
};

struct __attribute__((packed)) PathBeneath {
	std::uint64_t allowed;
	std::int32_t parentFd;
};

std::uint64_t handledFs(int version) noexcept
{
	std::uint64_t rights = (1ULL << 13) - 1; // ABI 1: execute .. make_sym
	if (version >= 2)
		rights |= 1ULL << 13; // refer
	if (version >= 3)
		rights |= kTruncate;
	if (version >= 5)
		rights |= kIoctlDev;
	return rights;
}

} // namespace

int abi() noexcept
{
	const long version = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
	return version < 0 ? 0 : static_cast<int>(version);
}

Result<UniqueFd> createRuleset(std::span<const Rule> rules)
{
	const int version = abi();
	if (version <= 0)
		return Error(errno != 0 ? errno : ENOSYS, "landlock_create_ruleset");
	RulesetAttr attr{handledFs(version), 0, 0};
	std::size_t size = sizeof(attr.handledFs);
	if (version >= 4) {
		attr.handledNet = 3;
		size += sizeof(attr.handledNet);
	}
	if (version >= 6) {
		attr.scoped = 3;
		size += sizeof(attr.scoped);
	}
	UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
	if (!ruleset.isValid())
		return Error(errno, "landlock_create_ruleset");
	for (const Rule &rule : rules)
		if (Status ok = addRule(ruleset.get(), rule); !ok)
			return ok.error();
	return ruleset;
}

Status addRule(int ruleset, const Rule &rule) noexcept
{
	UniqueFd fd(::open(rule.path, O_PATH | O_CLOEXEC));
	if (!fd.isValid())
		return errno == ENOENT ? Status() : Status(Error(errno, "open", rule.path));
	PathBeneath beneath{rule.access & handledFs(abi()), fd.get()};
	if (::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &beneath, 0) != 0)
		return Error(errno, "landlock_add_rule", rule.path);
	return {};
}

Status restrictSelf(int ruleset) noexcept
{
	if (::syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
		return Error(errno, "landlock_restrict_self");
	return {};
}

} // namespace fr::landlock
