// SPDX-License-Identifier: AGPL-3.0-or-later
// The helper's policy file parser and decisions: any text, names resolved by
// a fake user database.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shared/guest_abi.h"
#include "shared/policy.h"

namespace {

std::optional<std::uint32_t> fakeNames(fr::Principal::Kind, const std::string &name)
{
	if (name.size() % 3 == 0)
		return std::nullopt; // "unknown" names
	std::uint32_t id = 0;
	for (char c : name)
		id = id * 31 + static_cast<unsigned char>(c);
	return id % 5000;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view text(reinterpret_cast<const char *>(data), size);
	fr::Result<fr::Policy> parsed = fr::parsePolicy(text);
	if (!parsed)
		return 0;
	fr::Policy policy = *parsed;
	if (policy.cidMin < fr::abi::kMinCid || policy.cidMin > policy.cidMax)
		std::abort();
	if (policy.qemuUser.empty() || policy.qemuUser == "root" || policy.qemuUser == "0")
		std::abort();
	for (const fr::Policy::ImageDir &dir : policy.imageDirs)
		if (dir.path.size() < 2 || dir.path[0] != '/' || dir.path.back() == '/')
			std::abort();
	if (!fr::resolvePolicyNames(policy, fakeNames))
		return 0;
	for (std::uint32_t uid : {0U, 1U, 1000U, 4999U}) {
		const fr::Grant grant = fr::decide(policy, {uid, {uid, 100, 4000}});
		if (uid == 0 && !grant.allowed)
			std::abort();
		if (grant.timeoutMin > grant.timeoutMax || grant.maxDisks > fr::kMaxDisksHard ||
		    grant.maxMemoryMiB > fr::kMaxMemoryMiBHard)
			std::abort();
	}
	return 0;
}
