// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/tools.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "guest/activity.h"
#include "guest/dm.h"
#include "shared/log.h"
#include "shared/unique_fd.h"

namespace fr::guest {

namespace {

constexpr std::size_t kMaxOut = std::size_t{1} << 20;
constexpr std::size_t kMaxErr = std::size_t{64} << 10;

// Children a runner waits for, and the statuses reaped for them.
std::mutex gReapMutex;
std::set<pid_t> gWaited;
std::map<pid_t, int> gStatuses;

void reapLocked() noexcept
{
	int status = 0;
	pid_t pid;
	while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
		if (gWaited.count(pid) != 0)
			gStatuses[pid] = status;
}

// Reads what is there from a non-blocking pipe into `into` (bounded;
// the excess is drained and dropped). False at EOF.
bool drain(int fd, std::string &into, std::size_t max)
{
	char buf[4096];
	for (;;) {
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (into.size() < max)
				into.append(buf, std::min(static_cast<std::size_t>(n), max - into.size()));
			continue;
		}
		if (n == 0)
			return false;
		return errno == EAGAIN || errno == EINTR;
	}
}

} // namespace

void reapChildren() noexcept
{
	std::lock_guard lock(gReapMutex);
	reapLocked();
}

std::string ToolResult::summary() const
{
	if (timedOut)
		return "gave up after its time limit";
	auto lastLine = [](const std::string &text) {
		std::size_t end = text.size();
		while (end > 0) {
			while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' '))
				--end;
			const std::size_t start = text.rfind('\n', end == 0 ? 0 : end - 1);
			const std::size_t from = start == std::string::npos ? 0 : start + 1;
			std::string line = text.substr(from, end - from);
			while (!line.empty() && line.front() == ' ')
				line.erase(line.begin());
			if (!line.empty())
				return line.substr(0, 200);
			end = from;
		}
		return std::string();
	};
	std::string line = lastLine(err);
	if (line.empty())
		line = lastLine(out);
	if (line.empty())
		line = signal != 0 ? "killed by signal " + std::to_string(signal) : "exit status " + std::to_string(exitCode);
	return line;
}

Status Tools::ensureMounted()
{
	std::lock_guard lock(mutex_);
	if (mounted_)
		return {};
	const std::uint64_t start = monotonicMs();
	UniqueFd image(::open(image_.c_str(), O_RDONLY | O_CLOEXEC));
	if (!image.isValid())
		return Error(errno, "open", image_);
	if (Status ok = modules_.loadGroup("tools"); !ok)
		return ok.error();
	Result<LoopDevice> loop = attachLoop(image.get(), true);
	if (!loop)
		return loop.error();
	::mkdir(mountPoint_.c_str(), 0755);
	if (::mount(loop->dev.c_str(), mountPoint_.c_str(), "squashfs", MS_RDONLY | MS_NODEV | MS_NOSUID, nullptr) != 0)
		return Error(errno, "mount", mountPoint_);
	mounted_ = true;
	logf(LogLevel::Info, "tools mounted in %llu ms", static_cast<unsigned long long>(monotonicMs() - start));
	return {};
}

