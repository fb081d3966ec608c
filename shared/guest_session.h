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
//  - the guest answered with an error trailer (isGuestError(): call()
//    is "guest", errnum from proto::errnoForCode, reason the guest's text,
//    escaped). The session stays usable.
//  - anything else (timeout ETIMEDOUT, end of stream ECONNRESET, protocol
//    violation EPROTO/EMSGSIZE, a failed handshake EACCES/EPROTONOSUPPORT, an
//    error returned by a callback). The session is then unusable (usable()
//    is false; further calls fail with ENOTCONN): close it and reconnect.
//
// Not thread-safe: one request at a time, as the protocol requires.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "shared/protocol.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr {

// A bidirectional byte stream with timeouts. FdStream is the real one; tests
// and fuzz targets substitute in-memory streams.
class ByteStream {
public:
	virtual ~ByteStream() = default;
	// Reads 1..buf.size() bytes, waiting at most timeoutMs for the first
	// (< 0: no limit). Returns 0 at the end of the stream; ETIMEDOUT after
	// the wait.
	virtual Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) = 0;
	// Writes all of buf, waiting at most timeoutMs (< 0: no limit) each time
	// the stream blocks. ETIMEDOUT, EPIPE, ...
	virtual Status write(std::span<const std::uint8_t> buf, int timeoutMs) = 0;
};

// A ByteStream over a connected socket (or any fd that poll() works on).
// Owns the fd. Switches it to O_NONBLOCK. Writes use MSG_NOSIGNAL, so a
// vanished peer is EPIPE, not SIGPIPE.
class FdStream final : public ByteStream {
public:
	explicit FdStream(UniqueFd fd);
	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override;
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override;
	int fd() const noexcept { return fd_.get(); }

private:
	UniqueFd fd_;
	bool isSocket_ = true;
};

class GuestSession {
public:
	// Default per-wait timeout: the longest the host waits for any byte or
	// for the stream to take more (a guest mounting a large btrfs, or
	// reading a slow disk under TCG, may pause for seconds).
	static constexpr int kDefaultTimeoutMs = 30000;

	using EntryCallback = std::function<Status(const proto::Entry &entry)>;
	using DataCallback = std::function<Status(std::span<const std::uint8_t> bytes)>;

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
	Status list(std::string_view path, const EntryCallback &onEntry);

	// Extracts `path`: onStart once with the entry describing the object
	// (its name is the path's last component), then onData for each chunk
	// of the stream (raw file bytes, or a tar/zip archive, zstd-compressed if
	// asked). Success only after the guest's trailer confirmed the byte
	// count: on any error the caller must discard what onData received.
	Status extract(std::string_view path, proto::ExtractFormat format, proto::Compression compression,
		       const EntryCallback &onStart, const DataCallback &onData);

	bool usable() const noexcept { return stream_ != nullptr && usable_; }

	// True when `error` is the guest's error trailer (the session stays
	// usable), false for transport, protocol and handshake errors.
	static bool isGuestError(const Error &error) noexcept;

private:
	GuestSession(std::unique_ptr<ByteStream> stream, const proto::Key &ticket, int timeoutMs);

	struct Frame {
		proto::FrameType type;
		std::span<const std::uint8_t> body; // valid until the next read
	};

	Status handshake();
	// Reads the AuthOk that answers the Auth sent with the first request.
	Status awaitAuthOk();
	Status send(const std::vector<std::uint8_t> &bytes);
	// Starts counting a new response's bytes for flow control.
	Status sendRequest(const std::vector<std::uint8_t> &bytes);
	// Sends an Ack when kAckInterval bytes arrived since the last one.
	Status acknowledge();
	Result<Frame> readFrame();
	Status readExact(std::uint8_t *dst, std::size_t n);
	Status fill(std::size_t want); // until buffered() >= want
	std::size_t buffered() const noexcept { return in_.size() - inPos_; }
	Status ready();
	// Common tail of every request: turns a Failure frame into a guest error.
	Error guestError(const Frame &frame, std::string_view path);
	Error broken(const Error &error);

	std::unique_ptr<ByteStream> stream_;
	proto::Key key_{};
	int timeoutMs_ = kDefaultTimeoutMs;
	bool usable_ = false;
	std::vector<std::uint8_t> in_; // read buffer; in_[inPos_..] unread
	std::size_t inPos_ = 0;
	std::vector<std::uint8_t> body_; // the current frame's body
	std::uint64_t received_ = 0;     // bytes of the current response
	std::uint64_t acked_ = 0;
	std::vector<std::uint8_t> pendingAuth_; // our Auth frame, sent with the first request
};

} // namespace fr
