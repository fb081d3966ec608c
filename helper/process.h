// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Process hygiene at start-up, and the fork/drop/exec of QEMU.

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "helper/identity.h"
#include "shared/result.h"

namespace fr::helper {

// Whether fds 0, 1 and 2 are open, 0 readable and 1 and 2 writable: a closed
// one would be the next open()'s (glibc's wrong-mode /dev/full or /dev/null
// stand-ins for a setuid program are refused too).
Status checkStdFds() noexcept;

// Marks every fd above 2 close-on-exec: nothing inherited reaches QEMU by
// accident, even before the arguments say which fds are wanted.
Status markInheritedFdsCloexec() noexcept;

// Closes every fd from `from` upwards that is not in `keep`.
void closeFdsExcept(int from, const int *keep, std::size_t count) noexcept;

// Every signal back to its default action and nothing blocked; then SIGXFSZ
// and SIGPIPE ignored in the helper itself, so that a low RLIMIT_FSIZE or a
// closed stdout fails a write (a clear error, and cleanup) instead of
// killing it half-way. The launch child restores both.
void resetSignals() noexcept;

// What the child needs, all prepared by the parent (the child does not
// allocate).
struct Launch {
	Identity identity;                  // QEMU's uid/gid/groups
	std::string binary;
	std::vector<std::string> argv;
	std::vector<std::string> env;
	// fds to place at 0, 1, 2, 3, ... in this order (QEMU's layout).
	std::vector<int> fds;
	const void *filter = nullptr;       // struct sock_filter[]
	std::size_t filterLength = 0;       // number of instructions
	int landlockRuleset = -1;           // helper/landlock.h; -1: none
	// Runs in the parent once the child exists and before it may exec:
	// the caller agent takes QEMU's pidfd here (helper/caller_agent.h).
	std::function<Status(pid_t)> forked;
};

// Forks; the child does step 8 of helper/README.md (session, fd layout,
// identity drop, death signal until the go, no_new_privs, Landlock, seccomp
// last, execve); the parent runs `forked`, gives the go and learns from a
// close-on-exec pipe whether the exec happened. Returns QEMU's pid; Error:
// the step that failed (the child reaped) or fork's errno.
Result<pid_t> launch(const Launch &launch);

} // namespace fr::helper
