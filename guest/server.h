// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's side of the guest protocol (docs/protocol.md): one
// conversation with one host over a ByteStream, independent of where the
// answers come from (RequestHandler), so that it is unit-tested and fuzzed on
// the host.
//
// A conversation has two parts, kept apart in Connection: the
// unauthenticated handshake (hellos, then the host's Auth frame: nothing
// else is accepted before it) and, once the host proved it holds the
// ticket, the request dispatcher (one request at a time, each answered
// through the Responder and ended with a trailer).

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "guest/responder.h"
#include "guest/stream.h"
#include "shared/byte_stream.h"
#include "shared/frame_reader.h"
#include "shared/protocol.h"
#include "shared/result.h"

namespace fr::guest {

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
		   const ConnectionOptions &options);

	enum class Outcome { StreamEnded, Abandoned, Stopped, Closed };
	Outcome run();

private:
	enum class State { AwaitHello, AwaitAuth, Ready };
	// One step of run(): nullopt to go on, or how the conversation ended.
	using Step = std::optional<Outcome>;

	// Reading: a hello or a whole frame off the stream.
	Step takeHello(int timeoutMs);
	Step takeFrame(int timeoutMs);

	// The unauthenticated handshake.
	Step answerHello();
	Step authenticate(const FrameReader::Frame &frame);
	// Refuses an unauthenticated frame: the host must start over with a
	// hello (vsock: the connection is closed).
	Step refuse(proto::ErrorCode code, std::string_view message);

	// The request dispatcher, and one function per request type.
	Step dispatch(const FrameReader::Frame &frame);
	Status serveStatus(std::span<const std::uint8_t> body);
	void serveStop();
	Status serveExtract(std::span<const std::uint8_t> body);
	// The common shape of a request: decodes the body as a Request and
	// hands it to `handle` (a body that does not decode is answered with
	// Failure, as what `handle` returns is), then ends the response.
	template <typename Request, typename Handle>
	Status serve(std::span<const std::uint8_t> body, bool countEntries, Handle handle)
	{
		const Result<Request> request = proto::decode<Request>(body);
		return finish(request ? handle(*request) : Status(request.error()), countEntries);
	}
	// Ends a response with its trailer: End with what was sent (entries,
	// or Data bytes), or Failure from `result`.
	Status finish(const Status &result, bool countEntries);
	Status sendFailure(proto::ErrorCode code, int err, std::string_view message);

	// Flow control (FlowControl): Acks taken in while a response streams.
	Status admit(std::size_t bytes) override;
	void written(std::size_t bytes) override { sent_ += bytes; }

	const proto::Key &key_;
	RequestHandler &handler_;
	ConnectionOptions options_;
	Responder out_;
	FrameReader reader_;
	State state_ = State::AwaitHello;
	proto::Nonce clientNonce_{};
	proto::Nonce serverNonce_{};
	std::uint64_t sent_ = 0;  // bytes of the current response written
	std::uint64_t acked_ = 0; // of those, acknowledged by the host
};

} // namespace fr::guest
