// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>

#include "shared/fd_io.h"
#include "shared/helper_contract.h"

namespace fr::client {

namespace {

// Debian 12's glibc has no <sys/pidfd.h>.
int pidfdOpen(pid_t pid)
{
	return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

Result<std::string> readProcFile(pid_t pid, const char *leaf, std::size_t limit)
{
	return readFile("/proc/" + std::to_string(pid) + "/" + leaf, limit);
}

} // namespace

Result<std::uint64_t> parseStatStartTime(std::string_view stat)
{
	const std::size_t close = stat.rfind(')');
	if (close == std::string_view::npos)
		return Error::invalid(EINVAL, "/proc/<pid>/stat", "", "no command name");
	// After ") " come fields 3, 4, ...: starttime is the 20th of them.
	std::string_view rest = stat.substr(close + 1);
	for (int field = 3; field <= 22; ++field) {
		if (rest.empty() || rest.front() != ' ')
			return Error::invalid(EINVAL, "/proc/<pid>/stat", "", "truncated");
		rest.remove_prefix(1);
		const std::size_t end = rest.find_first_of(" \n");
		const std::string_view value = rest.substr(0, end);
		if (field == 22) {
			std::uint64_t out = 0;
			const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
			if (ec != std::errc() || ptr != value.data() + value.size() || value.empty())
				return Error::invalid(EINVAL, "/proc/<pid>/stat", "",
						      "starttime is not a number");
			return out;
		}
		if (end == std::string_view::npos)
			return Error::invalid(EINVAL, "/proc/<pid>/stat", "", "truncated");
		rest.remove_prefix(end);
	}
	return Error::invalid(EINVAL, "/proc/<pid>/stat", "", "truncated");
}

bool cmdlineHasMarker(std::string_view cmdline, std::string_view vmName)
{
	return contract::markedVmName(cmdline) == vmName;
}

Result<std::uint64_t> readStartTime(pid_t pid)
{
	Result<std::string> stat = readProcFile(pid, "stat", 4096);
	if (!stat)
		return stat.error();
	return parseStatStartTime(*stat);
}

Result<VerifiedProcess> verifyProcess(pid_t pid, std::uint64_t startTime, std::string_view vmName)
{
	VerifiedProcess out;
	if (pid < 2)
		return out;
	UniqueFd pidfd(pidfdOpen(pid));
	if (!pidfd.isValid()) {
		if (errno == ESRCH)
			return out;
		return Error(errno, "pidfd_open", std::to_string(pid));
	}
	// The pidfd now pins this process: if it exits and the pid is reused,
	// signalling the pidfd fails with ESRCH instead of hitting the new one.
	Result<std::string> stat = readProcFile(pid, "stat", 4096);
	Result<std::string> cmdline = readProcFile(pid, "cmdline", 1 << 20);
	if (!stat || !cmdline) {
		// Gone between pidfd_open and the reads (or /proc hides it: then it
		// is not ours to signal either).
		out.state = ::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) == 0
				    ? ProcessState::Foreign
				    : ProcessState::Gone;
		return out;
	}
	// A zombie has exited; only its parent's wait() is missing (where
	// PID 1 does not reap, that may be never).
	const std::size_t close = stat->rfind(')');
	if (close != std::string::npos && close + 2 < stat->size() &&
	    ((*stat)[close + 2] == 'Z' || (*stat)[close + 2] == 'X')) {
		out.state = ProcessState::Gone;
		return out;
	}
	Result<std::uint64_t> started = parseStatStartTime(*stat);
	if (!started || *started != startTime) {
		out.state = ProcessState::Foreign;
		return out;
	}
	if (!cmdlineHasMarker(*cmdline, vmName)) {
		out.state = ProcessState::Unmarked;
		return out;
	}
	out.state = ProcessState::Ours;
	out.pidfd = std::move(pidfd);
	return out;
}

Status signalProcess(int pidfd, int signal)
{
	if (::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) != 0 && errno != ESRCH)
		return Error(errno, "pidfd_send_signal", std::to_string(signal));
	return {};
}

bool waitForExit(int pidfd, std::chrono::milliseconds timeout)
{
	// A pidfd polls readable once the process has exited.
	pollfd pfd{pidfd, POLLIN, 0};
	const auto deadline = std::chrono::steady_clock::now() + timeout;
	for (;;) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		const int rc = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count())));
		if (rc > 0)
			return true;
		if (rc == 0)
			return false;
		if (errno != EINTR)
			return false;
	}
}

Status terminateVerified(pid_t pid, std::uint64_t startTime, std::string_view vmName,
			 std::chrono::milliseconds grace)
{
	Result<VerifiedProcess> process = verifyProcess(pid, startTime, vmName);
	if (!process)
		return process.error();
	if (process->state == ProcessState::Gone)
		return {};
	if (process->state != ProcessState::Ours)
		return Error::invalid(EPERM, "kill", std::to_string(pid),
				      "the pid is no longer this VM's QEMU; not signalled");
	const int pidfd = process->pidfd.get();
	Status sent = signalProcess(pidfd, SIGTERM);
	if (!sent)
		return sent;
	if (waitForExit(pidfd, grace))
		return {};
	sent = signalProcess(pidfd, SIGKILL);
	if (!sent)
		return sent;
	if (!waitForExit(pidfd, std::chrono::seconds(10)))
		return Error::invalid(ETIMEDOUT, "kill", std::to_string(pid),
				      "still running 10 s after SIGKILL");
	return {};
}

std::vector<QemuProcess> findOurQemus()
{
	std::vector<QemuProcess> found;
	for (contract::MarkedQemu &qemu : contract::findMarkedQemus())
		found.push_back({qemu.pid, std::move(qemu.vmName)});
	return found;
}

std::string fdTarget(pid_t pid, int fd)
{
	const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
	char buf[PATH_MAX];
	const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
	if (n <= 0 || static_cast<std::size_t>(n) >= sizeof(buf))
		return {};
	return std::string(buf, static_cast<std::size_t>(n));
}

} // namespace fr::client
