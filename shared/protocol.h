// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The guest protocol's codec, used by both ends: the daemon in the VM
// (guest/server.h) and the host side (shared/guest_session.h, used by the
// client). docs/protocol.md is the specification; every constant and layout
// here is described there, byte by byte.
//
// How it is built, so that a new frame or field is one edit here:
//  - kFrames, the frame table: for each frame type the end that receives
//    it, the body sizes its header may announce, and its name in errors.
//    Frame headers are checked against it before a body is read.
//  - one struct per message, whose static fields() lists its wire layout in
//    order, with the checks on each field. The same list encodes (through
//    FieldWriter: a failed check is a bug in the caller and traps) and
//    decodes (through FieldReader: a failed check is an Error), on
//    sequential cursors (shared/byte_cursor.h), never by offsets.
//  - encode(out, message) and decode<Message>(body) work for every struct
//    that has a kType and fields().
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
#include <type_traits>
#include <vector>

#include "shared/byte_cursor.h"
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

// The fixed parts of the bodies (the frame table below, and docs/protocol.md).
inline constexpr std::size_t kStatusRequestSize = 4;
inline constexpr std::size_t kExtractRequestFixed = 4;
inline constexpr std::size_t kStatusInfoSize = 48;
inline constexpr std::size_t kEntryFixed = 36;
inline constexpr std::size_t kEndSize = 8;
inline constexpr std::size_t kErrorFixed = 12;

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

// --- frame types -----------------------------------------------------------

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

// The end that receives a frame: each end accepts only the other end's types.
enum class Direction { ToGuest, ToHost };

// One row of the frame table.
struct FrameSpec {
	FrameType type;
	Direction to;
	// The body lengths a header may announce: checked before the body is
	// read (allocated). minBody == maxBody: a fixed-size body.
	std::size_t minBody;
	std::size_t maxBody;
	const char *name; // in errors
};

// Every frame type, once. Requests with a variable-length body (List,
// Extract) have minBody 0 on purpose: their decoder answers a short body
// with a Failure that says what was wrong, where a header error would make
// the daemon drop the frame and resynchronise without an answer.
inline constexpr FrameSpec kFrames[] = {
	{FrameType::Auth, Direction::ToGuest, kProofSize, kProofSize, "auth"},
	{FrameType::Status, Direction::ToGuest, kStatusRequestSize, kStatusRequestSize, "status request"},
	{FrameType::Stop, Direction::ToGuest, 0, 0, "stop"},
	{FrameType::List, Direction::ToGuest, 0, kPathMax, "list request"},
	{FrameType::Extract, Direction::ToGuest, 0, kExtractRequestFixed + kPathMax, "extract request"},
	{FrameType::Ack, Direction::ToGuest, kAckSize, kAckSize, "ack"},
	{FrameType::AuthOk, Direction::ToHost, 0, 0, "auth ok"},
	{FrameType::StatusInfo, Direction::ToHost, kStatusInfoSize, kStatusInfoSize, "status"},
	{FrameType::Entry, Direction::ToHost, kEntryFixed, kEntryFixed + kNameMax + kPathMax, "entry"},
	{FrameType::Data, Direction::ToHost, 1, kMaxBodySize, "data"},
	{FrameType::End, Direction::ToHost, kEndSize, kEndSize, "end"},
	{FrameType::Failure, Direction::ToHost, kErrorFixed, kErrorFixed + kMessageMax, "failure"},
};

// The row of `type` (a byte off the wire), or nullptr for an unknown type.
constexpr const FrameSpec *findFrame(std::uint8_t type) noexcept
{
	for (const FrameSpec &spec : kFrames)
		if (static_cast<std::uint8_t>(spec.type) == type)
			return &spec;
	return nullptr;
}
constexpr const FrameSpec &frameSpec(FrameType type) noexcept
{
	return *findFrame(static_cast<std::uint8_t>(type));
}

// The largest body one end may send.
constexpr std::size_t maxBodyTo(Direction to) noexcept
{
	std::size_t max = 0;
	for (const FrameSpec &spec : kFrames)
		if (spec.to == to && spec.maxBody > max)
			max = spec.maxBody;
	return max;
}
inline constexpr std::size_t kMaxRequestBody = maxBodyTo(Direction::ToGuest);
static_assert(kSyncPaddingSize >= kMaxRequestBody + kFrameHeaderSize,
	      "the sync padding must be able to complete any partial request");
