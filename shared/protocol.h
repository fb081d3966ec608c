// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The guest protocol's codec, used by both ends: the daemon in the VM
// (guest/) and the host side (shared/guest_session.h, used by the client).
// docs/protocol.md is the specification; every constant and layout here is
// described there, byte by byte.
//
// Everything a decoder is given is hostile: the daemon decodes what any local
// user may send to its vsock port, the host decodes what a possibly
// compromised guest kernel sends back. Decoders therefore check every length
// against a fixed cap before anything is allocated, accept exactly one
// encoding of each message (reserved bits zero, exact body sizes) and never
// abort on bad input: they return an Error (EPROTO, or EMSGSIZE for a length
// over its cap) naming the message and what was wrong.
//
// Built into the static library fr_protocol (with libsodium), not fr_shared,
// so that the setuid helper does not link libsodium.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/guest_abi.h"
#include "shared/result.h"

namespace fr::proto {

// --- fixed sizes and limits ------------------------------------------------

inline constexpr std::uint32_t kVersion = 1;

inline constexpr std::size_t kNonceSize = 32;
inline constexpr std::size_t kProofSize = 32; // HMAC-SHA256
inline constexpr std::size_t kMagicSize = 8;

// The hellos are the only messages before authentication; they have a fixed
// size and a magic that cannot be mistaken for a frame header (read as a
// frame length, the magic's first four bytes exceed kMaxFrameSize), so that a
// reader can scan for them in a byte stream left in an unknown state by a
// previous connection (serial transport).
inline constexpr std::array<std::uint8_t, kMagicSize> kClientHelloMagic = {
	0x89, 'F', 'R', '-', 'C', 'L', 'I', '\n'};
inline constexpr std::array<std::uint8_t, kMagicSize> kServerHelloMagic = {
	0x89, 'F', 'R', '-', 'S', 'R', 'V', '\n'};
inline constexpr std::size_t kClientHelloSize = kMagicSize + 4 + kNonceSize;                   // 44
inline constexpr std::size_t kServerHelloSize = kMagicSize + 4 + 2 * kNonceSize + kProofSize; // 108

// The host sends this many zero bytes before its client hello. On the serial
// transport a previous host may have left a partial request in the daemon's
// reader; the zeros complete it (into a request the daemon rejects, as every
// request's body ends with bytes that may not be zero, or into a harmless
// status) and then read as a framing error, after which the daemon scans for
// the hello magic. Must be at least kMaxRequestBody + kFrameHeaderSize.
inline constexpr std::size_t kSyncPaddingSize = 8192;

// Frames: an 8-byte header (u32 body length, u8 type, three zero bytes)
// followed by the body. A whole frame is at most 4 MiB.
inline constexpr std::size_t kFrameHeaderSize = 8;
inline constexpr std::size_t kMaxFrameSize = std::size_t{4} << 20;
inline constexpr std::size_t kMaxBodySize = kMaxFrameSize - kFrameHeaderSize;

// Limits on the contents (checked by every decoder, on both ends).
inline constexpr std::size_t kNameMax = 255;   // one directory entry name
inline constexpr std::size_t kPathMax = 4096;  // a request path, a symlink target
inline constexpr std::size_t kMessageMax = 1024; // an error text
inline constexpr std::size_t kVersionTextSize = 16;

// Bodies of the fixed-layout messages.
inline constexpr std::size_t kStatusRequestSize = 4;
inline constexpr std::size_t kExtractRequestFixed = 4;
inline constexpr std::size_t kStatusInfoSize = 48;
inline constexpr std::size_t kEntryFixed = 36;
inline constexpr std::size_t kEndSize = 8;
inline constexpr std::size_t kErrorFixed = 12;
// The largest body a host may send (an extract request with the longest path).
inline constexpr std::size_t kMaxRequestBody = kExtractRequestFixed + kPathMax;
static_assert(kSyncPaddingSize >= kMaxRequestBody + kFrameHeaderSize);

// The daemon sends file contents in Data frames of at most this size.
inline constexpr std::size_t kDataChunkSize = std::size_t{256} << 10;

// Flow control (docs/protocol.md, "Flow control"): while a response is
// streaming, the host acknowledges the response bytes it has received (Ack
// frames); the daemon never has more than kAckWindow bytes unacknowledged,
// and the host acknowledges at least every kAckInterval bytes. Needed
// because the guest's virtio_console queues non-blocking writes without a
// bound: without it a host that reads slowly makes the guest run out of
// memory.
inline constexpr std::size_t kAckWindow = std::size_t{8} << 20;
inline constexpr std::size_t kAckInterval = std::size_t{1} << 20;
static_assert(kAckInterval * 2 <= kAckWindow);
inline constexpr std::size_t kAckSize = 8;

// --- message types ---------------------------------------------------------

enum class FrameType : std::uint8_t {
	// host -> guest
	Auth = 0x01,
	Status = 0x02,
	Stop = 0x03,
	List = 0x04,
	Extract = 0x05,
	Ack = 0x06, // flow control, only while a response is streaming
	// guest -> host
	AuthOk = 0x41,
	StatusInfo = 0x42,
	Entry = 0x43,
	Data = 0x44,
	End = 0x45,    // success trailer
	Failure = 0x46, // error trailer
};

// Which end decodes a header: each end accepts only the other end's types.
enum class Direction { ToGuest, ToHost };

struct FrameHeader {
	std::uint32_t length = 0; // body bytes, checked against the type's cap
	FrameType type = FrameType::Auth;
};

// Error trailer codes. The host maps each to an errno (errnoForCode).
enum class ErrorCode : std::uint32_t {
	BadRequest = 1,      // malformed or out-of-order message, bad path syntax
	AuthFailed = 2,      // the client's proof was wrong
	NotAuthenticated = 3, // a request before a successful Auth
	NotFound = 4,
	NotDirectory = 5,
	IsDirectory = 6,     // raw extract of a directory
	Refused = 7,         // the path would leave its filesystem, or is a symlink
	Unsupported = 8,     // unknown or disallowed filesystem, format or file type
	Io = 9,              // the guest kernel reported an I/O or filesystem error
	Busy = 10,           // a limit was reached (connections, open files)
	Internal = 11,
};
inline constexpr std::uint32_t kMaxErrorCode = 11;

enum class EntryType : std::uint8_t {
	File = 1,
	Directory = 2,
	Symlink = 3,
	BlockDevice = 4,
	CharDevice = 5,
	Fifo = 6,
	Socket = 7,
};

enum class ExtractFormat : std::uint8_t {
	Raw = 0, // a regular file's bytes
	Tar = 1, // pax tar (any object; a directory recursively)
	Zip = 2, // zip (any object; a directory recursively)
};

enum class Compression : std::uint8_t {
	None = 0,
	Zstd = 1,
};

// --- decoded messages ------------------------------------------------------

using Nonce = std::array<std::uint8_t, kNonceSize>;
using Proof = std::array<std::uint8_t, kProofSize>;
using Key = std::array<std::uint8_t, abi::kTicketBytes>;

struct ClientHello {
	std::uint32_t version = kVersion;
	Nonce nonce{};
};

struct ServerHello {
	std::uint32_t version = kVersion;
	Nonce clientNonce{};
	Nonce serverNonce{};
	Proof proof{};
};

struct StatusRequest {
	bool keepTimeout = false; // do not reset the idle timer
};

struct ExtractRequest {
	ExtractFormat format = ExtractFormat::Raw;
	Compression compression = Compression::None;
	std::string path;
};

struct StatusInfo {
	std::uint64_t uptimeMs = 0;
	std::uint64_t idleLeftMs = 0;   // until the guest powers off
	std::uint32_t idleTimeoutS = 0; // the configured idle timeout
	std::uint32_t diskCount = 0;
	std::uint32_t mountCount = 0;
	std::uint32_t activeRequests = 0; // lists/extracts running on any connection
	std::string version;            // daemon version, printable ASCII, <= 16 bytes
};

struct Entry {
	EntryType type = EntryType::File;
	std::uint32_t mode = 0; // permission bits only (<= 07777)
	std::uint64_t size = 0;
	std::int64_t mtimeSec = 0;
	std::uint32_t mtimeNsec = 0;
	std::string name;       // 1..255 bytes, no '/' or NUL, not "." or ".."
	std::string linkTarget; // symlinks only, <= 4096 bytes, no NUL
};

struct Failure {
	ErrorCode code = ErrorCode::Internal;
	std::int32_t guestErrno = 0; // the guest's errno, informational
	std::string message;         // <= 1024 bytes, hostile: escape to display
};

// --- hellos ----------------------------------------------------------------

using ClientHelloBytes = std::array<std::uint8_t, kClientHelloSize>;
using ServerHelloBytes = std::array<std::uint8_t, kServerHelloSize>;

ClientHelloBytes encodeClientHello(const ClientHello &hello) noexcept;
// `bytes` must start with kClientHelloMagic. Any version is returned; the
// caller decides whether it speaks it.
Result<ClientHello> decodeClientHello(std::span<const std::uint8_t, kClientHelloSize> bytes) noexcept;

ServerHelloBytes encodeServerHello(const ServerHello &hello) noexcept;
Result<ServerHello> decodeServerHello(std::span<const std::uint8_t, kServerHelloSize> bytes) noexcept;

// Index of the first occurrence of `magic` in `bytes`, or, when there is
// none, of the longest suffix of `bytes` that is a prefix of `magic` (so a
// scanner may discard everything before the returned index and keep what
// could still become a magic).
std::size_t scanForMagic(std::span<const std::uint8_t> bytes,
			 const std::array<std::uint8_t, kMagicSize> &magic) noexcept;

// --- authentication --------------------------------------------------------

// proof = HMAC-SHA256(key = ticket, label || u32le version || clientNonce ||
// serverNonce), with label "file-restore/server" or "file-restore/client":
// the two proofs differ, so a peer that is shown one cannot replay it as the
// other.
Proof serverProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		  const Nonce &serverNonce) noexcept;
Proof clientProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		  const Nonce &serverNonce) noexcept;
// Constant-time comparison (libsodium's HMAC verify).
bool verifyServerProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		       const Nonce &serverNonce, const Proof &proof) noexcept;
bool verifyClientProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		       const Nonce &serverNonce, const Proof &proof) noexcept;
// Fresh random nonce (libsodium randombytes_buf).
Nonce randomNonce() noexcept;
// A fresh random ticket (libsodium randombytes_buf).
Key randomTicket() noexcept;
// The ticket as the helper and the daemon's /ticket file carry it: 64
// lowercase hex digits, no newline.
std::string ticketToHex(const Key &key);
// Parses exactly 64 lowercase hex digits. Error: EINVAL naming `what`
// (the ticket itself never appears in the error).
Result<Key> ticketFromHex(std::string_view hex, const char *what) noexcept;
// Initialises libsodium once; every function above calls it. Returns false
// only when libsodium cannot initialise (no entropy source).
bool initCrypto() noexcept;

