// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shared/log.h"

namespace fr::guest {

namespace {

// Frames are collected and written in batches of about this size.
constexpr std::size_t kFlushSize = std::size_t{64} * 1024;
// Read granularity; the buffer never holds more than one request plus this.
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
// Reads of file contents where they cannot be spliced.
constexpr std::size_t kFileReadSize = std::size_t{256} * 1024;
// The splice pipe: room for one Data frame of kDataChunkSize (one slot per
// page) and its header.
constexpr std::size_t kPageSize = 4096;
constexpr std::size_t kSplicePipeSize = std::size_t{1} << 20;

std::uint64_t nowMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

} // namespace

// --- Responder -------------------------------------------------------------

void Responder::reset(bool flowControlled) noexcept
{
	flowControlled_ = flowControlled;
	out_.clear();
	entries_ = 0;
	bytes_ = 0;
	broken_ = false;
}

Status Responder::flush()
{
	if (broken_)
		return Error(EPIPE, "write", "response abandoned");
	if (out_.empty())
		return {};
	if (flow_ != nullptr && flowControlled_) {
		if (Status ok = flow_->admit(out_.size()); !ok) {
			broken_ = true;
			out_.clear();
			return ok;
		}
	}
	Status ok = stream_.write(out_, -1);
	if (ok && flow_ != nullptr && flowControlled_)
		flow_->written(out_.size());
	out_.clear();
	if (!ok)
		broken_ = true;
	return ok;
}

Status Responder::maybeFlush()
{
	return out_.size() >= kFlushSize ? flush() : Status{};
}

Status Responder::frames(const std::vector<std::uint8_t> &encoded)
{
	if (broken_)
		return Error(EPIPE, "write", "response abandoned");
	out_.insert(out_.end(), encoded.begin(), encoded.end());
	return maybeFlush();
}

Status Responder::entry(const proto::Entry &entry)
{
	if (broken_)
		return Error(EPIPE, "write", "response abandoned");
	proto::encodeEntry(out_, entry);
	++entries_;
	return maybeFlush();
}

Status Responder::data(std::span<const std::uint8_t> bytes)
{
	while (!bytes.empty()) {
		if (broken_)
			return Error(EPIPE, "write", "response abandoned");
		const std::size_t n = bytes.size() < proto::kDataChunkSize ? bytes.size()
									  : proto::kDataChunkSize;
		proto::encodeDataHeader(out_, n);
		out_.insert(out_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
		bytes_ += n;
		bytes = bytes.subspan(n);
		if (Status ok = maybeFlush(); !ok)
			return ok;
	}
	return {};
}

Result<std::size_t> readSome(int fd, std::span<std::uint8_t> buf, std::string_view what)
{
	for (;;) {
		const ssize_t n = ::read(fd, buf.data(), buf.size());
		if (n >= 0)
			return static_cast<std::size_t>(n);
		if (errno != EINTR)
			return Error(errno, "read", what.substr(0, 200));
	}
}

Status Responder::file(int fd, std::string_view what)
{
	if (broken_)
		return Error(EPIPE, "write", "response abandoned");
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", what.substr(0, 200));
	const off_t at = ::lseek(fd, 0, SEEK_CUR);
	if (pipeSink_ != nullptr && S_ISREG(st.st_mode) && at >= 0 && st.st_size > at) {
		if (Status ok = spliceFile(fd, static_cast<std::uint64_t>(st.st_size - at), what); !ok)
			return ok;
	}
	// Without splice, and whatever follows the size seen at the start (a
	// file that grew: End counts what was actually sent).
	return copyFile(fd, what);
}

Status Responder::copyFile(int fd, std::string_view what)
{
	std::vector<std::uint8_t> buf(kFileReadSize);
	for (;;) {
		Result<std::size_t> n = readSome(fd, buf, what);
		if (!n)
			return n.error();
		if (*n == 0)
			return {};
		if (Status ok = data(std::span(buf.data(), *n)); !ok)
			return ok;
	}
}

Status Responder::preparePipe()
{
	if (pipeRead_.isValid())
		return {};
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		return Error(errno, "pipe2", "splice pipe");
	pipeRead_ = UniqueFd(fds[0]);
	pipeWrite_ = UniqueFd(fds[1]);
	// One frame (header + data) must fit the pipe: each page of file data
	// takes one pipe slot, the header one more, and data that does not
	// start on a page boundary one more.
	(void)::fcntl(pipeWrite_.get(), F_SETPIPE_SZ, static_cast<int>(kSplicePipeSize));
	const int capacity = ::fcntl(pipeWrite_.get(), F_GETPIPE_SZ);
	if (capacity < 0)
		return Error(errno, "fcntl(F_GETPIPE_SZ)", "splice pipe");
	const std::size_t room = static_cast<std::size_t>(capacity) - 2 * kPageSize;
	spliceFrame_ = room < proto::kDataChunkSize ? room : proto::kDataChunkSize;
	return {};
}

Status Responder::toPipe(const std::uint8_t *bytes, std::size_t n)
{
	while (n > 0) {
		const ssize_t w = ::write(pipeWrite_.get(), bytes, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return Error(errno, "write", "splice pipe");
		bytes += w;
		n -= static_cast<std::size_t>(w);
	}
	return {};
}

Status Responder::fillFrame(int fd, std::size_t n, std::string_view what)
{
	std::size_t got = 0;
	Status failure;
	while (got < n) {
		if (fileSplice_) {
			const ssize_t r = ::splice(fd, nullptr, pipeWrite_.get(), nullptr, n - got, SPLICE_F_MOVE);
			if (r > 0) {
				got += static_cast<std::size_t>(r);
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EINVAL) {
				fileSplice_ = false; // a filesystem without splice_read
				continue;
			}
			if (r < 0) {
				failure = Error(errno, "read", what.substr(0, 200));
				break;
			}
		} else {
			std::uint8_t buf[16384];
			Result<std::size_t> r =
				readSome(fd, std::span(buf, n - got < sizeof(buf) ? n - got : sizeof(buf)), what);
			if (!r) {
				failure = r.error();
				break;
			}
			if (*r > 0) {
				if (Status ok = toPipe(buf, *r); !ok)
					return ok;
				got += *r;
				continue;
			}
		}
		failure = Error::invalid(EIO, "read", what.substr(0, 200), "file shorter than its size");
		break;
	}
	// The frame's length is already in the pipe: complete it.
	static const std::uint8_t zeros[4096] = {};
	while (got < n) {
		const std::size_t want = n - got < sizeof(zeros) ? n - got : sizeof(zeros);
		if (Status ok = toPipe(zeros, want); !ok)
			return ok;
		got += want;
	}
	return failure;
}

Status Responder::spliceFile(int fd, std::uint64_t size, std::string_view what)
{
	// What is queued (the Entry) goes first.
	if (Status ok = flush(); !ok)
		return ok;
	if (Status ok = preparePipe(); !ok)
		return ok;
	std::uint64_t left = size;
	while (left > 0) {
		const std::size_t n = left < spliceFrame_ ? static_cast<std::size_t>(left) : spliceFrame_;
		const std::size_t frame = proto::kFrameHeaderSize + n;
		if (flow_ != nullptr && flowControlled_) {
			if (Status ok = flow_->admit(frame); !ok) {
				broken_ = true;
				return ok;
			}
		}
		std::vector<std::uint8_t> header;
		proto::encodeDataHeader(header, n);
		if (Status ok = toPipe(header.data(), header.size()); !ok)
			return ok;
		const Status filled = fillFrame(fd, n, what);
		Status sent = pipeSink_->fromPipe(pipeRead_.get(), frame, -1);
		if (!sent) {
			broken_ = true;
			// Whatever is left in the pipe belongs to no frame now.
			pipeRead_.reset();
			pipeWrite_.reset();
			return sent;
		}
		if (flow_ != nullptr && flowControlled_)
			flow_->written(frame);
		if (!filled)
			return filled; // the frame was completed with zeros
		bytes_ += n;
		left -= n;
	}
	return {};
}

// --- Connection ------------------------------------------------------------

Connection::Connection(ByteStream &stream, const proto::Key &ticket, RequestHandler &handler,
		       ConnectionOptions options)
	: stream_(stream), key_(ticket), handler_(handler), options_(options),
	  out_(stream, this, options.pipeSink)
{
}

Status Connection::admit(std::size_t bytes)
{
	for (;;) {
		// Take in whatever the host sent, without waiting.
		const std::size_t before = buffered();
		Status got = fill(before + 1, 0);
		if (!got && got.error().errnum() != ETIMEDOUT)
			return got; // the host went away
		// Consume the Acks at the head of the input; anything else means
		// the host gave up on this response (or a new host arrived).
		while (buffered() >= proto::kFrameHeaderSize) {
			const std::uint8_t *at = in_.data() + inPos_;
			const Result<proto::FrameHeader> header = proto::decodeFrameHeader(
				std::span<const std::uint8_t, proto::kFrameHeaderSize>(at, proto::kFrameHeaderSize),
				proto::Direction::ToGuest);
			if (!header || header->type != proto::FrameType::Ack)
				return Error(ECANCELED, "response", "host sent a request mid-response");
			if (buffered() < proto::kFrameHeaderSize + proto::kAckSize)
				break;
			const Result<std::uint64_t> ack = proto::decodeAck(
				std::span(at + proto::kFrameHeaderSize, proto::kAckSize));
			if (!ack || *ack > sent_)
				return Error(EPROTO, "response", "acknowledgement beyond what was sent");
			acked_ = *ack > acked_ ? *ack : acked_;
			inPos_ += proto::kFrameHeaderSize + proto::kAckSize;
		}
		if (sent_ + bytes - acked_ <= options_.ackWindow || sent_ == acked_)
			return {};
		// Window full: wait for the host.
		if (Status more = fill(buffered() + 1, -1); !more)
			return more;
	}
}

Status Connection::fill(std::size_t want, int timeoutMs)
{
	if (inPos_ == in_.size()) {
		in_.clear();
		inPos_ = 0;
	} else if (inPos_ >= kReadChunk) {
		in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(inPos_));
		inPos_ = 0;
	}
	while (buffered() < want) {
		const std::size_t at = in_.size();
		in_.resize(at + kReadChunk);
		Result<std::size_t> n = stream_.read(std::span(in_.data() + at, kReadChunk), timeoutMs);
		in_.resize(at + (n ? *n : 0));
		if (!n)
			return n.error();
		if (*n == 0)
			return Error(ECONNRESET, "read", "host connection closed");
	}
	return {};
}

Status Connection::sendFailure(proto::ErrorCode code, int err, std::string_view message)
{
	std::vector<std::uint8_t> frame;
	proto::encodeFailure(frame, proto::Failure{code, err, std::string(message)});
	if (Status ok = out_.frames(frame); !ok)
		return ok;
	return out_.flush();
}

bool Connection::handleHello()
{
	const Result<proto::ClientHello> hello = proto::decodeClientHello(
		std::span<const std::uint8_t, proto::kClientHelloSize>(in_.data() + inPos_,
								      proto::kClientHelloSize));
	inPos_ += proto::kClientHelloSize;
	if (!hello)
		return true; // cannot happen: the caller found the magic
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
	const proto::ServerHelloBytes bytes = proto::encodeServerHello(reply);
	out_.reset();
	if (!out_.frames(std::vector<std::uint8_t>(bytes.begin(), bytes.end())) || !out_.flush())
		return false;
	state_ = State::AwaitAuth;
	return true;
}

Status Connection::finish(const Status &result, bool countEntries)
{
	if (out_.broken())
		return Error(EPIPE, "write", "response abandoned");
	std::vector<std::uint8_t> frame;
	if (result) {
		proto::encodeEnd(frame, countEntries ? out_.entries() : out_.bytes());
		if (Status ok = out_.frames(frame); !ok)
			return ok;
		return out_.flush();
	}
	char message[proto::kMessageMax + 1];
	result.error().format(message, sizeof(message));
	const int err = result.error().errnum();
	logf(LogLevel::Info, "request failed: %s", message);
	return sendFailure(proto::codeForErrno(err), err, message);
}

bool Connection::handleFrame(const proto::FrameHeader &header, std::span<const std::uint8_t> body,
			     Outcome &outcome)
{
	out_.reset();
	sent_ = 0;
	acked_ = 0;
	if (state_ == State::Ready && header.type == proto::FrameType::Ack)
		return true; // a late acknowledgement of a finished response
	if (state_ == State::AwaitAuth) {
		if (header.type == proto::FrameType::Auth) {
			const Result<proto::Proof> proof = proto::decodeAuth(body);
			if (proof && proto::verifyClientProof(key_, proto::kVersion, clientNonce_,
							      serverNonce_, *proof)) {
				state_ = State::Ready;
				std::vector<std::uint8_t> frame;
				proto::encodeAuthOk(frame);
				return out_.frames(frame) && out_.flush();
			}
			logf(LogLevel::Warning, "host failed authentication (wrong ticket)");
			state_ = State::AwaitHello;
			const bool sent = static_cast<bool>(
				sendFailure(proto::ErrorCode::AuthFailed, EACCES, "wrong client proof"));
			if (options_.closeOnAuthFailure || !sent) {
				outcome = Outcome::Closed;
				return false;
			}
			return true;
		}
		state_ = State::AwaitHello;
		const bool sent = static_cast<bool>(
			sendFailure(proto::ErrorCode::NotAuthenticated, EACCES, "authenticate first"));
		if (options_.closeOnAuthFailure || !sent) {
			outcome = Outcome::Closed;
			return false;
		}
		return true;
	}

	// Ready: an authenticated host. Its response is flow-controlled.
	out_.reset(true);
	Status done;
	switch (header.type) {
	case proto::FrameType::Auth:
		done = sendFailure(proto::ErrorCode::BadRequest, EINVAL, "already authenticated");
		break;
	case proto::FrameType::Status: {
		const Result<proto::StatusRequest> request = proto::decodeStatusRequest(body);
		if (!request) {
			done = finish(request.error(), true);
			break;
		}
		std::vector<std::uint8_t> frames;
		proto::encodeStatusInfo(frames, handler_.status(request->keepTimeout));
		proto::encodeEnd(frames, 1);
		done = out_.frames(frames);
		if (done)
			done = out_.flush();
		break;
	}
	case proto::FrameType::Stop: {
		std::vector<std::uint8_t> frame;
		proto::encodeEnd(frame, 0);
		if (out_.frames(frame))
			(void)out_.flush();
		handler_.stop();
		outcome = Outcome::Stopped;
		return false;
	}
	case proto::FrameType::List: {
		const Result<std::string> path = proto::decodeList(body);
		done = finish(path ? handler_.list(*path, out_) : Status(path.error()), true);
		break;
	}
	case proto::FrameType::Extract: {
		const Result<proto::ExtractRequest> request = proto::decodeExtract(body);
		if (!request) {
			done = finish(request.error(), false);
			break;
		}
		const std::uint64_t start = nowMs();
		Status result = handler_.extract(*request, out_);
		logf(LogLevel::Info, "extract: %llu bytes in %llu ms%s",
		     static_cast<unsigned long long>(out_.bytes()),
		     static_cast<unsigned long long>(nowMs() - start), result ? "" : " (failed)");
		if (result && out_.entries() != 1)
			result = Error(EIO, "extract", "handler sent no object entry"); // a bug
		done = finish(result, false);
		break;
	}
	default:
		done = sendFailure(proto::ErrorCode::BadRequest, EINVAL, "unexpected frame type");
		break;
	}
	if (!done) {
		logError(done.error(), LogLevel::Info);
		// The host went away or sent something mid-response (a new host
		// on the serial port): end this conversation; the bytes that
		// arrived are read by the next one.
		outcome = Outcome::Abandoned;
		return false;
	}
	return true;
}

Connection::Outcome Connection::run()
{
	// The pre-authentication limit is for the whole set-up, so that a host
	// trickling bytes cannot hold a connection slot.
	const std::uint64_t authDeadline = nowMs() + static_cast<std::uint64_t>(options_.preAuthTimeoutMs);
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
			const std::int64_t left = static_cast<std::int64_t>(authDeadline - nowMs());
			if (left <= 0)
				return Outcome::Closed;
			timeout = static_cast<int>(left);
		}
		const Outcome onReadError = timeout > 0 ? Outcome::Closed : Outcome::StreamEnded;
		if (state_ == State::AwaitHello) {
			inPos_ += proto::scanForMagic(std::span(in_.data() + inPos_, buffered()),
						      proto::kClientHelloMagic);
			if (buffered() < proto::kClientHelloSize) {
				if (Status ok = fill(buffered() + 1, timeout); !ok)
					return ok.error().errnum() == ETIMEDOUT ? onReadError
										: Outcome::StreamEnded;
				continue;
			}
			if (!handleHello())
				return Outcome::Abandoned;
			continue;
		}

		// At a frame boundary: a frame header, or a hello (a new session).
		if (Status ok = fill(proto::kFrameHeaderSize, timeout); !ok)
			return ok.error().errnum() == ETIMEDOUT ? onReadError : Outcome::StreamEnded;
		const std::uint8_t *at = in_.data() + inPos_;
		if (std::memcmp(at, proto::kClientHelloMagic.data(), proto::kMagicSize) == 0) {
			state_ = State::AwaitHello;
			continue;
		}
		const Result<proto::FrameHeader> header = proto::decodeFrameHeader(
			std::span<const std::uint8_t, proto::kFrameHeaderSize>(at, proto::kFrameHeaderSize),
			proto::Direction::ToGuest);
		if (!header) {
			// Out of step (a previous host's leftovers, the sync
			// padding, or garbage): scan for the next hello.
			if (in_[inPos_] != 0)
				logError(header.error(), LogLevel::Warning);
			state_ = State::AwaitHello;
			++inPos_;
			continue;
		}
		const std::size_t total = proto::kFrameHeaderSize + header->length;
		if (Status ok = fill(total, timeout); !ok)
			return ok.error().errnum() == ETIMEDOUT ? onReadError : Outcome::StreamEnded;
		const std::vector<std::uint8_t> body(in_.begin() + static_cast<std::ptrdiff_t>(inPos_ + proto::kFrameHeaderSize),
						     in_.begin() + static_cast<std::ptrdiff_t>(inPos_ + total));
		inPos_ += total;
		Outcome outcome = Outcome::StreamEnded;
		if (!handleFrame(*header, body, outcome))
			return outcome;
	}
}

} // namespace fr::guest