static_assert(maxBodyTo(Direction::ToHost) <= kMaxBodySize);

struct FrameHeader {
	std::uint32_t length = 0; // body bytes, checked against the type's row
	FrameType type = FrameType::Auth;
};

// --- field values ----------------------------------------------------------

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

using Nonce = std::array<std::uint8_t, kNonceSize>;
using Proof = std::array<std::uint8_t, kProofSize>;
using Key = std::array<std::uint8_t, abi::kTicketBytes>;

// --- field checks (used by fields(); exported for the encoders' callers) --

// A directory entry name: 1..kNameMax bytes, no '/' or NUL, not "." or "..".
Status checkName(std::string_view name) noexcept;
// A request path: '/' followed by components separated by single '/';
// 1..kPathMax bytes; no NUL; no "." or ".." component; no empty component
// (a single trailing '/' is allowed); "/" alone is the root.
Status checkPath(std::string_view path) noexcept;
// A symlink target: 0..kPathMax bytes, no NUL.
Status checkLinkTarget(std::string_view target) noexcept;

// What an encoder does with a text longer than its length field allows.
enum class Overlong { Trap, Truncate };

// --- messages --------------------------------------------------------------
//
// fields(io, m) is the wire layout of the body, in order. `io` is a
// FieldWriter (m is const) or a FieldReader; its operations:
//   number(f)                    an integer or enum, little-endian, sizeof(f) bytes
//   enumeration(f, first, last)  a number that must lie in [first, last]
//   flag(f)                      one byte, 0 or 1
//   reserved(n)                  n bytes that must be zero
//   length16(s, min, max, what)  a u16 length of s (checked), returned
//   text(s, n)                   the n bytes of s announced by length16
//   rest(s)                      the remaining bytes of the body
//   array(a), padded(s, n)       fixed-size bytes; NUL-padded printable text
//   require(cond, fmt, ...)      a rule over the fields read so far
//   check(status)                a check function's verdict on a field

// Host -> guest.

struct Auth {
	static constexpr FrameType kType = FrameType::Auth;
	Proof proof{}; // the client proof (see clientProof)

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.array(m.proof);
	}
};

struct StatusRequest {
	static constexpr FrameType kType = FrameType::Status;
	bool keepTimeout = false; // do not reset the idle timer

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.flag(m.keepTimeout);
		io.reserved(3);
	}
};

struct Stop {
	static constexpr FrameType kType = FrameType::Stop;

	template <typename Io, typename M>
	static void fields(Io &, M &)
	{
	}
};

struct ListRequest {
	static constexpr FrameType kType = FrameType::List;
	std::string path;

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.rest(m.path);
		io.check(checkPath(m.path));
	}
};

struct ExtractRequest {
	static constexpr FrameType kType = FrameType::Extract;
	ExtractFormat format = ExtractFormat::Raw;
	Compression compression = Compression::None;
	std::string path;

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.enumeration(m.format, ExtractFormat::Raw, ExtractFormat::Zip, "format");
		io.enumeration(m.compression, Compression::None, Compression::Zstd, "compression");
		io.reserved(2);
		io.rest(m.path);
		io.check(checkPath(m.path));
	}
};

struct Ack {
	static constexpr FrameType kType = FrameType::Ack;
	std::uint64_t received = 0; // response bytes (headers and bodies) received so far

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.number(m.received);
	}
};

// Guest -> host.

struct AuthOk {
	static constexpr FrameType kType = FrameType::AuthOk;

	template <typename Io, typename M>
	static void fields(Io &, M &)
	{
	}
};

struct StatusInfo {
	static constexpr FrameType kType = FrameType::StatusInfo;
	std::uint64_t uptimeMs = 0;
	std::uint64_t idleLeftMs = 0;   // until the guest powers off
	std::uint32_t idleTimeoutS = 0; // the configured idle timeout
	std::uint32_t diskCount = 0;
	std::uint32_t mountCount = 0;
	std::uint32_t activeRequests = 0; // lists/extracts running on any connection
	std::string version;            // daemon version, printable ASCII, <= 16 bytes

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.number(m.uptimeMs);
		io.number(m.idleLeftMs);
		io.number(m.idleTimeoutS);
		io.number(m.diskCount);
		io.number(m.mountCount);
		io.number(m.activeRequests);
		io.padded(m.version, kVersionTextSize);
	}
};