// --- frames ----------------------------------------------------------------

// Decodes and checks a frame header read by the end `dir` points to: a type
// the other end may send, reserved bytes zero, and the body length within the
// type's cap (exact for fixed-size bodies). Only after this returns may the
// caller allocate `length` bytes.
Result<FrameHeader> decodeFrameHeader(std::span<const std::uint8_t, kFrameHeaderSize> bytes,
				      Direction dir) noexcept;
// The largest body a frame of `type` may carry.
std::size_t maxBodySize(FrameType type) noexcept;

// Encoders append one whole frame (header + body) to `out`. Inputs are the
// encoder's own data and are asserted valid: an oversized name or path is a
// bug in the caller, which must have checked it (see checkName/checkPath).
void encodeAuth(std::vector<std::uint8_t> &out, const Proof &proof);
void encodeStatusRequest(std::vector<std::uint8_t> &out, const StatusRequest &request);
void encodeStop(std::vector<std::uint8_t> &out);
void encodeList(std::vector<std::uint8_t> &out, std::string_view path);
void encodeExtract(std::vector<std::uint8_t> &out, const ExtractRequest &request);
// `received`: response bytes (frame headers and bodies) received so far.
void encodeAck(std::vector<std::uint8_t> &out, std::uint64_t received);
void encodeAuthOk(std::vector<std::uint8_t> &out);
void encodeStatusInfo(std::vector<std::uint8_t> &out, const StatusInfo &info);
void encodeEntry(std::vector<std::uint8_t> &out, const Entry &entry);
// Appends just the header of a Data frame of `length` bytes (1..kMaxBodySize);
// the caller appends or writes the bytes.
void encodeDataHeader(std::vector<std::uint8_t> &out, std::size_t length);
void encodeEnd(std::vector<std::uint8_t> &out, std::uint64_t count);
void encodeFailure(std::vector<std::uint8_t> &out, const Failure &failure);

