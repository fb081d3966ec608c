// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The seccomp profile language of seccomp-profiles/*.policy and its
// compiler to BPF (libseccomp). Used at build time only, by the generator
// (generate.cpp) that embeds the BPF into the helper, and by the fuzz target;
// the helper itself never parses a profile.
//
//   # comment
//   default allow                      -- reason      (the only default: a kill-list)
//   foreign-arch kill                  -- reason      (x32, i386, ... entry points)
//   kill  <syscall> [<condition>]      -- reason
//   errno <ERRNO> <syscall> [<condition>] -- reason
//
//   <condition>:  a<N> <op> <value>      op: == != < <= > >=
//                 a<N> has <value>       all bits of value set ((aN & v) == v)
//                 a<N> & <mask> == <value>
//   <value>:      decimal, 0x-hex or a name from the built-in table
//                 (AF_UNIX, CLONE_NEWUSER, TIOCSTI, ...)
//
// One condition per line (libseccomp 2.5.4 can hang merging rules that test
// several arguments); several lines for one syscall are ORed (at most 8).
// Every rule must carry a reason after "--".

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::seccomp {

struct Condition {
	unsigned arg = 0;      // 0..5
	enum class Op { Eq, Ne, Lt, Le, Gt, Ge, MaskedEq } op = Op::Eq;
	std::uint64_t mask = 0; // MaskedEq only
	std::uint64_t value = 0;
};

struct Rule {
	bool kill = true;       // else: fail with `errnum`
	int errnum = 0;
	std::string syscall;
	int number = 0;         // resolved for the native architecture
	std::vector<Condition> conditions;
	std::string reason;
	std::size_t line = 0;
};

struct Profile {
	std::vector<Rule> rules;
	bool sawDefault = false;
	bool killForeignArch = false;
};

// Parses a profile. Error (EINVAL) names the line and what is wrong: unknown
// keyword, syscall or constant, bad condition, missing reason, duplicate
// directive. Syscall names are resolved with libseccomp for the native
// architecture (a misspelt syscall is an error, not a silent no-op).
Result<Profile> parseProfile(std::string_view text);

// A compiled filter: classic BPF instructions (struct sock_filter, 8 bytes
// each) as exported by libseccomp.
struct Bpf {
	std::vector<std::uint8_t> bytes;
};

// Compiles the profile with libseccomp (default action allow, the rules'
// actions, foreign architectures killed when asked) and exports the BPF.
Result<Bpf> compileProfile(const Profile &profile);

} // namespace fr::seccomp
