// SPDX-License-Identifier: AGPL-3.0-or-later
// The guest protocol codec (shared/protocol.h): round trips, the exact byte
// layout docs/protocol.md specifies, and refusal of every malformed input
// class (lengths over their caps before allocation, reserved bits, bad names
// and paths).
#include "shared/protocol.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fr::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bodyOf(const Bytes &frame)
{
	return Bytes(frame.begin() + kFrameHeaderSize, frame.end());
}

Result<FrameHeader> header(const Bytes &frame, Direction dir)
{
	return decodeFrameHeader(std::span<const std::uint8_t, kFrameHeaderSize>(frame.data(), kFrameHeaderSize),
				 dir);
}

Key testKey()
{
	Key key;
	for (std::size_t i = 0; i < key.size(); ++i)
		key[i] = static_cast<std::uint8_t>(i * 7 + 1);
	return key;
}

TEST(Protocol, HelloMagicsCannotBeFrameHeaders)
{
	for (const auto &magic : {kClientHelloMagic, kServerHelloMagic}) {
		const std::uint32_t asLength = magic[0] | (magic[1] << 8) | (magic[2] << 16) |
					       (static_cast<std::uint32_t>(magic[3]) << 24);
		EXPECT_GT(asLength, kMaxFrameSize);
	}
}

TEST(Protocol, ClientHelloLayout)
{
	ClientHello hello;
	hello.version = 1;
	for (std::size_t i = 0; i < kNonceSize; ++i)
		hello.nonce[i] = static_cast<std::uint8_t>(i);
	const ClientHelloBytes bytes = encodeClientHello(hello);
	ASSERT_EQ(bytes.size(), 44U);
	EXPECT_EQ(std::memcmp(bytes.data(), "\x89" "FR-CLI\n", 8), 0);
	EXPECT_EQ(bytes[8], 1);
	EXPECT_EQ(bytes[9], 0);
	EXPECT_EQ(bytes[12], 0);
	EXPECT_EQ(bytes[43], 31);
	Result<ClientHello> back = decodeClientHello(bytes);
	ASSERT_TRUE(back);
	EXPECT_EQ(back->nonce, hello.nonce);
	EXPECT_EQ(back->version, 1U);

	ClientHelloBytes bad = bytes;
	bad[1] = 'X';
	EXPECT_FALSE(decodeClientHello(bad));
}

TEST(Protocol, ServerHelloRoundTrip)
{
	ServerHello hello;
	hello.version = 7;
	hello.clientNonce.fill(1);
	hello.serverNonce.fill(2);
	hello.proof.fill(3);
	const ServerHelloBytes bytes = encodeServerHello(hello);
	ASSERT_EQ(bytes.size(), 108U);
	EXPECT_EQ(std::memcmp(bytes.data(), "\x89" "FR-SRV\n", 8), 0);
	EXPECT_EQ(bytes[12], 1);
	EXPECT_EQ(bytes[44], 2);
	EXPECT_EQ(bytes[76], 3);
	Result<ServerHello> back = decodeServerHello(bytes);
	ASSERT_TRUE(back);
	EXPECT_EQ(back->version, 7U);
	EXPECT_EQ(back->clientNonce, hello.clientNonce);
	EXPECT_EQ(back->serverNonce, hello.serverNonce);
	EXPECT_EQ(back->proof, hello.proof);
}

TEST(Protocol, ScanForMagic)
{
	Bytes stream = {0, 0, 1, 2};
	EXPECT_EQ(scanForMagic(stream, kClientHelloMagic), 4U); // nothing to keep
	stream.insert(stream.end(), kClientHelloMagic.begin(), kClientHelloMagic.begin() + 3);
	EXPECT_EQ(scanForMagic(stream, kClientHelloMagic), 4U); // a prefix at the end is kept
	stream.insert(stream.end(), kClientHelloMagic.begin() + 3, kClientHelloMagic.end());
	EXPECT_EQ(scanForMagic(stream, kClientHelloMagic), 4U);
	// 0x89 followed by something else is skipped.
	Bytes noise = {0x89, 'F', 'R', 'x', 0x89};
	EXPECT_EQ(scanForMagic(noise, kClientHelloMagic), 4U);
	EXPECT_EQ(scanForMagic(noise, kServerHelloMagic), 4U);
}

