// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/policy.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include "shared/guest_abi.h"
#include "shared/validate.h"

namespace fr {

namespace {

constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxTokens = 8;
constexpr std::size_t kMaxNameLength = 32;
// Account names as useradd accepts them by default, plus digits-only ids.
constexpr CharSet kNameChars{true, "_.-"};

struct Line {
	std::size_t number;
	std::string_view tokens[kMaxTokens];
	std::size_t count = 0;
};

Error lineError(const Line &line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
Error lineError(const Line &line, const char *fmt, ...)
{
	char where[32];
	(void)std::snprintf(where, sizeof(where), "line %zu", line.number);
	char detail[Error::kDetailMax + 1];
	va_list args;
	va_start(args, fmt);
	(void)std::vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	return Error::invalid(EINVAL, "policy", where, "%s", detail);
}

// A token for an error message: printf's "%.*s" wants an int length.
#define TOKEN(sv) static_cast<int>((sv).size()), (sv).data()

// Splits one line into blank-separated tokens; '#' at the start of a token
// starts a comment. Only printable ASCII and tabs are accepted.
Result<Line> tokenize(std::string_view text, std::size_t number)
{
	Line line;
	line.number = number;
	if (text.size() > kMaxLine)
		return lineError(line, "longer than 1024 bytes");
	std::size_t i = 0;
	while (i < text.size()) {
		const auto c = static_cast<unsigned char>(text[i]);
		if (c == ' ' || c == '\t') {
			++i;
			continue;
		}
		if (c < 0x20 || c >= 0x7f)
			return lineError(line, "contains a byte that is not printable ASCII");
		if (c == '#')
			break;
		std::size_t end = i;
		while (end < text.size() && text[end] != ' ' && text[end] != '\t') {
			const auto d = static_cast<unsigned char>(text[end]);
			if (d < 0x20 || d >= 0x7f)
				return lineError(line, "contains a byte that is not printable ASCII");
			++end;
		}
		if (line.count == kMaxTokens)
			return lineError(line, "too many words");
		line.tokens[line.count++] = text.substr(i, end - i);
		i = end;
	}
	return line;
}

Result<std::uint32_t> number(const Line &line, std::string_view text, std::uint32_t min,
			     std::uint32_t max)
{
	Result<std::uint64_t> value = parseDecimal(text, min, max, "policy");
	if (!value) {
		return lineError(line, "'%.*s' is not a decimal number from %u to %u", TOKEN(text), min,
				 max);
	}
	return static_cast<std::uint32_t>(*value);
}

Status checkName(const Line &line, std::string_view name)
{
	if (name.empty() || name.size() > kMaxNameLength || !kNameChars.containsAll(name) ||
	    name.front() == '-')
		return lineError(line, "'%.*s' is not a user or group name", TOKEN(name));
	return {};
}

// Parses "everyone" | "user NAME" | "group NAME" at tokens[at...], which must
// be the rest of the line.
Result<Principal> principal(const Line &line, std::size_t at)
{
	Principal who;
	if (line.count == at + 1 && line.tokens[at] == "everyone")
		return who;
	if (line.count != at + 2)
		return lineError(line, "expected 'everyone', 'user NAME' or 'group NAME'");
	if (line.tokens[at] == "user")
		who.kind = Principal::Kind::User;
	else if (line.tokens[at] == "group")
		who.kind = Principal::Kind::Group;
	else
		return lineError(line, "expected 'everyone', 'user NAME' or 'group NAME', not '%.*s'",
				 TOKEN(line.tokens[at]));
	Status ok = checkName(line, line.tokens[at + 1]);
	if (!ok)
		return ok.error();
	who.name = std::string(line.tokens[at + 1]);
	return who;
}

// "limit KEY VALUE... [who]"
Result<Policy::LimitRule> limitRule(const Line &line)
{
	Policy::LimitRule rule;
	if (line.count < 3)
		return lineError(line, "expected 'limit vms|memory|disks N' or 'limit timeout MIN MAX'");
	const std::string_view key = line.tokens[1];
	std::size_t rest = 3;
	Result<std::uint32_t> value = std::uint32_t{0};
	if (key == "vms") {
		value = number(line, line.tokens[2], 0, 1024);
		if (value)
			rule.limits.vms = *value;
	} else if (key == "memory") {
		value = number(line, line.tokens[2], kMinMemoryMiB, kMaxMemoryMiBHard);
		if (value)
			rule.limits.memoryMiB = *value;
	} else if (key == "disks") {
		value = number(line, line.tokens[2], 1, kMaxDisksHard);
		if (value)
			rule.limits.disks = *value;
	} else if (key == "timeout") {
		if (line.count < 4)
			return lineError(line, "expected 'limit timeout MIN MAX'");
		value = number(line, line.tokens[2], 1, kMaxTimeoutHard);
		Result<std::uint32_t> max = number(line, line.tokens[3], 1, kMaxTimeoutHard);
		if (value && !max)
			return max.error();
		if (value && *value > *max)
			return lineError(line, "timeout minimum above maximum");
		if (value) {
			rule.limits.timeoutMin = *value;
			rule.limits.timeoutMax = *max;
		}
		rest = 4;
	} else {
		return lineError(line, "unknown limit '%.*s' (vms, memory, disks, timeout)", TOKEN(key));
	}
	if (!value)
		return value.error();
	if (line.count > rest) {
		Result<Principal> who = principal(line, rest);
		if (!who)
			return who.error();
		rule.who = *who;
	}
	return rule;
}

} // namespace

Policy defaultPolicy()
{
	Policy policy;
	policy.allowed.push_back(Principal{});
	return policy;
}

namespace {

// The keywords that may appear once.
struct Seen {
	bool qemuUser = false, tcg = false, cid = false, landlock = false;
};

Status imageDirLine(const Line &line, Policy &policy)
{
	if (line.count < 3)
		return lineError(line, "expected 'image-dir PATH everyone|user NAME|group NAME'");
	const std::string_view path = line.tokens[1];
	if (!checkAbsolutePath(path, "image-dir") || path == "/")
		return lineError(line, "'%.*s' is not an absolute normalised directory other than /",
				 TOKEN(path));
	Result<Principal> who = principal(line, 2);
	if (!who)
		return who.error();
	policy.imageDirs.push_back({std::string(path), *who});
	return {};
}

Status qemuUserLine(const Line &line, Policy &policy, bool &seen)
{
	if (seen || line.count != 2)
		return lineError(line, "expected one 'qemu-user NAME' line");
	Status ok = checkName(line, line.tokens[1]);
	if (!ok)
		return ok.error();
	if (line.tokens[1] == "root" || line.tokens[1] == "0")
		return lineError(line, "QEMU must not run as root");
	policy.qemuUser = std::string(line.tokens[1]);
	seen = true;
	return {};
}

// "KEYWORD ON|OFF", once: sets value.
Status switchLine(const Line &line, bool &seen, bool &value, std::string_view on,
		  std::string_view off, const char *expected)
{
	if (seen || line.count != 2 || (line.tokens[1] != on && line.tokens[1] != off))
		return lineError(line, "expected one '%s' line", expected);
	value = line.tokens[1] == on;
	seen = true;
	return {};
}

Status cidRangeLine(const Line &line, Policy &policy, bool &seen)
{
	if (seen || line.count != 3)
		return lineError(line, "expected one 'cid-range MIN MAX' line");
	Result<std::uint32_t> min = number(line, line.tokens[1], abi::kMinCid, 0xfffffffeU);
	if (!min)
		return min.error();
	Result<std::uint32_t> max = number(line, line.tokens[2], abi::kMinCid, 0xfffffffeU);
	if (!max)
		return max.error();
	if (*min > *max)
		return lineError(line, "cid-range minimum above maximum");
	policy.cidMin = *min;
	policy.cidMax = *max;
	seen = true;
	return {};
}

Status applyLine(const Line &line, Policy &policy, Seen &seen)
{
	const std::string_view keyword = line.tokens[0];
	if (keyword == "allow") {
		Result<Principal> who = principal(line, 1);
		if (!who)
			return who.error();
		policy.allowed.push_back(*who);
		return {};
	}
	if (keyword == "image-dir")
		return imageDirLine(line, policy);
	if (keyword == "limit") {
		Result<Policy::LimitRule> rule = limitRule(line);
		if (!rule)
			return rule.error();
		policy.limitRules.push_back(*rule);
		return {};
	}
	if (keyword == "qemu-user")
		return qemuUserLine(line, policy, seen.qemuUser);
	if (keyword == "tcg")
		return switchLine(line, seen.tcg, policy.tcgAllowed, "allow", "deny", "tcg allow|deny");
	if (keyword == "require-landlock")
		return switchLine(line, seen.landlock, policy.requireLandlock, "yes", "no",
				  "require-landlock yes|no");
	if (keyword == "cid-range")
		return cidRangeLine(line, policy, seen.cid);
	return lineError(line, "unknown keyword '%.*s'", TOKEN(keyword));
}

} // namespace

Result<Policy> parsePolicy(std::string_view text)
{
	Policy policy;
	if (text.size() > kPolicyMaxBytes)
		return Error::invalid(EFBIG, "policy", "", "larger than %zu bytes", kPolicyMaxBytes);
	Seen seen;
	std::size_t number1 = 0;
	while (!text.empty()) {
		++number1;
		const std::size_t newline = text.find('\n');
		const std::string_view raw = text.substr(0, newline);
		text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
		Result<Line> parsed = tokenize(raw, number1);
		if (!parsed)
			return parsed.error();
		if (parsed->count == 0)
			continue;
		if (Status applied = applyLine(*parsed, policy, seen); !applied)
			return applied.error();
	}
	return policy;
}

std::optional<std::uint32_t> systemNames(Principal::Kind kind, const std::string &name)
{
	std::vector<char> buf(16384);
	if (kind == Principal::Kind::User) {
		struct passwd pw {};
		struct passwd *found = nullptr;
		if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found)
			return pw.pw_uid;
	} else {
		struct group gr {};
		struct group *found = nullptr;
		if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found)
			return gr.gr_gid;
	}
	return std::nullopt;
}

