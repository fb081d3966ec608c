// SPDX-License-Identifier: AGPL-3.0-or-later
// The host session (shared/guest_session.h) against scripted guests over a
// socketpair: a guest without the ticket is detected before the host proves
// itself, the first request travels with the proof, and every broken
// response (count mismatch, truncation, hostile frames, silence) is an error
// that leaves the session unusable. (The session against the real daemon:
// tests/guest/session_test.cpp.)
#include "shared/guest_session.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace fr {
namespace {

proto::Key keyOf(std::uint8_t seed)
{
	proto::Key key;
	for (std::size_t i = 0; i < key.size(); ++i)
		key[i] = static_cast<std::uint8_t>(seed + i);
	return key;
}

// A guest's side of the hellos on `fd`: reads the sync padding and the
// client hello, answers with a server hello whose proof is made with
// `proofKey` (the ticket, or another key for a squatter). Returns the hello
// sent, or nullopt when the client hello did not arrive.
std::optional<proto::ServerHello> answerHello(int fd, const proto::Key &proofKey)
{
	std::vector<std::uint8_t> in(proto::kSyncPaddingSize + proto::kClientHelloSize);
	if (::recv(fd, in.data(), in.size(), MSG_WAITALL) != static_cast<ssize_t>(in.size()))
		return std::nullopt;
	proto::ServerHello hello;
	std::memcpy(hello.clientNonce.data(), in.data() + proto::kSyncPaddingSize + 12, 32);
	hello.serverNonce = proto::randomNonce();
	hello.proof = proto::serverProof(proofKey, proto::kVersion, hello.clientNonce, hello.serverNonce);
	const auto bytes = proto::encodeServerHello(hello);
	(void)!::write(fd, bytes.data(), bytes.size());
	return hello;
}

TEST(HostSession, FakeServerWithoutTheTicketIsDetected)
{
	// A squatter answers with a well-formed hello whose proof it made up
	// (it may even replay a proof it saw on another connection).
	int fds[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	UniqueFd squatter(fds[1]);
	std::atomic<bool> sawAuth{false};
	std::thread fake([&] {
		if (!answerHello(squatter.get(), keyOf(99)))
			return;
		std::uint8_t more[8];
		if (::recv(squatter.get(), more, sizeof(more), 0) > 0)
			sawAuth = true;
	});
	Result<GuestSession> session = GuestSession::open(UniqueFd(fds[0]), keyOf(7), 5000);
	fake.join();
	ASSERT_FALSE(session);
	EXPECT_EQ(session.error().errnum(), EACCES);
	EXPECT_NE(session.error().message().find("not our VM"), std::string::npos);
	EXPECT_FALSE(sawAuth) << "the host must not send its proof to an unproven guest";
}

// A guest that completes the handshake, reads one request, answers with
// `response` (hand-built, possibly broken) and closes the connection.
void scriptedGuest(const proto::Key &key, UniqueFd fd, std::vector<std::uint8_t> response)
{
	if (!answerHello(fd.get(), key))
		return;
	std::uint8_t auth[40];
	if (::recv(fd.get(), auth, sizeof(auth), MSG_WAITALL) != 40)
		return;
	std::vector<std::uint8_t> out;
	proto::encode(out, proto::AuthOk{});
	(void)!::write(fd.get(), out.data(), out.size());
	std::uint8_t request[8];
	if (::recv(fd.get(), request, sizeof(request), MSG_WAITALL) != 8)
		return;
	std::vector<std::uint8_t> body(request[0] | (request[1] << 8));
	if (::recv(fd.get(), body.data(), body.size(), MSG_WAITALL) != static_cast<ssize_t>(body.size()))
		return;
	(void)!::write(fd.get(), response.data(), response.size());
}

Status listFromScriptedGuest(std::vector<std::uint8_t> response)
{
	const proto::Key key = keyOf(11);
	int fds[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
		return Error(errno, "socketpair");
	std::thread guestThread(scriptedGuest, key, UniqueFd(fds[1]), std::move(response));
	Result<GuestSession> session = GuestSession::open(UniqueFd(fds[0]), key, 5000);
	if (!session) {
		guestThread.join();
		return session.error();
	}
	Status result = session->list("/a", [](const proto::Entry &) noexcept { return Status{}; });
	if (!result) {
		// Not the guest's error trailer: the session must be unusable.
		EXPECT_FALSE((result.error().kind() == ErrorKind::Guest));
		EXPECT_FALSE(session->usable());
	}
	guestThread.join();
	return result;
}

// The guest's own error trailer: a Guest error, the session still usable.
Error guestFailure(const proto::Failure &failure)
{
	const proto::Key key = keyOf(12);
	int fds[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
		return Error(errno, "socketpair");
	std::vector<std::uint8_t> response;
	proto::encode(response, failure);
	std::thread guestThread(scriptedGuest, key, UniqueFd(fds[1]), std::move(response));
	Result<GuestSession> session = GuestSession::open(UniqueFd(fds[0]), key, 5000);
	Status result = session ? session->list("/a", [](const proto::Entry &) noexcept { return Status{}; })
				: Status(session.error());
	guestThread.join();
	EXPECT_FALSE(result);
	EXPECT_TRUE(!result && result.error().kind() == ErrorKind::Guest);
	return result ? Error(0, "list", "succeeded") : result.error();
}

TEST(HostSession, AGuestFailureSaysWhatKindItIs)
{
	const Error io = guestFailure({proto::ErrorCode::Io, EIO, "read(x): Input/output error"});
	EXPECT_EQ(io.errnum(), EIO);
	EXPECT_STREQ(io.reason(), "I/O error: read(x): Input/output error");
	// A volume locked for want of its key travels as Io with the guest's
	// ENOKEY: no I/O error, the reason as the guest gave it.
	const Error locked =
		guestFailure({proto::ErrorCode::Io, ENOKEY, "volume(/disk0/part/1): crypto_LUKS: locked: no key given"});
	EXPECT_EQ(locked.errnum(), ENOKEY);
	EXPECT_STREQ(locked.reason(), "volume(/disk0/part/1): crypto_LUKS: locked: no key given");
	// The guest's errno is only believed where it fits the code.
	const Error notFound = guestFailure({proto::ErrorCode::NotFound, ENOKEY, "stat(x): gone"});
	EXPECT_EQ(notFound.errnum(), ENOENT);
}

TEST(HostSession, CountMismatchIsAnError)
{
	proto::Entry entry;
	entry.name = "x";
	std::vector<std::uint8_t> response;
	proto::encode(response, entry);
	proto::encode(response, entry);
	proto::encode(response, proto::End{3}); // says 3, sent 2
	Status result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), EPROTO);
	EXPECT_FALSE((result.error().kind() == ErrorKind::Guest));
}

TEST(HostSession, TruncatedResponseIsAnError)
{
	proto::Entry entry;
	entry.name = "x";
	std::vector<std::uint8_t> response;
	proto::encode(response, entry); // and then the guest closes: no trailer
	Status result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), ECONNRESET);
	// Cut in the middle of a frame.
	response.pop_back();
	result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), ECONNRESET);
}

