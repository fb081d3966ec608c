// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The caller agent: a child that has fully become the caller (groups, gid
// and uid — real, effective, saved — set, every capability set empty,
// no_new_privs, not dumpable; a root caller's stays root) and does
// everything the helper does with the caller's paths, handing fds back over
// SCM_RIGHTS. setfsuid() alone is no privilege drop: the effective uid stays
// 0 and CAP_SYS_PTRACE, CAP_SYSLOG and CAP_SYS_ADMIN still pass procfs's
// checks (issue 11: /proc/kallsyms leaked that way). Until finish(true) it
// also holds the serial socket it created and QEMU's pidfd: if the helper
// fails or dies (EOF), it removes the one and kills the other. The helper
// checks every fd it returns again (the caller may tamper with the agent).

#include <string>

#include "helper/identity.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

class CallerAgent {
public:
	enum class Op : char {
		OpenImage = 'i', // openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), O_RDONLY|O_NOCTTY|O_NONBLOCK
		OpenFile = 'f',  // the same, symlinks allowed (kernel, initramfs)
		Listen = 'l',    // the serial socket: bind() under umask 0177, listen(); undone unless kept
		ForkOnce = 'n',  // RLIMIT_NPROC: QEMU, forked by root, is not counted; EAGAIN at the limit
		Watch = 'w',     // `fd` is QEMU's pidfd: SIGKILLed unless kept
		Keep = 'k',
	};

	// Forks the agent and drops it to `caller`. Error: fork/socketpair.
	static Result<CallerAgent> start(const Identity &caller);
	CallerAgent(CallerAgent &&other) noexcept;
	CallerAgent &operator=(CallerAgent &&) = delete;
	~CallerAgent() { finish(false); }

	// One request; the fd it returns, if any (invalid for ForkOnce and
	// Watch). Error: the agent's errno for the operation, or ETIMEDOUT.
	Result<UniqueFd> request(Op op, const std::string &path, int fd = -1);
	// Ends the agent (waits for it): success keeps the socket and QEMU,
	// otherwise both are undone. Idempotent.
	void finish(bool success) noexcept;

private:
	CallerAgent(UniqueFd channel, pid_t pid) noexcept : channel_(std::move(channel)), pid_(pid) {}

	UniqueFd channel_;
	pid_t pid_ = -1;
};

} // namespace fr::helper