Status resolvePolicyNames(Policy &policy, const NameResolver &resolve)
{
	auto fill = [&resolve](Principal &who) -> Status {
		if (who.kind == Principal::Kind::Everyone)
			return {};
		Result<std::uint64_t> id = parseDecimal(who.name, 0, 0xfffffffeU, "policy");
		if (id) {
			who.id = static_cast<std::uint32_t>(*id);
			return {};
		}
		std::optional<std::uint32_t> found = resolve(who.kind, who.name);
		if (!found)
			return Error::invalid(ENOENT, "policy", who.name, "unknown %s",
					      who.kind == Principal::Kind::User ? "user" : "group");
		who.id = *found;
		return {};
	};
	for (Principal &who : policy.allowed)
		if (Status s = fill(who); !s)
			return s;
	for (Policy::ImageDir &dir : policy.imageDirs)
		if (Status s = fill(dir.who); !s)
			return s;
	for (Policy::LimitRule &rule : policy.limitRules)
		if (Status s = fill(rule.who); !s)
			return s;
	return {};
}

namespace {

bool inGroups(const Caller &caller, std::uint32_t gid)
{
	for (std::uint32_t g : caller.gids)
		if (g == gid)
			return true;
	return false;
}

bool matches(const Principal &who, const Caller &caller)
{
	switch (who.kind) {
	case Principal::Kind::Everyone:
		return true;
	case Principal::Kind::User:
		return who.id == caller.uid;
	case Principal::Kind::Group:
		return inGroups(caller, who.id);
	}
	return false;
}

// One limit field: user rules (last wins) > group rules (most generous) >
// everyone rules (last wins) > built-in.
template <typename Field, typename Generous>
std::uint32_t pick(const Policy &policy, const Caller &caller, Field field, std::uint32_t builtin,
		   Generous moreGenerous)
{
	std::optional<std::uint32_t> user, group, everyone;
	for (const Policy::LimitRule &rule : policy.limitRules) {
		const std::optional<std::uint32_t> &value = rule.limits.*field;
		if (!value || !matches(rule.who, caller))
			continue;
		switch (rule.who.kind) {
		case Principal::Kind::User:
			user = value;
			break;
		case Principal::Kind::Group:
			if (!group || moreGenerous(*value, *group))
				group = value;
			break;
		case Principal::Kind::Everyone:
			everyone = value;
			break;
		}
	}
	return user ? *user : group ? *group : everyone ? *everyone : builtin;
}

} // namespace

