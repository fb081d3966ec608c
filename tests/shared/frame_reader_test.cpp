// SPDX-License-Identifier: AGPL-3.0-or-later
// The byte cursors (shared/byte_cursor.h) and the frame reader both ends of
// the guest protocol use (shared/frame_reader.h): frames reassembled from
// any split of the stream, large bodies read straight into place, headers
// checked before a body is read, the hello scan, and the end of the stream.
#include "shared/frame_reader.h"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include <gtest/gtest.h>

#include "shared/byte_cursor.h"
#include "shared/protocol.h"

namespace fr {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Reads deliver the queued chunks in order, at most what the reader asks
// for; an exhausted script is the end of the stream (or a timeout).
class ChunkedStream final : public ByteStream {
public:
	std::deque<Bytes> chunks;
	std::vector<std::size_t> asked; // buf.size() of every read
	bool timeOutAtEnd = false;

	Result<std::size_t> read(std::span<std::uint8_t> buf, int) override
	{
		asked.push_back(buf.size());
		if (chunks.empty()) {
			if (timeOutAtEnd)
				return Error::invalid(ETIMEDOUT, "read", "script", "no more input");
			return std::size_t{0};
		}
		Bytes &chunk = chunks.front();
		const std::size_t n = std::min(buf.size(), chunk.size());
		std::memcpy(buf.data(), chunk.data(), n);
		chunk.erase(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
		if (chunk.empty())
			chunks.pop_front();
		return n;
	}
	Status write(std::span<const std::uint8_t>, int) override { return {}; }

	// Queues `bytes` in pieces of `piece` bytes.
	void queue(const Bytes &bytes, std::size_t piece)
	{
		for (std::size_t at = 0; at < bytes.size(); at += piece)
			chunks.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(at),
					    bytes.begin() + static_cast<std::ptrdiff_t>(std::min(bytes.size(), at + piece)));
	}
};

TEST(ByteCursor, WritesAndReadsLittleEndianInOrder)
{
	Bytes out;
	ByteWriter w(out);
	w.u8(0x01);
	w.u16(0x0302);
	w.u32(0x07060504);
	w.u64(0x0f0e0d0c0b0a0908ULL);
	w.zeros(2);
	w.bytes(std::string_view("xy"));
	EXPECT_EQ(w.written(), 19U);
	EXPECT_EQ(out, (Bytes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 'x', 'y'}));
	w.patch32(1, 0xaabbccdd);
	EXPECT_EQ(out[1], 0xdd);
	EXPECT_EQ(out[4], 0xaa);

	ByteReader r(out);
	EXPECT_EQ(r.u8(), 1);
	EXPECT_EQ(r.u32(), 0xaabbccddU);
	EXPECT_EQ(r.u16(), 0x0706);
	EXPECT_EQ(r.u64(), 0x0f0e0d0c0b0a0908ULL);
	EXPECT_TRUE(r.zeros(2));
	EXPECT_EQ(r.remaining(), 2U);
	EXPECT_FALSE(r.overrun());
}

TEST(ByteCursor, ReadingPastTheEndYieldsZerosAndSaysSo)
{
	const Bytes in = {0xff, 0xff, 0xff};
	ByteReader r(in);
	EXPECT_EQ(r.u32(), 0U); // only three bytes: nothing is read
	EXPECT_TRUE(r.overrun());
	EXPECT_EQ(r.u8(), 0); // and nothing after that either
	EXPECT_TRUE(r.bytes(1).empty());
	EXPECT_FALSE(r.zeros(0) && !r.overrun());
}

Bytes threeFrames(std::size_t dataSize = 70000)
{
	Bytes stream;
	proto::Entry entry;
	entry.name = "one";
	proto::encode(stream, entry);
	const Bytes data(dataSize, 0x5a); // larger than the read chunk
	proto::encodeDataHeader(stream, data.size());
	stream.insert(stream.end(), data.begin(), data.end());
	proto::encode(stream, proto::End{2});
	return stream;
}

TEST(FrameReader, ReassemblesFramesFromAnySplit)
{
	for (const std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20}) {
		ChunkedStream stream;
		stream.queue(threeFrames(), piece);
		FrameReader reader(stream, proto::Direction::ToHost, 64 * 1024);
		Result<FrameReader::Frame> entry = reader.next(1000);
		ASSERT_TRUE(entry) << entry.error().message();
		EXPECT_EQ(entry->type, proto::FrameType::Entry);
		Result<proto::Entry> decoded = proto::decode<proto::Entry>(entry->body);
		ASSERT_TRUE(decoded);
		EXPECT_EQ(decoded->name, "one");
		Result<FrameReader::Frame> data = reader.next(1000);
		ASSERT_TRUE(data);
		EXPECT_EQ(data->type, proto::FrameType::Data);
		ASSERT_EQ(data->body.size(), 70000U);
		EXPECT_EQ(data->body.front(), 0x5a);
		EXPECT_EQ(data->body.back(), 0x5a);
		Result<FrameReader::Frame> end = reader.next(1000);
		ASSERT_TRUE(end);
		EXPECT_EQ(end->type, proto::FrameType::End);
		// Then the end of the stream.
		Result<FrameReader::Frame> none = reader.next(1000);
		ASSERT_FALSE(none);
		EXPECT_EQ(none.error().errnum(), ECONNRESET);
	}
}

