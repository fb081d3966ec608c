// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// QEMU's view of the filesystem (Landlock): read and execute of what it
// loads and nothing else, no write anywhere. The seccomp filter is a
// deny-list and QEMU runs as the caller, so without this a QEMU taken over
// by a hostile image could open and rewrite the caller's own files
// (~/.bashrc). Allowed, read-only:
//  - the QEMU binary (read, execute);
//  - the directories it loads from: its libraries and ELF interpreter, its
//    module directory and its firmware/data directories (and where their
//    symlinks point), computed at build time from the installed QEMU
//    (helper/qemu_load_paths.py: ldd, `qemu -L help`), not hard-coded;
//  - /etc/ld.so.cache, the compiled-in image directory (QEMU reopens the
//    kernel through /proc/self/fd), /dev/kvm (read-write) under KVM;
//  - its own /proc/<pid> (added by the launch child).
// Where the kernel offers them, also: no TCP bind/connect (ABI 4), no
// connecting to abstract unix sockets or signalling processes outside the
// sandbox (ABI 6).

#include <string>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

struct QemuRuleset {
	UniqueFd fd;                       // invalid: not available, see `unavailable`
	int abi = 0;                       // the kernel's Landlock ABI version
	const char *unavailable = nullptr; // why there is no ruleset
};

// Builds the ruleset (as root, before the fork: the paths are the system's
// and compiled in). Error: a rule the kernel refused.
Result<QemuRuleset> buildQemuRuleset(const std::string &qemuBinary, const std::string &imageDir,
				     bool kvm);

// In the launch child, after no_new_privs: adds the child's own /proc/<pid>
// and restricts the process. Uses no heap.
Status restrictToRuleset(int rulesetFd) noexcept;

} // namespace fr::helper
