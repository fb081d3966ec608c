// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Who the helper acts for, and the switches between identities.

#include <sys/types.h>

#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::helper {

struct Identity {
	uid_t uid = 0;
	gid_t gid = 0;
	std::vector<gid_t> groups; // supplementary
};

// The caller: real uid and gid and the supplementary groups the process was
// started with (a setuid exec keeps them). Error: getgroups' errno.
Result<Identity> callerIdentity();

// A named account (the policy's qemu-user): uid, primary gid and its groups
// from the user database. Error: ENOENT for an unknown user, EPERM for uid 0.
Result<Identity> accountIdentity(std::string_view name);

// In the forked child, irreversibly: clears the bounding and ambient sets
// (while still root), sets the supplementary groups, then gid and uid (real,
// effective and saved), clears every remaining capability set, and proves
// the drop: setresuid(0,0,0) must fail and every id must read back as
// `who`. Uses no heap. Error: the failing step.
Status dropPrivileges(const Identity &who) noexcept;

// Whether QEMU, running as `who`, can use KVM: a throw-away child drops to
// `who`, opens /dev/kvm and must run a test vCPU that fills 4 MiB of guest
// memory within 500 ms (docs/security.md, step 7). nullptr: usable; else why
// not (static text).
const char *kvmUnusableReason(const Identity &who) noexcept;

} // namespace fr::helper
