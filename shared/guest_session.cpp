// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/guest_session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "shared/display.h"

namespace fr {

namespace {

constexpr const char *kGuestCall = "guest";
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

std::int64_t nowMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits for `events` on fd for at most timeoutMs (< 0: forever), restarting
// after EINTR with the time left. Returns the revents, or ETIMEDOUT.
Result<short> waitFor(int fd, short events, int timeoutMs, const char *what) noexcept
{
	const std::int64_t deadline = nowMs() + timeoutMs;
	for (;;) {
		pollfd p{fd, events, 0};
		const std::int64_t left = deadline - nowMs();
		const int wait = timeoutMs < 0 ? -1 : left > 0 ? static_cast<int>(left) : 0;
		const int n = ::poll(&p, 1, wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "poll", what);
		}
		if (n == 0)
			return Error::invalid(ETIMEDOUT, what, "guest", "no progress for %d ms", timeoutMs);
		return p.revents;
	}
}

} // namespace

// --- FdStream --------------------------------------------------------------

FdStream::FdStream(UniqueFd fd) : fd_(std::move(fd))
{
	const int flags = ::fcntl(fd_.get(), F_GETFL);
	if (flags >= 0)
		::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
	int type = 0;
	socklen_t len = sizeof(type);
	isSocket_ = ::getsockopt(fd_.get(), SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

Result<std::size_t> FdStream::read(std::span<std::uint8_t> buf, int timeoutMs)
{
	for (;;) {
		const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
		if (n >= 0)
			return static_cast<std::size_t>(n);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "read", "guest connection");
		Result<short> ready = waitFor(fd_.get(), POLLIN, timeoutMs, "read");
		if (!ready)
			return ready.error();
		// POLLHUP/POLLERR: the next read() reports it (0 or an errno).
	}
}

Status FdStream::write(std::span<const std::uint8_t> buf, int timeoutMs)
{
	std::size_t done = 0;
	while (done < buf.size()) {
		const ssize_t n = isSocket_ ? ::send(fd_.get(), buf.data() + done, buf.size() - done,
						     MSG_NOSIGNAL)
					    : ::write(fd_.get(), buf.data() + done, buf.size() - done);
		if (n >= 0) {
			done += static_cast<std::size_t>(n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return Error(errno, "write", "guest connection");
		Result<short> ready = waitFor(fd_.get(), POLLOUT, timeoutMs, "write");
		if (!ready)
			return ready.error();
	}
	return {};
}

// --- GuestSession ----------------------------------------------------------

GuestSession::GuestSession(std::unique_ptr<ByteStream> stream, const proto::Key &ticket, int timeoutMs)
	: stream_(std::move(stream)), key_(ticket), timeoutMs_(timeoutMs > 0 ? timeoutMs : 1)
{
}

GuestSession::~GuestSession()
{
	sodium_memzero(key_.data(), key_.size());
}

Result<GuestSession> GuestSession::open(UniqueFd fd, const proto::Key &ticket, int timeoutMs)
{
	if (!fd.isValid())
		return Error(EBADF, "guest session", "no connection");
	return open(std::make_unique<FdStream>(std::move(fd)), ticket, timeoutMs);
}

Result<GuestSession> GuestSession::open(std::unique_ptr<ByteStream> stream, const proto::Key &ticket,
					int timeoutMs)
{
	if (!proto::initCrypto())
		return Error(EIO, "sodium_init", "libsodium");
	GuestSession session(std::move(stream), ticket, timeoutMs);
	if (Status ok = session.handshake(); !ok)
		return ok.error();
	session.usable_ = true;
	return session;
}

bool GuestSession::isGuestError(const Error &error) noexcept
{
	return std::strcmp(error.call(), kGuestCall) == 0;
}

Error GuestSession::broken(const Error &error)
{
	usable_ = false;
	return error;
}

Status GuestSession::send(const std::vector<std::uint8_t> &bytes)
{
	if (Status ok = stream_->write(bytes, timeoutMs_); !ok)
		return broken(ok.error());
	return {};
}

Status GuestSession::sendRequest(const std::vector<std::uint8_t> &bytes)
{
	if (!pendingAuth_.empty()) {
		std::vector<std::uint8_t> out = std::move(pendingAuth_);
		pendingAuth_.clear();
		out.insert(out.end(), bytes.begin(), bytes.end());
		if (Status ok = send(out); !ok)
			return ok;
		// AuthOk precedes the response and is not part of it (flow
		// control counts the response's bytes only).
		if (Status ok = awaitAuthOk(); !ok)
			return ok;
	} else if (Status ok = send(bytes); !ok) {
		return ok;
	}
	received_ = 0;
	acked_ = 0;
	return {};
}

Status GuestSession::acknowledge()
{
	if (received_ - acked_ < proto::kAckInterval)
		return {};
	std::vector<std::uint8_t> ack;
	proto::encodeAck(ack, received_);
	acked_ = received_;
	return send(ack);
}

Status GuestSession::fill(std::size_t want)
{
	if (inPos_ > 0 && inPos_ == in_.size()) {
		in_.clear();
		inPos_ = 0;
	}
	while (buffered() < want) {
		if (inPos_ > 0) { // compact before growing
			in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(inPos_));
			inPos_ = 0;
		}
		const std::size_t at = in_.size();
		in_.resize(at + kReadChunk);
		Result<std::size_t> n = stream_->read(std::span(in_.data() + at, kReadChunk), timeoutMs_);
		in_.resize(at + (n ? *n : 0));
		if (!n)
			return broken(n.error());
		if (*n == 0)
			return broken(Error(ECONNRESET, "read", "guest connection closed"));
	}
	return {};
}

Status GuestSession::readExact(std::uint8_t *dst, std::size_t n)
{
	const std::size_t have = std::min(buffered(), n);
	if (have > 0) {
		std::memcpy(dst, in_.data() + inPos_, have);
		inPos_ += have;
		dst += have;
		n -= have;
	}
	while (n >= kReadChunk) { // large bodies: straight into place
		Result<std::size_t> got = stream_->read(std::span(dst, n), timeoutMs_);
		if (!got)
			return broken(got.error());
		if (*got == 0)
			return broken(Error(ECONNRESET, "read", "guest connection closed"));
		dst += *got;
		n -= *got;
	}
	if (n > 0) {
		if (Status ok = fill(n); !ok)
			return ok;
		std::memcpy(dst, in_.data() + inPos_, n);
		inPos_ += n;
	}
	return {};
}

Result<GuestSession::Frame> GuestSession::readFrame()
{
	std::uint8_t header[proto::kFrameHeaderSize];
	if (Status ok = readExact(header, sizeof(header)); !ok)
		return ok.error();
	Result<proto::FrameHeader> h =
		proto::decodeFrameHeader(std::span<const std::uint8_t, proto::kFrameHeaderSize>(header),
					 proto::Direction::ToHost);
	if (!h)
		return broken(h.error());
	// The length is now within the type's cap (at most 4 MiB).
	body_.resize(h->length);
	if (Status ok = readExact(body_.data(), body_.size()); !ok)
		return ok.error();
	received_ += proto::kFrameHeaderSize + h->length;
	return Frame{h->type, std::span<const std::uint8_t>(body_)};
}

Status GuestSession::handshake()
{
	const std::int64_t deadline = nowMs() + timeoutMs_;
	const int perWait = timeoutMs_;

	proto::ClientHello hello;
	hello.nonce = proto::randomNonce();
	std::vector<std::uint8_t> out(proto::kSyncPaddingSize, 0);
	const proto::ClientHelloBytes helloBytes = proto::encodeClientHello(hello);
	out.insert(out.end(), helloBytes.begin(), helloBytes.end());
	if (Status ok = send(out); !ok)
		return ok;

	// Skip whatever a previous connection left in the stream (serial
	// transport) up to the server hello that echoes our nonce.
	proto::ServerHello server;
	for (;;) {
		const std::int64_t left = deadline - nowMs();
		if (left <= 0)
			return broken(Error::invalid(ETIMEDOUT, "handshake", "guest",
						     "no server hello within %d ms", perWait));
		timeoutMs_ = static_cast<int>(left);
		const std::size_t at =
			proto::scanForMagic(std::span(in_.data() + inPos_, buffered()), proto::kServerHelloMagic);
		inPos_ += at;
		if (buffered() < proto::kServerHelloSize) {
			Status ok = fill(buffered() + 1);
			if (!ok) {
				timeoutMs_ = perWait;
				return ok;
			}
			continue;
		}
		Result<proto::ServerHello> decoded = proto::decodeServerHello(
			std::span<const std::uint8_t, proto::kServerHelloSize>(in_.data() + inPos_,
									     proto::kServerHelloSize));
		if (decoded && decoded->clientNonce == hello.nonce) {
			server = *decoded;
			inPos_ += proto::kServerHelloSize;
			break;
		}
		++inPos_; // a stale hello (another connection's nonce): keep scanning
	}
	timeoutMs_ = perWait;

	if (server.version != proto::kVersion)
		return broken(Error::invalid(EPROTONOSUPPORT, "handshake", "guest",
					     "guest speaks protocol version %u, we speak %u", server.version,
					     proto::kVersion));
	if (!proto::verifyServerProof(key_, server.version, hello.nonce, server.serverNonce, server.proof))
		return broken(Error::invalid(EACCES, "handshake", "guest",
					     "the guest could not prove it holds this VM's ticket "
					     "(not our VM)"));

	// Our proof goes out with the first request, in the same write: the
	// daemon handles frames in order and serves the request only after the
	// proof verified (docs/protocol.md, "Connection set-up"). That saves a
	// round trip through the guest per connection. The guest has already
	// proven itself, so nothing reaches an unproven guest.
	pendingAuth_.clear();
	proto::encodeAuth(pendingAuth_,
			  proto::clientProof(key_, proto::kVersion, hello.nonce, server.serverNonce));
	return {};
}

Status GuestSession::awaitAuthOk()
{
	Result<Frame> reply = readFrame();
	if (!reply)
		return reply.error();
	if (reply->type == proto::FrameType::AuthOk)
		return {};
	if (reply->type == proto::FrameType::Failure) {
		Result<proto::Failure> failure = proto::decodeFailure(reply->body);
		if (failure && failure->code == proto::ErrorCode::AuthFailed)
			return broken(Error::invalid(EACCES, "handshake", "guest",
						     "the guest refused our ticket"));
		return broken(guestError(*reply, "handshake"));
	}
	return broken(Error::invalid(EPROTO, "handshake", "guest", "unexpected frame type 0x%02x",
				     static_cast<unsigned>(reply->type)));
}

Status GuestSession::ready()
{
	if (!usable())
		return Error(ENOTCONN, "guest session", "unusable after an earlier error");
	return {};
}

Error GuestSession::guestError(const Frame &frame, std::string_view path)
{
	Result<proto::Failure> failure = proto::decodeFailure(frame.body);
	if (!failure)
		return broken(failure.error());
	const std::string text = escapeForDisplay(failure->message);
	return Error::invalid(proto::errnoForCode(failure->code), kGuestCall, path, "%s: %s",
			      proto::codeName(failure->code), text.c_str());
}

namespace {

Error unexpected(proto::FrameType type, const char *request)
{
	return Error::invalid(EPROTO, "protocol", request, "unexpected frame type 0x%02x in the response",
			      static_cast<unsigned>(type));
}

Error countMismatch(const char *request, std::uint64_t said, std::uint64_t got)
{
	return Error::invalid(EPROTO, "protocol", request,
			      "trailer says %llu, %llu arrived: the response was damaged",
			      static_cast<unsigned long long>(said), static_cast<unsigned long long>(got));
}

} // namespace

Result<proto::StatusInfo> GuestSession::status(bool keepTimeout)
{
	if (Status ok = ready(); !ok)
		return ok.error();
	std::vector<std::uint8_t> out;
	proto::encodeStatusRequest(out, proto::StatusRequest{keepTimeout});
	if (Status ok = sendRequest(out); !ok)
		return ok.error();
	Result<Frame> frame = readFrame();
	if (!frame)
		return frame.error();
	if (frame->type == proto::FrameType::Failure)
		return guestError(*frame, "status");
	if (frame->type != proto::FrameType::StatusInfo)
		return broken(unexpected(frame->type, "status"));
	Result<proto::StatusInfo> info = proto::decodeStatusInfo(frame->body);
	if (!info)
		return broken(info.error());
	frame = readFrame();
	if (!frame)
		return frame.error();
	if (frame->type != proto::FrameType::End)
		return broken(unexpected(frame->type, "status"));
	Result<std::uint64_t> count = proto::decodeEnd(frame->body);
	if (!count)
		return broken(count.error());
	if (*count != 1)
		return broken(countMismatch("status", *count, 1));
	return info;
}

Status GuestSession::stop()
{
	if (Status ok = ready(); !ok)
		return ok;
	std::vector<std::uint8_t> out;
	proto::encodeStop(out);
	if (Status ok = sendRequest(out); !ok)
		return ok;
	Result<Frame> frame = readFrame();
	if (!frame)
		return frame.error();
	if (frame->type == proto::FrameType::Failure)
		return guestError(*frame, "stop");
	if (frame->type != proto::FrameType::End)
		return broken(unexpected(frame->type, "stop"));
	if (Result<std::uint64_t> count = proto::decodeEnd(frame->body); !count)
		return broken(count.error());
	usable_ = false; // the guest is powering off
	return {};
}

Status GuestSession::list(std::string_view path, const EntryCallback &onEntry)
{
	if (Status ok = ready(); !ok)
		return ok;
	if (Status ok = proto::checkPath(path); !ok)
		return ok;
	std::vector<std::uint8_t> out;
	proto::encodeList(out, path);
	if (Status ok = sendRequest(out); !ok)
		return ok;
	std::uint64_t received = 0;
	for (;;) {
		Result<Frame> frame = readFrame();
		if (!frame)
			return frame.error();
		switch (frame->type) {
		case proto::FrameType::Entry: {
			Result<proto::Entry> entry = proto::decodeEntry(frame->body);
			if (!entry)
				return broken(entry.error());
			++received;
			if (Status ok = onEntry(*entry); !ok)
				return broken(ok.error());
			if (Status ok = acknowledge(); !ok)
				return ok;
			break;
		}
		case proto::FrameType::End: {
			Result<std::uint64_t> count = proto::decodeEnd(frame->body);
			if (!count)
				return broken(count.error());
			if (*count != received)
				return broken(countMismatch("list", *count, received));
			return {};
		}
		case proto::FrameType::Failure:
			return guestError(*frame, path);
		default:
			return broken(unexpected(frame->type, "list"));
		}
	}
}

Status GuestSession::extract(std::string_view path, proto::ExtractFormat format,
			     proto::Compression compression, const EntryCallback &onStart,
			     const DataCallback &onData)
{
	if (Status ok = ready(); !ok)
		return ok;
	if (Status ok = proto::checkPath(path); !ok)
		return ok;
	std::vector<std::uint8_t> out;
	proto::encodeExtract(out, proto::ExtractRequest{format, compression, std::string(path)});
	if (Status ok = sendRequest(out); !ok)
		return ok;
	bool started = false;
	std::uint64_t received = 0;
	for (;;) {
		Result<Frame> frame = readFrame();
		if (!frame)
			return frame.error();
		switch (frame->type) {
		case proto::FrameType::Entry: {
			if (started)
				return broken(unexpected(frame->type, "extract"));
			Result<proto::Entry> entry = proto::decodeEntry(frame->body);
			if (!entry)
				return broken(entry.error());
			started = true;
			if (Status ok = onStart(*entry); !ok)
				return broken(ok.error());
			break;
		}
		case proto::FrameType::Data:
			if (!started)
				return broken(unexpected(frame->type, "extract"));
			received += frame->body.size();
			if (Status ok = onData(frame->body); !ok)
				return broken(ok.error());
			if (Status ok = acknowledge(); !ok)
				return ok;
			break;
		case proto::FrameType::End: {
			if (!started)
				return broken(unexpected(frame->type, "extract"));
			Result<std::uint64_t> count = proto::decodeEnd(frame->body);
			if (!count)
				return broken(count.error());
			if (*count != received)
				return broken(countMismatch("extract", *count, received));
			return {};
		}
		case proto::FrameType::Failure:
			return guestError(*frame, path);
		default:
			return broken(unexpected(frame->type, "extract"));
		}
	}
}

} // namespace fr
