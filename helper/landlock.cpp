// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/landlock.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "qemu_load_paths.h"

namespace fr::helper {

namespace {

// The kernel's Landlock ABI (include/uapi/linux/landlock.h). Spelled out:
// Debian 12's headers predate the network and scope fields.
constexpr std::uint64_t kExecute = 1ULL << 0, kWriteFile = 1ULL << 1, kReadFile = 1ULL << 2,
			kReadDir = 1ULL << 3, kIoctlDev = 1ULL << 15;
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

// Every filesystem right the kernel's ABI knows: all of them are denied
// unless a rule grants them.
std::uint64_t handledFs(int abi) noexcept
{
	std::uint64_t rights = (1ULL << 13) - 1; // ABI 1: execute .. make_sym
	if (abi >= 2)
		rights |= 1ULL << 13; // refer
	if (abi >= 3)
		rights |= 1ULL << 14; // truncate
	if (abi >= 5)
		rights |= kIoctlDev;
	return rights;
}

Status addRule(int ruleset, const char *path, std::uint64_t allowed, std::uint64_t handled) noexcept
{
	UniqueFd fd(::open(path, O_PATH | O_CLOEXEC));
	if (!fd.isValid())
		return errno == ENOENT ? Status() : Status(Error(errno, "open", path));
	PathBeneath rule{allowed & handled, fd.get()};
	if (::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0) != 0)
		return Error(errno, "landlock_add_rule", path);
	return {};
}

} // namespace

Result<QemuRuleset> buildQemuRuleset(const std::string &qemuBinary, const std::string &imageDir,
				     bool kvm)
{
	QemuRuleset out;
	const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
	if (abi <= 0) {
		out.unavailable = "the kernel has no Landlock";
		return out;
	}
	if (kQemuLoadPaths[0] == nullptr) {
		out.unavailable = "QEMU's load paths were not known at build time";
		return out;
	}
	out.abi = static_cast<int>(abi);
	RulesetAttr attr{handledFs(out.abi), 0, 0};
	std::size_t size = sizeof(attr.handledFs);
	if (abi >= 4) {
		attr.handledNet = 3;
		size += sizeof(attr.handledNet);
	}
	if (abi >= 6) {
		attr.scoped = 3;
		size += sizeof(attr.scoped);
	}
	out.fd = UniqueFd(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
	if (!out.fd.isValid())
		return Error(errno, "landlock_create_ruleset");
	const std::uint64_t load = kReadFile | kReadDir | kExecute;
	const int rs = out.fd.get();
	for (const char *const *dir = kQemuLoadPaths; *dir != nullptr; ++dir)
		if (Status ok = addRule(rs, *dir, load, attr.handledFs); !ok)
			return ok.error();
	for (Status ok : {addRule(rs, qemuBinary.c_str(), kReadFile | kExecute, attr.handledFs),
			  addRule(rs, "/etc/ld.so.cache", kReadFile, attr.handledFs),
			  addRule(rs, imageDir.c_str(), kReadFile | kReadDir, attr.handledFs),
			  kvm ? addRule(rs, "/dev/kvm", kReadFile | kWriteFile | kIoctlDev, attr.handledFs)
			      : Status()})
		if (!ok)
			return ok.error();
	return out;
}

Status restrictToRuleset(int rulesetFd) noexcept
{
	if (Status ok = addRule(rulesetFd, "/proc/self", kReadFile | kReadDir, handledFs(5)); !ok)
		return ok;
	if (::syscall(SYS_landlock_restrict_self, rulesetFd, 0) != 0)
		return Error(errno, "landlock_restrict_self");
	return {};
}

} // namespace fr::helper
