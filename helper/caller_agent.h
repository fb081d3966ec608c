// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Everything the helper does on the caller's behalf with the caller's paths
// happens in the caller agent: a child that has fully become the caller
// (supplementary groups, gid and uid — real, effective and saved — set to
// the caller's, every capability set empty, no_new_privs, not dumpable) and
// hands its fds back over SCM_RIGHTS. setfsuid() alone is not a privilege
// drop: the effective uid stays 0 and CAP_SYS_PTRACE, CAP_SYSLOG and
// CAP_SYS_ADMIN still pass procfs's checks (the outside attack of issue 11
// read /proc/kallsyms that way). For a root caller the agent stays root: it
// can do no more than the caller.
//
// The agent also watches over the start: until the helper says finish(true)
// it holds the serial socket it created and QEMU's pidfd, and if the helper
// fails or dies (EOF on the channel) it removes the socket and kills that
// QEMU, so a killed helper leaves nothing behind. It ignores the terminal's
// signals and runs in its own session for that reason.
//
// Every fd it returns is checked by the helper again (fstat, fstatfs,
// headers): the agent runs as the caller, who may tamper with it.

#include <string>

#include "helper/identity.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

class CallerAgent {
public:
	// Forks the agent and drops it to `caller`. Error: fork/socketpair.
	static Result<CallerAgent> start(const Identity &caller);
	CallerAgent(CallerAgent &&other) noexcept;
	CallerAgent &operator=(CallerAgent &&) = delete;
	CallerAgent(const CallerAgent &) = delete;
	~CallerAgent();

	// An image: openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
	// O_RDONLY | O_NOCTTY | O_NONBLOCK. Error: the open's errno.
	Result<UniqueFd> openImage(const std::string &path);
	// A file of the image directory (kernel, base initramfs): the same
	// flags, symlinks allowed (a development build's image directory may
	// hold them), magic links not.
	Result<UniqueFd> openFile(const std::string &path);
	// The serial transport's listening socket, created at `path` under
	// umask 0177 (mode 0600); bind() refuses an existing path. The agent
	// removes it again unless finish(true).
	Result<UniqueFd> listen(const std::string &path);
	// Whether the caller may start one more process (RLIMIT_NPROC): the
	// agent forks once. The helper forks QEMU as root, which the kernel
	// would not count against the caller. Error: EAGAIN at the limit.
	Status probeProcessLimit();
	// QEMU's pidfd: SIGKILLed by the agent unless finish(true) comes first.
	Status watch(int pidfd);
	// Ends the agent: success keeps the socket and QEMU; otherwise both are
	// undone. Waits until the agent has exited. Idempotent.
	void finish(bool success) noexcept;

private:
	CallerAgent(UniqueFd channel, pid_t pid) noexcept : channel_(std::move(channel)), pid_(pid) {}
	Result<UniqueFd> request(char op, const std::string &path, int sendFd, bool wantFd);

	UniqueFd channel_;
	pid_t pid_ = -1;
};

} // namespace fr::helper
