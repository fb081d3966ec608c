// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A stand-in for the guest protocol in unit tests, over the fake QEMU of
// fake_helper.cpp: that QEMU greets each connection with the ticket it was
// started with, and "authentication" compares it with ours (so a wrong or
// stale ticket fails like the real handshake). list/extract serve canned
// data; stop tells the fake QEMU to exit.

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/session.h"
#include "shared/guest_abi.h"

namespace fr::client::test {

struct FakeGuest {
	// guest path -> entries
	std::map<std::string, std::vector<GuestEntry>> dirs;
	// guest path -> bytes (raw or tar, whatever the test wants streamed)
	std::map<std::string, std::string> data;
	// guest path -> the entry extract() announces first (default: a file
	// named after the last component)
	std::map<std::string, GuestEntry> objects;
	// Fails every extract after this many bytes (a truncated stream).
	std::size_t truncateAfter = SIZE_MAX;
	// Fails every list after this many entries (a guest error mid-way).
	std::size_t listFailAfter = SIZE_MAX;
	// Raises this signal after the first chunk of an extract (0: none).
	int signalAfterFirstChunk = 0;
	// guest path -> extended attributes
	std::map<std::string, std::vector<std::pair<std::string, std::string>>> xattrs;
	// Read requests served (the mount's cache and read-ahead).
	int reads = 0;
	// Every request fails as if the VM died (the session breaks).
	bool dead = false;
	int handshakes = 0;
	int failHandshakes = 0; // the first N handshakes fail (as if mid-boot)
	// guest path -> the warning the guest attaches to answers about it
	std::map<std::string, std::string> warnings;
	// The LUKS keys given (unlock), and how many volumes each opens.
	std::vector<std::string> keys;
	std::uint64_t unlockOpens = 1;
	// Paths below this one answer "locked" (as a LUKS volume without its
	// key) until a key has been given.
	std::string lockedBelow;
};

class FakeSession final : public VmSession {
public:
	FakeSession(UniqueFd fd, FakeGuest &guest) : fd_(std::move(fd)), guest_(guest) {}

	Result<GuestStatus> status(bool) override
	{
		GuestStatus s;
		s.uptimeSeconds = 5;
		s.idleLeftSeconds = 595;
		s.details = {{"daemon_version", "fake 1"}, {"disks", "2"}};
		return s;
	}
	Status stop() override
	{
		if (::send(fd_.get(), "stop", 4, MSG_NOSIGNAL) != 4)
			return Error(errno, "send", "stop");
		return {};
	}
	Result<std::uint64_t> unlock(std::string_view key, std::chrono::milliseconds) override
	{
		guest_.keys.emplace_back(key);
		return guest_.unlockOpens;
	}
	std::string warning() const override { return warning_; }
	Status list(std::string_view path, EntryCallback onEntry) override
	{
		warning_ = warningFor(path);
		if (Status open = unlocked(path); !open)
			return open;
		const auto it = guest_.dirs.find(std::string(path));
		if (it == guest_.dirs.end()) {
			// A file: list answers NotDirectory, as the daemon does.
			if (Result<GuestEntry> object = stat(path); object && object->type != EntryType::Directory)
				return Error::invalid(ENOTDIR, "guest", std::string(path), "NotDirectory: not a directory")
					.withKind(ErrorKind::Guest);
			return Error::invalid(ENOENT, "guest", std::string(path),
					      "NotFound: No such file or directory").withKind(ErrorKind::Guest);
		}
		std::size_t sent = 0;
		for (const GuestEntry &entry : it->second) {
			if (sent++ == guest_.listFailAfter)
				return Error::invalid(EIO, "guest", std::string(path),
						      "IoError: Input/output error").withKind(ErrorKind::Guest);
			GuestEntry shown = entry;
			shown.warning = warning_; // as the real session does
			Status ok = onEntry(shown);
			if (!ok)
				return ok;
		}
		return {};
	}
	Status extract(std::string_view path, ExtractFormat, bool, EntryCallback onStart,
		       DataCallback onData) override
	{
		warning_ = warningFor(path.substr(0, path.find('#')));
		if (Status open = unlocked(path); !open)
			return open;
		const auto it = guest_.data.find(std::string(path));
		if (it == guest_.data.end())
			return Error(ENOENT, "guest", std::string(path)).withKind(ErrorKind::Guest);
		std::string objectPath(path);
		objectPath = objectPath.substr(0, objectPath.find('#'));
		GuestEntry object;
		object.name = objectPath.substr(objectPath.rfind('/') + 1);
		object.mode = 0644;
		if (const auto found = guest_.objects.find(objectPath); found != guest_.objects.end())
			object = found->second;
		object.warning = warning_;
		Status started = onStart(object);
		if (!started)
			return started;
		const std::string &bytes = it->second;
		for (std::size_t at = 0; at < bytes.size(); at += 4096) {
			if (at >= guest_.truncateAfter)
				return Error::invalid(EPROTO, "extract", std::string(path),
						      "stream ended without a trailer");
			Status ok = onData(std::string_view(bytes).substr(at, 4096));
			if (!ok)
				return ok;
			if (at == 0 && guest_.signalAfterFirstChunk != 0)
				::raise(guest_.signalAfterFirstChunk);
		}
		return {};
	}

