// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The host side of the guest protocol (docs/protocol.md): one authenticated
// session with a file-restore-daemon over an already connected stream (a
// vsock socket, or the unix socket of the VM's virtio-serial port). The
// client builds its list/extract/status/stop on this; tests use it too.
//
// Trust: everything the guest sends is hostile. Each frame header is checked
// before its body is read (allocation at most 4 MiB), every message is
// decoded strictly (shared/protocol.h), a response must end with an explicit
// trailer whose count matches what arrived, and names are handed to callbacks
// only after checkName() (1..255 bytes, no '/' or NUL, not "." or "..").
// Names and error texts are still arbitrary bytes: escape them
// (shared/display.h) before printing.
//
// Errors: every call returns an Error. Two kinds:
//  - the guest answered with an error trailer: kind() is ErrorKind::Guest,
//    errnum from proto::errnoForCode, object the path, reason the guest's
//    text, escaped. The session stays usable.
//  - anything else (timeout ETIMEDOUT, end of stream ECONNRESET, protocol
//    violation EPROTO/EMSGSIZE, a failed handshake EACCES/EPROTONOSUPPORT, an
//    error returned by a callback, as it was). The session is then unusable
//    (usable() is false; further calls fail with ENOTCONN): close it and
//    reconnect.
//
// Not thread-safe: one request at a time, as the protocol requires.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "shared/byte_stream.h"
#include "shared/frame_reader.h"
#include "shared/protocol.h"
#include "shared/result.h"
#include "shared/status_callback.h"
#include "shared/unique_fd.h"

namespace fr {

class GuestSession {
public:
	// Default per-wait timeout: the longest the host waits for any byte or
	// for the stream to take more (a guest mounting a large btrfs, or
	// reading a slow disk under TCG, may pause for seconds).
	static constexpr int kDefaultTimeoutMs = 30000;

	using EntryCallback = StatusCallback<const proto::Entry &>;
	using DataCallback = StatusCallback<std::span<const std::uint8_t>>;

	// Runs the handshake (docs/protocol.md, "Connection set-up") on `fd`, a
	// connected stream socket that the session then owns: sends the sync
	// padding and a client hello, skips whatever precedes the server hello
	// that echoes this hello's nonce and checks the guest's proof. Our own
	// proof (Auth) is sent with the first request, whose call then also
	// reads the guest's AuthOk. The handshake must finish within timeoutMs.
	// Errors: EACCES when the guest's proof is wrong (not our VM: a squatted
	// CID, another VM); EPROTONOSUPPORT for another protocol version;
	// ETIMEDOUT; ECONNRESET. The first request fails with EACCES when the
	// guest refuses our proof (wrong ticket).
	static Result<GuestSession> open(UniqueFd fd, const proto::Key &ticket,
					 int timeoutMs = kDefaultTimeoutMs);
	static Result<GuestSession> open(std::unique_ptr<ByteStream> stream, const proto::Key &ticket,
					 int timeoutMs = kDefaultTimeoutMs);

	GuestSession(GuestSession &&) noexcept = default;
	GuestSession &operator=(GuestSession &&) noexcept = default;
	~GuestSession();

	// The guest's state. keepTimeout: do not reset the idle timer (for
	// `file-restore status`, which must not keep VMs alive).
	Result<proto::StatusInfo> status(bool keepTimeout);

	// Asks the guest to power off. Success means the guest acknowledged; the
	// stream ends soon after (QEMU exits).
	Status stop();

	// Lists the directory at `path` (docs/protocol.md, "Paths"): calls
	// onEntry for each entry as it arrives. `path` must pass
	// proto::checkPath (EINVAL otherwise, nothing sent). An error returned by
	// onEntry stops the listing and is returned (session unusable).
	Status list(std::string_view path, EntryCallback onEntry);

	// Extracts `path`: onStart once with the entry describing the object
	// (its name is the path's last component), then onData for each chunk
	// of the stream (raw file bytes, or a tar/zip archive, zstd-compressed if
	// asked). Success only after the guest's trailer confirmed the byte
	// count: on any error the caller must discard what onData received.
	Status extract(std::string_view path, proto::ExtractFormat format, proto::Compression compression,
		       EntryCallback onStart, DataCallback onData);

	// Any request: a proto:: message of a request type in proto::kFrames,
	// for requests without a method of their own above. Every frame of the
	// response before its trailer goes to onFrame (an error it returns ends
	// the request; the session is then unusable); the result is the End
	// trailer's count. Guest errors name `object`. Errors as above.
	using FrameCallback = StatusCallback<const FrameReader::Frame &>;
	template <typename Request>
	Result<std::uint64_t> request(const Request &request, std::string_view object, FrameCallback onFrame)
	{
		static_assert(proto::frameSpec(Request::kType).to == proto::Direction::ToGuest,
			      "a request is a frame the guest receives");
		std::vector<std::uint8_t> bytes;
		proto::encode(bytes, request);
		return exchange(bytes, object, onFrame);
	}
	// A request whose response is its trailer alone.
	template <typename Request>
	Result<std::uint64_t> request(const Request &request, std::string_view object)
	{
		return this->request(request, object, [](const FrameReader::Frame &frame) noexcept {
			return Status(unexpected(frame.type, proto::frameSpec(Request::kType).name));
		});
	}

	bool usable() const noexcept { return stream_ != nullptr && usable_; }

private:
	// A frame the response to `request` may not hold (EPROTO).
	static Error unexpected(proto::FrameType type, const char *request);

	GuestSession(std::unique_ptr<ByteStream> stream, const proto::Key &ticket, int timeoutMs);

	Status handshake();
	// Skips to the server hello that echoes `nonce` (earlier output of the
	// stream, stale hellos) and decodes it.
	Result<proto::ServerHello> awaitServerHello(const proto::Nonce &nonce);
	// Reads the AuthOk that answers the Auth sent with the first request.
	Status awaitAuthOk();
	Status send(const std::vector<std::uint8_t> &bytes);
	// Sends a request (with our Auth before the first) and reads its
	// response: every frame before the trailer goes to onFrame, whose error
	// ends the response. Returns the End trailer's count; a Failure trailer
	// as the guest's error about `object`.
	Result<std::uint64_t> exchange(const std::vector<std::uint8_t> &request, std::string_view object,
				       FrameCallback onFrame);
	// Sends an Ack when kAckInterval bytes arrived since the last one.
	Status acknowledge();
	Result<FrameReader::Frame> readFrame();
	Status ready();
	Error guestError(const FrameReader::Frame &frame, std::string_view object);
	Error broken(const Error &error);

	std::unique_ptr<ByteStream> stream_;
	std::unique_ptr<FrameReader> reader_; // reads stream_
	proto::Key key_{};
	int timeoutMs_ = kDefaultTimeoutMs;
	bool usable_ = false;
	std::uint64_t received_ = 0; // bytes of the current response
	std::uint64_t acked_ = 0;
	std::vector<std::uint8_t> pendingAuth_; // our Auth frame, sent with the first request
};

} // namespace fr
