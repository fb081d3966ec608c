// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/landlock.h"

#include <vector>

#include "qemu_load_paths.h"
#include "shared/landlock.h"

namespace fr::helper {

using namespace landlock;

Result<QemuRuleset> buildQemuRuleset(const std::string &qemuBinary, const std::string &imageDir,
				     bool kvm)
{
	QemuRuleset out;
	if (abi() <= 0) {
		out.unavailable = "the kernel has no Landlock";
		return out;
	}
	if (kQemuLoadPaths[0] == nullptr) {
		out.unavailable = "QEMU's load paths were not known at build time";
		return out;
	}
	std::vector<Rule> rules = {{qemuBinary.c_str(), kReadFile | kExecute},
				   {"/etc/ld.so.cache", kReadFile},
				   {imageDir.c_str(), kReadFile | kReadDir}};
	for (const char *const *dir = kQemuLoadPaths; *dir != nullptr; ++dir)
		rules.push_back({*dir, kReadFile | kReadDir | kExecute});
	if (kvm)
		rules.push_back({"/dev/kvm", kReadFile | kWriteFile | kIoctlDev});
	Result<UniqueFd> ruleset = createRuleset(rules);
	if (!ruleset)
		return ruleset.error();
	out.fd = std::move(*ruleset);
	return out;
}

Status restrictToRuleset(int rulesetFd) noexcept
{
	if (Status ok = addRule(rulesetFd, {"/proc/self", kReadFile | kReadDir}); !ok)
		return ok;
	return restrictSelf(rulesetFd);
}

} // namespace fr::helper