	// The entry of `path`: objects[path], else the parent's listing, else
	// a directory when dirs has it.
	Result<GuestEntry> stat(std::string_view path) override
	{
		if (guest_.dead)
			return Error::invalid(ECONNRESET, "read", "guest", "connection reset");
		if (Status open = unlocked(path); !open)
			return open.error();
		const std::string p(path);
		if (auto it = guest_.objects.find(p); it != guest_.objects.end())
			return it->second;
		const std::size_t slash = p.rfind('/');
		const std::string parent = slash == 0 ? "/" : p.substr(0, slash);
		const std::string name = p.substr(slash + 1);
		if (auto dir = guest_.dirs.find(parent); dir != guest_.dirs.end())
			for (const GuestEntry &entry : dir->second)
				if (entry.name == name)
					return entry;
		if (guest_.dirs.count(p) != 0)
			return GuestEntry{.name = name, .type = EntryType::Directory, .mode = 0755};
		return Error::invalid(ENOENT, "guest", p, "NotFound: No such file or directory")
			.withKind(ErrorKind::Guest);
	}
	Result<std::uint64_t> read(std::string_view path, std::uint64_t offset, std::uint32_t length,
				   DataCallback onData) override
	{
		if (guest_.dead)
			return Error::invalid(ECONNRESET, "read", "guest", "connection reset");
		++guest_.reads;
		const auto it = guest_.data.find(std::string(path));
		if (it == guest_.data.end())
			return Error::invalid(ENOENT, "guest", std::string(path), "NotFound: No such file")
				.withKind(ErrorKind::Guest);
		const std::string &bytes = it->second;
		if (offset >= bytes.size())
			return std::uint64_t{0};
		const std::string_view part = std::string_view(bytes).substr(offset, length);
		for (std::size_t at = 0; at < part.size(); at += 65536)
			if (Status ok = onData(part.substr(at, 65536)); !ok)
				return ok.error();
		return static_cast<std::uint64_t>(part.size());
	}
	Status xattrs(std::string_view path, XattrCallback onXattr) override
	{
		if (guest_.dead)
			return Error::invalid(ECONNRESET, "read", "guest", "connection reset");
		if (auto it = guest_.xattrs.find(std::string(path)); it != guest_.xattrs.end())
			for (const auto &[name, value] : it->second)
				if (Status ok = onXattr(name, value); !ok)
					return ok;
		return {};
	}

private:
	Status unlocked(std::string_view path) const
	{
		const std::string &below = guest_.lockedBelow;
		if (below.empty() || !guest_.keys.empty() ||
		    !(path == below || path.substr(0, below.size() + 1) == below + "/"))
			return {};
		return Error::invalid(ENOKEY, "guest", std::string(path), "crypto_LUKS: locked: no key given")
			.withKind(ErrorKind::Guest);
	}
	std::string warningFor(std::string_view path) const
	{
		for (const auto &[prefix, text] : guest_.warnings)
			if (path.substr(0, prefix.size()) == prefix)
				return text;
		return {};
	}

	UniqueFd fd_;
	FakeGuest &guest_;
	std::string warning_;
};

class FakeSessionFactory final : public SessionFactory {
public:
	explicit FakeSessionFactory(FakeGuest &guest) : guest_(guest) {}

	Result<std::unique_ptr<VmSession>> open(UniqueFd fd, std::string_view ticketHex,
						   std::chrono::milliseconds handshakeTimeout,
						   std::chrono::milliseconds) override
	{
		timeval tv{};
		tv.tv_sec = static_cast<time_t>(handshakeTimeout.count() / 1000);
		tv.tv_usec = static_cast<suseconds_t>(handshakeTimeout.count() % 1000 * 1000);
		::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		++guest_.handshakes;
		if (guest_.failHandshakes > 0) {
			--guest_.failHandshakes;
			return Error::invalid(ECONNRESET, "handshake", "", "guest went away");
		}
		std::string greeting(abi::kTicketHexLength, '\0');
		std::size_t got = 0;
		while (got < greeting.size()) {
			const ssize_t n = ::recv(fd.get(), greeting.data() + got, greeting.size() - got, 0);
			if (n <= 0)
				return Error(n == 0 ? ECONNRESET : errno, "handshake", "recv");
			got += static_cast<std::size_t>(n);
		}
		if (greeting != ticketHex)
			return Error::invalid(EACCES, "handshake", "", "the guest does not know our ticket");
		return std::unique_ptr<VmSession>(new FakeSession(std::move(fd), guest_));
	}

private:
	FakeGuest &guest_;
};

} // namespace fr::client::test
