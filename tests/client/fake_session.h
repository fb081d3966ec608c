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
	int handshakes = 0;
	int failHandshakes = 0; // the first N handshakes fail (as if mid-boot)
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
	Status list(std::string_view path, EntryCallback onEntry) override
	{
		const auto it = guest_.dirs.find(std::string(path));
		if (it == guest_.dirs.end())
			return Error::invalid(ENOENT, "guest", std::string(path),
					      "NotFound: No such file or directory").withKind(ErrorKind::Guest);
		std::size_t sent = 0;
		for (const GuestEntry &entry : it->second) {
			if (sent++ == guest_.listFailAfter)
				return Error::invalid(EIO, "guest", std::string(path),
						      "IoError: Input/output error").withKind(ErrorKind::Guest);
			Status ok = onEntry(entry);
			if (!ok)
				return ok;
		}
		return {};
	}
	Status extract(std::string_view path, ExtractFormat, bool, EntryCallback onStart,
		       DataCallback onData) override
	{
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

private:
	UniqueFd fd_;
	FakeGuest &guest_;
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
