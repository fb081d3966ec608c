// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/helper_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "fr_config.h"
#include "shared/display.h"
#include "shared/host_tsc.h"
#include "shared/unique_fd.h"

extern char **environ;

namespace fr::client {

namespace {

// The helper prints one short line; anything much longer is broken.
constexpr std::size_t kCaptureMax = 4096;

struct Pipe {
	UniqueFd read;
	UniqueFd write;
};

Result<Pipe> makePipe()
{
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		return Error(errno, "pipe2", "helper");
	return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Moves an fd above the numbers the child's dup2()s target (up to
// kFirstNbdFd + kMaxImages), so that no dup2 clobbers a source still to be
// duplicated.
Result<UniqueFd> lifted(int fd)
{
	constexpr int kAbove = contract::kFirstNbdFd + static_cast<int>(contract::kMaxImages);
	const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, kAbove);
	if (high < 0)
		return Error(errno, "fcntl(F_DUPFD_CLOEXEC)", "helper");
	return UniqueFd(high);
}

std::string firstLine(std::string text)
{
	const std::size_t newline = text.find('\n');
	if (newline != std::string::npos)
		text.resize(newline);
	return text;
}

int errnoForExit(int code)
{
	switch (static_cast<contract::HelperExit>(code)) {
	case contract::HelperExit::Usage:
		return EINVAL;
	case contract::HelperExit::Denied:
		return EACCES;
	case contract::HelperExit::Limit:
		return EUSERS;
	default:
		return EIO;
	}
}

} // namespace

std::string helperPath()
{
	const char *fromEnv = std::getenv("FILE_RESTORE_HELPER");
	if (fromEnv != nullptr && fromEnv[0] != '\0')
		return fromEnv;
	return FR_HELPER_PATH;
}

std::vector<std::string> helperArgv(const std::string &path, const HelperRequest &request)
{
	contract::StartRequest start;
	start.name = request.name;
	start.transport = request.transport;
	if (request.transport == Transport::Vsock)
		start.cid = request.cid;
	if (request.transport == Transport::Serial)
		start.socketPath = request.socketPath;
	start.memoryMiB = request.memoryMib;
	start.timeout = request.idleTimeout;
	start.tscKhz = request.tscKhz;
	start.ticketFd = contract::kTicketFd;
	start.logFd = contract::kLogFd;
	int nbdFd = contract::kFirstNbdFd;
	for (const Archive &image : request.images) {
		if (image.format == ImageFormat::Nbd)
			start.images.push_back({image.format, "", nbdFd++});
		else
			start.images.push_back({image.format, image.path, -1});
	}
	return contract::formatStartArgs(path, start);
}

namespace {

// The helper's fds (contract::kTicketFd, kLogFd, kFirstNbdFd...), lifted
// above the numbers they are dup'ed to, and our ends of its stdout and
// stderr.
struct ChildFds {
	UniqueFd ticket, log, out, err;
	std::vector<UniqueFd> nbd;
	UniqueFd outRead, errRead;
};

Result<ChildFds> childFds(const HelperRequest &request, std::string_view ticketHex, int logFd)
{
	Result<Pipe> ticket = makePipe();
	Result<Pipe> out = makePipe();
	Result<Pipe> err = makePipe();
	if (!ticket)
		return ticket.error();
	if (!out)
		return out.error();
	if (!err)
		return err.error();
	// 64 bytes always fit the pipe: write it all now, then close our end
	// so that the helper sees EOF after the ticket.
	if (::write(ticket->write.get(), ticketHex.data(), ticketHex.size()) !=
	    static_cast<ssize_t>(ticketHex.size()))
		return Error(errno, "write", "ticket pipe");
	ticket->write.reset();
	Result<UniqueFd> ticketHigh = lifted(ticket->read.get());
	Result<UniqueFd> logHigh = lifted(logFd);
	Result<UniqueFd> outHigh = lifted(out->write.get());
	Result<UniqueFd> errHigh = lifted(err->write.get());
	if (!ticketHigh || !logHigh || !outHigh || !errHigh)
		return Error(errno, "fcntl(F_DUPFD_CLOEXEC)", "helper");
	std::size_t nbdImages = 0;
	for (const Archive &image : request.images)
		nbdImages += image.format == ImageFormat::Nbd ? 1 : 0;
	if (nbdImages != request.nbdFds.size())
		return Error::invalid(EINVAL, "helper", request.name,
				      "%zu nbd images but %zu sockets", nbdImages, request.nbdFds.size());
	ChildFds fds{std::move(*ticketHigh), std::move(*logHigh), std::move(*outHigh), std::move(*errHigh),
		     {}, std::move(out->read), std::move(err->read)};
	for (const int fd : request.nbdFds) {
		Result<UniqueFd> high = lifted(fd);
		if (!high)
			return high.error();
		fds.nbd.push_back(std::move(*high));
	}
	return fds;
}

// posix_spawn of the helper with its fds in place, no signal blocked,
// SIGPIPE default. Our copies of the child's fds are closed after.
Result<pid_t> spawnHelper(const std::string &path, const HelperRequest &request, ChildFds &fds)
{
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, fds.out.get(), 1);
	posix_spawn_file_actions_adddup2(&actions, fds.err.get(), 2);
	posix_spawn_file_actions_adddup2(&actions, fds.ticket.get(), contract::kTicketFd);
	posix_spawn_file_actions_adddup2(&actions, fds.log.get(), contract::kLogFd);
	for (std::size_t i = 0; i < fds.nbd.size(); ++i)
		posix_spawn_file_actions_adddup2(&actions, fds.nbd[i].get(),
						 contract::kFirstNbdFd + static_cast<int>(i));
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	sigset_t defaults;
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

