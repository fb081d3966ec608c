// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/server.h"

#include <cerrno>
#include <cstring>

#include "shared/clock.h"
#include "shared/log.h"

namespace fr::guest {

namespace {

// Read granularity; the buffer never holds more than one request plus this.
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;

} // namespace

Connection::Connection(ByteStream &stream, const proto::Key &ticket, RequestHandler &handler,
		       const ConnectionOptions &options)
	: key_(ticket), handler_(handler), options_(options), out_(stream, this, options.pipeSink),
	  reader_(stream, proto::Direction::ToGuest, kReadChunk)
{
}

Connection::Outcome Connection::run()
{
	// The pre-authentication limit is for the whole set-up, so that a host
	// trickling bytes cannot hold a connection slot.
	const std::int64_t authDeadline = monotonicMs() + options_.preAuthTimeoutMs;
	// Every conversation authenticates anew: an authenticated session never
	// outlives the run() that authenticated it. A handshake in progress
	// (hello answered, Auth not yet here) does survive: on the serial port
	// the previous host's disconnect can reach the daemon after the next
	// host's hello (virtio_console delivers data from its interrupt handler
	// but connect/disconnect events from a workqueue), and dropping that
	// handshake left the new host waiting for an AuthOk that never came.
	// Only a host holding the ticket can complete it.
	if (state_ == State::Ready)
		state_ = State::AwaitHello;
	for (;;) {
		int timeout = -1;
		if (state_ != State::Ready && options_.preAuthTimeoutMs > 0) {
			timeout = msLeft(authDeadline, options_.preAuthTimeoutMs);
			if (timeout <= 0)
				return Outcome::Closed;
		}
		const Step step = state_ == State::AwaitHello ? takeHello(timeout) : takeFrame(timeout);
		if (step)
			return *step;
	}
}

namespace {

// A failed read: a host that let its pre-authentication time run out is
// closed; otherwise the stream ended (or failed).
Connection::Outcome readFailed(const Status &read, int timeoutMs)
{
	return read.error().errnum() == ETIMEDOUT && timeoutMs > 0 ? Connection::Outcome::Closed
								   : Connection::Outcome::StreamEnded;
}

} // namespace

// --- reading ---------------------------------------------------------------

Connection::Step Connection::takeHello(int timeoutMs)
{
	if (!reader_.seek(proto::kClientHelloMagic, proto::kClientHelloSize)) {
		if (Status ok = reader_.fill(reader_.buffered().size() + 1, timeoutMs); !ok)
			return readFailed(ok, timeoutMs);
		return std::nullopt;
	}
	return answerHello();
}

Connection::Step Connection::takeFrame(int timeoutMs)
{
	// At a frame boundary: a frame header, or a hello (a new session).
	if (Status ok = reader_.fill(proto::kFrameHeaderSize, timeoutMs); !ok)
		return readFailed(ok, timeoutMs);
	const std::span<const std::uint8_t> at = reader_.buffered();
	if (std::memcmp(at.data(), proto::kClientHelloMagic.data(), proto::kMagicSize) == 0) {
		state_ = State::AwaitHello;
		return std::nullopt;
	}
	if (const Result<proto::FrameHeader> header = reader_.peekHeader(); !header) {
		// Out of step (a previous host's leftovers, the sync padding, or
		// garbage): scan for the next hello.
		if (at[0] != 0)
			logError(header.error(), LogLevel::Warning);
		state_ = State::AwaitHello;
		reader_.consume(1);
		return std::nullopt;
	}
	const Result<FrameReader::Frame> frame = reader_.next(timeoutMs);
	if (!frame)
		return readFailed(frame.error(), timeoutMs);
	// A new frame starts no response yet: nothing is written or owed.
	out_.reset();
	sent_ = 0;
	acked_ = 0;
	return state_ == State::AwaitAuth ? authenticate(*frame) : dispatch(*frame);
}

// --- the unauthenticated handshake ------------------------------------------

Connection::Step Connection::answerHello()
{
	const Result<proto::ClientHello> hello =
		proto::decodeClientHello(reader_.buffered().first<proto::kClientHelloSize>());
	reader_.consume(proto::kClientHelloSize);
	if (!hello)
		return std::nullopt; // cannot happen: the caller found the magic
	if (hello->version != proto::kVersion)
		logf(LogLevel::Warning, "host speaks protocol version %u, answering with %u",
		     hello->version, proto::kVersion);
	// A hello starts a new session: whatever was authenticated is forgotten.
	clientNonce_ = hello->nonce;
	serverNonce_ = proto::randomNonce();
	proto::ServerHello reply;
	reply.version = proto::kVersion;
	reply.clientNonce = clientNonce_;
	reply.serverNonce = serverNonce_;
	reply.proof = proto::serverProof(key_, proto::kVersion, clientNonce_, serverNonce_);
	out_.reset();
	if (!out_.raw(proto::encodeServerHello(reply)) || !out_.flush())
		return Outcome::Abandoned;
	state_ = State::AwaitAuth;
	return std::nullopt;
}

Connection::Step Connection::authenticate(const FrameReader::Frame &frame)
{
	if (frame.type != proto::FrameType::Auth)
		return refuse(proto::ErrorCode::NotAuthenticated, "authenticate first");
	const Result<proto::Auth> auth = proto::decode<proto::Auth>(frame.body);
	if (!auth || !proto::verifyClientProof(key_, proto::kVersion, clientNonce_, serverNonce_, auth->proof)) {
		logf(LogLevel::Warning, "host failed authentication (wrong ticket)");
		return refuse(proto::ErrorCode::AuthFailed, "wrong client proof");
	}
	state_ = State::Ready;
	if (!out_.message(proto::AuthOk{}) || !out_.flush())
		return Outcome::StreamEnded;
	return std::nullopt;
}

Connection::Step Connection::refuse(proto::ErrorCode code, std::string_view message)
{
	state_ = State::AwaitHello;
	const bool sent = static_cast<bool>(sendFailure(code, EACCES, message));
	if (options_.closeOnAuthFailure || !sent)
		return Outcome::Closed;
	return std::nullopt;
}

// --- the request dispatcher ---------------------------------------------------

Connection::Step Connection::dispatch(const FrameReader::Frame &frame)
{
	if (frame.type == proto::FrameType::Ack)
		return std::nullopt; // a late acknowledgement of a finished response
	// An authenticated host's request. Its response is flow-controlled.
	out_.reset(true);
	Status done;
	switch (frame.type) {
	case proto::FrameType::Status:
		done = serveStatus(frame.body);
		break;
	case proto::FrameType::Stop:
		serveStop();
		return Outcome::Stopped;
	case proto::FrameType::List:
		done = serve<proto::ListRequest>(frame.body, true, [&](const proto::ListRequest &request) {
			return handler_.list(request.path, out_);
		});
		break;
	case proto::FrameType::Extract:
		done = serveExtract(frame.body);
		break;
	default: // Auth again
		done = sendFailure(proto::ErrorCode::BadRequest, EINVAL,
				   frame.type == proto::FrameType::Auth ? "already authenticated"
									: "unexpected frame type");
		break;
	}
	if (!done) {
		logError(done.error(), LogLevel::Info);
		// The host went away or sent something mid-response (a new host
		// on the serial port): end this conversation; the bytes that
		// arrived are read by the next one.
		return Outcome::Abandoned;
	}
	return std::nullopt;
}

Status Connection::serveStatus(std::span<const std::uint8_t> body)
{
	const Result<proto::StatusRequest> request = proto::decode<proto::StatusRequest>(body);
	if (!request)
		return finish(request.error(), true);
	if (Status ok = out_.message(handler_.status(request->keepTimeout)); !ok)
		return ok;
	if (Status ok = out_.message(proto::End{1}); !ok)
		return ok;
	return out_.flush();
}

void Connection::serveStop()
{
	if (out_.message(proto::End{0}))
		(void)out_.flush();
	handler_.stop();
}

Status Connection::serveExtract(std::span<const std::uint8_t> body)
{
	return serve<proto::ExtractRequest>(body, false, [&](const proto::ExtractRequest &request) {
		const std::int64_t start = monotonicMs();
		Status result = handler_.extract(request, out_);
		logf(LogLevel::Info, "extract: %llu bytes in %lld ms%s",
		     static_cast<unsigned long long>(out_.bytes()),
		     static_cast<long long>(monotonicMs() - start), result ? "" : " (failed)");
		if (result && out_.entries() != 1)
			result = Error(EIO, "extract", "handler sent no object entry"); // a bug
		return result;
	});
}

Status Connection::finish(const Status &result, bool countEntries)
{
	if (out_.broken())
		return Error(EPIPE, "write", "response abandoned");
	if (result) {
		if (Status ok = out_.message(proto::End{countEntries ? out_.entries() : out_.bytes()}); !ok)
			return ok;
		return out_.flush();
	}
	char message[proto::kMessageMax + 1];
	result.error().format(message, sizeof(message));
	const int err = result.error().errnum();
	logf(LogLevel::Info, "request failed: %s", message);
	return sendFailure(proto::codeForErrno(err), err, message);
}

Status Connection::sendFailure(proto::ErrorCode code, int err, std::string_view message)
{
	if (Status ok = out_.message(proto::Failure{code, err, std::string(message)}); !ok)
		return ok;
	return out_.flush();
}

// --- flow control ------------------------------------------------------------

Status Connection::admit(std::size_t bytes)
{
	for (;;) {
		// Take in whatever the host sent, without waiting.
		Status got = reader_.fill(reader_.buffered().size() + 1, 0);
		if (!got && got.error().errnum() != ETIMEDOUT)
			return got; // the host went away
		// Consume the Acks at the head of the input; anything else means
		// the host gave up on this response (or a new host arrived).
		while (reader_.buffered().size() >= proto::kFrameHeaderSize) {
			const Result<proto::FrameHeader> header = reader_.peekHeader();
			if (!header || header->type != proto::FrameType::Ack)
				return Error(ECANCELED, "response", "host sent a request mid-response");
			if (reader_.buffered().size() < proto::kFrameHeaderSize + proto::kAckSize)
				break;
			const Result<proto::Ack> ack = proto::decode<proto::Ack>(
				reader_.buffered().subspan(proto::kFrameHeaderSize, proto::kAckSize));
			if (!ack || ack->received > sent_)
				return Error(EPROTO, "response", "acknowledgement beyond what was sent");
			acked_ = ack->received > acked_ ? ack->received : acked_;
			reader_.consume(proto::kFrameHeaderSize + proto::kAckSize);
		}
		if (sent_ + bytes - acked_ <= options_.ackWindow || sent_ == acked_)
			return {};
		// Window full: wait for the host.
		if (Status more = reader_.fill(reader_.buffered().size() + 1, -1); !more)
			return more;
	}
}

} // namespace fr::guest
