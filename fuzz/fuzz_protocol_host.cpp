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

#include "fuzz/scripted_stream.h"
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

// The guest's bytes: the fuzz script, as the whole answer or after a
// correct handshake answered here.
class GuestScript final : public fuzz::ScriptedStream {
public:
	GuestScript() : ScriptedStream(5, 7, 97, 65536) {}

	std::vector<std::uint8_t> script; // the fuzz bytes
	bool answerHandshake = false;

private:
	void onWrite() override
	{
		if (answered_)
			return;
		const std::size_t at = proto::scanForMagic(written, proto::kClientHelloMagic);
		if (written.size() < at + proto::kClientHelloSize)
			return;
		answered_ = true;
		if (!answerHandshake) {
			input = script;
			return;
		}
		Result<proto::ClientHello> hello = proto::decodeClientHello(
			std::span(written).subspan(at).first<proto::kClientHelloSize>());
		if (!hello)
			std::abort(); // the session's own hello must decode
		proto::ServerHello server;
		server.clientNonce = hello->nonce;
		server.serverNonce.fill(0x17);
		server.proof = proto::serverProof(kKey, proto::kVersion, server.clientNonce, server.serverNonce);
		const proto::ServerHelloBytes bytes = proto::encodeServerHello(server);
		input.assign(bytes.begin(), bytes.end());
		proto::encode(input, proto::AuthOk{});
		input.insert(input.end(), script.begin(), script.end());
	}

	bool answered_ = false;
};

Status checkEntry(const proto::Entry &entry) noexcept
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
			(void)session->list("/disk0/part/1", [](const proto::Entry &entry) noexcept {
				return checkEntry(entry);
			});
			break;
		case 2: {
			std::uint64_t total = 0;
			(void)session->extract(
				"/disk0/raw/file", proto::ExtractFormat::Tar, proto::Compression::Zstd,
				[](const proto::Entry &entry) noexcept { return checkEntry(entry); },
				[&](std::span<const std::uint8_t> bytes) noexcept {
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
