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

// Whether fds 0, 1 and 2 are open, 0 readable and 1 and 2 writable. If one
// were closed, the next open() would land on it and, say, the JSON line
// would go into a file the helper opened as root. (For a setuid program
// glibc already replaces a closed one with /dev/full or /dev/null opened
// with the wrong access mode, which this refuses as well.)
Status checkStdFds() noexcept;

// Marks every fd above 2 close-on-exec: nothing inherited reaches QEMU by
// accident, even before the arguments say which fds are wanted.
Status markInheritedFdsCloexec() noexcept;

// Closes every fd from `from` upwards that is not in `keep`.
void closeFdsExcept(int from, const int *keep, std::size_t count) noexcept;

// Every signal back to its default action and nothing blocked: an ignored
// SIGCHLD would break waitpid, a blocked SIGTERM would reach QEMU blocked.
// SIGXFSZ and SIGPIPE are then ignored in the helper itself so that a low
// RLIMIT_FSIZE or a closed stdout pipe fails a write with EFBIG/EPIPE (a
// clear error, and cleanup) instead of killing the helper half-way; the
// child restores both before exec.
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

// Forks; the child enters a new session, moves `fds` into place and closes
// everything else, drops to `identity` (dropPrivileges), dies with the
// helper (PR_SET_PDEATHSIG) until the parent's go, sets no_new_privs,
// restricts itself with the Landlock ruleset, waits for the go, installs
// the seccomp filter last and execs `binary`. The parent runs `forked`,
// gives the go and learns from a close-on-exec pipe whether the exec
// happened. Returns the child's pid once QEMU runs; Error: the step that
// failed (the child has then exited and been reaped) or fork's errno.
Result<pid_t> launch(const Launch &launch);

} // namespace fr::helper