Grant decide(const Policy &policy, const Caller &caller)
{
	Grant grant;
	grant.allowed = caller.uid == 0;
	for (const Principal &who : policy.allowed)
		grant.allowed = grant.allowed || matches(who, caller);
	for (const Policy::ImageDir &dir : policy.imageDirs)
		if (matches(dir.who, caller))
			grant.imageDirs.push_back(dir.path);
	const auto larger = [](std::uint32_t a, std::uint32_t b) { return a > b; };
	const auto smaller = [](std::uint32_t a, std::uint32_t b) { return a < b; };
	grant.maxVms = pick(policy, caller, &Limits::vms, kDefaultMaxVms, larger);
	grant.maxMemoryMiB = pick(policy, caller, &Limits::memoryMiB, kDefaultMaxMemoryMiB, larger);
	grant.maxDisks = pick(policy, caller, &Limits::disks, kDefaultMaxDisks, larger);
	grant.timeoutMin = pick(policy, caller, &Limits::timeoutMin, kDefaultTimeoutMin, smaller);
	grant.timeoutMax = pick(policy, caller, &Limits::timeoutMax, kDefaultTimeoutMax, larger);
	if (grant.timeoutMin > grant.timeoutMax)
		grant.timeoutMin = grant.timeoutMax;
	return grant;
}

