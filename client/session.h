// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The client's seam around the guest protocol: what the CLI needs from a
// connected, authenticated VM. The real implementation
// (protocol_session.cpp) wraps the protocol session from shared/; tests
// substitute fakes. Every
// byte a session hands back came from the guest and is hostile: names are
// bytes to be escaped for display, data is checked by whoever consumes it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/result.h"
#include "shared/status_callback.h"
#include "shared/unique_fd.h"

namespace fr::client {

// proxmox-file-restore's entry types.
enum class EntryType : char {
	Directory = 'd',
	File = 'f',
	Symlink = 'l',
	Hardlink = 'h',
	BlockDevice = 'b',
	CharDevice = 'c',
	Fifo = 'p',
	Socket = 's',
	Virtual = 'v', // the archive, bucket and component levels
};

struct GuestEntry {
	std::string name; // one component, bytes
	EntryType type = EntryType::File;
	std::uint64_t size = 0;
	std::uint32_t mode = 0;
	std::int64_t mtime = 0;
	std::string linkTarget; // symlinks only
};

enum class ExtractFormat { Raw, Tar, Zip };

// What the guest says about itself (`status`).
struct GuestStatus {
	std::optional<std::uint64_t> uptimeSeconds;
	std::optional<std::uint64_t> idleLeftSeconds;
	// Anything else it reports, as printable key/value text.
	std::vector<std::pair<std::string, std::string>> details;
};

// Errors of kind ErrorKind::Guest came from the guest's error trailer (the
// object is the guest path): the CLI rewords them with the user's path.
// Callbacks return a Status and cannot throw (shared/status_callback.h): an
// error they return ends the request and is returned by it.
class VmSession {
public:
	virtual ~VmSession() = default;

	// keepTimeout: ask without resetting the guest's idle timer.
	virtual Result<GuestStatus> status(bool keepTimeout) = 0;
	// Asks the guest to power off.
	virtual Status stop() = 0;
	// Streams the entries of a guest directory; `onEntry` may stop the
	// listing by returning an error (which list() then returns).
	using EntryCallback = StatusCallback<const GuestEntry &>;
	virtual Status list(std::string_view guestPath, EntryCallback onEntry) = 0;
	// Streams a file (Raw) or any object (Tar/Zip, optionally zstd):
	// `onStart` first, with the entry describing the object itself, then
	// `onData` per chunk. Returns success only after the guest's success
	// trailer: a truncated stream is always an error. Tar members are named
	// relative to an extracted directory (which is not a member itself); a
	// single file is one member named after it (docs/protocol.md).
	using DataCallback = StatusCallback<std::string_view>;
	virtual Status extract(std::string_view guestPath, ExtractFormat format, bool zstd,
			       EntryCallback onStart, DataCallback onData) = 0;
};

// Turns a connected socket into an authenticated session (the mutual
// handshake with the VM's ticket). `handshakeTimeout` bounds the handshake
// (a booting VM answers only once its daemon runs); `ioTimeout` bounds each
// later wait for the guest (no progress for that long is an error).
class SessionFactory {
public:
	virtual ~SessionFactory() = default;
	virtual Result<std::unique_ptr<VmSession>>
	open(UniqueFd fd, std::string_view ticketHex, std::chrono::milliseconds handshakeTimeout,
	     std::chrono::milliseconds ioTimeout) = 0;
};

} // namespace fr::client
