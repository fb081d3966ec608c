// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/guest_session.h"

#include <sodium.h>

#include <cerrno>
#include <optional>

#include "shared/clock.h"
#include "shared/display.h"

namespace fr {

namespace {

// The most one read() asks for; Data bodies (256 KiB) are read straight
// into place.
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

Error countMismatch(const char *request, std::uint64_t said, std::uint64_t got)
{
	return Error::invalid(EPROTO, "protocol", request,
			      "trailer says %llu, %llu arrived: the response was damaged",
			      static_cast<unsigned long long>(said), static_cast<unsigned long long>(got));
}

} // namespace

GuestSession::GuestSession(std::unique_ptr<ByteStream> stream, const proto::Key &ticket, int timeoutMs)
	: stream_(std::move(stream)),
	  reader_(std::make_unique<FrameReader>(*stream_, proto::Direction::ToHost, kReadChunk)),
	  key_(ticket), timeoutMs_(timeoutMs > 0 ? timeoutMs : 1)
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

Error GuestSession::broken(const Error &error)
{
	usable_ = false;
	return error;
}

Status GuestSession::ready()
{
	if (!usable())
		return Error(ENOTCONN, "guest session", "unusable after an earlier error");
	return {};
}

Status GuestSession::send(const std::vector<std::uint8_t> &bytes)
{
	if (Status ok = stream_->write(bytes, timeoutMs_); !ok)
		return broken(ok.error());
	return {};
}

Result<FrameReader::Frame> GuestSession::readFrame()
{
	Result<FrameReader::Frame> frame = reader_->next(timeoutMs_);
	if (!frame)
		return broken(frame.error());
	received_ += proto::kFrameHeaderSize + frame->body.size();
	return frame;
}

Status GuestSession::acknowledge()
{
	if (received_ - acked_ < proto::kAckInterval)
		return {};
	std::vector<std::uint8_t> ack;
	proto::encode(ack, proto::Ack{received_});
	acked_ = received_;
	return send(ack);
}

Error GuestSession::unexpected(proto::FrameType type, const char *request)
{
	return Error::invalid(EPROTO, "protocol", request, "unexpected frame type 0x%02x in the response",
			      static_cast<unsigned>(type));
}

// --- handshake -------------------------------------------------------------

Status GuestSession::handshake()
{
	proto::ClientHello hello;
	hello.nonce = proto::randomNonce();
	std::vector<std::uint8_t> out(proto::kSyncPaddingSize, 0);
	const proto::ClientHelloBytes helloBytes = proto::encodeClientHello(hello);
	out.insert(out.end(), helloBytes.begin(), helloBytes.end());
	if (Status ok = send(out); !ok)
		return ok;

	Result<proto::ServerHello> server = awaitServerHello(hello.nonce);
	if (!server)
		return server.error();
	if (server->version != proto::kVersion)
		return broken(Error::invalid(EPROTONOSUPPORT, "handshake", "guest",
					     "guest speaks protocol version %u, we speak %u", server->version,
					     proto::kVersion));
	if (!proto::verifyServerProof(key_, server->version, hello.nonce, server->serverNonce,
				      server->proof))
		return broken(Error::invalid(EACCES, "handshake", "guest",
					     "the guest could not prove it holds this VM's ticket "
					     "(not our VM)"));

	// Our proof goes out with the first request, in the same write: the
	// daemon handles frames in order and serves the request only after the
	// proof verified (docs/protocol.md, "Connection set-up"). That saves a
	// round trip through the guest per connection. The guest has already
	// proven itself, so nothing reaches an unproven guest.
	pendingAuth_.clear();
	proto::encode(pendingAuth_,
		      proto::Auth{proto::clientProof(key_, proto::kVersion, hello.nonce, server->serverNonce)});
	return {};
}

Result<proto::ServerHello> GuestSession::awaitServerHello(const proto::Nonce &nonce)
{
	// Skip whatever a previous connection left in the stream (serial
	// transport) up to the server hello that echoes our nonce, all within
	// one timeout.
	const std::int64_t deadline = monotonicMs() + timeoutMs_;
	for (;;) {
		const int left = msLeft(deadline, timeoutMs_);
		if (left <= 0)
			return broken(Error::invalid(ETIMEDOUT, "handshake", "guest",
						     "no server hello within %d ms", timeoutMs_));
		if (!reader_->seek(proto::kServerHelloMagic, proto::kServerHelloSize)) {
			if (Status ok = reader_->fill(reader_->buffered().size() + 1, left); !ok)
				return broken(ok.error());
			continue;
		}
		Result<proto::ServerHello> hello = proto::decodeServerHello(
			reader_->buffered().first<proto::kServerHelloSize>());
		if (hello && hello->clientNonce == nonce) {
			reader_->consume(proto::kServerHelloSize);
			return hello;
		}
		reader_->consume(1); // a stale hello (another connection's nonce): keep scanning
	}
}

Status GuestSession::awaitAuthOk()
{
	Result<FrameReader::Frame> reply = readFrame();
	if (!reply)
		return reply.error();
	if (reply->type == proto::FrameType::AuthOk)
		return {};
	if (reply->type == proto::FrameType::Failure) {
		Result<proto::Failure> failure = proto::decode<proto::Failure>(reply->body);
		if (failure && failure->code == proto::ErrorCode::AuthFailed)
			return broken(Error::invalid(EACCES, "handshake", "guest",
						     "the guest refused our ticket"));
		return broken(guestError(*reply, "handshake"));
	}
	return broken(Error::invalid(EPROTO, "handshake", "guest", "unexpected frame type 0x%02x",
				     static_cast<unsigned>(reply->type)));
}

// --- requests --------------------------------------------------------------

Error GuestSession::guestError(const FrameReader::Frame &frame, std::string_view object)
{
	Result<proto::Failure> failure = proto::decode<proto::Failure>(frame.body);
	if (!failure)
		return broken(failure.error());
	const std::string text = escapeForDisplay(failure->message);
	// A volume the guest has not opened for want of its key (ENOKEY: a
	// LUKS volume locked, or one whose key derivation it refuses) travels
	// as an I/O error; it is none, and its reason says what it is.
	if (failure->code == proto::ErrorCode::Io && failure->guestErrno == ENOKEY)
		return Error::invalid(ENOKEY, "guest", object, "%s", text.c_str()).withKind(ErrorKind::Guest);
	return Error::invalid(proto::errnoForCode(failure->code), "guest", object, "%s: %s",
			      proto::codeName(failure->code), text.c_str())
		.withKind(ErrorKind::Guest);
}

Result<std::uint64_t> GuestSession::exchange(const std::vector<std::uint8_t> &request,
					     std::string_view object, FrameCallback onFrame)
{
	if (Status ok = ready(); !ok)
		return ok.error();
	if (!pendingAuth_.empty()) {
		std::vector<std::uint8_t> out = std::move(pendingAuth_);
		pendingAuth_.clear();
		out.insert(out.end(), request.begin(), request.end());
		Status sent = send(out);
		proto::wipeSecret(out); // the request may hold a key (Unlock)
		if (!sent)
			return sent.error();
		// AuthOk precedes the response and is not part of it (flow
		// control counts the response's bytes only).
		if (Status ok = awaitAuthOk(); !ok)
			return ok.error();
	} else if (Status ok = send(request); !ok) {
		return ok.error();
	}
	received_ = 0;
	acked_ = 0;
	warning_.clear();
	for (bool first = true;; first = false) {
		Result<FrameReader::Frame> frame = readFrame();
		if (!frame)
			return frame.error();
		if (frame->type == proto::FrameType::Warning) {
			// At most one, and only as the response's first frame.
			if (!first)
				return broken(Error::invalid(EPROTO, "protocol", object.substr(0, 64),
							     "a warning that is not the response's first frame"));
			Result<proto::Warning> said = proto::decode<proto::Warning>(frame->body);
			if (!said)
				return broken(said.error());
			warning_ = std::move(said->text);
			continue;
		}
		if (frame->type == proto::FrameType::Failure)
			return guestError(*frame, object);
		if (frame->type == proto::FrameType::End) {
			Result<proto::End> end = proto::decode<proto::End>(frame->body);
			if (!end)
				return broken(end.error());
			return end->count;
		}
		if (Status ok = onFrame(*frame); !ok)
			return broken(ok.error());
		if (Status ok = acknowledge(); !ok)
			return ok.error();
	}
}

Result<proto::StatusInfo> GuestSession::status(bool keepTimeout)
{
	std::optional<proto::StatusInfo> info;
	Result<std::uint64_t> count = request(
		proto::StatusRequest{keepTimeout}, "status", [&](const FrameReader::Frame &frame) noexcept -> Status {
			if (frame.type != proto::FrameType::StatusInfo || info)
				return unexpected(frame.type, "status");
			Result<proto::StatusInfo> decoded = proto::decode<proto::StatusInfo>(frame.body);
			if (!decoded)
				return decoded.error();
			info = std::move(*decoded);
			return {};
		});
	if (!count)
		return count.error();
	if (!info)
		return broken(unexpected(proto::FrameType::End, "status"));
	if (*count != 1)
		return broken(countMismatch("status", *count, 1));
	return std::move(*info);
}

Status GuestSession::stop()
{
	Result<std::uint64_t> count = request(proto::Stop{}, "stop");
	if (!count)
		return count.error();
	usable_ = false; // the guest is powering off
	return {};
}

Result<std::uint64_t> GuestSession::unlock(std::string_view key, int timeoutMs)
{
	if (Status ok = ready(); !ok)
		return ok.error();
	if (key.empty() || key.size() > proto::kKeyMax)
		return Error::invalid(EINVAL, "unlock", "key", "%zu bytes (1 to %zu allowed)", key.size(),
				      proto::kKeyMax);
	std::vector<std::uint8_t> bytes;
	{
		const proto::UnlockRequest message(key);
		proto::encode(bytes, message);
	} // the message's copy of the key is wiped here
	const int saved = timeoutMs_;
	timeoutMs_ = timeoutMs > 0 ? timeoutMs : 1;
	Result<std::uint64_t> count =
		exchange(bytes, "unlock", [](const FrameReader::Frame &frame) noexcept -> Status {
			return unexpected(frame.type, "unlock");
		});
	timeoutMs_ = saved;
	proto::wipeSecret(bytes);
	return count;
}

Status GuestSession::list(std::string_view path, EntryCallback onEntry)
{
	if (Status ok = ready(); !ok)
		return ok;
	if (Status ok = proto::checkPath(path); !ok)
		return ok;
	std::uint64_t received = 0;
	Result<std::uint64_t> count = request(
		proto::ListRequest{std::string(path)}, path, [&](const FrameReader::Frame &frame) noexcept -> Status {
			if (frame.type != proto::FrameType::Entry)
				return unexpected(frame.type, "list");
			Result<proto::Entry> entry = proto::decode<proto::Entry>(frame.body);
			if (!entry)
				return entry.error();
			++received;
			return onEntry(*entry);
		});
	if (!count)
		return count.error();
	if (*count != received)
		return broken(countMismatch("list", *count, received));
	return {};
}

Status GuestSession::extract(std::string_view path, proto::ExtractFormat format,
			     proto::Compression compression, EntryCallback onStart, DataCallback onData)
{
	if (Status ok = ready(); !ok)
		return ok;
	if (Status ok = proto::checkPath(path); !ok)
		return ok;
	bool started = false;
	std::uint64_t received = 0;
	Result<std::uint64_t> count = request(
		proto::ExtractRequest{format, compression, std::string(path)}, path,
		[&](const FrameReader::Frame &frame) noexcept -> Status {
			// One Entry (the object), then its Data.
			if (frame.type == proto::FrameType::Entry && !started) {
				Result<proto::Entry> entry = proto::decode<proto::Entry>(frame.body);
				if (!entry)
					return entry.error();
				started = true;
				return onStart(*entry);
			}
			if (frame.type != proto::FrameType::Data || !started)
				return unexpected(frame.type, "extract");
			received += frame.body.size();
			return onData(frame.body);
		});
	if (!count)
		return count.error();
	if (!started)
		return broken(unexpected(proto::FrameType::End, "extract"));
	if (*count != received)
		return broken(countMismatch("extract", *count, received));
	return {};
}

Result<proto::Entry> GuestSession::stat(std::string_view path)
{
	if (Status ok = ready(); !ok)
		return ok.error();
	if (Status ok = proto::checkPath(path); !ok)
		return ok.error();
	std::vector<std::uint8_t> bytes;
	proto::encode(bytes, proto::StatRequest{std::string(path)});
	std::optional<proto::Entry> entry;
	Result<std::uint64_t> count =
		exchange(bytes, path, [&](const FrameReader::Frame &frame) noexcept -> Status {
			if (frame.type != proto::FrameType::Entry || entry)
				return unexpected(frame.type, "stat");
			Result<proto::Entry> decoded = proto::decode<proto::Entry>(frame.body);
			if (!decoded)
				return decoded.error();
			entry = std::move(*decoded);
			return {};
		});
	if (!count)
		return count.error();
	if (!entry)
		return broken(unexpected(proto::FrameType::End, "stat"));
	if (*count != 1)
		return broken(countMismatch("stat", *count, 1));
	return std::move(*entry);
}

Result<std::uint64_t> GuestSession::read(std::string_view path, std::uint64_t offset, std::uint32_t length,
					 DataCallback onData)
{
	if (Status ok = ready(); !ok)
		return ok.error();
	if (Status ok = proto::checkPath(path); !ok)
		return ok.error();
	if (length == 0 || length > proto::kMaxReadLength || offset > static_cast<std::uint64_t>(INT64_MAX))
		return Error::invalid(EINVAL, "read", path.substr(0, 64), "length %u or offset out of range",
				      static_cast<unsigned>(length));
	std::vector<std::uint8_t> bytes;
	proto::encode(bytes, proto::ReadRequest{offset, length, std::string(path)});
	std::uint64_t received = 0;
	Result<std::uint64_t> count =
		exchange(bytes, path, [&](const FrameReader::Frame &frame) noexcept -> Status {
			if (frame.type != proto::FrameType::Data)
				return unexpected(frame.type, "read");
			received += frame.body.size();
			if (received > length)
				return Error::invalid(EPROTO, "read", "guest", "sent more than the %u bytes asked for",
						      static_cast<unsigned>(length));
			return onData(frame.body);
		});
	if (!count)
		return count.error();
	if (*count != received)
		return broken(countMismatch("read", *count, received));
	return received;
}

Status GuestSession::xattrs(std::string_view path, XattrCallback onXattr)
{
	if (Status ok = ready(); !ok)
		return ok;
	if (Status ok = proto::checkPath(path); !ok)
		return ok;
	std::vector<std::uint8_t> bytes;
	proto::encode(bytes, proto::XattrsRequest{std::string(path)});
	std::uint64_t received = 0;
	Result<std::uint64_t> count =
		exchange(bytes, path, [&](const FrameReader::Frame &frame) noexcept -> Status {
			if (frame.type != proto::FrameType::Xattr)
				return unexpected(frame.type, "xattrs");
			Result<proto::Xattr> xattr = proto::decode<proto::Xattr>(frame.body);
			if (!xattr)
				return xattr.error();
			++received;
			return onXattr(*xattr);
		});
	if (!count)
		return count.error();
	if (*count != received)
		return broken(countMismatch("xattrs", *count, received));
	return {};
}

} // namespace fr