TEST(Protocol, ProofsAreDomainSeparatedAndBound)
{
	const Key key = testKey();
	Nonce nc, ns;
	nc.fill(0xaa);
	ns.fill(0x55);
	const Proof server = serverProof(key, kVersion, nc, ns);
	const Proof client = clientProof(key, kVersion, nc, ns);
	EXPECT_NE(server, client);
	EXPECT_TRUE(verifyServerProof(key, kVersion, nc, ns, server));
	EXPECT_TRUE(verifyClientProof(key, kVersion, nc, ns, client));
	// A server proof shown to a client is no client proof.
	EXPECT_FALSE(verifyClientProof(key, kVersion, nc, ns, server));
	EXPECT_FALSE(verifyServerProof(key, kVersion, nc, ns, client));
	// Bound to both nonces, the version and the key.
	Nonce other = ns;
	other[31] ^= 1;
	EXPECT_FALSE(verifyServerProof(key, kVersion, nc, other, server));
	EXPECT_FALSE(verifyServerProof(key, kVersion, other, ns, server));
	EXPECT_FALSE(verifyServerProof(key, kVersion + 1, nc, ns, server));
	Key wrong = key;
	wrong[0] ^= 0x80;
	EXPECT_FALSE(verifyServerProof(wrong, kVersion, nc, ns, server));
}

TEST(Protocol, ProofIsHmacSha256OfTheDocumentedMessage)
{
	// A known-answer test computed independently:
	//   key = 01 08 0f ... (i*7+1), message = "file-restore/server" ||
	//   01 00 00 00 || 32 x aa || 32 x 55
	//   python3 -c 'import hmac,hashlib; k=bytes((i*7+1)&255 for i in range(32));
	//   m=b"file-restore/server"+b"\1\0\0\0"+b"\xaa"*32+b"\x55"*32;
	//   print(hmac.new(k,m,hashlib.sha256).hexdigest())'
	const Key key = testKey();
	Nonce nc, ns;
	nc.fill(0xaa);
	ns.fill(0x55);
	const Proof proof = serverProof(key, 1, nc, ns);
	Key asKey;
	std::memcpy(asKey.data(), proof.data(), proof.size());
	EXPECT_EQ(ticketToHex(asKey), "2bd0cdd3e54fa30a65be40a35ff543a376baadc490702bc2ef7edcb102636df2");
}

TEST(Protocol, TicketHex)
{
	const Key key = testKey();
	const std::string hex = ticketToHex(key);
	EXPECT_EQ(hex.size(), 64U);
	EXPECT_EQ(hex.substr(0, 6), "01080f");
	Result<Key> back = ticketFromHex(hex, "ticket");
	ASSERT_TRUE(back);
	EXPECT_EQ(*back, key);
	EXPECT_FALSE(ticketFromHex(hex + "\n", "ticket"));
	EXPECT_FALSE(ticketFromHex(hex.substr(1), "ticket"));
	std::string upper = hex;
	upper[1] = 'A';
	EXPECT_FALSE(ticketFromHex(upper, "ticket"));
	EXPECT_NE(randomTicket(), randomTicket());
}

TEST(Protocol, FrameHeaderChecks)
{
	Bytes frame;
	encode(frame, Stop{});
	ASSERT_EQ(frame.size(), 8U);
	EXPECT_TRUE(header(frame, Direction::ToGuest));
	// A request type is not accepted by the host and vice versa.
	EXPECT_FALSE(header(frame, Direction::ToHost));
	Bytes reply;
	encode(reply, AuthOk{});
	EXPECT_FALSE(header(reply, Direction::ToGuest));
	EXPECT_TRUE(header(reply, Direction::ToHost));
	// Reserved bytes.
	Bytes bad = frame;
	bad[6] = 1;
	EXPECT_FALSE(header(bad, Direction::ToGuest));
	// Unknown and zero types.
	bad = frame;
	bad[4] = 0;
	EXPECT_FALSE(header(bad, Direction::ToGuest));
	bad[4] = 0x06;
	EXPECT_FALSE(header(bad, Direction::ToGuest));
	// Fixed-size bodies must be exact.
	bad = frame;
	bad[0] = 1;
	EXPECT_FALSE(header(bad, Direction::ToGuest));
}

