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

#include "fuzz/scripted_stream.h"
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

// Host bytes to read; the daemon's output collected (and bounded). In the
// authenticated mode the fuzz bytes are released once the server hello is
// out, after the Auth frame the harness computes for it.
class HostScript final : public fuzz::ScriptedStream {
public:
	HostScript() : ScriptedStream(7, 3, 61, std::size_t{1} << 20) {}

	std::vector<std::uint8_t> pending; // released once the server hello is out
	bool authenticate = false;
	proto::Nonce clientNonce{};

private:
	void onWrite() override
	{
		if (!authenticate || pending.empty())
			return;
		const std::size_t at = proto::scanForMagic(written, proto::kServerHelloMagic);
		if (written.size() < at + proto::kServerHelloSize)
			return;
		Result<proto::ServerHello> hello = proto::decodeServerHello(
			std::span(written).subspan(at).first<proto::kServerHelloSize>());
		if (!hello)
			return;
		proto::encode(input, proto::Auth{proto::clientProof(kKey, proto::kVersion, clientNonce,
								     hello->serverNonce)});
		input.insert(input.end(), pending.begin(), pending.end());
		pending.clear();
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
	(void)proto::decode<proto::Auth>(bytes);
	(void)proto::decode<proto::StatusRequest>(bytes);
	(void)proto::decode<proto::ListRequest>(bytes);
	(void)proto::decode<proto::ExtractRequest>(bytes);
	(void)proto::decode<proto::Ack>(bytes);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	setLogLevel(LogLevel::Error);
	if (size == 0)
		return 0;
	decodeEverything(std::span(data + 1, size - 1));

	HostScript stream;
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
