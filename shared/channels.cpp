// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/channels.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "shared/byte_cursor.h"

namespace fr::chan {

namespace {

HelloBytes encodeWith(const std::array<std::uint8_t, kMagicSize> &magic, std::uint64_t nonce) noexcept
{
	HelloBytes out{};
	std::copy(magic.begin(), magic.end(), out.begin());
	for (std::size_t i = 0; i < 8; ++i)
		out[kMagicSize + i] = static_cast<std::uint8_t>(nonce >> (8 * i));
	return out;
}

std::size_t capFor(proto::Direction to) noexcept
{
	return to == proto::Direction::ToGuest ? kToGuestMax : kToHostMax;
}

} // namespace

HelloBytes encodeHello(std::uint64_t nonce) noexcept
{
	return encodeWith(kHelloMagic, nonce);
}

HelloBytes encodeAck(std::uint64_t nonce) noexcept
{
	return encodeWith(kAckMagic, nonce);
}

std::optional<std::uint64_t> decodeHello(std::span<const std::uint8_t, kHelloSize> bytes,
					 const std::array<std::uint8_t, kMagicSize> &magic) noexcept
{
	if (!std::equal(magic.begin(), magic.end(), bytes.begin()))
		return std::nullopt;
	ByteReader in(bytes.subspan(kMagicSize));
	return in.u64();
}

void encodeHeader(std::vector<std::uint8_t> &out, Kind kind, std::uint32_t channel, std::uint32_t length,
		  proto::Direction to)
{
	const bool payload = kind == Kind::Data;
	if (channel == 0 || (payload ? (length == 0 || length > capFor(to)) : length != 0) ||
	    (kind == Kind::Open && to != proto::Direction::ToGuest))
		__builtin_trap(); // the caller's bug
	ByteWriter w(out);
	w.u32(length);
	w.u32(channel);
	w.u8(static_cast<std::uint8_t>(kind));
	w.zeros(3);
}

void encodeData(std::vector<std::uint8_t> &out, std::uint32_t channel, std::span<const std::uint8_t> payload,
		proto::Direction to)
{
	encodeHeader(out, Kind::Data, channel, static_cast<std::uint32_t>(payload.size()), to);
	out.insert(out.end(), payload.begin(), payload.end());
}

Result<Header> decodeHeader(std::span<const std::uint8_t, kHeaderSize> bytes, proto::Direction to) noexcept
{
	ByteReader in(bytes);
	Header header;
	header.length = in.u32();
	header.channel = in.u32();
	const std::uint8_t kind = in.u8();
	if (!in.zeros(3))
		return Error::invalid(EPROTO, "channel frame", "header", "reserved bytes are not zero");
	if (kind < static_cast<std::uint8_t>(Kind::Open) || kind > static_cast<std::uint8_t>(Kind::Close))
		return Error::invalid(EPROTO, "channel frame", "header", "unknown kind %u", static_cast<unsigned>(kind));
	header.kind = static_cast<Kind>(kind);
	if (header.channel == 0)
		return Error::invalid(EPROTO, "channel frame", "header", "channel 0");
	if (header.kind == Kind::Open && to != proto::Direction::ToGuest)
		return Error::invalid(EPROTO, "channel frame", "header", "only the host opens channels");
	if (header.kind == Kind::Data) {
		if (header.length == 0 || header.length > capFor(to))
			return Error::invalid(EPROTO, "channel frame", "header", "data of %u bytes (1 to %zu allowed)",
					      static_cast<unsigned>(header.length), capFor(to));
	} else if (header.length != 0) {
		return Error::invalid(EPROTO, "channel frame", "header", "open/close with a payload");
	}
	return header;
}

std::uint64_t randomNonce() noexcept
{
	std::uint64_t nonce = 0;
	if (::getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce)) {
		// Only tells this hello's answer from stale ones: no secret.
		timespec ts{};
		::clock_gettime(CLOCK_MONOTONIC, &ts);
		nonce = static_cast<std::uint64_t>(ts.tv_sec) * 1000000007U ^ static_cast<std::uint64_t>(ts.tv_nsec);
	}
	return nonce;
}

} // namespace fr::chan
