// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Starting the NBD server for one PBS disk image: Debian's nbdkit with our
// plugin (nbdkit_plugin.cpp), speaking NBD on one end of a socketpair
// (`nbdkit -s`). The other end goes to QEMU through the helper
// (`--image nbd:FD`). The server runs in its own session, outlives the
// client call that started it, and exits when QEMU closes its end.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/pbs/crypto.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

// Chunk cache and read-ahead of one server (docs/client.md states them).
inline constexpr unsigned kDefaultCacheMib = 32;
inline constexpr unsigned kDefaultReadAhead = 2;
// nbdkit's worker threads: requests decoded at once.
inline constexpr unsigned kServerThreads = 4;

// $FILE_RESTORE_NBDKIT_PLUGIN when set and non-empty (development builds
// and tests point it at the build tree), else the compiled-in path.
std::string nbdkitPluginPath();
// The compiled-in nbdkit (meson option nbdkit_binary).
std::string nbdkitBinaryPath();

struct NbdServerSpec {
	std::string datastore; // absolute
	std::string indexPath; // relative to the datastore
	Digest csum{};	       // the manifest's checksum of the index
	std::uint64_t size = 0;
	bool encrypted = false;
	std::optional<Key> key; // required when encrypted; sent on a pipe
	unsigned cacheMib = kDefaultCacheMib;
	unsigned readAhead = kDefaultReadAhead;
	// Where the server's messages go (bad chunks, start-up errors);
	// borrowed. -1: /dev/null.
	int logFd = -1;
};

// nbdkit's argv for `spec` (key-fd is 3 when encrypted).
std::vector<std::string> nbdServerArgv(const std::string &nbdkit, const std::string &plugin,
				       const NbdServerSpec &spec);

struct NbdServer {
	UniqueFd socket; // the end QEMU gets: a connected AF_UNIX stream socket
	pid_t pid = -1;
};

// Starts the server and waits (up to `timeout`) until it greets on the
// socket (peeked, so that QEMU still reads the greeting): a server that
// fails to start is an error here, before any VM starts. EIO with the
// reason left in the log when it exits early.
Result<NbdServer> startNbdServer(const NbdServerSpec &spec, std::chrono::milliseconds timeout);

} // namespace fr::pbs
