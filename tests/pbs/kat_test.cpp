// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Known answers from the real system. proxmox-backup's tests/blob_writer.rs
// encodes 100,000 bytes (i % 255) plain, compressed, encrypted and
// encrypted + compressed with the key [1u8; 32] and checks each decode
// against fixed digests (TEST_DIGEST_PLAIN, TEST_DIGEST_ENC);
// pbs-datastore's manifest.rs test_manifest_signature derives a key with
// scrypt from "test" and checks a manifest's signature. The constants below
// are copied from those tests; the magic numbers and the fingerprint input
// are recomputed from their definitions in file_formats.rs and
// crypt_config.rs.

#include <gtest/gtest.h>

#include "client/pbs/blob.h"
#include "client/pbs/crypto.h"
#include "client/pbs/fixed_index.h"
#include "client/pbs/manifest.h"

namespace fr::pbs {
namespace {

Bytes testData()
{
	Bytes data;
	for (int i = 0; i < 100'000; ++i)
		data.push_back(static_cast<std::uint8_t>(i % 255));
	return data;
}

Key testKey()
{
	Key key;
	key.fill(1);
	return key;
}

constexpr Digest kTestDigestPlain = {83,  154, 96,  195, 167, 204, 38,	142, 204, 224, 130,
				     201, 24,  71,  2,	 188, 130, 155, 177, 6,	  162, 100,
				     61,  238, 38,  219, 63,  240, 191, 132, 87,  238};
constexpr Digest kTestDigestEnc = {50,	162, 191, 93,  255, 132, 9,   14,  127, 23,  92,
				   39,	246, 102, 245, 204, 130, 104, 4,   106, 182, 239,
				   218, 14,  80,  17,  150, 188, 239, 253, 198, 117};

struct Case {
	const char *name;
	bool encrypted;
	bool compressed;
	const Magic *magic;
};

const Case kCases[] = {
	{"uncompressed", false, false, &kPlainBlobMagic},
	{"compressed", false, true, &kZstdBlobMagic},
	{"encrypted", true, false, &kEncryptedBlobMagic},
	{"encrypted_compressed", true, true, &kEncryptedZstdBlobMagic},
};

TEST(BlobWriterKat, DigestsMatchProxmoxBackup)
{
	Result<CryptConfig> crypt = CryptConfig::create(testKey());
	ASSERT_TRUE(crypt);
	const Bytes data = testData();
	EXPECT_EQ(chunkDigest(data, nullptr), kTestDigestPlain);
	EXPECT_EQ(chunkDigest(data, &*crypt), kTestDigestEnc);
}

TEST(BlobWriterKat, EachEncodingDecodesToTheDataAndItsDigest)
{
	Result<CryptConfig> crypt = CryptConfig::create(testKey());
	ASSERT_TRUE(crypt);
	const Bytes data = testData();
	for (const Case &c : kCases) {
		SCOPED_TRACE(c.name);
		const CryptConfig *key = c.encrypted ? &*crypt : nullptr;
		Result<Bytes> blob = encodeBlob(data, key, c.compressed);
		ASSERT_TRUE(blob) << blob.error().message();
		ASSERT_GE(blob->size(), 8u);
		EXPECT_TRUE(std::equal(c.magic->begin(), c.magic->end(), blob->begin()));
		EXPECT_TRUE(verifyBlobCrc(*blob));
		// As verify_test_blob: decode with the key and the expected digest.
		const Digest &digest = c.encrypted ? kTestDigestEnc : kTestDigestPlain;
		Result<Bytes> decoded = decodeChunk(*blob, digest, data.size(), c.encrypted, key);
		ASSERT_TRUE(decoded) << decoded.error().message();
		EXPECT_EQ(*decoded, data);
		if (c.compressed) {
			EXPECT_LT(blob->size(), data.size()); // the pattern compresses
		}
	}
}

TEST(BlobWriterKat, WrongDigestIsRefused)
{
	const Bytes data = testData();
	Result<Bytes> blob = encodeBlob(data, nullptr, true);
	ASSERT_TRUE(blob);
	Result<Bytes> decoded = decodeChunk(*blob, kTestDigestEnc, data.size(), false, nullptr);
	ASSERT_FALSE(decoded);
	EXPECT_EQ(decoded.error().errnum(), EBADMSG);
}

TEST(ManifestKat, SignatureMatchesProxmoxBackup)
{
	// manifest.rs: KeyDerivationConfig::Scrypt { n: 65536, r: 8, p: 1,
	// salt: empty } over "test".
	Result<Key> key = deriveScrypt(asBytes("test"), {}, 65536, 8, 1);
	ASSERT_TRUE(key) << key.error().message();
	Result<CryptConfig> crypt = CryptConfig::create(*key);
	ASSERT_TRUE(crypt);

	Manifest manifest;
	manifest.backupType = "host";
	manifest.backupId = "elsa";
	manifest.backupTime = 1593179765; // 2020-06-26T13:56:05Z
	Digest ones;
	ones.fill(1);
	Digest twos;
	twos.fill(2);
	manifest.files.push_back({"test1.img.fidx", CryptMode::Encrypt, 200, ones});
	manifest.files.push_back({"abc.blob", CryptMode::None, 200, twos});
	Result<std::string> text = encodeManifestJson(manifest, &*crypt);
	ASSERT_TRUE(text);
	Result<Manifest> parsed = parseManifest(*text);
	ASSERT_TRUE(parsed) << parsed.error().message();
	ASSERT_TRUE(parsed->signature);
	EXPECT_EQ(hex(*parsed->signature),
		  "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9");
	// "unprotected" is outside the signature, as in the upstream test.
	nlohmann::json changed = *parsed->json;
	changed["unprotected"]["note"] = "This is not protected by the signature.";
	Result<Digest> again = manifestSignature(changed, *crypt);
	ASSERT_TRUE(again);
	EXPECT_EQ(*again, *parsed->signature);
	EXPECT_TRUE(checkManifestKey(*parsed, &*crypt));
}

TEST(Definitions, MagicsAreTheirSha256Prefixes)
{
	const std::pair<const char *, const std::uint8_t *> defs[] = {
		{"Proxmox Backup uncompressed blob v1.0", kPlainBlobMagic.data()},
		{"Proxmox Backup zstd compressed blob v1.0", kZstdBlobMagic.data()},
		{"Proxmox Backup encrypted blob v1.0", kEncryptedBlobMagic.data()},
		{"Proxmox Backup zstd compressed encrypted blob v1.0", kEncryptedZstdBlobMagic.data()},
		{"Proxmox Backup fixed sized chunk index v1.0", kFixedIndexMagic.data()},
	};
	for (const auto &[text, magic] : defs) {
		const Digest digest = sha256(asBytes(text));
		EXPECT_TRUE(std::equal(digest.begin(), digest.begin() + 8, magic)) << text;
	}
}

TEST(Definitions, FingerprintInputIsItsSha256)
{
	// fingerprint() = SHA-256(FINGERPRINT_INPUT || id_key) with
	// FINGERPRINT_INPUT = SHA-256("Proxmox Backup Encryption Key Fingerprint").
	Result<CryptConfig> crypt = CryptConfig::create(testKey());
	ASSERT_TRUE(crypt);
	EXPECT_EQ(crypt->fingerprint(),
		  crypt->computeDigest(sha256(asBytes("Proxmox Backup Encryption Key Fingerprint"))));
	const std::string shown = formatFingerprint(crypt->fingerprint());
	EXPECT_EQ(shown.size(), 95u);
	Result<Digest> back = parseFingerprint(shown);
	ASSERT_TRUE(back);
	EXPECT_EQ(*back, crypt->fingerprint());
}

} // namespace
} // namespace fr::pbs