// Body decoders. `body` is exactly the frame's body; each checks the body's
// exact layout and every field.
Result<Proof> decodeAuth(std::span<const std::uint8_t> body) noexcept;
Result<StatusRequest> decodeStatusRequest(std::span<const std::uint8_t> body) noexcept;
Result<std::string> decodeList(std::span<const std::uint8_t> body);
Result<ExtractRequest> decodeExtract(std::span<const std::uint8_t> body);
Result<std::uint64_t> decodeAck(std::span<const std::uint8_t> body) noexcept;
Result<StatusInfo> decodeStatusInfo(std::span<const std::uint8_t> body);
Result<Entry> decodeEntry(std::span<const std::uint8_t> body);
Result<std::uint64_t> decodeEnd(std::span<const std::uint8_t> body) noexcept;
Result<Failure> decodeFailure(std::span<const std::uint8_t> body);

// --- field checks (used by the decoders; exported for the encoders' callers)

// A directory entry name: 1..kNameMax bytes, no '/' or NUL, not "." or "..".
Status checkName(std::string_view name) noexcept;
// A request path: '/' followed by components separated by single '/';
// 1..kPathMax bytes; no NUL; no "." or ".." component; no empty component
// (a single trailing '/' is allowed); "/" alone is the root.
Status checkPath(std::string_view path) noexcept;
// A symlink target: 0..kPathMax bytes, no NUL.
Status checkLinkTarget(std::string_view target) noexcept;

// The errno the host reports for a guest error code (unknown codes: EPROTO).
int errnoForCode(ErrorCode code) noexcept;
// The error code the daemon sends for an errno from one of its calls.
ErrorCode codeForErrno(int err) noexcept;
const char *codeName(ErrorCode code) noexcept;

} // namespace fr::proto