namespace {

// The child's ends and ours of its stdin, stdout and stderr.
struct ChildPipes {
	UniqueFd inRead, inWrite, outRead, outWrite, errRead, errWrite;
};

Result<ChildPipes> makePipes(const std::string &program)
{
	ChildPipes pipes;
	for (auto [read, write] : {std::pair{&pipes.inRead, &pipes.inWrite}, std::pair{&pipes.outRead, &pipes.outWrite},
				   std::pair{&pipes.errRead, &pipes.errWrite}}) {
		int fds[2];
		if (::pipe2(fds, O_CLOEXEC) != 0)
			return Error(errno, "pipe2", program);
		*read = UniqueFd(fds[0]);
		*write = UniqueFd(fds[1]);
	}
	return pipes;
}

// Forks and execs `argv` with `envp`, the pipes as stdin/stdout/stderr, in
// its own process group, under the command's memory limit. The child is
// registered for the reaper before it can exit.
Result<pid_t> spawn(const ToolCommand &command, std::vector<char *> &argv, std::vector<char *> &envp,
		    const ChildPipes &pipes)
{
	rlimit as{RLIM_INFINITY, RLIM_INFINITY};
	if (command.memoryLimit != 0)
		as.rlim_cur = as.rlim_max = command.memoryLimit;
	// Registered before it can exit: the main loop's reaping keeps its
	// status for us.
	std::lock_guard lock(gReapMutex);
	const pid_t pid = ::fork();
	if (pid == 0) {
		// Only async-signal-safe calls between fork and exec.
		::setpgid(0, 0);
		::dup2(pipes.inRead.get(), 0);
		::dup2(pipes.outWrite.get(), 1);
		::dup2(pipes.errWrite.get(), 2);
		sigset_t none;
		sigemptyset(&none);
		::sigprocmask(SIG_SETMASK, &none, nullptr);
		(void)::signal(SIGPIPE, SIG_DFL);
		if (command.memoryLimit != 0)
			::setrlimit(RLIMIT_AS, &as);
		::execve(argv[0], argv.data(), envp.data());
		::_exit(127);
	}
	if (pid < 0)
		return Error(errno, "fork", command.program);
	gWaited.insert(pid);
	return pid;
}

// Feeds the child its input and collects its output until it exits or its
// time is up (then its process group is killed). A daemonising child
// (ntfs-3g) may leave its own child holding the pipes: exit, not EOF, ends
// the wait.
void pump(const ToolCommand &command, pid_t pid, ChildPipes &pipes, ToolResult &result)
{
	UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
	for (int fd : {pipes.inWrite.get(), pipes.outRead.get(), pipes.errRead.get()})
		::fcntl(fd, F_SETFL, O_NONBLOCK);
	if (command.input.empty())
		pipes.inWrite.reset();
	std::size_t written = 0;
	bool outOpen = true, errOpen = true, exited = false;
	const std::uint64_t deadline = monotonicMs() + static_cast<std::uint64_t>(command.timeoutMs);
	while (!exited) {
		const std::uint64_t now = monotonicMs();
		if (now >= deadline) {
			result.timedOut = true;
			::kill(-pid, SIGKILL);
			::kill(pid, SIGKILL);
			break;
		}
		pollfd fds[4] = {
			{pidfd.get(), POLLIN, 0},
			{outOpen ? pipes.outRead.get() : -1, POLLIN, 0},
			{errOpen ? pipes.errRead.get() : -1, POLLIN, 0},
			{pipes.inWrite.isValid() ? pipes.inWrite.get() : -1, POLLOUT, 0},
		};
		// Without a pidfd (never on 6.1), poll the status every 10 ms.
		const int wait = pidfd.isValid() ? static_cast<int>(std::min<std::uint64_t>(deadline - now, 1000)) : 10;
		if (::poll(fds, 4, wait) < 0 && errno != EINTR)
			break;
		if (fds[1].revents != 0)
			outOpen = drain(pipes.outRead.get(), result.out, kMaxOut);
		if (fds[2].revents != 0)
			errOpen = drain(pipes.errRead.get(), result.err, kMaxErr);
		if (fds[3].revents & (POLLERR | POLLHUP)) {
			pipes.inWrite.reset();
		} else if (fds[3].revents & POLLOUT) {
			const ssize_t n = ::write(pipes.inWrite.get(), command.input.data() + written,
						  command.input.size() - written);
			if (n > 0)
				written += static_cast<std::size_t>(n);
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == command.input.size())
				pipes.inWrite.reset();
		}
		if (!pidfd.isValid() || fds[0].revents != 0) {
			std::lock_guard lock(gReapMutex);
			reapLocked();
			exited = gStatuses.count(pid) != 0;
		}
	}
	pipes.inWrite.reset();
	if (outOpen)
		drain(pipes.outRead.get(), result.out, kMaxOut);
	if (errOpen)
		drain(pipes.errRead.get(), result.err, kMaxErr);
}

// The child's wait status, once reaped (after a SIGKILL the exit follows
// promptly); it is then forgotten.
int collectStatus(pid_t pid)
{
	int status = 0;
	std::unique_lock lock(gReapMutex);
	for (int i = 0; i < 500 && gStatuses.count(pid) == 0; ++i) {
		reapLocked();
		if (gStatuses.count(pid) == 0) {
			lock.unlock();
			::usleep(10000);
			lock.lock();
		}
	}
	if (auto it = gStatuses.find(pid); it != gStatuses.end()) {
		status = it->second;
		gStatuses.erase(it);
	}
	gWaited.erase(pid);
	return status;
}

} // namespace

Result<ToolResult> Tools::run(const ToolCommand &command)
{
	if (Status ok = ensureMounted(); !ok)
		return ok.error();
	const std::string path = mountPoint_ + "/bin/" + command.program;
	std::vector<std::string> argvStore{path};
	argvStore.insert(argvStore.end(), command.args.begin(), command.args.end());
	std::vector<std::string> envStore{"PATH=" + mountPoint_ + "/bin", "LD_LIBRARY_PATH=" + mountPoint_ + "/lib",
					  "LC_ALL=C", "HOME=/run"};
	envStore.insert(envStore.end(), command.env.begin(), command.env.end());
	std::vector<char *> argv, envp;
	for (std::string &a : argvStore)
		argv.push_back(a.data());
	argv.push_back(nullptr);
	for (std::string &e : envStore)
		envp.push_back(e.data());
	envp.push_back(nullptr);

	Result<ChildPipes> pipes = makePipes(command.program);
	if (!pipes)
		return pipes.error();
	Result<pid_t> pid = spawn(command, argv, envp, *pipes);
	if (!pid)
		return pid.error();
	pipes->inRead.reset();
	pipes->outWrite.reset();
	pipes->errWrite.reset();
	ToolResult result;
	pump(command, *pid, *pipes, result);
	const int status = collectStatus(*pid);
	if (WIFEXITED(status))
		result.exitCode = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		result.signal = WTERMSIG(status);
	return result;
}

} // namespace fr::guest