	HelperRequest measured = request;
	if (const std::optional<std::uint64_t> khz = hostTscKhz();
	    khz && *khz >= contract::kMinTscKhz && *khz <= contract::kMaxTscKhz)
		measured.tscKhz = static_cast<std::uint32_t>(*khz);
	const std::vector<std::string> args = helperArgv(path, measured);
	std::vector<char *> argv;
	argv.reserve(args.size() + 1);
	for (const std::string &arg : args)
		argv.push_back(const_cast<char *>(arg.c_str()));
	argv.push_back(nullptr);
	pid_t pid = -1;
	const int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	fds.ticket.reset();
	fds.log.reset();
	fds.out.reset();
	fds.err.reset();
	fds.nbd.clear();
	if (rc != 0)
		return Error(rc, "exec", escapeForDisplay(path));
	return pid;
}

struct Finished {
	std::string stdoutText, stderrText;
	int status = 0;
	bool timedOut = false; // killed at the deadline
};

// Reads both pipes until EOF. QEMU must not inherit them (the helper
// points its stdout and stderr at the log fd): if it did, EOF would never
// come, so the helper's exit also ends the wait once the pipes are
// drained.
Finished awaitHelper(pid_t pid, UniqueFd outRead, UniqueFd errRead, Deadline deadline)
{
	Finished done;
	bool exited = false;
	while (outRead.isValid() || errRead.isValid()) {
		pollfd fds[2] = {{outRead.get(), POLLIN, 0}, {errRead.get(), POLLIN, 0}};
		const int n = ::poll(fds, 2, exited ? 0 : 50);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; ++i) {
			if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			char buf[1024];
			const ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
			std::string &text = i == 0 ? done.stdoutText : done.stderrText;
			if (got > 0 && text.size() < kCaptureMax)
				text.append(buf, static_cast<std::size_t>(got));
			if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
				(i == 0 ? outRead : errRead).reset();
		}
		if (!exited && ::waitpid(pid, &done.status, WNOHANG) == pid)
			exited = true;
		else if (exited && n == 0)
			break; // exited and nothing left to read
		if (!exited && Clock::now() >= deadline) {
			::kill(pid, SIGKILL);
			done.timedOut = true;
		}
	}
	if (!exited)
		while (::waitpid(pid, &done.status, 0) < 0 && errno == EINTR) {
		}
	return done;
}

} // namespace

Result<HelperOutput> SpawnHelperRunner::start(const HelperRequest &request,
					      std::string_view ticketHex, int logFd,
					      Deadline deadline)
{
	notices_.clear();
	Result<ChildFds> fds = childFds(request, ticketHex, logFd);
	if (!fds)
		return fds.error();
	Result<pid_t> pid = spawnHelper(path_, request, *fds);
	if (!pid)
		return pid.error();
	const Finished done = awaitHelper(*pid, std::move(fds->outRead), std::move(fds->errRead), deadline);
	if (done.timedOut)
		return Error::invalid(ETIMEDOUT, "file-restore-helper", request.name,
				      "did not finish in time; killed");

	std::string line = firstLine(done.stderrText);
	if (line.rfind("file-restore-helper: ", 0) == 0)
		line.erase(0, 21);
	line = escapeForDisplay(line);
	const int status = done.status;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		// The helper's own line says the cause; the advice what to do.
		const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (line.empty())
			line = WIFEXITED(status) ? "exit " + std::to_string(code) + " without a message"
						 : "killed by signal " + std::to_string(WTERMSIG(status));
		return Error::invalid(errnoForExit(code), "file-restore-helper", request.name, "%s; %s",
				      line.c_str(), contract::helperExitAdvice(code));
	}
	Result<HelperOutput> parsed = parseHelperOutput(done.stdoutText, request.transport);
	if (!parsed)
		return parsed.error();
	notices_ = done.stderrText;
	return parsed;
}

} // namespace fr::client
