// SPDX-License-Identifier: AGPL-3.0-or-later
//
// The PBS parsers on hostile and broken input: blobs, fixed indexes, key
// files and manifests each refuse what is wrong with an error naming it.

#include <gtest/gtest.h>

#include "client/pbs/blob.h"
#include "client/pbs/crypto.h"
#include "client/pbs/fixed_index.h"
#include "client/pbs/key_file.h"
#include "client/pbs/manifest.h"
#include "tests/pbs/test_util.h"

namespace fr::pbs {
namespace {

Key keyOf(std::uint8_t fill)
{
	Key key;
	key.fill(fill);
	return key;
}

CryptConfig cryptOf(std::uint8_t fill)
{
	Result<CryptConfig> crypt = CryptConfig::create(keyOf(fill));
	if (!crypt)
		std::abort();
	return *crypt;
}

// --- blobs --------------------------------------------------------------

TEST(Blob, UnknownMagicAndShortBlobsAreRefused)
{
	Bytes junk(64, 0x55);
	EXPECT_EQ(blobKind(junk).error().errnum(), EINVAL);
	EXPECT_EQ(blobKind(ByteView(junk).subspan(0, 5)).error().errnum(), EINVAL);
	// An encrypted magic on a blob too short for its IV and tag.
	Bytes shortEnc(kEncryptedBlobMagic.begin(), kEncryptedBlobMagic.end());
	shortEnc.resize(20);
	EXPECT_EQ(blobKind(shortEnc).error().errnum(), EINVAL);
}

TEST(Blob, CrcMismatchIsRefused)
{
	const Bytes data = test::patternBytes(10000, 1);
	for (const bool compress : {false, true}) {
		Result<Bytes> blob = encodeBlob(data, nullptr, compress);
		ASSERT_TRUE(blob);
		(*blob)[blob->size() - 1] ^= 1;
		Result<Bytes> decoded = decodeBlob(*blob, nullptr, {data.size(), data.size()});
		ASSERT_FALSE(decoded);
		EXPECT_EQ(decoded.error().errnum(), EBADMSG);
		EXPECT_NE(std::string(decoded.error().reason()).find("CRC"), std::string::npos);
	}
}

TEST(Blob, EncryptedNeedsTheRightKey)
{
	const CryptConfig right = cryptOf(7);
	const CryptConfig wrong = cryptOf(8);
	const Bytes data = test::patternBytes(5000, 2);
	Result<Bytes> blob = encodeBlob(data, &right, true);
	ASSERT_TRUE(blob);
	Result<Bytes> noKey = decodeBlob(*blob, nullptr, {data.size(), data.size()});
	EXPECT_EQ(noKey.error().errnum(), EACCES);
	Result<Bytes> wrongKey = decodeBlob(*blob, &wrong, {data.size(), data.size()});
	EXPECT_EQ(wrongKey.error().errnum(), EBADMSG);
	Result<Bytes> ok = decodeBlob(*blob, &right, {data.size(), data.size()});
	ASSERT_TRUE(ok);
	EXPECT_EQ(*ok, data);
}

TEST(Blob, TamperedCiphertextWithFixedCrcFailsAuthentication)
{
	const CryptConfig crypt = cryptOf(3);
	const Bytes data = test::patternBytes(5000, 3);
	Result<Bytes> blob = encodeBlob(data, &crypt, false);
	ASSERT_TRUE(blob);
	(*blob)[100] ^= 0x10;
	// Recompute the CRC so that only GCM can notice.
	const std::uint32_t crc = crc32(ByteView(*blob).subspan(kEncryptedBlobHeaderSize));
	for (int i = 0; i < 4; ++i)
		(*blob)[8 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
	Result<Bytes> decoded = decodeBlob(*blob, &crypt, {data.size(), data.size()});
	ASSERT_FALSE(decoded);
	EXPECT_EQ(decoded.error().errnum(), EBADMSG);
}

TEST(Blob, DecodedSizeIsBounded)
{
	// 1 MiB of zeros compresses to almost nothing: a decompression bomb
	// for a caller that expects 4 KiB.
	const Bytes zeros(1 << 20, 0);
	Result<Bytes> blob = encodeBlob(zeros, nullptr, true);
	ASSERT_TRUE(blob);
	EXPECT_LT(blob->size(), 1000u);
	Result<Bytes> exact = decodeBlob(*blob, nullptr, {4096, 4096});
	ASSERT_FALSE(exact);
	EXPECT_EQ(exact.error().errnum(), EBADMSG);
	Result<Bytes> bounded = decodeBlob(*blob, nullptr, {std::nullopt, 65536});
	ASSERT_FALSE(bounded);
	EXPECT_EQ(bounded.error().errnum(), EFBIG);
	Result<Bytes> fits = decodeBlob(*blob, nullptr, {std::nullopt, 1 << 20});
	ASSERT_TRUE(fits);
	EXPECT_EQ(fits->size(), zeros.size());
}

TEST(Blob, ShortDecodeAndTruncatedZstdAreRefused)
{
	const Bytes data = test::patternBytes(20000, 4);
	Result<Bytes> blob = encodeBlob(data, nullptr, true);
	ASSERT_TRUE(blob);
	EXPECT_EQ(decodeBlob(*blob, nullptr, {data.size() + 1, data.size() + 1}).error().errnum(),
		  EBADMSG);
	Bytes cut(blob->begin(), blob->begin() + static_cast<std::ptrdiff_t>(blob->size() / 2));
	const std::uint32_t crc = crc32(ByteView(cut).subspan(kBlobHeaderSize));
	for (int i = 0; i < 4; ++i)
		cut[8 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
	EXPECT_EQ(decodeBlob(cut, nullptr, {data.size(), data.size()}).error().errnum(), EBADMSG);
}

TEST(Blob, CryptModeMustMatchTheIndex)
{
	const CryptConfig crypt = cryptOf(9);
	const Bytes data = test::patternBytes(4096, 5);
	Result<Bytes> plain = encodeBlob(data, nullptr, true);
	ASSERT_TRUE(plain);
	// A plain chunk where the index promises an encrypted one: refused
	// even though a digest could be made to match.
	Result<Bytes> decoded = decodeChunk(*plain, chunkDigest(data, &crypt), data.size(), true,
					    &crypt);
	ASSERT_FALSE(decoded);
	EXPECT_NE(std::string(decoded.error().reason()).find("encrypted"), std::string::npos);
}

TEST(Blob, ConsumingDecodeOfAPlainChunkChecksAsMuch)
{
	const Bytes data = test::patternBytes(8192, 6);
	Result<Bytes> blob = encodeBlob(data, nullptr, false);
	ASSERT_TRUE(blob);
	const Digest digest = sha256(data);
	Result<Bytes> ok = decodeChunk(Bytes(*blob), digest, data.size(), false, nullptr);
	ASSERT_TRUE(ok);
	EXPECT_EQ(*ok, data);
	EXPECT_EQ(decodeChunk(Bytes(*blob), digest, data.size() - 1, false, nullptr).error().errnum(),
		  EBADMSG);
	Digest other = digest;
	other[0] ^= 1;
	EXPECT_EQ(decodeChunk(Bytes(*blob), other, data.size(), false, nullptr).error().errnum(),
		  EBADMSG);
	Bytes bad = *blob;
	bad[100] ^= 1;
	EXPECT_EQ(decodeChunk(std::move(bad), digest, data.size(), false, nullptr).error().errnum(),
		  EBADMSG);
	// A plain chunk where an encrypted one is due: refused here too.
	const CryptConfig crypt = cryptOf(4);
	EXPECT_FALSE(decodeChunk(Bytes(*blob), digest, data.size(), true, &crypt));
}

TEST(Blob, IncompressibleDataIsStoredPlain)
{
	Bytes random(8192);
	ASSERT_TRUE(randomBytes(random));
	Result<Bytes> blob = encodeBlob(random, nullptr, true);
	ASSERT_TRUE(blob);
	EXPECT_EQ(*blobKind(*blob), BlobKind::Plain);
	EXPECT_EQ(blob->size(), random.size() + kBlobHeaderSize);
}

// --- fixed indexes ------------------------------------------------------

Bytes indexFile(std::uint64_t size, std::uint64_t chunkSize, std::size_t digests)
{
	FixedIndexHeader header;
	header.size = size;
	header.chunkSize = chunkSize;
	FixedIndex index;
	index.header = header;
	for (std::size_t i = 0; i < digests; ++i) {
		Digest d{};
		d[0] = static_cast<std::uint8_t>(i);
		index.digests.push_back(d);
	}
	index.header.indexCsum = index.computeCsum();
	return encodeFixedIndex(index.header, index.digests);
}

TEST(FixedIndex, RoundTripsWithAShortLastChunk)
{
	const Bytes file = indexFile(3 * 65536 + 100, 65536, 4);
	Result<FixedIndex> index = parseFixedIndex(file);
	ASSERT_TRUE(index) << index.error().message();
	EXPECT_EQ(index->digests.size(), 4u);
	EXPECT_EQ(index->chunkLength(0), 65536u);
	EXPECT_EQ(index->chunkLength(3), 100u);
}

TEST(FixedIndex, HeaderChecks)
{
	Bytes file = indexFile(65536, 65536, 1);
	file[0] ^= 1;
	EXPECT_EQ(parseFixedIndex(file).error().errnum(), EINVAL); // magic
	EXPECT_EQ(parseFixedIndex(indexFile(65536, 3000, 22)).error().errnum(), EINVAL);
	EXPECT_EQ(parseFixedIndex(indexFile(65536, 1 << 30, 1)).error().errnum(), EINVAL);
	EXPECT_EQ(parseFixedIndexHeader(ByteView(file).subspan(0, 100)).error().errnum(), EINVAL);
	// More chunks than the bound, told from the header alone.
	Bytes huge = indexFile(65536, 65536, 1);
	for (int i = 0; i < 8; ++i)
		huge[64 + i] = 0xff;
	EXPECT_EQ(parseFixedIndexHeader(huge).error().errnum(), EFBIG);
}

TEST(FixedIndex, TruncatedPaddedOrTamperedIndexIsRefused)
{
	Bytes file = indexFile(4 * 65536, 65536, 4);
	Bytes truncated(file.begin(), file.end() - 32);
	EXPECT_EQ(parseFixedIndex(truncated).error().errnum(), EBADMSG);
	Bytes padded = file;
	padded.resize(file.size() + 32);
	EXPECT_EQ(parseFixedIndex(padded).error().errnum(), EBADMSG);
	Bytes tampered = file;
	tampered[kFixedIndexHeaderSize + 40] ^= 1; // a digest, not the header's csum
	Result<FixedIndex> index = parseFixedIndex(tampered);
	ASSERT_FALSE(index);
	EXPECT_NE(std::string(index.error().reason()).find("checksum"), std::string::npos);
}

// --- key files ----------------------------------------------------------

TEST(KeyFile, UnprotectedRoundTrip)
{
	const Key key = keyOf(0x42);
	Result<std::string> text = encodeKeyFile(key, Kdf::None, "");
	ASSERT_TRUE(text);
	Result<KeyFile> file = parseKeyFile(*text);
	ASSERT_TRUE(file) << file.error().message();
	EXPECT_FALSE(file->needsPassword());
	Result<Key> back = decryptKeyFile(*file, "");
	ASSERT_TRUE(back);
	EXPECT_EQ(*back, key);
}

TEST(KeyFile, PasswordProtectedScryptAndPbkdf2)
{
	const Key key = keyOf(0x17);
	for (const Kdf kdf : {Kdf::Scrypt, Kdf::Pbkdf2}) {
		SCOPED_TRACE(kdfName(kdf));
		Result<std::string> text = encodeKeyFile(key, kdf, "correct horse", "a horse");
		ASSERT_TRUE(text);
		Result<KeyFile> file = parseKeyFile(*text);
		ASSERT_TRUE(file) << file.error().message();
		EXPECT_TRUE(file->needsPassword());
		EXPECT_EQ(file->kdf, kdf);
		Result<Key> back = decryptKeyFile(*file, "correct horse");
		ASSERT_TRUE(back) << back.error().message();
		EXPECT_EQ(*back, key);
		Result<Key> wrong = decryptKeyFile(*file, "wrong horse");
		ASSERT_FALSE(wrong);
		EXPECT_EQ(wrong.error().errnum(), EACCES);
		EXPECT_NE(std::string(wrong.error().reason()).find("a horse"), std::string::npos);
		EXPECT_EQ(decryptKeyFile(*file, "abc").error().errnum(), EACCES); // < 5 bytes
	}
}

TEST(KeyFile, FingerprintMustMatchTheKey)
{
	Result<std::string> text = encodeKeyFile(keyOf(1), Kdf::None, "");
	ASSERT_TRUE(text);
	nlohmann::json j = nlohmann::json::parse(*text);
	j["fingerprint"] = formatFingerprint(cryptOf(2).fingerprint());
	Result<KeyFile> file = parseKeyFile(j.dump());
	ASSERT_TRUE(file);
	Result<Key> key = decryptKeyFile(*file, "");
	ASSERT_FALSE(key);
	EXPECT_EQ(key.error().errnum(), EBADMSG);
}

TEST(KeyFile, MalformedFilesNameTheField)
{
	const std::pair<const char *, const char *> cases[] = {
		{"[]", ""},
		{R"({"kdf":null})", "data"},
		{R"({"kdf":null,"data":"AAAA"})", "data"}, // 3 bytes, not 32
		{R"({"kdf":null,"data":"not base64!"})", "data"},
		{R"({"kdf":{"Argon2":{}},"data":"AAAA"})", "kdf"},
		{R"({"kdf":{"Scrypt":{"n":-1,"r":8,"p":1,"salt":""}},"data":"AAAA"})", "kdf.Scrypt"},
		{R"({"kdf":{"PBKDF2":{"iter":10}},"data":"AAAA"})", "kdf.salt"},
		{R"({"kdf":null,"data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","fingerprint":"xx"})",
		 "fingerprint"},
	};
	for (const auto &[text, field] : cases) {
		Result<KeyFile> file = parseKeyFile(text);
		ASSERT_FALSE(file) << text;
		EXPECT_EQ(file.error().errnum(), EINVAL) << text;
		EXPECT_STREQ(file.error().object(), field) << text;
	}
}

TEST(KeyFile, AbsurdKdfParametersAreRefusedBeforeWork)
{
	Result<Key> huge = deriveScrypt(asBytes("password"), {}, 1ULL << 40, 8, 1);
	ASSERT_FALSE(huge);
	EXPECT_EQ(huge.error().errnum(), EINVAL);
	EXPECT_EQ(deriveScrypt(asBytes("password"), {}, 1000, 8, 1).error().errnum(),
		  EINVAL); // not a power of two
	EXPECT_EQ(derivePbkdf2Sha256(asBytes("password"), {}, 0).error().errnum(), EINVAL);
	EXPECT_EQ(derivePbkdf2Sha256(asBytes("password"), {}, 1ULL << 40).error().errnum(), EINVAL);
}

// --- manifests ----------------------------------------------------------

Manifest sampleManifest()
{
	Manifest m;
	m.backupType = "vm";
	m.backupId = "100";
	m.backupTime = 1764064800;
	Digest csum{};
	csum[5] = 9;
	m.files.push_back({"drive-scsi0.img.fidx", CryptMode::Encrypt, 1 << 30, csum});
	m.files.push_back({"qemu-server.conf.blob", CryptMode::Encrypt, 300, csum});
	return m;
}

TEST(Manifest, ParsesWhatTheWriterWrites)
{
	const CryptConfig crypt = cryptOf(5);
	Result<std::string> text = encodeManifestJson(sampleManifest(), &crypt);
	ASSERT_TRUE(text);
	Result<Manifest> m = parseManifest(*text);
	ASSERT_TRUE(m) << m.error().message();
	EXPECT_EQ(m->backupId, "100");
	ASSERT_EQ(m->files.size(), 2u);
	EXPECT_EQ(m->files[0].size, 1u << 30);
	EXPECT_TRUE(m->encrypted());
	ASSERT_TRUE(m->keyFingerprint);
	EXPECT_EQ(*m->keyFingerprint, crypt.fingerprint());
	EXPECT_TRUE(checkManifestKey(*m, &crypt));
}

TEST(Manifest, MissingOrWrongKeyNamesTheFingerprints)
{
	const CryptConfig right = cryptOf(5);
	const CryptConfig wrong = cryptOf(6);
	Result<std::string> text = encodeManifestJson(sampleManifest(), &right);
	ASSERT_TRUE(text);
	Result<Manifest> m = parseManifest(*text);
	ASSERT_TRUE(m);
	Status missing = checkManifestKey(*m, nullptr);
	ASSERT_FALSE(missing);
	EXPECT_EQ(missing.error().errnum(), EACCES);
	EXPECT_NE(missing.error().message().find(formatFingerprint(right.fingerprint())),
		  std::string::npos);
	Status mismatch = checkManifestKey(*m, &wrong);
	ASSERT_FALSE(mismatch);
	EXPECT_EQ(mismatch.error().errnum(), EACCES);
	const std::string message = mismatch.error().message();
	EXPECT_NE(message.find(formatFingerprint(right.fingerprint())), std::string::npos) << message;
	EXPECT_NE(message.find(formatFingerprint(wrong.fingerprint())), std::string::npos) << message;
}

TEST(Manifest, TamperedSignedPartFailsTheSignature)
{
	const CryptConfig crypt = cryptOf(5);
	Result<std::string> text = encodeManifestJson(sampleManifest(), &crypt);
	ASSERT_TRUE(text);
	nlohmann::json j = nlohmann::json::parse(*text);
	j["files"][0]["size"] = 12345;
	Result<Manifest> m = parseManifest(j.dump());
	ASSERT_TRUE(m);
	Status s = checkManifestKey(*m, &crypt);
	ASSERT_FALSE(s);
	EXPECT_EQ(s.error().errnum(), EBADMSG);
}

TEST(Manifest, UnencryptedNeedsNoKeyAndIgnoresOne)
{
	Manifest plain = sampleManifest();
	for (ManifestFile &f : plain.files)
		f.cryptMode = CryptMode::None;
	Result<std::string> text = encodeManifestJson(plain, nullptr);
	ASSERT_TRUE(text);
	Result<Manifest> m = parseManifest(*text);
	ASSERT_TRUE(m);
	EXPECT_FALSE(m->keyFingerprint);
	EXPECT_TRUE(checkManifestKey(*m, nullptr));
	const CryptConfig crypt = cryptOf(1);
	EXPECT_TRUE(checkManifestKey(*m, &crypt));
}

TEST(Manifest, StrictFields)
{
	const std::pair<const char *, const char *> cases[] = {
		{"{", ""},
		{R"({"backup-type":"vm","backup-id":"1","files":[]})", "backup-time"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":{}})", "files"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"../x","size":1,"csum":"00"}]})",
		 "files.filename"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"a.fidx","size":-1,"csum":"00"}]})",
		 "files.size"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"a.fidx","size":1,"csum":"00"}]})",
		 "files.csum"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"a.fidx","crypt-mode":"rot13","size":1,"csum":"0000000000000000000000000000000000000000000000000000000000000000"}]})",
		 "files.crypt-mode"},
		{R"({"backup-type":"vm","backup-id":"1","backup-time":1,"files":[],"signature":"zz"})",
		 "signature"},
	};
	for (const auto &[text, field] : cases) {
		Result<Manifest> m = parseManifest(text);
		ASSERT_FALSE(m) << text;
		EXPECT_STREQ(m.error().object(), field) << text;
	}
}