struct Entry {
	static constexpr FrameType kType = FrameType::Entry;
	EntryType type = EntryType::File;
	std::uint32_t mode = 0; // permission bits only (<= 07777)
	std::uint64_t size = 0;
	std::int64_t mtimeSec = 0;
	std::uint32_t mtimeNsec = 0;
	std::string name;       // 1..255 bytes, no '/' or NUL, not "." or ".."
	std::string linkTarget; // symlinks only, <= 4096 bytes, no NUL

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.enumeration(m.type, EntryType::File, EntryType::Socket, "type");
		io.reserved(1);
		const std::size_t name = io.length16(m.name, 1, kNameMax, "name");
		const std::size_t target = io.length16(m.linkTarget, 0, kPathMax, "link target");
		io.reserved(2);
		io.number(m.mode);
		io.number(m.size);
		io.number(m.mtimeSec);
		io.number(m.mtimeNsec);
		io.reserved(4);
		io.text(m.name, name);
		io.text(m.linkTarget, target);
		io.require(m.mode <= 07777, "mode 0%o has bits beyond 07777", m.mode);
		io.require(m.mtimeNsec < 1000000000U, "mtime nanoseconds %u out of range", m.mtimeNsec);
		io.require(m.type == EntryType::Symlink || m.linkTarget.empty(),
			   "link target on an entry that is not a symlink");
		io.check(checkName(m.name));
		io.check(checkLinkTarget(m.linkTarget));
	}
};

// Data frames carry raw bytes: no struct, see encodeDataHeader.

struct End {
	static constexpr FrameType kType = FrameType::End;
	// Entries (list), Data bytes (extract), 1 (status) or 0 (stop).
	std::uint64_t count = 0;

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.number(m.count);
	}
};

struct Failure {
	static constexpr FrameType kType = FrameType::Failure;
	ErrorCode code = ErrorCode::Internal;
	std::int32_t guestErrno = 0; // the guest's errno, informational
	// <= 1024 bytes (the encoder truncates a longer one), hostile: escape
	// to display.
	std::string message;

	template <typename Io, typename M>
	static void fields(Io &io, M &m)
	{
		io.enumeration(m.code, ErrorCode::BadRequest, ErrorCode::Internal, "error code");
		io.number(m.guestErrno);
		const std::size_t length =
			io.length16(m.message, 0, kMessageMax, "message", Overlong::Truncate);
		io.reserved(2);
		io.text(m.message, length);
	}
};

// --- encoding and decoding ----------------------------------------------------

// Writes fields. A value that breaks a field's rule is the caller's bug
// (encoders are given the encoding end's own data, checked before: see
// checkName/checkPath): it traps.
class FieldWriter {
public:
	explicit FieldWriter(ByteWriter &out) noexcept : out_(out) {}

	template <typename T>
	void number(const T &field)
	{
		out_.little(static_cast<std::uint64_t>(wire(field)), sizeof(T));
	}
	template <typename E>
	void enumeration(const E &field, E first, E last, const char *)
	{
		require(wire(field) >= wire(first) && wire(field) <= wire(last), "enumeration");
		number(field);
	}
	void flag(const bool &field) { out_.u8(field ? 1 : 0); }
	void reserved(std::size_t n) { out_.zeros(n); }
	std::size_t length16(const std::string &field, std::size_t min, std::size_t max, const char *,
			     Overlong overlong = Overlong::Trap);
	void text(const std::string &field, std::size_t n);
	void rest(const std::string &field) { out_.bytes(field); }
	template <std::size_t N>
	void array(const std::array<std::uint8_t, N> &field)
	{
		out_.bytes(field);
	}
	void padded(const std::string &field, std::size_t n);
	void require(bool ok, const char *, ...) noexcept;
	void check(const Status &status) noexcept { require(static_cast<bool>(status), ""); }

private:
	template <typename T>
	static auto wire(const T &value) noexcept
	{
		if constexpr (std::is_enum_v<T>)
			return static_cast<std::underlying_type_t<T>>(value);
		else
			return value;
	}

