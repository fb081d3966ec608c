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

// Sets the filesystem uid/gid (what permission checks on open() use) for its
// lifetime and back to root afterwards. While a non-root fsuid is set the
// kernel also drops the CAP_DAC_* and CAP_FOWNER capabilities from the
// effective set. The supplementary groups stay the process's own, which
// for a non-root caller are the caller's.
class ScopedFsIdentity {
public:
	explicit ScopedFsIdentity(const Identity &who) noexcept;
	~ScopedFsIdentity();
	ScopedFsIdentity(const ScopedFsIdentity &) = delete;
	ScopedFsIdentity &operator=(const ScopedFsIdentity &) = delete;
	// setfsuid/setfsgid cannot report failure directly: checked by reading
	// the value back. Callers must test this before opening anything.
	Status status() const noexcept { return status_; }

private:
	Status status_;
};

// In the forked child, irreversibly: clears the bounding and ambient sets
// (while still root), sets the supplementary groups, then gid and uid (real,
// effective and saved), clears every remaining capability set, and proves
// the drop: setresuid(0,0,0) must fail and every id must read back as
// `who`. Uses no heap. Error: the failing step.
Status dropPrivileges(const Identity &who) noexcept;

// Whether `who` can open /dev/kvm read-write and it answers
// KVM_GET_API_VERSION (checked in a throw-away child that drops to `who`
// first, because QEMU, not the helper, will open it).
bool kvmUsable(const Identity &who) noexcept;

} // namespace fr::helper
