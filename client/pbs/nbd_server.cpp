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

namespace {

// A pipe holding the 32-byte key, its write end closed: the server reads
// exactly the key and then EOF. (32 bytes always fit a pipe.)
Result<UniqueFd> keyPipe(const Key &key)
{
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		return Error(errno, "pipe2", "key");
	UniqueFd keyRead(fds[0]);
	UniqueFd keyWrite(fds[1]);
	if (::write(keyWrite.get(), key.data(), key.size()) != static_cast<ssize_t>(key.size()))
		return Error(errno, "write", "key pipe");
	return keyRead;
}

// The descriptors nbdkit gets: the NBD socket on 0 and 1, the log on 2, the
// key (when there is one) on kKeyFd. Each is first lifted above those
// numbers so that no dup2() overwrites another's source.
struct ChildFds {
	UniqueFd socket;
	UniqueFd log;
	UniqueFd key;
};

Result<ChildFds> liftChildFds(int socket, int log, int key)
{
	auto lift = [](int fd) { return UniqueFd(fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 10)); };
	ChildFds fds{lift(socket), lift(log), lift(key)};
	if (!fds.socket.isValid() || !fds.log.isValid() || (key >= 0 && !fds.key.isValid()))
		return Error(errno, "fcntl(F_DUPFD_CLOEXEC)", "nbd");
	return fds;
}

// nbdkit in its own session (the user's ^C on a client call must not take
// down the disk of a VM that later calls reuse), default signal handling, and
// a fixed environment: nothing of the caller's (LISTEN_FDS would make nbdkit
// try socket activation; LD_* and the like have no business).
Result<pid_t> spawnServer(const std::vector<std::string> &args, const ChildFds &fds)
{
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, fds.socket.get(), 0);
	posix_spawn_file_actions_adddup2(&actions, fds.socket.get(), 1);
	posix_spawn_file_actions_adddup2(&actions, fds.log.get(), 2);
	if (fds.key.isValid())
		posix_spawn_file_actions_adddup2(&actions, fds.key.get(), kKeyFd);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none;
	sigemptyset(&none);
	sigset_t defaults;
	sigfillset(&defaults);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						POSIX_SPAWN_SETSID);
	std::vector<char *> argv;
	argv.reserve(args.size() + 1);
	for (const std::string &arg : args)
		argv.push_back(const_cast<char *>(arg.c_str()));
	argv.push_back(nullptr);
	char envPath[] = "PATH=/usr/bin:/bin";
	char envLang[] = "LC_ALL=C";
	char *envp[] = {envPath, envLang, nullptr};
	pid_t pid = -1;
	const int rc = ::posix_spawn(&pid, args[0].c_str(), &actions, &attr, argv.data(), envp);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	if (rc != 0)
		return Error(rc, "exec", escapeForDisplay(args[0]));
	return pid;
}

// Waits for the NBD greeting on fd, without consuming it: true once it is
// there whole, false when the peer closed, sent something else, or the
// timeout passed.
bool awaitGreeting(int fd, std::chrono::milliseconds timeout)
{
	const auto deadline = std::chrono::steady_clock::now() + timeout;
	for (;;) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now());
		pollfd pfd{fd, POLLIN, 0};
		const int n = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count())));
		if (n < 0 && errno == EINTR)
			continue;
		char buf[kGreetingSize];
		const ssize_t got = n > 0 ? ::recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) : 0;
		if (got >= static_cast<ssize_t>(kGreetingSize))
			return std::memcmp(buf, kGreeting, sizeof(kGreeting) - 1) == 0;
		if (n <= 0 || got <= 0 || std::chrono::steady_clock::now() >= deadline)
			return false;
		::usleep(1000); // part of the greeting: wait for the rest
	}
}

} // namespace

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
		Result<UniqueFd> pipe = keyPipe(*spec.key);
		if (!pipe)
			return pipe.error();
		keyRead = std::move(*pipe);
	}
	UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
	if (!devNull.isValid())
		return Error(errno, "open", "/dev/null");
	Result<pid_t> pid = [&]() -> Result<pid_t> {
		Result<ChildFds> fds = liftChildFds(
			theirs.get(), spec.logFd >= 0 ? spec.logFd : devNull.get(), keyRead.get());
		if (!fds)
			return fds.error();
		return spawnServer(nbdServerArgv(nbdkitBinaryPath(), nbdkitPluginPath(), spec), *fds);
	}();
	theirs.reset();
	keyRead.reset();
	if (!pid)
		return pid.error();
	if (awaitGreeting(ours.get(), timeout))
		return NbdServer{std::move(ours), *pid};
	// No greeting: the server failed (its reason is in the log) or hung.
	::kill(*pid, SIGKILL);
	int status = 0;
	while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
	}
	return Error::invalid(EIO, "nbdkit", spec.indexPath, "did not start serving (see its log)");
}

} // namespace fr::pbs