TEST(Protocol, LengthsOverTheirCapAreRefusedFromTheHeader)
{
	// A Data frame may carry up to 4 MiB - 8; one byte more is EMSGSIZE.
	Bytes data;
	encodeDataHeader(data, kMaxBodySize);
	Result<FrameHeader> ok = header(data, Direction::ToHost);
	ASSERT_TRUE(ok);
	EXPECT_EQ(ok->length, kMaxBodySize);
	Bytes big = data;
	big[0] = static_cast<std::uint8_t>((kMaxBodySize + 1) & 0xff);
	big[1] = static_cast<std::uint8_t>(((kMaxBodySize + 1) >> 8) & 0xff);
	big[2] = static_cast<std::uint8_t>(((kMaxBodySize + 1) >> 16) & 0xff);
	Result<FrameHeader> over = header(big, Direction::ToHost);
	ASSERT_FALSE(over);
	EXPECT_EQ(over.error().errnum(), EMSGSIZE);
	// 0xffffffff.
	std::memset(big.data(), 0xff, 4);
	EXPECT_FALSE(header(big, Direction::ToHost));
	// A list request over 4096 bytes of path.
	Bytes list;
	encode(list, ListRequest{"/a"});
	list[0] = 0x01;
	list[1] = 0x10; // 4097
	Result<FrameHeader> longPath = header(list, Direction::ToGuest);
	ASSERT_FALSE(longPath);
	EXPECT_EQ(longPath.error().errnum(), EMSGSIZE);
	// An empty data frame is not a frame.
	Bytes empty = data;
	std::memset(empty.data(), 0, 4);
	EXPECT_FALSE(header(empty, Direction::ToHost));
}

TEST(Protocol, StatusRoundTrip)
{
	Bytes frame;
	encode(frame, StatusRequest{true});
	EXPECT_EQ(frame.size(), 12U);
	Result<StatusRequest> request = decode<StatusRequest>(bodyOf(frame));
	ASSERT_TRUE(request);
	EXPECT_TRUE(request->keepTimeout);
	Bytes body = bodyOf(frame);
	body[0] = 2; // unknown flag
	EXPECT_FALSE(decode<StatusRequest>(body));

	StatusInfo info;
	info.uptimeMs = 1234567;
	info.idleLeftMs = 599000;
	info.idleTimeoutS = 600;
	info.diskCount = 3;
	info.mountCount = 2;
	info.activeRequests = 1;
	info.version = "0.1.0";
	Bytes reply;
	encode(reply, info);
	EXPECT_EQ(reply.size(), 8U + 48U);
	Result<StatusInfo> back = decode<StatusInfo>(bodyOf(reply));
	ASSERT_TRUE(back);
	EXPECT_EQ(back->uptimeMs, info.uptimeMs);
	EXPECT_EQ(back->idleLeftMs, info.idleLeftMs);
	EXPECT_EQ(back->idleTimeoutS, 600U);
	EXPECT_EQ(back->diskCount, 3U);
	EXPECT_EQ(back->mountCount, 2U);
	EXPECT_EQ(back->activeRequests, 1U);
	EXPECT_EQ(back->version, "0.1.0");
	// The version text must be printable and NUL-padded.
	Bytes bad = bodyOf(reply);
	bad[32] = '\n';
	EXPECT_FALSE(decode<StatusInfo>(bad));
	bad = bodyOf(reply);
	bad[47] = 'x'; // after the terminating NUL
	EXPECT_FALSE(decode<StatusInfo>(bad));
}

