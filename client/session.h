// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The client's seam around the guest protocol: what the CLI needs from a
// connected, authenticated VM. The real implementation (guest_session.cpp)
// wraps the protocol session from shared/; tests substitute fakes. Every
// byte a session hands back came from the guest and is hostile: names are
// bytes to be escaped for display, data is checked by whoever consumes it.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/result.h"
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

class GuestSession {
public:
	virtual ~GuestSession() = default;

	// keepTimeout: ask without resetting the guest's idle timer.
	virtual Result<GuestStatus> status(bool keepTimeout) = 0;
	// Asks the guest to power off.
	virtual Status stop() = 0;
	// Streams the entries of a guest directory; `onEntry` may stop the
	// listing by returning an error (which list() then returns).
	using EntryCallback = std::function<Status(const GuestEntry &)>;
	virtual Status list(std::string_view guestPath, const EntryCallback &onEntry) = 0;
	// Streams a file (Raw) or a directory (Tar/Zip, optionally zstd).
	// Returns success only after the guest's success trailer: a truncated
	// stream is always an error.
	using DataCallback = std::function<Status(std::string_view chunk)>;
	virtual Status extract(std::string_view guestPath, ExtractFormat format, bool zstd,
			       const DataCallback &onData) = 0;
};

// Turns a connected socket into an authenticated session (the mutual
// handshake with the VM's ticket). The socket's timeouts bound the handshake.
class SessionFactory {
public:
	virtual ~SessionFactory() = default;
	virtual Result<std::unique_ptr<GuestSession>> open(UniqueFd fd, std::string_view ticketHex) = 0;
};

} // namespace fr::client
