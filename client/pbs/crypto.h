// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The cryptography a Proxmox Backup Server datastore uses, through OpenSSL
// (and zlib's CRC-32): nothing here is hand-written. The definitions follow
// proxmox-backup's crypt_config.rs and key derivation:
//  - the encryption key is 32 bytes; AES-256-GCM with a 16-byte IV and an
//    empty AAD encrypts chunks and blobs;
//  - id_key = PBKDF2-HMAC-SHA256(key, "_id_key", 10 iterations, 32 bytes);
//    an encrypted chunk's digest is SHA-256(plaintext || id_key), so that
//    digests leak nothing across keys;
//  - the key's fingerprint is SHA-256(FINGERPRINT_INPUT || id_key), shown as
//    32 colon-separated hex bytes;
//  - a manifest's signature is HMAC-SHA256(id_key, canonical JSON).

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::pbs {

using Digest = std::array<std::uint8_t, 32>;
using Key = std::array<std::uint8_t, 32>;
using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView asBytes(std::string_view text)
{
	return {reinterpret_cast<const std::uint8_t *>(text.data()), text.size()};
}

Digest sha256(ByteView data);

// Incremental SHA-256 (the index checksum runs over every digest in turn).
class Sha256 {
public:
	Sha256();
	~Sha256();
	Sha256(const Sha256 &) = delete;
	Sha256 &operator=(const Sha256 &) = delete;
	void update(ByteView data);
	Digest finish();

private:
	void *ctx_; // EVP_MD_CTX
};

// IEEE CRC-32 (zlib), as the blob header's crc field holds it.
std::uint32_t crc32(ByteView data);

// Fills `out` from the kernel's CSPRNG (getrandom). Errors: EIO-like errno.
Status randomBytes(std::span<std::uint8_t> out);

// Lowercase hex of `data`.
std::string hex(ByteView data);
// Exactly 2*out.size() hex digits (either case). False otherwise.
bool parseHex(std::string_view text, std::span<std::uint8_t> out);

// "aa:bb:...": the 32 bytes of a fingerprint as PBS shows them.
std::string formatFingerprint(const Digest &fingerprint);
// Accepts that form (either case). EINVAL otherwise.
Result<Digest> parseFingerprint(std::string_view text);

// AES-256-GCM with a 16-byte IV and no AAD (PBS's parameters). Decrypt
// fails with EBADMSG when the tag does not authenticate the data.
Status aes256GcmDecrypt(const Key &key, ByteView iv, ByteView tag, ByteView ciphertext,
			std::uint8_t *plaintext);
Status aes256GcmEncrypt(const Key &key, ByteView iv, ByteView plaintext, std::uint8_t *ciphertext,
			std::span<std::uint8_t, 16> tag);

// Password-based key derivation into 32 bytes. The parameters come from a
// key file and are bounded before any memory is committed (scrypt's
// memory is 128 * r * n * p bytes; PBS uses n = 65536, r = 8, p = 1).
Result<Key> deriveScrypt(ByteView password, ByteView salt, std::uint64_t n, std::uint64_t r,
			 std::uint64_t p);
Result<Key> derivePbkdf2Sha256(ByteView password, ByteView salt, std::uint64_t iterations);

// An encryption key with what PBS derives from it. Wipes both keys when
// destroyed. Copyable (one per reader thread is fine: 64 bytes).
class CryptConfig {
public:
	static Result<CryptConfig> create(const Key &encKey);
	~CryptConfig();
	CryptConfig(const CryptConfig &) = default;
	CryptConfig &operator=(const CryptConfig &) = default;

	// SHA-256(data || id_key): an encrypted chunk's digest.
	Digest computeDigest(ByteView data) const;
	// HMAC-SHA256 keyed with id_key.
	Digest authTag(ByteView data) const;
	Digest fingerprint() const;
	const Key &encKey() const { return encKey_; }

private:
	CryptConfig() = default;
	Key encKey_{};
	Key idKey_{};
};

} // namespace fr::pbs
