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

#include "guest/stream.h"
#include "shared/guest_session.h"
#include "shared/protocol.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// read(2) of up to buf.size() bytes, retried on EINTR: the count (0 at the
// end of the file). `what` names the file in errors. (For the responder's
// file contents and the handler's extracts alike.)
Result<std::size_t> readSome(int fd, std::span<std::uint8_t> buf, std::string_view what);

// Admits response bytes into the stream under the protocol's flow control
// (docs/protocol.md, "Flow control"); Connection implements it.
class FlowControl {
public:
	virtual ~FlowControl() = default;
	// Returns once `bytes` more may be written: waits for the host's Acks
	// while more than kAckWindow would be unacknowledged. Fails (the
	// response must be abandoned) when the host sends anything but an Ack,
	// or goes away.
	virtual Status admit(std::size_t bytes) = 0;
	virtual void written(std::size_t bytes) = 0;
};

// Writes one response's frames. Counts what the End trailer must carry.
// After a failed write the responder is broken(): the conversation is over
// and no trailer may follow.
class Responder {
public:
	// pipeSink: the same stream, where it can take spliced bytes (file
	// contents then never pass through the daemon's memory).
	explicit Responder(ByteStream &stream, FlowControl *flow = nullptr, PipeSink *pipeSink = nullptr)
		: stream_(stream), flow_(flow), pipeSink_(pipeSink)
	{
	}

	Status entry(const proto::Entry &entry);
	// Sends `bytes` as Data frames of at most kDataChunkSize.
	Status data(std::span<const std::uint8_t> bytes);
	// Sends the regular file `fd` from its current offset to its end as
	// Data frames: spliced file -> pipe -> stream where the stream is a
	// PipeSink (no copy in the guest), read and written otherwise. `what`
	// names the file in errors. A read error or a file that ends before
	// its size at the start ends the frame in progress with zeros and
	// returns the error (the caller's Failure trailer tells the host to
	// discard the data).
	Status file(int fd, std::string_view what);
	Status flush();

	std::uint64_t entries() const noexcept { return entries_; }
	std::uint64_t bytes() const noexcept { return bytes_; }
	bool broken() const noexcept { return broken_; }

	// For Connection: raw frames (trailers, status) through the same buffer.
	Status frames(const std::vector<std::uint8_t> &encoded);
	// reset() starts a new message without flow control (hellos, AuthOk:
	// the host may already be sending its next message); a request's
	// response is written under flow control.
	void reset(bool flowControlled = false) noexcept;

private:
	Status maybeFlush();
	Status copyFile(int fd, std::string_view what);
	Status spliceFile(int fd, std::uint64_t size, std::string_view what);
	// Moves one frame's data from the file into the pipe: exactly n bytes
	// (completed with zeros after an error, which is returned).
	Status fillFrame(int fd, std::size_t n, std::string_view what);
	// Writes all n bytes into the splice pipe.
	Status toPipe(const std::uint8_t *bytes, std::size_t n);
	Status preparePipe();

	ByteStream &stream_;
	FlowControl *flow_;
	PipeSink *pipeSink_;
	UniqueFd pipeRead_;
	UniqueFd pipeWrite_;
	std::size_t spliceFrame_ = 0; // data bytes per spliced frame
	bool fileSplice_ = true;      // splice(file -> pipe) works
	bool flowControlled_ = false;
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
	// The stream again, where it takes spliced bytes (Responder::file).
	PipeSink *pipeSink = nullptr;
	// Unacknowledged response bytes allowed (docs/protocol.md, "Flow
	// control"); tests use a window their socket buffers can hold.
	std::size_t ackWindow = proto::kAckWindow;
};

// The daemon's end of one stream. run() serves one conversation and returns
// StreamEnded when read() returned 0 or failed, Abandoned when a response
// could not be finished (the host went away, or sent something other than
// an Ack mid-response: those bytes stay buffered for the next run()),
// Closed when a vsock host failed to authenticate (in time), Stopped after
// Stop. The serial port calls run() again on the same Connection for the
// next host; every run() starts unauthenticated. Never aborts on input.
class Connection final : private FlowControl {
public:
	Connection(ByteStream &stream, const proto::Key &ticket, RequestHandler &handler,
		   ConnectionOptions options);

	enum class Outcome { StreamEnded, Abandoned, Stopped, Closed };
	Outcome run();

private:
	enum class State { AwaitHello, AwaitAuth, Ready };

	Status admit(std::size_t bytes) override;
	void written(std::size_t bytes) override { sent_ += bytes; }
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
	std::uint64_t sent_ = 0;  // bytes of the current response written
	std::uint64_t acked_ = 0; // of those, acknowledged by the host
};

} // namespace fr::guest
