// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Datastores built by the test writer the way PBS lays them out (plain,
// zstd and encrypted chunks, a namespace, two snapshots sharing chunks, a
// last short chunk, corrupt and missing chunks), read back through the
// snapshot listing, the manifest and the image reader.

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "client/pbs/datastore.h"
#include "client/pbs/image_reader.h"
#include "tests/pbs/datastore_writer.h"
#include "tests/pbs/test_util.h"

namespace fr::pbs {
namespace {

constexpr std::uint64_t kChunk = 64 << 10;

SnapshotId snap(const char *text, const char *ns = "")
{
	Result<SnapshotId> id = parseSnapshotId(text, ns);
	if (!id)
		std::abort();
	return *id;
}

struct Built {
	test::TempDir dir;
	std::string root;
	Bytes disk1;
	Bytes disk2;
	std::optional<CryptConfig> crypt;
};

// Two snapshots of vm/100 at the root (the second changes one chunk of
// the first disk: the other chunks are shared), one encrypted snapshot of
// vm/200 in namespace a/b.
std::unique_ptr<Built> build()
{
	auto b = std::make_unique<Built>();
	b->root = b->dir / "store";
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(b->root);
	EXPECT_TRUE(writer);
	// 5 chunks and 1000 bytes: the last chunk is short.
	b->disk1 = test::patternBytes(5 * kChunk + 1000, 1);
	b->disk2 = test::patternBytes(3 * kChunk, 2);
	test::ImageOptions zstd{kChunk, true, nullptr};
	test::ImageOptions plain{kChunk, false, nullptr};

	const SnapshotId first = snap("vm/100/2026-11-25T10:00:00Z");
	Result<ManifestFile> a = writer->addImage(first, "drive-scsi0.img.fidx", b->disk1, zstd);
	Result<ManifestFile> c = writer->addImage(first, "drive-scsi1.img.fidx", b->disk2, plain);
	Result<ManifestFile> conf = writer->addBlob(first, "qemu-server.conf.blob",
						    asBytes("memory: 512\n"), zstd);
	EXPECT_TRUE(a && c && conf);
	EXPECT_TRUE(writer->finishSnapshot(first, {*a, *c, *conf}, nullptr));
	const std::uint64_t afterFirst = writer->chunksWritten();

	Bytes changed = b->disk1;
	changed[2 * kChunk + 5] ^= 0xff;
	const SnapshotId second = snap("vm/100/2026-11-26T10:00:00Z");
	Result<ManifestFile> a2 = writer->addImage(second, "drive-scsi0.img.fidx", changed, zstd);
	EXPECT_TRUE(a2);
	EXPECT_TRUE(writer->finishSnapshot(second, {*a2}, nullptr));
	// Only the changed chunk is new.
	EXPECT_EQ(writer->chunksWritten(), afterFirst + 1);
	EXPECT_EQ(writer->chunksDeduplicated(), 5u);

	Key key;
	key.fill(0x33);
	Result<CryptConfig> crypt = CryptConfig::create(key);
	EXPECT_TRUE(crypt);
	b->crypt = *crypt;
	test::ImageOptions enc{kChunk, true, &*b->crypt};
	const SnapshotId third = snap("vm/200/2026-11-27T10:00:00Z", "a/b");
	Result<ManifestFile> e = writer->addImage(third, "drive-virtio0.img.fidx", b->disk1, enc);
	EXPECT_TRUE(e);
	EXPECT_TRUE(writer->finishSnapshot(third, {*e}, &*b->crypt));
	return b;
}

Result<ImageReader *> openReader(const Built &b, const SnapshotId &id, const std::string &name,
				 std::unique_ptr<ImageReader> &holder, ImageReaderOptions options = {},
				 const CryptConfig *crypt = nullptr)
{
	Result<Snapshot> s = openSnapshot(b.root, id);
	if (!s)
		return s.error();
	const ImageArchive *image = findImage(*s, name);
	if (image == nullptr)
		return Error(ENOENT, "image", name);
	UniqueFd snapDir(::open(s->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	Result<FixedIndex> index = readFixedIndex(snapDir.get(), image->name, image->name);
	if (!index)
		return index.error();
	EXPECT_EQ(index->computeCsum(), image->csum);
	EXPECT_EQ(index->header.size, image->size);
	UniqueFd chunks(::open((b.root + "/.chunks").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	std::optional<CryptConfig> c;
	if (crypt != nullptr)
		c = *crypt;
	holder = std::make_unique<ImageReader>(std::move(*index), std::move(chunks), c,
					       image->cryptMode == CryptMode::Encrypt, options);
	return holder.get();
}

TEST(SnapshotId, Forms)
{
	Result<SnapshotId> plain = parseSnapshotId("vm/100/2026-11-25T10:00:00Z", "");
	ASSERT_TRUE(plain);
	EXPECT_TRUE(plain->ns.empty());
	EXPECT_EQ(plain->path(), "vm/100/2026-11-25T10:00:00Z");
	Result<SnapshotId> inNs = parseSnapshotId("ns/a/ns/b/ct/web-1/2026-11-25T10:00:00Z", "");
	ASSERT_TRUE(inNs);
	EXPECT_EQ(inNs->ns, (std::vector<std::string>{"a", "b"}));
	Result<SnapshotId> viaOption = parseSnapshotId("/host/x/2026-11-25T10:00:00Z/", "a/b");
	ASSERT_TRUE(viaOption);
	EXPECT_EQ(viaOption->path(), "ns/a/ns/b/host/x/2026-11-25T10:00:00Z");
	for (const char *bad : {"vm/100", "xx/100/2026-11-25T10:00:00Z", "vm/../2026-11-25T10:00:00Z",
				"vm/100/2026-11-25 10:00:00", "vm/100/2026-13-25T10:00:00Z",
				"nope/a/vm/100/2026-11-25T10:00:00Z", "vm/.x/2026-11-25T10:00:00Z"})
		EXPECT_FALSE(parseSnapshotId(bad, "")) << bad;
	EXPECT_FALSE(parseSnapshotId("ns/a/vm/1/2026-11-25T10:00:00Z", "b"));
	EXPECT_FALSE(parseNamespace("a/../b"));
	EXPECT_FALSE(parseNamespace("1/2/3/4/5/6/7/8"));
	EXPECT_TRUE(parseNamespace("1/2/3/4/5/6/7"));
}

TEST(Datastore, ListsSnapshotsWithNamespaces)
{
	auto b = build();
	EXPECT_TRUE(isDatastore(b->root));
	EXPECT_FALSE(isDatastore(b->dir.path()));

	Result<std::vector<SnapshotSummary>> root = listSnapshots(b->root, {}, false);
	ASSERT_TRUE(root) << root.error().message();
	ASSERT_EQ(root->size(), 2u);
	EXPECT_EQ((*root)[0].id.path(), "vm/100/2026-11-25T10:00:00Z");
	EXPECT_EQ((*root)[1].id.path(), "vm/100/2026-11-26T10:00:00Z");
	EXPECT_EQ((*root)[0].images,
		  (std::vector<std::string>{"drive-scsi0.img.fidx", "drive-scsi1.img.fidx"}));
	EXPECT_FALSE((*root)[0].encrypted);

	Result<std::vector<SnapshotSummary>> all = listSnapshots(b->root, {}, true);
	ASSERT_TRUE(all);
	ASSERT_EQ(all->size(), 3u);
	EXPECT_EQ((*all)[2].id.path(), "ns/a/ns/b/vm/200/2026-11-27T10:00:00Z");
	EXPECT_TRUE((*all)[2].encrypted);
	EXPECT_EQ((*all)[2].size, b->disk1.size());

	Result<std::vector<SnapshotSummary>> inB = listSnapshots(b->root, {"a", "b"}, false);
	ASSERT_TRUE(inB);
	EXPECT_EQ(inB->size(), 1u);
	Result<std::vector<SnapshotSummary>> missing = listSnapshots(b->root, {"zz"}, false);
	ASSERT_FALSE(missing);
	EXPECT_EQ(missing.error().errnum(), ENOENT);
}

TEST(Datastore, IncompleteSnapshotIsListedWithItsProblem)
{
	auto b = build();
	ASSERT_EQ(::mkdir((b->root + "/vm/100/2026-11-28T10:00:00Z").c_str(), 0755), 0);
	Result<std::vector<SnapshotSummary>> list = listSnapshots(b->root, {}, false);
	ASSERT_TRUE(list);
	ASSERT_EQ(list->size(), 3u);
	EXPECT_NE((*list)[2].problem.find("incomplete"), std::string::npos);
	Result<Snapshot> s = openSnapshot(b->root, snap("vm/100/2026-11-28T10:00:00Z"));
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().errnum(), ENOENT);
}

TEST(Datastore, ManifestOfAnotherSnapshotIsRefused)
{
	auto b = build();
	const std::string from = b->root + "/vm/100/2026-11-26T10:00:00Z/index.json.blob";
	const std::string to = b->root + "/vm/100/2026-11-25T10:00:00Z/index.json.blob";
	ASSERT_EQ(::rename(from.c_str(), to.c_str()), 0);
	Result<Snapshot> s = openSnapshot(b->root, snap("vm/100/2026-11-25T10:00:00Z"));
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().errnum(), EBADMSG);
}

TEST(Datastore, ArchiveNameWithoutFidxIsAccepted)
{
	auto b = build();
	Result<Snapshot> s = openSnapshot(b->root, snap("vm/100/2026-11-25T10:00:00Z"));
	ASSERT_TRUE(s);
	ASSERT_EQ(s->images.size(), 2u); // the .conf blob is not a disk
	EXPECT_NE(findImage(*s, "drive-scsi0.img.fidx"), nullptr);
	EXPECT_EQ(findImage(*s, "drive-scsi0.img"), findImage(*s, "drive-scsi0.img.fidx"));
	EXPECT_EQ(findImage(*s, "drive-scsi0"), nullptr);
}

TEST(ImageReader, ReadsEveryKindBackExactly)
{
	auto b = build();
	struct Case {
		const char *snapshot;
		const char *ns;
		const char *image;
		const Bytes *expected;
		bool key;
	} cases[] = {
		{"vm/100/2026-11-25T10:00:00Z", "", "drive-scsi0.img", &b->disk1, false}, // zstd
		{"vm/100/2026-11-25T10:00:00Z", "", "drive-scsi1.img", &b->disk2, false}, // plain
		{"vm/200/2026-11-27T10:00:00Z", "a/b", "drive-virtio0.img", &b->disk1, true},
	};
	for (const Case &c : cases) {
		SCOPED_TRACE(c.image);
		std::unique_ptr<ImageReader> holder;
		Result<ImageReader *> r = openReader(*b, snap(c.snapshot, c.ns), c.image, holder, {},
						     c.key ? &*b->crypt : nullptr);
		ASSERT_TRUE(r) << r.error().message();
		ASSERT_EQ((*r)->size(), c.expected->size());
		Bytes out(c.expected->size());
		// Odd-sized reads across chunk boundaries.
		for (std::size_t off = 0; off < out.size(); off += 12345) {
			const std::size_t n = std::min<std::size_t>(12345, out.size() - off);
			ASSERT_TRUE((*r)->read(off, n, out.data() + off));
		}
		EXPECT_EQ(out, *c.expected);
		EXPECT_FALSE((*r)->read(out.size() - 10, 11, out.data()));
	}
}

TEST(ImageReader, EncryptedWithoutOrWithTheWrongKeyFails)
{
	auto b = build();
	std::unique_ptr<ImageReader> holder;
	const SnapshotId id = snap("vm/200/2026-11-27T10:00:00Z", "a/b");
	Result<ImageReader *> noKey = openReader(*b, id, "drive-virtio0.img", holder);
	ASSERT_TRUE(noKey);
	Bytes out(100);
	Status s = (*noKey)->read(0, 100, out.data());
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().errnum(), EACCES);
	Key other;
	other.fill(0x34);
	Result<CryptConfig> wrong = CryptConfig::create(other);
	Result<ImageReader *> wrongKey = openReader(*b, id, "drive-virtio0.img", holder, {}, &*wrong);
	ASSERT_TRUE(wrongKey);
	Status w = (*wrongKey)->read(0, 100, out.data());
	ASSERT_FALSE(w);
	EXPECT_EQ(w.error().errnum(), EIO);
}

TEST(ImageReader, CorruptChunkFailsOnlyItsRangeAndNamesIt)
{
	auto b = build();
	const SnapshotId id = snap("vm/100/2026-11-25T10:00:00Z");
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(b->root);
	ASSERT_TRUE(writer);
	Result<std::vector<Digest>> digests = writer->indexDigests(id, "drive-scsi0.img.fidx");
	ASSERT_TRUE(digests);
	// Chunk 1: a flipped byte (CRC); chunk 3: valid blob, other data
	// (digest); chunk 4: gone (pruned and collected).
	ASSERT_TRUE(writer->flipPayloadByte((*digests)[1]));
	ASSERT_TRUE(writer->replaceChunkContent((*digests)[3], test::patternBytes(kChunk, 99),
						{kChunk, true, nullptr}));
	ASSERT_EQ(::unlink(writer->chunkFile((*digests)[4]).c_str()), 0);

	std::unique_ptr<ImageReader> holder;
	Result<ImageReader *> r = openReader(*b, id, "drive-scsi0.img", holder);
	ASSERT_TRUE(r);
	Bytes out(kChunk);
	const struct {
		std::size_t chunk;
		const char *why;
	} bad[] = {{1, "CRC"}, {3, "digest"}, {4, "missing"}};
	for (const auto &[chunk, why] : bad) {
		Status s = (*r)->read(chunk * kChunk + 10, 100, out.data());
		ASSERT_FALSE(s) << chunk;
		EXPECT_STREQ(s.error().call(), "chunk");
		EXPECT_EQ(std::string(s.error().object()), hex((*digests)[chunk]));
		EXPECT_NE(std::string(s.error().reason()).find(why), std::string::npos)
			<< s.error().message();
	}
	// A read spanning a good and a bad chunk fails as a whole.
	EXPECT_FALSE((*r)->read(kChunk - 10, 20, out.data()));
	// Everything else still reads, byte for byte.
	for (const std::size_t chunk : {0u, 2u, 5u}) {
		const std::size_t len = static_cast<std::size_t>(
			std::min<std::uint64_t>(kChunk, b->disk1.size() - chunk * kChunk));
		ASSERT_TRUE((*r)->read(chunk * kChunk, len, out.data())) << chunk;
		EXPECT_TRUE(std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(len),
				       b->disk1.begin() + static_cast<std::ptrdiff_t>(chunk * kChunk)));
	}
	EXPECT_GE((*r)->stats().failures, 3u);
}

TEST(ImageReader, EmptyPlaceholderChunkIsNamed)
{
	auto b = build();
	const SnapshotId id = snap("vm/100/2026-11-25T10:00:00Z");
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(b->root);
	Result<std::vector<Digest>> digests = writer->indexDigests(id, "drive-scsi1.img.fidx");
	ASSERT_TRUE(digests);
	ASSERT_EQ(::truncate(writer->chunkFile((*digests)[0]).c_str(), 0), 0);
	std::unique_ptr<ImageReader> holder;
	Result<ImageReader *> r = openReader(*b, id, "drive-scsi1.img", holder);
	ASSERT_TRUE(r);
	Bytes out(10);
	Status s = (*r)->read(0, 10, out.data());
	ASSERT_FALSE(s);
	EXPECT_NE(std::string(s.error().reason()).find("placeholder"), std::string::npos);
}

TEST(ImageReader, CacheStaysWithinItsBoundAndServesRepeats)
{
	auto b = build();
	std::unique_ptr<ImageReader> holder;
	ImageReaderOptions options;
	options.cacheBytes = 2 * kChunk;
	options.readAhead = 0;
	Result<ImageReader *> r =
		openReader(*b, snap("vm/100/2026-11-25T10:00:00Z"), "drive-scsi0.img", holder, options);
	ASSERT_TRUE(r);
	Bytes out(b->disk1.size());
	ASSERT_TRUE((*r)->read(0, out.size(), out.data()));
	ImageReaderStats stats = (*r)->stats();
	EXPECT_EQ(stats.loads, 6u);
	EXPECT_LE(stats.cachedBytes, 2 * kChunk);
	// The last chunk is cached: reading it again loads nothing.
	ASSERT_TRUE((*r)->read(5 * kChunk, 100, out.data()));
	EXPECT_EQ((*r)->stats().loads, 6u);
	EXPECT_EQ((*r)->stats().hits, stats.hits + 1);
}

TEST(ImageReader, RepeatedChunksAreDecodedOnce)
{
	// Four chunks of zeros and one of data: as a mostly empty disk.
	test::TempDir dir;
	const std::string root = dir / "store";
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(root);
	ASSERT_TRUE(writer);
	Bytes disk(5 * kChunk, 0);
	const Bytes data = test::patternBytes(kChunk, 7);
	std::copy(data.begin(), data.end(), disk.begin() + 2 * kChunk);
	const SnapshotId id = snap("vm/1/2026-11-25T10:00:00Z");
	Result<ManifestFile> file = writer->addImage(id, "drive-scsi0.img.fidx", disk, {kChunk, true, nullptr});
	ASSERT_TRUE(file);
	ASSERT_TRUE(writer->finishSnapshot(id, {*file}, nullptr));
	EXPECT_EQ(writer->chunksWritten(), 2u);
	UniqueFd snapDir(::open((root + "/" + id.path()).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	Result<FixedIndex> index = readFixedIndex(snapDir.get(), "drive-scsi0.img.fidx", "index");
	ASSERT_TRUE(index);
	ImageReaderOptions options;
	options.readAhead = 0;
	ImageReader reader(std::move(*index),
			   UniqueFd(::open((root + "/.chunks").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
			   std::nullopt, false, options);
	Bytes out(disk.size());
	ASSERT_TRUE(reader.read(0, out.size(), out.data()));
	EXPECT_EQ(out, disk);
	EXPECT_EQ(reader.stats().loads, 2u);
	EXPECT_EQ(reader.stats().hits, 3u);
}

TEST(ImageReader, SequentialReadsAreReadAhead)
{
	auto b = build();
	std::unique_ptr<ImageReader> holder;
	ImageReaderOptions options;
	options.cacheBytes = 8 * kChunk;
	options.readAhead = 2;
	Result<ImageReader *> r =
		openReader(*b, snap("vm/100/2026-11-25T10:00:00Z"), "drive-scsi0.img", holder, options);
	ASSERT_TRUE(r);
	(*r)->startReadAhead();
	Bytes out(kChunk);
	for (std::size_t chunk = 0; chunk < 6; ++chunk) {
		const std::size_t len = static_cast<std::size_t>(
			std::min<std::uint64_t>(kChunk, b->disk1.size() - chunk * kChunk));
		ASSERT_TRUE((*r)->read(chunk * kChunk, len, out.data()));
		EXPECT_TRUE(std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(len),
				       b->disk1.begin() + static_cast<std::ptrdiff_t>(chunk * kChunk)));
		if (chunk >= 1) // give the read-ahead thread a moment
			::usleep(20000);
	}
	const ImageReaderStats stats = (*r)->stats();
	EXPECT_GE(stats.readAheadLoads, 2u);
	EXPECT_EQ(stats.loads + stats.readAheadLoads, 6u); // nothing decoded twice
}

} // namespace
} // namespace fr::pbs
