// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Proving that a pid is still our VM's QEMU before signalling it. A pid alone
// proves nothing: it may have been reused by any process of this user. The
// proof is the process start time recorded when the VM started (field 22 of
// /proc/<pid>/stat) plus QEMU's "-name guest=file-restore:<VM name>"
// marker in /proc/<pid>/cmdline, checked AFTER opening a pidfd: the pidfd
// pins the process, so the checked process is the one signalled.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

// Field 22 (starttime) of a /proc/<pid>/stat text. The command name (field
// 2) is in parentheses and may hold spaces and ')': parsing starts after the
// LAST ')'. EINVAL on anything malformed.
Result<std::uint64_t> parseStatStartTime(std::string_view stat);

// Whether a NUL-separated /proc/<pid>/cmdline holds "-name" followed by
// "guest=file-restore:<vmName>" (alone, or followed by ",<more options>").
bool cmdlineHasMarker(std::string_view cmdline, std::string_view vmName);

Result<std::uint64_t> readStartTime(pid_t pid);

enum class ProcessState {
	Ours,     // start time and marker match
	Gone,     // no such process any more
	Foreign,  // the pid now belongs to something else
	Unmarked, // the same process (start time) without the marker: the
		  // helper's child before its exec of QEMU, or not QEMU at all
};

// Opens a pidfd for `pid` and checks it is the QEMU of `vmName` started at
// `startTime`. Gone/Foreign come back as state with an invalid fd.
struct VerifiedProcess {
	ProcessState state = ProcessState::Gone;
	UniqueFd pidfd;
};
Result<VerifiedProcess> verifyProcess(pid_t pid, std::uint64_t startTime, std::string_view vmName);

// pidfd_send_signal(2).
Status signalProcess(int pidfd, int signal);
// Waits until the process behind `pidfd` exits (true) or `timeout` passes.
bool waitForExit(int pidfd, std::chrono::milliseconds timeout);

// SIGTERM, then SIGKILL after `grace`, through a verified pidfd; success
// also when the process is already gone. EPERM when the pid is Foreign or
// Unmarked (nothing is signalled then).
Status terminateVerified(pid_t pid, std::uint64_t startTime, std::string_view vmName,
			 std::chrono::milliseconds grace);

struct QemuProcess {
	pid_t pid;
	std::string vmName;
};
// Processes carrying a file-restore marker, from /proc (any owner: a root
// caller's QEMU runs as the policy's user). Callers prove ownership
// further, e.g. by the console log fd pointing into their private runtime
// directory (fdTarget), which only works for processes they may inspect.
std::vector<QemuProcess> findOurQemus();

// The target of /proc/<pid>/fd/<fd> ("" when unreadable).
std::string fdTarget(pid_t pid, int fd);

} // namespace fr::client