TEST(FrameReader, ALargeBodyIsReadStraightIntoPlace)
{
	ChunkedStream stream;
	stream.queue(threeFrames(300000), std::size_t{1} << 20);
	FrameReader reader(stream, proto::Direction::ToHost, 64 * 1024);
	ASSERT_TRUE(reader.next(1000));
	ASSERT_TRUE(reader.next(1000));
	// After the first chunk, the rest of the 300000-byte body was asked for
	// in one read (no detour through the read buffer).
	bool bigRead = false;
	for (std::size_t n : stream.asked)
		bigRead = bigRead || n > 64 * 1024;
	EXPECT_TRUE(bigRead);
}

TEST(FrameReader, HeadersAreCheckedBeforeTheBodyIsRead)
{
	// A request type is not a frame the host accepts; an oversized length is
	// EMSGSIZE. Neither body is read.
	Bytes request;
	proto::encode(request, proto::Stop{});
	ChunkedStream stream;
	stream.queue(request, 100);
	FrameReader reader(stream, proto::Direction::ToHost, 64 * 1024);
	Result<FrameReader::Frame> refused = reader.next(1000);
	ASSERT_FALSE(refused);
	EXPECT_EQ(refused.error().errnum(), EPROTO);

	ChunkedStream big;
	big.queue(Bytes{0xff, 0xff, 0xff, 0x7f, 0x44, 0, 0, 0}, 100);
	FrameReader bigReader(big, proto::Direction::ToHost, 64 * 1024);
	Result<FrameReader::Frame> oversized = bigReader.next(1000);
	ASSERT_FALSE(oversized);
	EXPECT_EQ(oversized.error().errnum(), EMSGSIZE);
	EXPECT_EQ(big.asked.size(), 1U) << "the body must not be read";
	// The header stays in the buffer for the caller to resynchronise.
	EXPECT_EQ(bigReader.buffered().size(), 8U);
}

TEST(FrameReader, SeekFindsAHelloAfterJunkAndKeepsAPartialMagic)
{
	proto::ClientHello hello;
	hello.nonce.fill(3);
	const proto::ClientHelloBytes bytes = proto::encodeClientHello(hello);
	Bytes all = {0, 1, 0x89, 'F', 'R', 9}; // junk, with a false start of the magic
	all.resize(6 + bytes.size());
	std::copy(bytes.begin(), bytes.end(), all.begin() + 6);
	ChunkedStream stream;
	stream.queue(Bytes(all.begin(), all.begin() + 9), 100); // junk + "\x89FR"
	stream.queue(Bytes(all.begin() + 9, all.end()), 100);
	FrameReader reader(stream, proto::Direction::ToGuest, 16 * 1024);
	ASSERT_TRUE(reader.fill(1, 1000));
	EXPECT_FALSE(reader.seek(proto::kClientHelloMagic, proto::kClientHelloSize));
	// Everything before the possible magic at the end is gone.
	EXPECT_EQ(reader.buffered().size(), 3U);
	ASSERT_TRUE(reader.fill(reader.buffered().size() + 1, 1000));
	ASSERT_TRUE(reader.seek(proto::kClientHelloMagic, proto::kClientHelloSize));
	Result<proto::ClientHello> back =
		proto::decodeClientHello(reader.buffered().first<proto::kClientHelloSize>());
	ASSERT_TRUE(back);
	EXPECT_EQ(back->nonce, hello.nonce);
}

TEST(FrameReader, TimeoutsAndTheEndOfTheStreamAreErrors)
{
	Bytes frame;
	proto::encode(frame, proto::End{1});
	frame.pop_back(); // cut short
	ChunkedStream ended;
	ended.queue(frame, 100);
	FrameReader reader(ended, proto::Direction::ToHost, 64 * 1024);
	Result<FrameReader::Frame> cut = reader.next(1000);
	ASSERT_FALSE(cut);
	EXPECT_EQ(cut.error().errnum(), ECONNRESET);
	EXPECT_STREQ(cut.error().object(), "guest connection closed");

	ChunkedStream silent;
	silent.timeOutAtEnd = true;
	silent.queue(frame, 100);
	FrameReader waiting(silent, proto::Direction::ToHost, 64 * 1024);
	Result<FrameReader::Frame> late = waiting.next(10);
	ASSERT_FALSE(late);
	EXPECT_EQ(late.error().errnum(), ETIMEDOUT);
}

} // namespace
} // namespace fr