TEST(Protocol, EntryRoundTripWithHostileBytes)
{
	Entry entry;
	entry.type = EntryType::Symlink;
	entry.mode = 0777;
	entry.size = 5;
	entry.mtimeSec = -86400;
	entry.mtimeNsec = 999999999;
	entry.name = std::string("caf\xe9\xff\x01", 6); // not UTF-8
	entry.linkTarget = "../../etc/passwd";
	Bytes frame;
	encode(frame, entry);
	Result<FrameHeader> h = header(frame, Direction::ToHost);
	ASSERT_TRUE(h);
	EXPECT_EQ(h->type, FrameType::Entry);
	EXPECT_EQ(h->length, 36U + 6U + 16U);
	Result<Entry> back = decode<Entry>(bodyOf(frame));
	ASSERT_TRUE(back);
	EXPECT_EQ(back->type, EntryType::Symlink);
	EXPECT_EQ(back->mode, 0777U);
	EXPECT_EQ(back->size, 5U);
	EXPECT_EQ(back->mtimeSec, -86400);
	EXPECT_EQ(back->mtimeNsec, 999999999U);
	EXPECT_EQ(back->name, entry.name);
	EXPECT_EQ(back->linkTarget, entry.linkTarget);
}

Bytes entryBody(std::string_view name, std::string_view target, EntryType type = EntryType::File)
{
	// Hand-built, bypassing the encoder's checks: what a hostile guest sends.
	Bytes body(kEntryFixed, 0);
	body[0] = static_cast<std::uint8_t>(type);
	body[2] = static_cast<std::uint8_t>(name.size());
	body[3] = static_cast<std::uint8_t>(name.size() >> 8);
	body[4] = static_cast<std::uint8_t>(target.size());
	body[5] = static_cast<std::uint8_t>(target.size() >> 8);
	body.insert(body.end(), name.begin(), name.end());
	body.insert(body.end(), target.begin(), target.end());
	return body;
}

TEST(Protocol, HostileEntriesAreRefused)
{
	EXPECT_TRUE(decode<Entry>(entryBody("ok", "")));
	EXPECT_FALSE(decode<Entry>(entryBody("", "")));
	EXPECT_FALSE(decode<Entry>(entryBody(".", "")));
	EXPECT_FALSE(decode<Entry>(entryBody("..", "")));
	EXPECT_FALSE(decode<Entry>(entryBody("a/b", "")));
	EXPECT_FALSE(decode<Entry>(entryBody(std::string("a\0b", 3), "")));
	EXPECT_FALSE(decode<Entry>(entryBody(std::string(256, 'n'), "")));
	EXPECT_TRUE(decode<Entry>(entryBody(std::string(255, 'n'), "")));
	// A link target on a file, a NUL in a target, an oversized target.
	EXPECT_FALSE(decode<Entry>(entryBody("f", "x")));
	EXPECT_FALSE(decode<Entry>(entryBody("l", std::string("a\0", 2), EntryType::Symlink)));
	EXPECT_FALSE(decode<Entry>(entryBody("l", std::string(4097, 'x'), EntryType::Symlink)));
	EXPECT_TRUE(decode<Entry>(entryBody("l", std::string(4096, 'x'), EntryType::Symlink)));
	// The lengths must add up exactly.
	Bytes body = entryBody("name", "");
	body.push_back('x');
	EXPECT_FALSE(decode<Entry>(body));
	body = entryBody("name", "");
	body.pop_back();
	EXPECT_FALSE(decode<Entry>(body));
	// Type, mode, nanoseconds, reserved bytes.
	body = entryBody("n", "");
	body[0] = 8;
	EXPECT_FALSE(decode<Entry>(body));
	body = entryBody("n", "");
	body[9] = 0x10; // mode 010000
	EXPECT_FALSE(decode<Entry>(body));
	body = entryBody("n", "");
	body[28] = 0x00;
	body[29] = 0xca;
	body[30] = 0x9a;
	body[31] = 0x3b; // 1000000000
	EXPECT_FALSE(decode<Entry>(body));
	body = entryBody("n", "");
	body[33] = 1;
	EXPECT_FALSE(decode<Entry>(body));
	EXPECT_FALSE(decode<Entry>(Bytes(10, 0)));
}