TEST(HostSession, HostileFramesAreRefused)
{
	// A name with '/', an oversized frame, a data frame in a listing.
	std::vector<std::uint8_t> response = {4 + proto::kEntryFixed, 0, 0, 0, 0x43, 0, 0, 0};
	std::vector<std::uint8_t> body(proto::kEntryFixed, 0);
	body[0] = 1;
	body[2] = 4;
	response.insert(response.end(), body.begin(), body.end());
	response.insert(response.end(), {'a', '/', '.', '.'});
	Status result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), EPROTO);

	response = {0xff, 0xff, 0xff, 0x7f, 0x44, 0, 0, 0};
	result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), EMSGSIZE);

	response.clear();
	proto::encodeDataHeader(response, 1);
	response.push_back(0);
	result = listFromScriptedGuest(response);
	ASSERT_FALSE(result);
	EXPECT_EQ(result.error().errnum(), EPROTO);
}

TEST(HostSession, HandshakeTimesOut)
{
	int fds[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	UniqueFd silent(fds[1]);
	Result<GuestSession> session = GuestSession::open(UniqueFd(fds[0]), keyOf(15), 300);
	ASSERT_FALSE(session);
	EXPECT_EQ(session.error().errnum(), ETIMEDOUT);
}

TEST(HostSession, TheFirstRequestTravelsWithTheProof)
{
	// The host sends its Auth and its first request together, without
	// waiting for AuthOk (one round trip through the guest less per
	// connection). This guest answers nothing until it has both.
	const proto::Key key = keyOf(30);
	int fds[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	UniqueFd guestEnd(fds[1]);
	std::atomic<bool> gotBoth{false};
	std::thread guestThread([&] {
		const std::optional<proto::ServerHello> hello = answerHello(guestEnd.get(), key);
		if (!hello)
			return;
		// Auth (40) + Status request (8 + 4), with a deadline: a host that
		// waited for AuthOk first would never send the request.
		std::vector<std::uint8_t> both(40 + 12);
		timeval tv{2, 0};
		::setsockopt(guestEnd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (::recv(guestEnd.get(), both.data(), both.size(), MSG_WAITALL) != static_cast<ssize_t>(both.size()))
			return;
		Result<proto::Auth> proof = proto::decode<proto::Auth>(std::span(both.data() + 8, 32));
		if (!proof ||
		    !proto::verifyClientProof(key, proto::kVersion, hello->clientNonce, hello->serverNonce, proof->proof))
			return;
		if (both[40 + 4] != static_cast<std::uint8_t>(proto::FrameType::Status))
			return;
		gotBoth = true;
		std::vector<std::uint8_t> out;
		proto::encode(out, proto::AuthOk{});
		proto::StatusInfo info;
		info.uptimeMs = 7;
		proto::encode(out, info);
		proto::encode(out, proto::End{1});
		(void)!::write(guestEnd.get(), out.data(), out.size());
	});
	Result<GuestSession> session = GuestSession::open(UniqueFd(fds[0]), key, 5000);
	ASSERT_TRUE(session) << session.error().message();
	Result<proto::StatusInfo> info = session->status(true);
	guestThread.join();
	EXPECT_TRUE(gotBoth) << "the request did not come with the proof";
	ASSERT_TRUE(info) << info.error().message();
	EXPECT_EQ(info->uptimeMs, 7U);
}

} // namespace
} // namespace fr