	ByteWriter &out_;
};

// Reads fields from a body. The first rule a field breaks becomes the
// Error that finish() returns; what follows it is read as zeros and not
// checked.
class FieldReader {
public:
	FieldReader(std::span<const std::uint8_t> body, const char *what) noexcept
		: in_(body), what_(what), size_(body.size())
	{
	}

	template <typename T>
	void number(T &field) noexcept
	{
		const std::uint64_t value = in_.little(sizeof(T));
		if constexpr (std::is_enum_v<T>)
			field = static_cast<T>(static_cast<std::underlying_type_t<T>>(value));
		else
			field = static_cast<T>(value);
	}
	template <typename E>
	void enumeration(E &field, E first, E last, const char *what) noexcept
	{
		number(field);
		using U = std::underlying_type_t<E>;
		const U value = static_cast<U>(field);
		require(value >= static_cast<U>(first) && value <= static_cast<U>(last), "unknown %s %llu",
			what, static_cast<unsigned long long>(value));
	}
	void flag(bool &field) noexcept;
	void reserved(std::size_t n) noexcept;
	std::size_t length16(const std::string &field, std::size_t min, std::size_t max, const char *what,
			     Overlong = Overlong::Trap) noexcept;
	void text(std::string &field, std::size_t n);
	void rest(std::string &field);
	template <std::size_t N>
	void array(std::array<std::uint8_t, N> &field) noexcept
	{
		const std::span<const std::uint8_t> bytes = in_.bytes(N);
		for (std::size_t i = 0; i < bytes.size(); ++i)
			field[i] = bytes[i];
	}
	void padded(std::string &field, std::size_t n);
	void require(bool ok, const char *fmt, ...) noexcept __attribute__((format(printf, 3, 4)));
	void check(const Status &status) noexcept;
	// The first broken rule, or a body longer or shorter than its fields.
	Status finish() const noexcept;

private:
	ByteReader in_;
	const char *what_;
	std::size_t size_;
	Status status_;
};

// Appends one whole frame (header + body) to `out`.
template <typename Message>
void encode(std::vector<std::uint8_t> &out, const Message &message)
{
	ByteWriter frame(out);
	frame.u32(0); // the body length, patched below
	frame.u8(static_cast<std::uint8_t>(Message::kType));
	frame.zeros(3);
	FieldWriter io(frame);
	Message::fields(io, message);
	const std::size_t length = frame.written() - kFrameHeaderSize;
	const FrameSpec &spec = frameSpec(Message::kType);
	io.require(length >= spec.minBody && length <= spec.maxBody, "body size");
	frame.patch32(0, static_cast<std::uint32_t>(length));
}

// Decodes a body of Message's type: exactly the frame's body, every field
// checked.
template <typename Message>
Result<Message> decode(std::span<const std::uint8_t> body)
{
	Message message;
	FieldReader io(body, frameSpec(Message::kType).name);
	Message::fields(io, message);
	if (Status ok = io.finish(); !ok)
		return ok.error();
	return message;
}

// Appends just the header of a Data frame of `length` bytes (1..kMaxBodySize);
// the caller appends or writes the bytes.
void encodeDataHeader(std::vector<std::uint8_t> &out, std::size_t length);

// Decodes and checks a frame header read by the end `to` points to: a type
// the other end may send, reserved bytes zero, and the body length within the
// type's row of kFrames. Only after this returns may the caller allocate
// `length` bytes.
Result<FrameHeader> decodeFrameHeader(std::span<const std::uint8_t, kFrameHeaderSize> bytes,
				      Direction to) noexcept;

// --- hellos (fixed size, not frames) --------------------------------------

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

// --- error codes -----------------------------------------------------------

// The errno the host reports for a guest error code (unknown codes: EPROTO).
int errnoForCode(ErrorCode code) noexcept;
// The error code the daemon sends for an errno from one of its calls.
ErrorCode codeForErrno(int err) noexcept;
const char *codeName(ErrorCode code) noexcept;

} // namespace fr::proto