TEST(Protocol, PathChecks)
{
	EXPECT_TRUE(checkPath("/"));
	EXPECT_TRUE(checkPath("/disk0/part/1/etc/"));
	EXPECT_TRUE(checkPath(std::string("/disk0/raw/\xff\xfe", 13)));
	EXPECT_FALSE(checkPath(""));
	EXPECT_FALSE(checkPath("disk0"));
	EXPECT_FALSE(checkPath("//"));
	EXPECT_FALSE(checkPath("/a//b"));
	EXPECT_FALSE(checkPath("/a/../b"));
	EXPECT_FALSE(checkPath("/a/.."));
	EXPECT_FALSE(checkPath("/./a"));
	EXPECT_FALSE(checkPath(std::string("/a\0b", 4)));
	EXPECT_FALSE(checkPath("/" + std::string(256, 'x')));
	std::string longest = "/";
	while (longest.size() + 2 <= kPathMax)
		longest += "a/";
	longest += "a";
	EXPECT_EQ(longest.size(), kPathMax);
	EXPECT_TRUE(checkPath(longest));
	EXPECT_FALSE(checkPath(longest + "a"));
}

TEST(Protocol, ListAndExtractRequests)
{
	Bytes frame;
	encode(frame, ListRequest{"/disk0/part/1"});
	Result<ListRequest> list = decode<ListRequest>(bodyOf(frame));
	ASSERT_TRUE(list);
	EXPECT_EQ(list->path, "/disk0/part/1");
	EXPECT_FALSE(decode<ListRequest>(Bytes{'/', '.', '.'}));

	frame.clear();
	encode(frame, ExtractRequest{ExtractFormat::Zip, Compression::Zstd, "/disk1/raw/x"});
	Result<ExtractRequest> request = decode<ExtractRequest>(bodyOf(frame));
	ASSERT_TRUE(request);
	EXPECT_EQ(request->format, ExtractFormat::Zip);
	EXPECT_EQ(request->compression, Compression::Zstd);
	EXPECT_EQ(request->path, "/disk1/raw/x");
	Bytes body = bodyOf(frame);
	body[0] = 3;
	EXPECT_FALSE(decode<ExtractRequest>(body));
	body = bodyOf(frame);
	body[1] = 2;
	EXPECT_FALSE(decode<ExtractRequest>(body));
	body = bodyOf(frame);
	body[3] = 1;
	EXPECT_FALSE(decode<ExtractRequest>(body));
	EXPECT_FALSE(decode<ExtractRequest>(Bytes{0, 0, 0, 0})); // no path
}

TEST(Protocol, TrailersRoundTrip)
{
	Bytes end;
	encode(end, End{0x0102030405060708ULL});
	Result<End> count = decode<End>(bodyOf(end));
	ASSERT_TRUE(count);
	EXPECT_EQ(count->count, 0x0102030405060708ULL);

	Bytes failure;
	encode(failure, Failure{ErrorCode::NotFound, ENOENT, "open(x): No such file"});
	Result<Failure> back = decode<Failure>(bodyOf(failure));
	ASSERT_TRUE(back);
	EXPECT_EQ(back->code, ErrorCode::NotFound);
	EXPECT_EQ(back->guestErrno, ENOENT);
	EXPECT_EQ(back->message, "open(x): No such file");
	EXPECT_EQ(errnoForCode(back->code), ENOENT);

	// Over-long messages are truncated by the encoder, refused by the decoder.
	failure.clear();
	encode(failure, Failure{ErrorCode::Io, EIO, std::string(5000, 'm')});
	back = decode<Failure>(bodyOf(failure));
	ASSERT_TRUE(back);
	EXPECT_EQ(back->message.size(), kMessageMax);
	Bytes body = bodyOf(failure);
	body.push_back('m');
	body[8] = static_cast<std::uint8_t>((kMessageMax + 1) & 0xff);
	body[9] = static_cast<std::uint8_t>((kMessageMax + 1) >> 8);
	EXPECT_FALSE(decode<Failure>(body));
	body = bodyOf(failure);
	body[0] = 0; // code 0
	EXPECT_FALSE(decode<Failure>(body));
	body[0] = 12; // beyond the last code
	EXPECT_FALSE(decode<Failure>(body));
}

Bytes fromHex(std::string_view hex)
{
	Bytes out;
	for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
		out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
	return out;
}

template <typename Message>
Bytes encoded(const Message &message)
{
	Bytes out;
	encode(out, message);
	return out;
}