TEST(Manifest, CanonicalJsonSortsKeysAndRefusesNull)
{
	const nlohmann::json j = nlohmann::json::parse(R"({"b":[1,{"z":"\n","a":true}],"a":"é"})");
	Result<std::string> c = canonicalJson(j);
	ASSERT_TRUE(c);
	EXPECT_EQ(*c, "{\"a\":\"é\",\"b\":[1,{\"a\":true,\"z\":\"\\n\"}]}");
	EXPECT_FALSE(canonicalJson(nlohmann::json::parse(R"({"a":null})")));
	EXPECT_FALSE(canonicalJson(nlohmann::json::parse(R"({"a":1.5})")));
}

TEST(Manifest, BlobMustBeUnencrypted)
{
	const CryptConfig crypt = cryptOf(5);
	Result<std::string> text = encodeManifestJson(sampleManifest(), nullptr);
	ASSERT_TRUE(text);
	Result<Bytes> zstd = encodeBlob(asBytes(*text), nullptr, true);
	ASSERT_TRUE(zstd);
	EXPECT_TRUE(decodeManifest(*zstd));
	Result<Bytes> encrypted = encodeBlob(asBytes(*text), &crypt, true);
	ASSERT_TRUE(encrypted);
	EXPECT_FALSE(decodeManifest(*encrypted));
}

} // namespace
} // namespace fr::pbs
