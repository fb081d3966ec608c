// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// PBS data blobs (proxmox-backup pbs-datastore/src/{file_formats,data_blob}.rs,
// docs/file-formats.rst): chunks in the chunk store and small files such as
// the manifest are all blobs:
//
//   magic[8] || crc32 u32 LE || payload                   (plain, zstd)
//   magic[8] || crc32 u32 LE || iv[16] || tag[16] || data  (encrypted)
//
// The CRC covers every byte after the header. Compression is zstd (kept only
// when smaller); encryption AES-256-GCM, after compression.
//
// Everything here treats the blob as hostile: lengths are checked before
// any allocation and decompression is bounded by the size the caller
// expects.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "client/pbs/crypto.h"
#include "shared/result.h"

namespace fr::pbs {

enum class BlobKind { Plain, Zstd, Encrypted, EncryptedZstd };

using Magic = std::array<std::uint8_t, 8>;

// The first 8 bytes of SHA-256("Proxmox Backup ... v1.0") (file_formats.rs).
inline constexpr Magic kPlainBlobMagic = {66, 171, 56, 7, 190, 131, 112, 161};
inline constexpr Magic kZstdBlobMagic = {49, 185, 88, 66, 111, 182, 163, 127};
inline constexpr Magic kEncryptedBlobMagic = {123, 103, 133, 190, 34, 45, 76, 240};
inline constexpr Magic kEncryptedZstdBlobMagic = {230, 89, 27, 191, 11, 191, 216, 11};

inline constexpr std::size_t kBlobHeaderSize = 12;
inline constexpr std::size_t kEncryptedBlobHeaderSize = 44;

const char *blobKindName(BlobKind kind) noexcept;
inline bool isEncrypted(BlobKind kind)
{
	return kind == BlobKind::Encrypted || kind == BlobKind::EncryptedZstd;
}

// The kind named by the blob's magic; EINVAL for an unknown magic or a blob
// shorter than its header.
Result<BlobKind> blobKind(ByteView blob);

// Checks the header's CRC-32 against the payload. EBADMSG on mismatch.
Status verifyBlobCrc(ByteView blob);

struct DecodeLimits {
	// The exact decoded size the caller expects (a chunk's length), or
	// nullopt with maxSize bounding it (a manifest).
	std::optional<std::size_t> exactSize;
	std::size_t maxSize = 16 << 20;
};

// Decodes a whole blob: CRC, then decryption (with `crypt`, required for
// encrypted kinds) and decompression. The result is bounded by `limits`
// (EFBIG beyond it; EBADMSG for a corrupt payload, a failed CRC or a wrong
// size). Does not check any digest: see decodeChunk.
Result<Bytes> decodeBlob(ByteView blob, const CryptConfig *crypt, const DecodeLimits &limits);

// A chunk: decodeBlob with its exact length, then its digest (SHA-256, or
// the keyed digest when encrypted) compared with `digest`. `wantEncrypted`
// is the crypt mode the index promises: a plain chunk in an encrypted
// backup (or the reverse) is refused, as PBS refuses it.
Result<Bytes> decodeChunk(ByteView blob, const Digest &digest, std::size_t length,
			  bool wantEncrypted, const CryptConfig *crypt);
// The same, consuming `blob`: a plain chunk's bytes are moved out of it
// rather than copied (one chunk in memory instead of two).
Result<Bytes> decodeChunk(Bytes &&blob, const Digest &digest, std::size_t length,
			  bool wantEncrypted, const CryptConfig *crypt);

// Encoding, as DataBlob::encode does it (the test datastore writer and the
// known-answer tests use it). `compress` keeps zstd level 1 only when it
// is smaller; `crypt` encrypts with a random IV (or `fixedIv` for
// reproducible tests).
Result<Bytes> encodeBlob(ByteView data, const CryptConfig *crypt, bool compress,
			 const std::array<std::uint8_t, 16> *fixedIv = nullptr);

// The digest a chunk of `data` has in an index (keyed when `crypt`).
Digest chunkDigest(ByteView data, const CryptConfig *crypt);

} // namespace fr::pbs
