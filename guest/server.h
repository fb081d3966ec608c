// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's side of the guest protocol (docs/protocol.md): one
// conversation with one host over a ByteStream, independent of where the
// answers come from (RequestHandler), so that it is unit-tested and fuzzed on
// the host.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shared/guest_session.h"
#include "shared/protocol.h"
#include "shared/result.h"

namespace fr::guest {

// Writes one response's frames. Counts what the End trailer must carry.
// After a failed write the responder is broken(): the conversation is over
// and no trailer may follow.
class Responder {
public:
	explicit Responder(ByteStream &stream) : stream_(stream) {}

	Status entry(const proto::Entry &entry);
	// Sends `bytes` as Data frames of at most kDataChunkSize.
	Status data(std::span<const std::uint8_t> bytes);
	Status flush();

	std::uint64_t entries() const noexcept { return entries_; }
	std::uint64_t bytes() const noexcept { return bytes_; }
	bool broken() const noexcept { return broken_; }

	// For Connection: raw frames (trailers, status) through the same buffer.
	Status frames(const std::vector<std::uint8_t> &encoded);
	void reset() noexcept;

private:
	Status maybeFlush();

	ByteStream &stream_;
	std::vector<std::uint8_t> out_;
	std::uint64_t entries_ = 0;
	std::uint64_t bytes_ = 0;
	bool broken_ = false;
};

// What the daemon does for each request. Errors returned are sent to the
// host as Failure (code from the errno, message from Error::format) unless
// the responder is broken.
class RequestHandler {
public:
	virtual ~RequestHandler() = default;
	virtual proto::StatusInfo status(bool keepTimeout) = 0;
	// Called after the End trailer of a Stop request was sent.
	virtual void stop() = 0;
	virtual Status list(std::string_view path, Responder &out) = 0;
	// Must send exactly one Entry (the object) before any data.
	virtual Status extract(const proto::ExtractRequest &request, Responder &out) = 0;
};

struct ConnectionOptions {
	// vsock: a connection that has not authenticated within this time is
	// closed, and so is one that fails authentication. Serial: 0, the port
	// outlives hosts, so the daemon just waits for the next hello.
	int preAuthTimeoutMs = 0;
	bool closeOnAuthFailure = false;
};

// One conversation. Returns StreamEnded when read() returned 0 or failed,
// Abandoned when a response could not be written (the host went away, or
// sent bytes mid-response: they are still unread, for the next
// conversation), Closed when a vsock host failed to authenticate (in time),
// Stopped after Stop. Never aborts on input.
class Connection {
public:
	Connection(ByteStream &stream, const proto::Key &ticket, RequestHandler &handler,
		   ConnectionOptions options);

	enum class Outcome { StreamEnded, Abandoned, Stopped, Closed };
	Outcome run();

private:
	enum class State { AwaitHello, AwaitAuth, Ready };

	Status fill(std::size_t want, int timeoutMs);
	std::size_t buffered() const noexcept { return in_.size() - inPos_; }
	Status sendFailure(proto::ErrorCode code, int err, std::string_view message);
	bool handleHello();
	// Returns false when the conversation must end.
	bool handleFrame(const proto::FrameHeader &header, std::span<const std::uint8_t> body,
			 Outcome &outcome);
	Status finish(const Status &result, bool countEntries);

	ByteStream &stream_;
	const proto::Key &key_;
	RequestHandler &handler_;
	ConnectionOptions options_;
	Responder out_;
	State state_ = State::AwaitHello;
	proto::Nonce clientNonce_{};
	proto::Nonce serverNonce_{};
	std::vector<std::uint8_t> in_;
	std::size_t inPos_ = 0;
};

} // namespace fr::guest
