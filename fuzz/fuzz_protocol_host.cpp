// SPDX-License-Identifier: AGPL-3.0-or-later
// The host's side of the guest protocol (shared/guest_session.h) fed with
// arbitrary guest bytes: what a taken-over guest kernel could send. The
// first input byte picks the mode:
//   even: the bytes are the guest's whole answer (stale output, hellos,
//         proofs: the handshake must refuse without crashing);
//   odd:  the harness answers the handshake correctly (it holds the ticket),
//         then the bytes are the responses to status, list and extract
//         requests, in turn, while the session stays usable.
// Every name handed to a callback must pass the protocol's name check; no
// frame may make the session allocate beyond the 4 MiB cap.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shared/guest_session.h"
#include "shared/protocol.h"

namespace {

using namespace fr;

const proto::Key kKey = [] {
	proto::Key key{};
	for (std::size_t i = 0; i < key.size(); ++i)
		key[i] = static_cast<std::uint8_t>(0x3c ^ (i * 5));
	return key;
}();

class GuestScript final : public ByteStream {
public:
	std::vector<std::uint8_t> input;
	std::vector<std::uint8_t> script; // the fuzz bytes
	bool answerHandshake = false;
	bool answered = false;
	std::vector<std::uint8_t> written;
	std::size_t pos = 0;
	std::size_t chunk = 5;

	Result<std::size_t> read(std::span<std::uint8_t> buf, int) override
	{
		if (pos >= input.size())
			return std::size_t{0};
		std::size_t n = input.size() - pos;
		n = n < buf.size() ? n : buf.size();
		n = n < chunk ? n : chunk;
		std::memcpy(buf.data(), input.data() + pos, n);
		pos += n;
		chunk = chunk * 7 % 97 + 1;
		return n;
	}

	Status write(std::span<const std::uint8_t> buf, int) override
	{
		if (written.size() < 65536)
			written.insert(written.end(), buf.begin(), buf.end());
		if (answered)
			return {};
		const std::size_t at = proto::scanForMagic(written, proto::kClientHelloMagic);
		if (written.size() < at + proto::kClientHelloSize)
			return {};
		answered = true;
		if (!answerHandshake) {
			input = script;
			return {};
		}
		Result<proto::ClientHello> hello = proto::decodeClientHello(
			std::span<const std::uint8_t, proto::kClientHelloSize>(written.data() + at,
									      proto::kClientHelloSize));
		if (!hello)
			std::abort(); // the session's own hello must decode
		proto::ServerHello server;
		server.clientNonce = hello->nonce;
		server.serverNonce.fill(0x17);
		server.proof = proto::serverProof(kKey, proto::kVersion, server.clientNonce, server.serverNonce);
		const proto::ServerHelloBytes bytes = proto::encodeServerHello(server);
		input.assign(bytes.begin(), bytes.end());
		proto::encodeAuthOk(input);
		input.insert(input.end(), script.begin(), script.end());
		return {};
	}
};

Status checkEntry(const proto::Entry &entry)
{
	if (!proto::checkName(entry.name) || !proto::checkLinkTarget(entry.linkTarget) || entry.mode > 07777)
		std::abort(); // a hostile name got through to the caller
	return {};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	if (size == 0)
		return 0;
	auto stream = std::make_unique<GuestScript>();
	stream->answerHandshake = (data[0] & 1) != 0;
	stream->script.assign(data + 1, data + size);
	Result<GuestSession> session = GuestSession::open(std::move(stream), kKey, 1000);
	if (!session)
		return 0;
	for (int round = 0; round < 8 && session->usable(); ++round) {
		switch (round % 3) {
		case 0:
			(void)session->status(round % 2 == 0);
			break;
		case 1:
			(void)session->list("/disk0/part/1", checkEntry);
			break;
		case 2: {
			std::uint64_t total = 0;
			(void)session->extract(
				"/disk0/raw/file", proto::ExtractFormat::Tar, proto::Compression::Zstd, checkEntry,
				[&](std::span<const std::uint8_t> bytes) {
					total += bytes.size();
					if (bytes.empty() || bytes.size() > proto::kMaxBodySize)
						std::abort();
					return Status{};
				});
			break;
		}
		}
	}
	return 0;
}
