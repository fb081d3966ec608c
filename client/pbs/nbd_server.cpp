// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/nbd_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <openssl/crypto.h>

#include "fr_config.h"
#include "shared/display.h"

namespace fr::pbs {

namespace {

// The NBD newstyle greeting: "NBDMAGIC" "IHAVEOPT" and 2 bytes of flags.
constexpr char kGreeting[] = "NBDMAGICIHAVEOPT";
constexpr std::size_t kGreetingSize = 18;
constexpr int kKeyFd = 3;

} // namespace

std::string nbdkitPluginPath()
{
	const char *fromEnv = std::getenv("FILE_RESTORE_NBDKIT_PLUGIN");
	if (fromEnv != nullptr && fromEnv[0] != '\0')
		return fromEnv;
	return FR_NBDKIT_PLUGIN;
}

std::string nbdkitBinaryPath()
{
	return FR_NBDKIT_BINARY;
}

std::vector<std::string> nbdServerArgv(const std::string &nbdkit, const std::string &plugin,
				       const NbdServerSpec &spec)
{
	std::vector<std::string> argv = {
		nbdkit,
		"--single",
		"--readonly",
		"--threads=" + std::to_string(kServerThreads),
		"--log=stderr",
		plugin,
		"datastore=" + spec.datastore,
		"index=" + spec.indexPath,
		"csum=" + hex(spec.csum),
		"size=" + std::to_string(spec.size),
		std::string("encrypted=") + (spec.encrypted ? "true" : "false"),
		"cache-mib=" + std::to_string(spec.cacheMib),
		"readahead=" + std::to_string(spec.readAhead),
	};
	if (spec.encrypted)
		argv.push_back("key-fd=" + std::to_string(kKeyFd));
	return argv;
}

Result<NbdServer> startNbdServer(const NbdServerSpec &spec, std::chrono::milliseconds timeout)
{
	if (spec.encrypted != spec.key.has_value())
		return Error::invalid(EINVAL, "nbd server", spec.indexPath,
				      "a key is needed for an encrypted image, and only then");
	int pair[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
		return Error(errno, "socketpair", "nbd");
	UniqueFd ours(pair[0]);
	UniqueFd theirs(pair[1]);

	UniqueFd keyRead;
	if (spec.key) {
		int fds[2];
		if (::pipe2(fds, O_CLOEXEC) != 0)
			return Error(errno, "pipe2", "key");
		keyRead.reset(fds[0]);
		UniqueFd keyWrite(fds[1]);
		// 32 bytes always fit the pipe: write now, close, so that the
		// server reads exactly the key and then EOF.
		if (::write(keyWrite.get(), spec.key->data(), spec.key->size()) !=
		    static_cast<ssize_t>(spec.key->size()))
			return Error(errno, "write", "key pipe");
	}
	UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!devNull.isValid())
		return Error(errno, "open", "/dev/null");
	const int logFd = spec.logFd >= 0 ? spec.logFd : devNull.get();

	// Above the numbers the child's dup2()s target.
	auto lift = [](int fd) { return UniqueFd(fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 10)); };
	UniqueFd theirsHigh = lift(theirs.get());
	UniqueFd logHigh = lift(logFd);
	UniqueFd keyHigh = lift(keyRead.get());
	if (!theirsHigh.isValid() || !logHigh.isValid() || (keyRead.isValid() && !keyHigh.isValid()))
		return Error(errno, "fcntl(F_DUPFD_CLOEXEC)", "nbd");

	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, theirsHigh.get(), 0);
	posix_spawn_file_actions_adddup2(&actions, theirsHigh.get(), 1);
	posix_spawn_file_actions_adddup2(&actions, logHigh.get(), 2);
	if (keyHigh.isValid())
		posix_spawn_file_actions_adddup2(&actions, keyHigh.get(), kKeyFd);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	sigset_t defaults;
	sigfillset(&defaults);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	// Its own session: the user's ^C on a client call must not take down
	// the disk of a VM that later calls reuse.
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						POSIX_SPAWN_SETSID);

	const std::vector<std::string> args =
		nbdServerArgv(nbdkitBinaryPath(), nbdkitPluginPath(), spec);
	std::vector<char *> argv;
	argv.reserve(args.size() + 1);
	for (const std::string &arg : args)
		argv.push_back(const_cast<char *>(arg.c_str()));
	argv.push_back(nullptr);
	// A fixed environment: nothing of the caller's (LISTEN_FDS would make
	// nbdkit try socket activation; LD_* and the like have no business).
	char envPath[] = "PATH=/usr/bin:/bin";
	char envLang[] = "LC_ALL=C";
	char *envp[] = {envPath, envLang, nullptr};
	pid_t pid = -1;
	const int rc = ::posix_spawn(&pid, args[0].c_str(), &actions, &attr, argv.data(), envp);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	theirsHigh.reset();
	theirs.reset();
	keyHigh.reset();
	keyRead.reset();
	if (rc != 0)
		return Error(rc, "exec", escapeForDisplay(args[0]));

	// Wait for the greeting, without consuming it.
	const auto deadline = std::chrono::steady_clock::now() + timeout;
	for (;;) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		pollfd pfd{ours.get(), POLLIN, 0};
		const int n = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count())));
		if (n < 0 && errno == EINTR)
			continue;
		char buf[kGreetingSize];
		const ssize_t got = n > 0 ? ::recv(ours.get(), buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) : 0;
		if (got >= static_cast<ssize_t>(kGreetingSize)) {
			if (std::memcmp(buf, kGreeting, sizeof(kGreeting) - 1) != 0)
				break; // not NBD: treat as a failed start
			return NbdServer{std::move(ours), pid};
		}
		if (n > 0 && got > 0) {
			// Part of the greeting: wait for the rest.
			::usleep(1000);
			if (std::chrono::steady_clock::now() < deadline)
				continue;
		}
		if (n == 0 || (n > 0 && got <= 0) || std::chrono::steady_clock::now() >= deadline)
			break;
	}
	// No greeting: the server failed (its reason is in the log) or hung.
	::kill(pid, SIGKILL);
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return Error::invalid(EIO, "nbdkit", spec.indexPath, "did not start serving (see its log)");
}

} // namespace fr::pbs
