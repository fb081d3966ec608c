// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Channels on the serial transport (docs/protocol.md, "Channels"): QEMU's
// socket chardev carries one host connection at a time, but a VM serves
// many requests at once (a long extract and a listing, a mount's reads).
// A host process (the client's channel broker, client/channel_broker.h)
// holds that one connection and multiplexes its clients' connections over
// it as numbered channels; the daemon runs one ordinary guest-protocol
// connection per channel (guest/channels.h). Each channel carries a whole
// authenticated session: the broker only forwards bytes, and a broker that
// does not hold the ticket learns nothing it could use.
//
// The layer, both directions:
//   host: 8192 zero bytes (proto::kSyncPaddingSize), then a channel hello
//         (16 bytes: kHelloMagic, u64 nonce)
//   guest: a channel hello ack (kAckMagic, the same nonce), after which
//         nothing from an earlier channel session is written
//   then frames: u32 length, u32 channel, u8 kind, 3 reserved zero bytes,
//   and `length` payload bytes.
// Kinds: Open (host -> guest, no payload: a new channel), Data (payload:
// bytes of the channel's stream), Close (no payload: that side is done).
// Channel numbers are never 0 and never reused within a channel session.
//
// Everything one end receives is hostile to it (the broker reads what a
// compromised guest kernel writes): headers are checked before a payload
// is read, payloads are capped per direction, reserved bytes must be zero.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "shared/protocol.h"
#include "shared/result.h"

namespace fr::chan {

inline constexpr std::size_t kMagicSize = 8;
inline constexpr std::array<std::uint8_t, kMagicSize> kHelloMagic = {0x89, 'F', 'R', '-', 'C', 'H', 'N', '\n'};
inline constexpr std::array<std::uint8_t, kMagicSize> kAckMagic = {0x89, 'F', 'R', '-', 'C', 'H', 'A', '\n'};
inline constexpr std::size_t kHelloSize = kMagicSize + 8;
inline constexpr std::size_t kHeaderSize = 12;

// Payload caps: the host forwards requests and acknowledgements (small),
// the guest responses (large).
inline constexpr std::size_t kToGuestMax = 4096;
inline constexpr std::size_t kToHostMax = std::size_t{1} << 20;
// Channels open at once, per VM (the daemon's cap, as for vsock).
inline constexpr std::size_t kMaxChannels = 16;

static_assert(proto::kSyncPaddingSize >= kToGuestMax + kHeaderSize,
	      "the sync padding must complete any partial channel frame");
// A hello read as a header has a length beyond every cap (so a reader that
// scans for hellos never mistakes one for a frame).
static_assert((std::size_t{0x89} | std::size_t{'F'} << 8 | std::size_t{'R'} << 16 | std::size_t{'-'} << 24) >
	      kToHostMax);

enum class Kind : std::uint8_t { Open = 1, Data = 2, Close = 3 };

struct Header {
	std::uint32_t length = 0;
	std::uint32_t channel = 0;
	Kind kind = Kind::Data;
};

using HelloBytes = std::array<std::uint8_t, kHelloSize>;

// The host's hello and the guest's answer, carrying the host's nonce.
HelloBytes encodeHello(std::uint64_t nonce) noexcept;
HelloBytes encodeAck(std::uint64_t nonce) noexcept;
// The nonce of a hello (kHelloMagic) or ack (kAckMagic); nullopt when the
// bytes do not start with `magic`.
std::optional<std::uint64_t> decodeHello(std::span<const std::uint8_t, kHelloSize> bytes,
					 const std::array<std::uint8_t, kMagicSize> &magic) noexcept;

// Appends a frame header (and nothing else) to `out`. A length beyond the
// direction's cap, a payload on Open/Close or a channel 0 trap: the
// caller's bug.
void encodeHeader(std::vector<std::uint8_t> &out, Kind kind, std::uint32_t channel, std::uint32_t length,
		  proto::Direction to);
// Appends a whole Data frame.
void encodeData(std::vector<std::uint8_t> &out, std::uint32_t channel, std::span<const std::uint8_t> payload,
		proto::Direction to);

// Checks a header received by the end `to` points to: a known kind,
// reserved bytes zero, channel not 0, length 0 for Open/Close and 1..cap for
// Data (Open only towards the guest). EPROTO naming what was wrong.
Result<Header> decodeHeader(std::span<const std::uint8_t, kHeaderSize> bytes, proto::Direction to) noexcept;

// A fresh random nonce for a hello (getrandom).
std::uint64_t randomNonce() noexcept;

} // namespace fr::chan