// The bytes of protocol version 1, as the hand-written codec before the
// frame table produced them: the wire format must not move under a
// refactoring (a change is a new version, docs/protocol.md).
TEST(Protocol, WireLayoutOfVersion1IsKept)
{
	Proof proof;
	for (std::size_t i = 0; i < proof.size(); ++i)
		proof[i] = static_cast<std::uint8_t>(i * 3 + 1);
	EXPECT_EQ(encoded(Auth{proof}),
		  fromHex("2000000001000000" "0104070a0d101316191c1f2225282b2e3134373a3d404346494c4f5255585b5e"));
	EXPECT_EQ(encoded(StatusRequest{true}), fromHex("040000000200000001000000"));
	EXPECT_EQ(encoded(StatusRequest{false}), fromHex("040000000200000000000000"));
	EXPECT_EQ(encoded(Stop{}), fromHex("0000000003000000"));
	EXPECT_EQ(encoded(ListRequest{"/disk0/part/1/etc"}),
		  fromHex("1100000004000000" "2f6469736b302f706172742f312f657463"));
	EXPECT_EQ(encoded(ExtractRequest{ExtractFormat::Zip, Compression::Zstd, "/disk1/raw/x"}),
		  fromHex("1000000005000000" "02010000" "2f6469736b312f7261772f78"));
	EXPECT_EQ(encoded(Ack{0x0102030405060708ULL}), fromHex("08000000060000000807060504030201"));
	EXPECT_EQ(encoded(AuthOk{}), fromHex("0000000041000000"));
	EXPECT_EQ(encoded(StatusInfo{1234567, 599000, 600, 3, 2, 1, "0.1.0"}),
		  fromHex("3000000042000000" "87d6120000000000" "d823090000000000" "58020000" "03000000"
			  "02000000" "01000000" "302e312e300000000000000000000000"));
	Entry entry;
	entry.type = EntryType::Symlink;
	entry.mode = 0777;
	entry.size = 5;
	entry.mtimeSec = -86400;
	entry.mtimeNsec = 999999999;
	entry.name = "caf\xe9";
	entry.linkTarget = "../x";
	EXPECT_EQ(encoded(entry), fromHex("2c00000043000000" "03000400" "04000000" "ff010000" "0500000000000000"
					  "80aefeffffffffff" "ffc99a3b" "00000000" "636166e9" "2e2e2f78"));
	Bytes data;
	encodeDataHeader(data, 262144);
	EXPECT_EQ(data, fromHex("0000040044000000"));
	EXPECT_EQ(encoded(End{42}), fromHex("08000000450000002a00000000000000"));
	EXPECT_EQ(encoded(Failure{ErrorCode::NotFound, ENOENT, "open(x): No such file"}),
		  fromHex("2100000046000000" "04000000" "02000000" "1500" "0000"
			  "6f70656e2878293a204e6f20737563682066696c65"));
	ClientHello hello;
	for (std::size_t i = 0; i < hello.nonce.size(); ++i)
		hello.nonce[i] = static_cast<std::uint8_t>(i);
	const ClientHelloBytes helloBytes = encodeClientHello(hello);
	EXPECT_EQ(Bytes(helloBytes.begin(), helloBytes.end()),
		  fromHex("8946522d434c490a" "01000000"
			  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
	ServerHello server;
	server.clientNonce = hello.nonce;
	server.serverNonce.fill(7);
	server.proof = proof;
	const ServerHelloBytes serverBytes = encodeServerHello(server);
	EXPECT_EQ(Bytes(serverBytes.begin(), serverBytes.end()),
		  fromHex("8946522d5352560a" "01000000"
			  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
			  "0707070707070707070707070707070707070707070707070707070707070707"
			  "0104070a0d101316191c1f2225282b2e3134373a3d404346494c4f5255585b5e"));
}

// Every message's fields() agree with its row in the frame table: the
// smallest and the largest instance encode to the row's bounds, and every
// type has one row.
TEST(Protocol, TheFrameTableMatchesTheMessages)
{
	const auto bodySize = [](const Bytes &frame) { return frame.size() - kFrameHeaderSize; };
	const auto row = [](FrameType type) { return frameSpec(type); };
	EXPECT_EQ(bodySize(encoded(Auth{})), row(FrameType::Auth).maxBody);
	EXPECT_EQ(bodySize(encoded(StatusRequest{})), row(FrameType::Status).maxBody);
	EXPECT_EQ(bodySize(encoded(Stop{})), row(FrameType::Stop).maxBody);
	std::string longestValidPath = "/";
	while (longestValidPath.size() + 2 <= kPathMax)
		longestValidPath += "a/";
	longestValidPath += "a";
	EXPECT_EQ(bodySize(encoded(ListRequest{longestValidPath})), row(FrameType::List).maxBody);
	EXPECT_EQ(bodySize(encoded(ExtractRequest{ExtractFormat::Raw, Compression::None, longestValidPath})),
		  row(FrameType::Extract).maxBody);
	EXPECT_EQ(bodySize(encoded(Ack{})), row(FrameType::Ack).maxBody);
	EXPECT_EQ(bodySize(encoded(AuthOk{})), row(FrameType::AuthOk).maxBody);
	EXPECT_EQ(bodySize(encoded(StatusInfo{})), row(FrameType::StatusInfo).maxBody);
	Entry entry;
	entry.name = "n";
	EXPECT_EQ(bodySize(encoded(entry)), row(FrameType::Entry).minBody + 1);
	entry.type = EntryType::Symlink;
	entry.name = std::string(kNameMax, 'n');
	entry.linkTarget = std::string(kPathMax, 't');
	EXPECT_EQ(bodySize(encoded(entry)), row(FrameType::Entry).maxBody);
	EXPECT_EQ(bodySize(encoded(End{})), row(FrameType::End).maxBody);
	EXPECT_EQ(bodySize(encoded(Failure{})), row(FrameType::Failure).minBody);
	EXPECT_EQ(bodySize(encoded(Failure{ErrorCode::Io, 0, std::string(kMessageMax, 'm')})),
		  row(FrameType::Failure).maxBody);
	// One row per type; the requests fit the sync padding (static_assert in
	// protocol.h), the responses the frame cap.
	for (const FrameSpec &spec : kFrames) {
		int rows = 0;
		for (const FrameSpec &other : kFrames)
			rows += other.type == spec.type ? 1 : 0;
		EXPECT_EQ(rows, 1) << spec.name;
		EXPECT_LE(spec.minBody, spec.maxBody) << spec.name;
		EXPECT_EQ(findFrame(static_cast<std::uint8_t>(spec.type)), &spec);
	}
	EXPECT_EQ(findFrame(0x07), nullptr);
}

TEST(Protocol, DecodersNeverReadPastTheBody)
{
	// Every prefix of a valid body is refused, without reading beyond it.
	Entry entry;
	entry.type = EntryType::Symlink;
	entry.name = "name";
	entry.linkTarget = "target";
	const Bytes body = bodyOf(encoded(entry));
	for (std::size_t n = 0; n < body.size(); ++n) {
		const Bytes prefix(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
		Result<Entry> cut = decode<Entry>(prefix);
		ASSERT_FALSE(cut) << n;
		EXPECT_EQ(cut.error().errnum(), EPROTO);
	}
	const Bytes failure = bodyOf(encoded(Failure{ErrorCode::Io, EIO, "message"}));
	for (std::size_t n = 0; n < failure.size(); ++n)
		EXPECT_FALSE(decode<Failure>(Bytes(failure.begin(), failure.begin() + static_cast<std::ptrdiff_t>(n))));
}

TEST(Protocol, ErrnoMapping)
{
	EXPECT_EQ(codeForErrno(ENOENT), ErrorCode::NotFound);
	EXPECT_EQ(codeForErrno(ELOOP), ErrorCode::Refused);
	EXPECT_EQ(codeForErrno(EXDEV), ErrorCode::Refused);
	EXPECT_EQ(codeForErrno(EISDIR), ErrorCode::IsDirectory);
	EXPECT_EQ(codeForErrno(EUCLEAN), ErrorCode::Io);
	for (std::uint32_t code = 1; code <= kMaxErrorCode; ++code)
		EXPECT_NE(errnoForCode(static_cast<ErrorCode>(code)), EPROTO);
}

} // namespace
} // namespace fr::proto
