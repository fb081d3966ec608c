// SPDX-License-Identifier: AGPL-3.0-or-later
// The seccomp profile language (build-time input, but a parser all the
// same): any text; what parses is compiled with libseccomp.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "seccomp-profiles/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view text(reinterpret_cast<const char *>(data), size);
	fr::Result<fr::seccomp::Profile> profile = fr::seccomp::parseProfile(text);
	if (!profile)
		return 0;
	if (!profile->sawDefault)
		std::abort();
	for (const fr::seccomp::Rule &rule : profile->rules) {
		if (rule.reason.empty() || rule.number < 0 || rule.conditions.size() > 1)
			std::abort();
		for (const fr::seccomp::Condition &c : rule.conditions)
			if (c.arg > 5 || (c.op == fr::seccomp::Condition::Op::MaskedEq && (c.value & ~c.mask) != 0))
				std::abort();
	}
	fr::Result<fr::seccomp::Bpf> bpf = fr::seccomp::compileProfile(*profile);
	if (bpf && (bpf->bytes.empty() || bpf->bytes.size() % 8 != 0))
		std::abort();
	return 0;
}