Result<VmSize> sizeVm(const Grant &grant, std::optional<std::uint32_t> memoryMiB, std::size_t disks,
		      std::optional<std::uint32_t> idleSeconds)
{
	VmSize size;
	size.memoryMiB = memoryMiB.value_or(std::min<std::uint32_t>(256, grant.maxMemoryMiB));
	if (size.memoryMiB > grant.maxMemoryMiB)
		return Error::invalid(EDQUOT, "--memory", std::to_string(size.memoryMiB),
				      "above the limit of %u MiB", grant.maxMemoryMiB);
	if (disks > grant.maxDisks)
		return Error::invalid(EDQUOT, "--image", "", "more than %u images", grant.maxDisks);
	size.idleSeconds = idleSeconds.value_or(std::clamp<std::uint32_t>(600, grant.timeoutMin, grant.timeoutMax));
	if (size.idleSeconds < grant.timeoutMin || size.idleSeconds > grant.timeoutMax)
		return Error::invalid(EDQUOT, "--timeout", std::to_string(size.idleSeconds),
				      "outside the allowed %u..%u seconds", grant.timeoutMin, grant.timeoutMax);
	return size;
}

std::optional<std::string_view> pathBelow(std::string_view path, std::string_view dir) noexcept
{
	if (path.size() <= dir.size() + 1 || path.substr(0, dir.size()) != dir ||
	    path[dir.size()] != '/')
		return std::nullopt;
	return path.substr(dir.size() + 1);
}

} // namespace fr
