// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The helper's policy file (docs/helper-policy.md): a small line-based
// format, root-owned, read by the setuid helper. This is the parser and the
// decision logic only; the helper opens and checks the file itself
// (helper/files.cpp, readPolicyFile). Nothing here touches the system: user and group
// names are resolved through a callback, so the parser can be fuzzed and
// unit-tested.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr {

// Who a line applies to.
struct Principal {
	enum class Kind { Everyone, User, Group };
	Kind kind = Kind::Everyone;
	std::string name;        // as written ("alice", "1000"); empty for Everyone
	std::uint32_t id = 0;    // uid or gid, set by resolvePolicyNames()
};

// Per-VM and per-user limits. Unset fields fall back to the next less
// specific rule and finally to the built-in defaults.
struct Limits {
	std::optional<std::uint32_t> vms;        // running VMs per user
	std::optional<std::uint32_t> memoryMiB;  // per VM
	std::optional<std::uint32_t> disks;      // per VM
	std::optional<std::uint32_t> timeoutMin; // idle timeout range, seconds
	std::optional<std::uint32_t> timeoutMax;
};

struct Policy {
	struct ImageDir {
		std::string path; // absolute, no "." / ".." / "//", no trailing '/'
		Principal who;
	};
	struct LimitRule {
		Principal who;
		Limits limits;
	};
	// No "allow" line: only root may use the helper.
	std::vector<Principal> allowed;
	std::vector<ImageDir> imageDirs;
	std::vector<LimitRule> limitRules; // in file order; `limit` lines without "user/group" apply to everyone
	std::string qemuUser = "nobody";    // the user QEMU runs as when the caller is root
	bool tcgAllowed = true;
	// Refuse to start QEMU where the kernel offers no Landlock (otherwise
	// the helper says once that QEMU runs without it, and goes on).
	bool requireLandlock = false;
	std::uint32_t cidMin = 10;
	std::uint32_t cidMax = 65535;
};

// Built-in limits: with no policy file, and for every value a policy leaves
// unset.
inline constexpr std::uint32_t kDefaultMaxVms = 4;
inline constexpr std::uint32_t kDefaultMaxMemoryMiB = 1024;
inline constexpr std::uint32_t kDefaultMaxDisks = 32;
inline constexpr std::uint32_t kDefaultTimeoutMin = 10;
inline constexpr std::uint32_t kDefaultTimeoutMax = 3600;
// Hard bounds no policy can exceed (the helper's own argument grammar).
inline constexpr std::uint32_t kMaxDisksHard = 64;
inline constexpr std::uint32_t kMinMemoryMiB = 64;
inline constexpr std::uint32_t kMaxMemoryMiBHard = 65536;
inline constexpr std::uint32_t kMaxTimeoutHard = 7 * 24 * 3600;
inline constexpr std::size_t kPolicyMaxBytes = std::size_t{64} * 1024;

// The policy in effect for a root caller when there is no policy file
// (root may always use the helper): built-in limits. Other callers are
// denied without a policy file.
Policy defaultPolicy();

// Parses the policy text. Error (EINVAL) names the line number and what was
// wrong; any error means the caller must deny everything.
Result<Policy> parsePolicy(std::string_view text);

// Maps user names and group names to ids. Called for every User/Group
// principal whose name is not all digits (numbers are ids already).
// Returns nullopt for an unknown name.
using NameResolver =
	std::function<std::optional<std::uint32_t>(Principal::Kind kind, const std::string &name)>;
// The user and group database (getpwnam_r/getgrnam_r).
std::optional<std::uint32_t> systemNames(Principal::Kind kind, const std::string &name);

// Fills every Principal's id. Error (ENOENT): an unknown user or group
// (a typo must not silently change who is allowed). Also resolves and
// checks nothing else.
Status resolvePolicyNames(Policy &policy, const NameResolver &resolve);

// The caller as the policy sees it.
struct Caller {
	std::uint32_t uid = 0;
	std::vector<std::uint32_t> gids; // primary and supplementary
};

// What the policy grants one caller.
struct Grant {
	bool allowed = false;
	std::vector<std::string> imageDirs; // opened by the helper as root
	std::uint32_t maxVms = kDefaultMaxVms;
	std::uint32_t maxMemoryMiB = kDefaultMaxMemoryMiB;
	std::uint32_t maxDisks = kDefaultMaxDisks;
	std::uint32_t timeoutMin = kDefaultTimeoutMin;
	std::uint32_t timeoutMax = kDefaultTimeoutMax;
};

// Decides for a caller (names must be resolved). Root is always allowed.
// For each limit: a rule naming the user wins, else the most generous rule
// naming one of the caller's groups, else the last rule for everyone, else
// the built-in value.
Grant decide(const Policy &policy, const Caller &caller);

// What one VM start asks for, checked against a Grant: the memory (default
// 256 MiB, at most the limit), the number of disks, the idle timeout
// (default 600 s clamped into the allowed range). Error: EDQUOT naming the
// option and the limit (the helper exits HelperExit::Limit).
struct VmSize {
	std::uint32_t memoryMiB = 0;
	std::uint32_t idleSeconds = 0;
};
Result<VmSize> sizeVm(const Grant &grant, std::optional<std::uint32_t> memoryMiB, std::size_t disks,
		      std::optional<std::uint32_t> idleSeconds);

// Whether `path` lies at or below `dir` (component-wise; both absolute and
// normalised as the validators demand). Returns the rest of the path
// ("a/b.img") or nullopt.
std::optional<std::string_view> pathBelow(std::string_view path, std::string_view dir) noexcept;

} // namespace fr
