// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// QEMU's view of the filesystem (shared/landlock.h): read and execute of
// what it loads and nothing else, no write anywhere (docs/security.md,
// step 8). The seccomp filter is a deny-list and QEMU runs as the caller:
// without this a QEMU taken over by a hostile image could rewrite the
// caller's ~/.bashrc.

#include <string>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

struct QemuRuleset {
	UniqueFd fd;                       // invalid: not available, see `unavailable`
	const char *unavailable = nullptr; // why there is no ruleset
};

// As root, before the fork: the QEMU binary (read, execute), the directories
// it loads from (qemu_load_paths.h, computed at build time), /etc/ld.so.cache,
// the image directory (QEMU reopens the kernel through /proc/self/fd), and
// /dev/kvm under KVM. Error: a rule the kernel refused.
Result<QemuRuleset> buildQemuRuleset(const std::string &qemuBinary, const std::string &imageDir,
				     bool kvm);

// In the launch child after no_new_privs: adds its own /proc/<pid> and
// restricts itself. Uses no heap.
Status restrictToRuleset(int rulesetFd) noexcept;

} // namespace fr::helper
