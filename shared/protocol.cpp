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
	std::vector<std::uint8_t> v;
	ByteWriter(v).u32(version);
	crypto_auth_hmacsha256_update(&state, v.data(), v.size());
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
	std::vector<std::uint8_t> bytes;
	ByteWriter out(bytes);
	out.bytes(kClientHelloMagic);
	out.u32(hello.version);
	out.bytes(hello.nonce);
	ClientHelloBytes encoded{};
	std::copy(bytes.begin(), bytes.end(), encoded.begin());
	return encoded;
}

Result<ClientHello> decodeClientHello(std::span<const std::uint8_t, kClientHelloSize> bytes) noexcept
{
	ByteReader in(bytes);
	if (!std::ranges::equal(in.bytes(kMagicSize), kClientHelloMagic))
		return protocolError("client hello", "bad magic");
	ClientHello hello;
	hello.version = in.u32();
	std::ranges::copy(in.bytes(kNonceSize), hello.nonce.begin());
	return hello;
}

ServerHelloBytes encodeServerHello(const ServerHello &hello) noexcept
{
	std::vector<std::uint8_t> bytes;
	ByteWriter out(bytes);
	out.bytes(kServerHelloMagic);
	out.u32(hello.version);
	out.bytes(hello.clientNonce);
	out.bytes(hello.serverNonce);
	out.bytes(hello.proof);
	ServerHelloBytes encoded{};
	std::copy(bytes.begin(), bytes.end(), encoded.begin());
	return encoded;
}

Result<ServerHello> decodeServerHello(std::span<const std::uint8_t, kServerHelloSize> bytes) noexcept
{
	ByteReader in(bytes);
	if (!std::ranges::equal(in.bytes(kMagicSize), kServerHelloMagic))
		return protocolError("server hello", "bad magic");
	ServerHello hello;
	hello.version = in.u32();
	std::ranges::copy(in.bytes(kNonceSize), hello.clientNonce.begin());
	std::ranges::copy(in.bytes(kNonceSize), hello.serverNonce.begin());
	std::ranges::copy(in.bytes(kProofSize), hello.proof.begin());
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

Result<FrameHeader> decodeFrameHeader(std::span<const std::uint8_t, kFrameHeaderSize> bytes,
				      Direction to) noexcept
{
	ByteReader in(bytes);
	const std::uint32_t length = in.u32();
	const std::uint8_t type = in.u8();
	const FrameSpec *spec = findFrame(type);
	if (spec == nullptr || spec->to != to)
		return protocolError("frame header", "unexpected frame type 0x%02x", type);
	if (!in.zeros(3))
		return protocolError("frame header", "reserved header bytes are not zero");
	if (length > spec->maxBody)
		return Error::invalid(EMSGSIZE, "protocol", "frame header",
				      "body of %u bytes exceeds the %zu allowed for type 0x%02x", length,
				      spec->maxBody, type);
	if (spec->minBody == spec->maxBody && length != spec->maxBody)
		return protocolError("frame header", "body of %u bytes, type 0x%02x needs exactly %zu",
				     length, type, spec->maxBody);
	if (length < spec->minBody)
		return protocolError("frame header", "body of %u bytes, type 0x%02x needs at least %zu",
				     length, type, spec->minBody);
	return FrameHeader{length, spec->type};
}

void encodeDataHeader(std::vector<std::uint8_t> &out, std::size_t length)
{
	if (length == 0 || length > kMaxBodySize)
		__builtin_trap();
	ByteWriter header(out);
	header.u32(static_cast<std::uint32_t>(length));
	header.u8(static_cast<std::uint8_t>(FrameType::Data));
	header.zeros(3);
}

// --- FieldWriter -------------------------------------------------------------

std::size_t FieldWriter::length16(const std::string &field, std::size_t min, std::size_t max,
				  const char *, Overlong overlong)
{
	std::size_t length = field.size();
	if (length > max && overlong == Overlong::Truncate)
		length = max;
	require(length >= min && length <= max && length <= 0xffff, "length");
	out_.u16(static_cast<std::uint16_t>(length));
	return length;
}

void FieldWriter::text(const std::string &field, std::size_t n)
{
	out_.bytes(std::string_view(field).substr(0, n));
}

void FieldWriter::padded(const std::string &field, std::size_t n)
{
	require(field.size() <= n, "padded text");
	out_.bytes(field); // NUL-padded, not terminated
	out_.zeros(n - field.size());
}

void FieldWriter::require(bool ok, const char *, ...) noexcept
{
	if (!ok)
		__builtin_trap(); // an encoder was handed unchecked data: a bug (protocol.h)
}

// --- FieldReader -------------------------------------------------------------

void FieldReader::flag(bool &field) noexcept
{
	const std::uint8_t value = in_.u8();
	require(value <= 1, "unknown flags 0x%02x", value);
	field = value == 1;
}

void FieldReader::reserved(std::size_t n) noexcept
{
	require(in_.zeros(n) || in_.overrun(), "reserved bytes are not zero");
}

std::size_t FieldReader::length16(const std::string &, std::size_t min, std::size_t max,
				  const char *what, Overlong) noexcept
{
	const std::size_t length = in_.u16();
	require(in_.overrun() || (length >= min && length <= max), "%s of %zu bytes", what, length);
	return status_ ? length : 0;
}

void FieldReader::text(std::string &field, std::size_t n)
{
	// n was checked against its field's cap, and bytes() against the body.
	field = toString(in_.bytes(n));
}

void FieldReader::rest(std::string &field)
{
	field = toString(in_.bytes(in_.remaining()));
}

void FieldReader::padded(std::string &field, std::size_t n)
{
	// Printable ASCII, then NULs only (nothing after the first NUL).
	const std::span<const std::uint8_t> bytes = in_.bytes(n);
	std::size_t length = 0;
	while (length < bytes.size() && bytes[length] != 0)
		++length;
	bool ok = true;
	for (std::size_t i = 0; i < bytes.size(); ++i)
		ok = ok && (i < length ? bytes[i] >= 0x20 && bytes[i] <= 0x7e : bytes[i] == 0);
	require(ok, "version text is not NUL-padded printable ASCII");
	field = toString(bytes.first(length));
}

void FieldReader::require(bool ok, const char *fmt, ...) noexcept
{
	if (ok || !status_)
		return;
	char detail[Error::kDetailMax + 1];
	va_list args;
	va_start(args, fmt);
	(void)std::vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	status_ = protocolError(what_, "%s", detail);
}

void FieldReader::check(const Status &status) noexcept
{
	if (!status && status_)
		status_ = status;
}

Status FieldReader::finish() const noexcept
{
	if (!status_)
		return status_;
	if (in_.overrun() || in_.remaining() != 0)
		return protocolError(what_, "body of %zu bytes", size_);
	return {};
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
