// SPDX-License-Identifier: AGPL-3.0-or-later
// The daemon's side of the guest protocol (guest/server.h) fed with
// arbitrary host bytes, in two modes picked by the first input byte:
//   even: the bytes as they come (scanning for the hello, hellos, framing
//         errors, anything before authentication);
//   odd:  the harness completes a real handshake first (it holds the
//         ticket), then the bytes follow as an authenticated host's frames:
//         requests, Acks mid-response, garbage, new hellos.
// Also runs every body decoder on the raw input. Must never crash, hang or
// allocate beyond the caps.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "guest/server.h"
#include "shared/log.h"
#include "shared/protocol.h"

namespace {

using namespace fr;

const proto::Key kKey = [] {
	proto::Key key{};
	for (std::size_t i = 0; i < key.size(); ++i)
		key[i] = static_cast<std::uint8_t>(0xa5 ^ i);
	return key;
}();

// Host bytes to read, in chunks whose sizes vary with the input; output
// collected (and bounded).
class ScriptStream final : public ByteStream {
public:
	std::vector<std::uint8_t> input;
	std::vector<std::uint8_t> pending; // released once the server hello is out
	std::vector<std::uint8_t> output;
	bool authenticate = false;
	proto::Nonce clientNonce{};
	std::size_t pos = 0;
	std::size_t chunk = 7;

	Result<std::size_t> read(std::span<std::uint8_t> buf, int) override
	{
		if (pos >= input.size())
			return std::size_t{0};
		std::size_t n = input.size() - pos;
		n = n < buf.size() ? n : buf.size();
		n = n < chunk ? n : chunk;
		std::memcpy(buf.data(), input.data() + pos, n);
		pos += n;
		chunk = chunk * 3 % 61 + 1;
		return n;
	}

	Status write(std::span<const std::uint8_t> buf, int) override
	{
		if (output.size() < (std::size_t{1} << 20))
			output.insert(output.end(), buf.begin(), buf.end());
		if (authenticate && !pending.empty()) {
			const std::size_t at = proto::scanForMagic(output, proto::kServerHelloMagic);
			if (output.size() >= at + proto::kServerHelloSize) {
				Result<proto::ServerHello> hello = proto::decodeServerHello(
					std::span<const std::uint8_t, proto::kServerHelloSize>(output.data() + at,
											 proto::kServerHelloSize));
				if (hello) {
					proto::encodeAuth(input, proto::clientProof(kKey, proto::kVersion, clientNonce,
										    hello->serverNonce));
					input.insert(input.end(), pending.begin(), pending.end());
					pending.clear();
				}
			}
		}
		return {};
	}
};

class FuzzHandler final : public guest::RequestHandler {
public:
	proto::StatusInfo status(bool) override
	{
		proto::StatusInfo info;
		info.version = "fuzz";
		return info;
	}
	void stop() override {}
	Status list(std::string_view path, guest::Responder &out) override
	{
		if (path.size() % 3 == 0)
			return Error(ENOENT, "list", path);
		for (int i = 0; i < 3; ++i) {
			proto::Entry entry;
			entry.name = "entry" + std::to_string(i);
			if (Status ok = out.entry(entry); !ok)
				return ok;
		}
		return {};
	}
	Status extract(const proto::ExtractRequest &request, guest::Responder &out) override
	{
		proto::Entry entry;
		entry.name = "object";
		if (Status ok = out.entry(entry); !ok)
			return ok;
		// Enough to need the flow control window more than once.
		std::vector<std::uint8_t> data(proto::kDataChunkSize, static_cast<std::uint8_t>(request.path.size()));
		const std::size_t rounds = request.path.size() % 4 == 0 ? 12 : 1;
		for (std::size_t i = 0; i < rounds; ++i)
			if (Status ok = out.data(data); !ok)
				return ok;
		return {};
	}
};

void decodeEverything(std::span<const std::uint8_t> bytes)
{
	if (bytes.size() >= proto::kFrameHeaderSize) {
		(void)proto::decodeFrameHeader(std::span<const std::uint8_t, proto::kFrameHeaderSize>(
						       bytes.data(), proto::kFrameHeaderSize),
					       proto::Direction::ToGuest);
	}
	if (bytes.size() >= proto::kClientHelloSize)
		(void)proto::decodeClientHello(
			std::span<const std::uint8_t, proto::kClientHelloSize>(bytes.data(), proto::kClientHelloSize));
	(void)proto::decodeAuth(bytes);
	(void)proto::decodeStatusRequest(bytes);
	(void)proto::decodeList(bytes);
	(void)proto::decodeExtract(bytes);
	(void)proto::decodeAck(bytes);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	setLogLevel(LogLevel::Error);
	if (size == 0)
		return 0;
	decodeEverything(std::span(data + 1, size - 1));

	ScriptStream stream;
	const bool authenticated = (data[0] & 1) != 0;
	if (authenticated) {
		stream.authenticate = true;
		proto::ClientHello hello;
		hello.nonce.fill(0x42);
		stream.clientNonce = hello.nonce;
		const proto::ClientHelloBytes bytes = proto::encodeClientHello(hello);
		stream.input.assign(bytes.begin(), bytes.end());
		stream.pending.assign(data + 1, data + size);
		stream.pending.push_back(0); // never empty: the trigger above
	} else {
		stream.input.assign(data + 1, data + size);
	}
	FuzzHandler handler;
	guest::Connection connection(stream, kKey, handler, guest::ConnectionOptions{});
	// Like the serial loop: conversations until the input is used up.
	for (int round = 0; round < 64; ++round) {
		const guest::Connection::Outcome outcome = connection.run();
		if (outcome != guest::Connection::Outcome::Abandoned)
			break;
	}
	return 0;
}
