// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/protocol.h"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace fr::proto {

namespace {

// Shows at most this many bytes of a hostile value in an error's object.
constexpr std::size_t kShown = 64;

std::string_view shown(std::string_view text) noexcept
{
	return text.substr(0, kShown);
}

Error protocolError(const char *what, const char *fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
Error protocolError(const char *what, const char *fmt, ...) noexcept
{
	char detail[Error::kDetailMax + 1];
	va_list args;
	va_start(args, fmt);
	(void)std::vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	return Error::invalid(EPROTO, "protocol", what, "%s", detail);
}

// Little-endian integer access; every caller has checked the size.
std::uint16_t get16(const std::uint8_t *p) noexcept
{
	return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t get32(const std::uint8_t *p) noexcept
{
	return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
	       (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t get64(const std::uint8_t *p) noexcept
{
	return static_cast<std::uint64_t>(get32(p)) | (static_cast<std::uint64_t>(get32(p + 4)) << 32);
}
void put16(std::uint8_t *p, std::uint16_t v) noexcept
{
	p[0] = static_cast<std::uint8_t>(v);
	p[1] = static_cast<std::uint8_t>(v >> 8);
}
void put32(std::uint8_t *p, std::uint32_t v) noexcept
{
	for (int i = 0; i < 4; ++i)
		p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put64(std::uint8_t *p, std::uint64_t v) noexcept
{
	for (int i = 0; i < 8; ++i)
		p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

bool allZero(const std::uint8_t *p, std::size_t n) noexcept
{
	for (std::size_t i = 0; i < n; ++i)
		if (p[i] != 0)
			return false;
	return true;
}

// A frame under construction: reserves the header, the caller appends the
// body, finish() fills the length in.
class FrameBuilder {
public:
	FrameBuilder(std::vector<std::uint8_t> &out, FrameType type) : out_(out), start_(out.size())
	{
		out_.resize(start_ + kFrameHeaderSize, 0);
		out_[start_ + 4] = static_cast<std::uint8_t>(type);
	}
	std::uint8_t *grow(std::size_t n)
	{
		const std::size_t at = out_.size();
		out_.resize(at + n, 0);
		return out_.data() + at;
	}
	void append(std::string_view bytes)
	{
		if (!bytes.empty())
			std::memcpy(grow(bytes.size()), bytes.data(), bytes.size());
	}
	void finish()
	{
		const std::size_t length = out_.size() - start_ - kFrameHeaderSize;
		if (length > kMaxBodySize)
			__builtin_trap(); // an encoder was handed unchecked data: a bug
		put32(out_.data() + start_, static_cast<std::uint32_t>(length));
	}

private:
	std::vector<std::uint8_t> &out_;
	std::size_t start_;
};

void requireOk(const Status &status) noexcept
{
	if (!status)
		__builtin_trap(); // see the encoders' contract in protocol.h
}

std::string toString(std::span<const std::uint8_t> bytes)
{
	return {reinterpret_cast<const char *>(bytes.data()), bytes.size()};
}

constexpr char kServerLabel[] = "file-restore/server";
constexpr char kClientLabel[] = "file-restore/client";
static_assert(sizeof(kServerLabel) == sizeof(kClientLabel));

Proof computeProof(const char *label, const Key &key, std::uint32_t version, const Nonce &clientNonce,
		   const Nonce &serverNonce) noexcept
{
	initCrypto();
	crypto_auth_hmacsha256_state state;
	crypto_auth_hmacsha256_init(&state, key.data(), key.size());
	crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char *>(label),
				      sizeof(kServerLabel) - 1);
	std::uint8_t v[4];
	put32(v, version);
	crypto_auth_hmacsha256_update(&state, v, sizeof(v));
	crypto_auth_hmacsha256_update(&state, clientNonce.data(), clientNonce.size());
	crypto_auth_hmacsha256_update(&state, serverNonce.data(), serverNonce.size());
	Proof proof;
	crypto_auth_hmacsha256_final(&state, proof.data());
	sodium_memzero(&state, sizeof(state));
	return proof;
}

bool proofMatches(const char *label, const Key &key, std::uint32_t version, const Nonce &clientNonce,
		  const Nonce &serverNonce, const Proof &proof) noexcept
{
	Proof expected = computeProof(label, key, version, clientNonce, serverNonce);
	const bool ok = sodium_memcmp(expected.data(), proof.data(), proof.size()) == 0;
	sodium_memzero(expected.data(), expected.size());
	return ok;
}

} // namespace

// --- hellos ----------------------------------------------------------------

ClientHelloBytes encodeClientHello(const ClientHello &hello) noexcept
{
	ClientHelloBytes out{};
	std::memcpy(out.data(), kClientHelloMagic.data(), kMagicSize);
	put32(out.data() + kMagicSize, hello.version);
	std::memcpy(out.data() + kMagicSize + 4, hello.nonce.data(), kNonceSize);
	return out;
}

Result<ClientHello> decodeClientHello(std::span<const std::uint8_t, kClientHelloSize> bytes) noexcept
{
	if (std::memcmp(bytes.data(), kClientHelloMagic.data(), kMagicSize) != 0)
		return protocolError("client hello", "bad magic");
	ClientHello hello;
	hello.version = get32(bytes.data() + kMagicSize);
	std::memcpy(hello.nonce.data(), bytes.data() + kMagicSize + 4, kNonceSize);
	return hello;
}

ServerHelloBytes encodeServerHello(const ServerHello &hello) noexcept
{
	ServerHelloBytes out{};
	std::uint8_t *p = out.data();
	std::memcpy(p, kServerHelloMagic.data(), kMagicSize);
	put32(p + kMagicSize, hello.version);
	p += kMagicSize + 4;
	std::memcpy(p, hello.clientNonce.data(), kNonceSize);
	std::memcpy(p + kNonceSize, hello.serverNonce.data(), kNonceSize);
	std::memcpy(p + 2 * kNonceSize, hello.proof.data(), kProofSize);
	return out;
}

Result<ServerHello> decodeServerHello(std::span<const std::uint8_t, kServerHelloSize> bytes) noexcept
{
	if (std::memcmp(bytes.data(), kServerHelloMagic.data(), kMagicSize) != 0)
		return protocolError("server hello", "bad magic");
	ServerHello hello;
	const std::uint8_t *p = bytes.data();
	hello.version = get32(p + kMagicSize);
	p += kMagicSize + 4;
	std::memcpy(hello.clientNonce.data(), p, kNonceSize);
	std::memcpy(hello.serverNonce.data(), p + kNonceSize, kNonceSize);
	std::memcpy(hello.proof.data(), p + 2 * kNonceSize, kProofSize);
	return hello;
}

std::size_t scanForMagic(std::span<const std::uint8_t> bytes,
			 const std::array<std::uint8_t, kMagicSize> &magic) noexcept
{
	const std::size_t n = bytes.size();
	for (std::size_t i = 0; i < n; ++i) {
		if (bytes[i] != magic[0])
			continue;
		const std::size_t avail = n - i < kMagicSize ? n - i : kMagicSize;
		if (std::memcmp(bytes.data() + i, magic.data(), avail) == 0)
			return i; // a whole magic, or a prefix of one at the end
	}
	return n;
}

// --- authentication --------------------------------------------------------

bool initCrypto() noexcept
{
	// sodium_init is thread-safe and idempotent (returns 1 once initialised).
	static const bool ok = sodium_init() >= 0;
	return ok;
}

Proof serverProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		  const Nonce &serverNonce) noexcept
{
	return computeProof(kServerLabel, key, version, clientNonce, serverNonce);
}

Proof clientProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		  const Nonce &serverNonce) noexcept
{
	return computeProof(kClientLabel, key, version, clientNonce, serverNonce);
}

bool verifyServerProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		       const Nonce &serverNonce, const Proof &proof) noexcept
{
	return proofMatches(kServerLabel, key, version, clientNonce, serverNonce, proof);
}

bool verifyClientProof(const Key &key, std::uint32_t version, const Nonce &clientNonce,
		       const Nonce &serverNonce, const Proof &proof) noexcept
{
	return proofMatches(kClientLabel, key, version, clientNonce, serverNonce, proof);
}

Nonce randomNonce() noexcept
{
	if (!initCrypto())
		__builtin_trap(); // without randomness there is no authentication
	Nonce nonce;
	randombytes_buf(nonce.data(), nonce.size());
	return nonce;
}

Key randomTicket() noexcept
{
	if (!initCrypto())
		__builtin_trap();
	Key key;
	randombytes_buf(key.data(), key.size());
	return key;
}

std::string ticketToHex(const Key &key)
{
	static constexpr char kDigits[] = "0123456789abcdef";
	std::string hex;
	hex.reserve(abi::kTicketHexLength);
	for (std::uint8_t b : key) {
		hex += kDigits[b >> 4];
		hex += kDigits[b & 15];
	}
	return hex;
}

Result<Key> ticketFromHex(std::string_view hex, const char *what) noexcept
{
	if (hex.size() != abi::kTicketHexLength)
		return Error::invalid(EINVAL, what, "", "must be %zu lowercase hex digits, got %zu bytes",
				      abi::kTicketHexLength, hex.size());
	Key key;
	for (std::size_t i = 0; i < key.size(); ++i) {
		unsigned value = 0;
		for (std::size_t j = 0; j < 2; ++j) {
			const char c = hex[2 * i + j];
			unsigned digit;
			if (c >= '0' && c <= '9')
				digit = static_cast<unsigned>(c - '0');
			else if (c >= 'a' && c <= 'f')
				digit = static_cast<unsigned>(c - 'a' + 10);
			else
				return Error::invalid(EINVAL, what, "",
						      "must be lowercase hex digits (offset %zu is not)",
						      2 * i + j);
			value = value * 16 + digit;
		}
		key[i] = static_cast<std::uint8_t>(value);
	}
	return key;
}

// --- frames ----------------------------------------------------------------

std::size_t maxBodySize(FrameType type) noexcept
{
	switch (type) {
	case FrameType::Auth:
		return kProofSize;
	case FrameType::Status:
		return kStatusRequestSize;
	case FrameType::Stop:
	case FrameType::AuthOk:
		return 0;
	case FrameType::List:
		return kPathMax;
	case FrameType::Extract:
		return kExtractRequestFixed + kPathMax;
	case FrameType::Ack:
		return kAckSize;
	case FrameType::StatusInfo:
		return kStatusInfoSize;
	case FrameType::Entry:
		return kEntryFixed + kNameMax + kPathMax;
	case FrameType::Data:
		return kMaxBodySize;
	case FrameType::End:
		return kEndSize;
	case FrameType::Failure:
		return kErrorFixed + kMessageMax;
	}
	return 0;
}

namespace {

// Bodies whose size is fixed must have exactly that size.
bool isFixedSize(FrameType type) noexcept
{
	switch (type) {
	case FrameType::Auth:
	case FrameType::Status:
	case FrameType::Stop:
	case FrameType::AuthOk:
	case FrameType::StatusInfo:
	case FrameType::End:
	case FrameType::Ack:
		return true;
	default:
		return false;
	}
}

bool typeAllowed(std::uint8_t type, Direction dir) noexcept
{
	if (dir == Direction::ToGuest)
		return type >= static_cast<std::uint8_t>(FrameType::Auth) &&
		       type <= static_cast<std::uint8_t>(FrameType::Ack);
	return type >= static_cast<std::uint8_t>(FrameType::AuthOk) &&
	       type <= static_cast<std::uint8_t>(FrameType::Failure);
}

} // namespace

Result<FrameHeader> decodeFrameHeader(std::span<const std::uint8_t, kFrameHeaderSize> bytes,
				      Direction dir) noexcept
{
	const std::uint8_t *p = bytes.data();
	if (!typeAllowed(p[4], dir))
		return protocolError("frame header", "unexpected frame type 0x%02x", p[4]);
	if (!allZero(p + 5, 3))
		return protocolError("frame header", "reserved header bytes are not zero");
	FrameHeader header;
	header.type = static_cast<FrameType>(p[4]);
	header.length = get32(p);
	const std::size_t cap = maxBodySize(header.type);
	if (header.length > cap)
		return Error::invalid(EMSGSIZE, "protocol", "frame header",
				      "body of %u bytes exceeds the %zu allowed for type 0x%02x",
				      header.length, cap, p[4]);
	if (isFixedSize(header.type) && header.length != cap)
		return protocolError("frame header", "body of %u bytes, type 0x%02x needs exactly %zu",
				     header.length, p[4], cap);
	if (header.type == FrameType::Data && header.length == 0)
		return protocolError("frame header", "empty data frame");
	return header;
}

void encodeAuth(std::vector<std::uint8_t> &out, const Proof &proof)
{
	FrameBuilder f(out, FrameType::Auth);
	std::memcpy(f.grow(kProofSize), proof.data(), kProofSize);
	f.finish();
}

void encodeStatusRequest(std::vector<std::uint8_t> &out, const StatusRequest &request)
{
	FrameBuilder f(out, FrameType::Status);
	std::uint8_t *p = f.grow(kStatusRequestSize);
	p[0] = request.keepTimeout ? 1 : 0;
	f.finish();
}

void encodeStop(std::vector<std::uint8_t> &out)
{
	FrameBuilder f(out, FrameType::Stop);
	f.finish();
}

void encodeList(std::vector<std::uint8_t> &out, std::string_view path)
{
	requireOk(checkPath(path));
	FrameBuilder f(out, FrameType::List);
	f.append(path);
	f.finish();
}

void encodeExtract(std::vector<std::uint8_t> &out, const ExtractRequest &request)
{
	requireOk(checkPath(request.path));
	FrameBuilder f(out, FrameType::Extract);
	std::uint8_t *p = f.grow(kExtractRequestFixed);
	p[0] = static_cast<std::uint8_t>(request.format);
	p[1] = static_cast<std::uint8_t>(request.compression);
	f.append(request.path);
	f.finish();
}

void encodeAck(std::vector<std::uint8_t> &out, std::uint64_t received)
{
	FrameBuilder f(out, FrameType::Ack);
	put64(f.grow(kAckSize), received);
	f.finish();
}

void encodeAuthOk(std::vector<std::uint8_t> &out)
{
	FrameBuilder f(out, FrameType::AuthOk);
	f.finish();
}

void encodeStatusInfo(std::vector<std::uint8_t> &out, const StatusInfo &info)
{
	if (info.version.size() > kVersionTextSize)
		__builtin_trap();
	FrameBuilder f(out, FrameType::StatusInfo);
	std::uint8_t *p = f.grow(kStatusInfoSize);
	put64(p, info.uptimeMs);
	put64(p + 8, info.idleLeftMs);
	put32(p + 16, info.idleTimeoutS);
	put32(p + 20, info.diskCount);
	put32(p + 24, info.mountCount);
	put32(p + 28, info.activeRequests);
	std::copy(info.version.begin(), info.version.end(), p + 32); // NUL-padded, not terminated
	f.finish();
}

void encodeEntry(std::vector<std::uint8_t> &out, const Entry &entry)
{
	requireOk(checkName(entry.name));
	requireOk(checkLinkTarget(entry.linkTarget));
	if ((entry.type != EntryType::Symlink && !entry.linkTarget.empty()) || entry.mode > 07777 ||
	    entry.mtimeNsec >= 1000000000U)
		__builtin_trap();
	FrameBuilder f(out, FrameType::Entry);
	std::uint8_t *p = f.grow(kEntryFixed);
	p[0] = static_cast<std::uint8_t>(entry.type);
	put16(p + 2, static_cast<std::uint16_t>(entry.name.size()));
	put16(p + 4, static_cast<std::uint16_t>(entry.linkTarget.size()));
	put32(p + 8, entry.mode);
	put64(p + 12, entry.size);
	put64(p + 20, static_cast<std::uint64_t>(entry.mtimeSec));
	put32(p + 28, entry.mtimeNsec);
	f.append(entry.name);
	f.append(entry.linkTarget);
	f.finish();
}

void encodeDataHeader(std::vector<std::uint8_t> &out, std::size_t length)
{
	if (length == 0 || length > kMaxBodySize)
		__builtin_trap();
	const std::size_t at = out.size();
	out.resize(at + kFrameHeaderSize, 0);
	put32(out.data() + at, static_cast<std::uint32_t>(length));
	out[at + 4] = static_cast<std::uint8_t>(FrameType::Data);
}

void encodeEnd(std::vector<std::uint8_t> &out, std::uint64_t count)
{
	FrameBuilder f(out, FrameType::End);
	put64(f.grow(kEndSize), count);
	f.finish();
}

void encodeFailure(std::vector<std::uint8_t> &out, const Failure &failure)
{
	// The message is ours (the daemon's), but may quote hostile names:
	// truncate rather than trap.
	const std::string_view message =
		std::string_view(failure.message).substr(0, kMessageMax);
	FrameBuilder f(out, FrameType::Failure);
	std::uint8_t *p = f.grow(kErrorFixed);
	put32(p, static_cast<std::uint32_t>(failure.code));
	put32(p + 4, static_cast<std::uint32_t>(failure.guestErrno));
	put16(p + 8, static_cast<std::uint16_t>(message.size()));
	f.append(message);
	f.finish();
}

Result<Proof> decodeAuth(std::span<const std::uint8_t> body) noexcept
{
	if (body.size() != kProofSize)
		return protocolError("auth", "body of %zu bytes", body.size());
	Proof proof;
	std::memcpy(proof.data(), body.data(), kProofSize);
	return proof;
}

Result<StatusRequest> decodeStatusRequest(std::span<const std::uint8_t> body) noexcept
{
	if (body.size() != kStatusRequestSize)
		return protocolError("status request", "body of %zu bytes", body.size());
	if (body[0] > 1 || !allZero(body.data() + 1, 3))
		return protocolError("status request", "unknown flags 0x%02x or reserved bytes set", body[0]);
	return StatusRequest{body[0] == 1};
}

Result<std::string> decodeList(std::span<const std::uint8_t> body)
{
	if (body.size() > kPathMax)
		return protocolError("list request", "path of %zu bytes", body.size());
	std::string path = toString(body);
	if (Status ok = checkPath(path); !ok)
		return ok.error();
	return path;
}

Result<ExtractRequest> decodeExtract(std::span<const std::uint8_t> body)
{
	if (body.size() < kExtractRequestFixed || body.size() > kExtractRequestFixed + kPathMax)
		return protocolError("extract request", "body of %zu bytes", body.size());
	if (body[0] > static_cast<std::uint8_t>(ExtractFormat::Zip))
		return protocolError("extract request", "unknown format %u", body[0]);
	if (body[1] > static_cast<std::uint8_t>(Compression::Zstd))
		return protocolError("extract request", "unknown compression %u", body[1]);
	if (!allZero(body.data() + 2, 2))
		return protocolError("extract request", "reserved bytes are not zero");
	ExtractRequest request;
	request.format = static_cast<ExtractFormat>(body[0]);
	request.compression = static_cast<Compression>(body[1]);
	request.path = toString(body.subspan(kExtractRequestFixed));
	if (Status ok = checkPath(request.path); !ok)
		return ok.error();
	return request;
}

Result<std::uint64_t> decodeAck(std::span<const std::uint8_t> body) noexcept
{
	if (body.size() != kAckSize)
		return protocolError("ack", "body of %zu bytes", body.size());
	return get64(body.data());
}

Result<StatusInfo> decodeStatusInfo(std::span<const std::uint8_t> body)
{
	if (body.size() != kStatusInfoSize)
		return protocolError("status", "body of %zu bytes", body.size());
	const std::uint8_t *p = body.data();
	StatusInfo info;
	info.uptimeMs = get64(p);
	info.idleLeftMs = get64(p + 8);
	info.idleTimeoutS = get32(p + 16);
	info.diskCount = get32(p + 20);
	info.mountCount = get32(p + 24);
	info.activeRequests = get32(p + 28);
	// Version: printable ASCII, NUL-padded (nothing after the first NUL).
	std::size_t len = 0;
	while (len < kVersionTextSize && p[32 + len] != 0)
		++len;
	for (std::size_t i = 0; i < kVersionTextSize; ++i) {
		const std::uint8_t c = p[32 + i];
		if (i < len ? (c < 0x20 || c > 0x7e) : c != 0)
			return protocolError("status", "version text is not NUL-padded printable ASCII");
	}
	info.version.assign(reinterpret_cast<const char *>(p + 32), len);
	return info;
}

Result<Entry> decodeEntry(std::span<const std::uint8_t> body)
{
	if (body.size() < kEntryFixed)
		return protocolError("entry", "body of %zu bytes", body.size());
	const std::uint8_t *p = body.data();
	if (p[0] < static_cast<std::uint8_t>(EntryType::File) ||
	    p[0] > static_cast<std::uint8_t>(EntryType::Socket))
		return protocolError("entry", "unknown type %u", p[0]);
	if (p[1] != 0 || !allZero(p + 6, 2) || !allZero(p + 32, 4))
		return protocolError("entry", "reserved bytes are not zero");
	const std::size_t nameLength = get16(p + 2);
	const std::size_t targetLength = get16(p + 4);
	if (nameLength == 0 || nameLength > kNameMax)
		return protocolError("entry", "name of %zu bytes", nameLength);
	if (targetLength > kPathMax)
		return protocolError("entry", "link target of %zu bytes", targetLength);
	if (body.size() != kEntryFixed + nameLength + targetLength)
		return protocolError("entry", "body of %zu bytes for a name of %zu and a target of %zu",
				     body.size(), nameLength, targetLength);
	Entry entry;
	entry.type = static_cast<EntryType>(p[0]);
	entry.mode = get32(p + 8);
	entry.size = get64(p + 12);
	entry.mtimeSec = static_cast<std::int64_t>(get64(p + 20));
	entry.mtimeNsec = get32(p + 28);
	if (entry.mode > 07777)
		return protocolError("entry", "mode 0%o has bits beyond 07777", entry.mode);
	if (entry.mtimeNsec >= 1000000000U)
		return protocolError("entry", "mtime nanoseconds %u out of range", entry.mtimeNsec);
	if (entry.type != EntryType::Symlink && targetLength != 0)
		return protocolError("entry", "link target on an entry that is not a symlink");
	entry.name = toString(body.subspan(kEntryFixed, nameLength));
	if (Status ok = checkName(entry.name); !ok)
		return ok.error();
	entry.linkTarget = toString(body.subspan(kEntryFixed + nameLength));
	if (Status ok = checkLinkTarget(entry.linkTarget); !ok)
		return ok.error();
	return entry;
}

Result<std::uint64_t> decodeEnd(std::span<const std::uint8_t> body) noexcept
{
	if (body.size() != kEndSize)
		return protocolError("end", "body of %zu bytes", body.size());
	return get64(body.data());
}

Result<Failure> decodeFailure(std::span<const std::uint8_t> body)
{
	if (body.size() < kErrorFixed || body.size() > kErrorFixed + kMessageMax)
		return protocolError("failure", "body of %zu bytes", body.size());
	const std::uint8_t *p = body.data();
	const std::uint32_t code = get32(p);
	if (code == 0 || code > kMaxErrorCode)
		return protocolError("failure", "unknown error code %u", code);
	if (!allZero(p + 10, 2))
		return protocolError("failure", "reserved bytes are not zero");
	const std::size_t length = get16(p + 8);
	if (body.size() != kErrorFixed + length)
		return protocolError("failure", "body of %zu bytes for a message of %zu", body.size(),
				     length);
	Failure failure;
	failure.code = static_cast<ErrorCode>(code);
	failure.guestErrno = static_cast<std::int32_t>(get32(p + 4));
	failure.message = toString(body.subspan(kErrorFixed));
	return failure;
}

// --- field checks ----------------------------------------------------------

Status checkName(std::string_view name) noexcept
{
	if (name.empty() || name.size() > kNameMax)
		return Error::invalid(EPROTO, "protocol", shown(name), "name of %zu bytes (1 to %zu allowed)",
				      name.size(), kNameMax);
	if (name == "." || name == "..")
		return Error::invalid(EPROTO, "protocol", name, "'.' and '..' are not names");
	if (name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos)
		return Error::invalid(EPROTO, "protocol", shown(name), "name contains '/' or a NUL byte");
	return {};
}

Status checkPath(std::string_view path) noexcept
{
	if (path.empty() || path.front() != '/')
		return Error::invalid(EINVAL, "path", shown(path), "must start with '/'");
	if (path.size() > kPathMax)
		return Error::invalid(ENAMETOOLONG, "path", shown(path), "longer than %zu bytes", kPathMax);
	if (path.find('\0') != std::string_view::npos)
		return Error::invalid(EINVAL, "path", shown(path), "contains a NUL byte");
	std::size_t start = 1;
	while (start < path.size()) {
		std::size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		const std::string_view component = path.substr(start, end - start);
		// A trailing '/' ends the loop (start == size); an empty component
		// here is "//".
		if (component.empty())
			return Error::invalid(EINVAL, "path", shown(path), "empty path component ('//')");
		if (component == "." || component == "..")
			return Error::invalid(EINVAL, "path", shown(path), "'.' or '..' path component");
		if (component.size() > kNameMax)
			return Error::invalid(ENAMETOOLONG, "path", shown(path),
					      "a component is longer than %zu bytes", kNameMax);
		start = end + 1;
	}
	return {};
}

Status checkLinkTarget(std::string_view target) noexcept
{
	if (target.size() > kPathMax)
		return Error::invalid(EPROTO, "protocol", shown(target), "link target of %zu bytes",
				      target.size());
	if (target.find('\0') != std::string_view::npos)
		return Error::invalid(EPROTO, "protocol", shown(target), "link target contains a NUL byte");
	return {};
}

int errnoForCode(ErrorCode code) noexcept
{
	switch (code) {
	case ErrorCode::BadRequest:
		return EINVAL;
	case ErrorCode::AuthFailed:
	case ErrorCode::NotAuthenticated:
		return EACCES;
	case ErrorCode::NotFound:
		return ENOENT;
	case ErrorCode::NotDirectory:
		return ENOTDIR;
	case ErrorCode::IsDirectory:
		return EISDIR;
	case ErrorCode::Refused:
		return EPERM;
	case ErrorCode::Unsupported:
		return EOPNOTSUPP;
	case ErrorCode::Io:
		return EIO;
	case ErrorCode::Busy:
		return EBUSY;
	case ErrorCode::Internal:
		return ENOTRECOVERABLE;
	}
	return EPROTO;
}

ErrorCode codeForErrno(int err) noexcept
{
	switch (err) {
	case ENOENT:
		return ErrorCode::NotFound;
	case ENOTDIR:
		return ErrorCode::NotDirectory;
	case EISDIR:
		return ErrorCode::IsDirectory;
	case EPERM:
	case EACCES:
	case EXDEV:
	case ELOOP:
		return ErrorCode::Refused;
	case EOPNOTSUPP:
	case ENODEV:
	case ENOSYS:
		return ErrorCode::Unsupported;
	case EINVAL:
	case ENAMETOOLONG:
	case EPROTO:
		return ErrorCode::BadRequest;
	case EBUSY:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return ErrorCode::Busy;
	case EIO:
	default: // EIO, EUCLEAN (the kernel's EFSCORRUPTED), ...
		return ErrorCode::Io;
	}
}

const char *codeName(ErrorCode code) noexcept
{
	switch (code) {
	case ErrorCode::BadRequest:
		return "bad request";
	case ErrorCode::AuthFailed:
		return "authentication failed";
	case ErrorCode::NotAuthenticated:
		return "not authenticated";
	case ErrorCode::NotFound:
		return "not found";
	case ErrorCode::NotDirectory:
		return "not a directory";
	case ErrorCode::IsDirectory:
		return "is a directory";
	case ErrorCode::Refused:
		return "refused";
	case ErrorCode::Unsupported:
		return "unsupported";
	case ErrorCode::Io:
		return "I/O error";
	case ErrorCode::Busy:
		return "busy";
	case ErrorCode::Internal:
		return "internal error";
	}
	return "unknown error";
}

} // namespace fr::proto
