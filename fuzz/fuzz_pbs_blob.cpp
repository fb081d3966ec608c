// SPDX-License-Identifier: AGPL-3.0-or-later
// PBS blob decoding (client/pbs/blob.h), all four magics: plain, zstd,
// encrypted, encrypted + zstd, with a fixed key (the seeds are encrypted
// with it, so the fuzzer reaches past the GCM tag only by keeping it). A
// blob is chunk or manifest data from the datastore: hostile. Whatever
// decodes stays within the bound it was given and decodes again as the
// chunk its digest names.
#include <cstdint>
#include <cstdlib>

#include "client/pbs/blob.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using namespace fr::pbs;
	static const CryptConfig crypt = [] {
		Key key;
		key.fill(1); // proxmox-backup's test key
		return *CryptConfig::create(key);
	}();
	constexpr std::size_t kBound = 1 << 20;
	const ByteView blob(data, size);
	fr::Result<BlobKind> kind = blobKind(blob);
	fr::Result<Bytes> decoded = decodeBlob(blob, &crypt, DecodeLimits{std::nullopt, kBound});
	if (!decoded)
		return 0;
	if (!kind || decoded->size() > kBound || !verifyBlobCrc(blob))
		std::abort();
	const bool encrypted = isEncrypted(*kind);
	const Digest digest = chunkDigest(*decoded, encrypted ? &crypt : nullptr);
	fr::Result<Bytes> chunk = decodeChunk(blob, digest, decoded->size(), encrypted, &crypt);
	if (!chunk || *chunk != *decoded)
		std::abort();
	// The wrong crypt mode is always refused.
	if (decodeChunk(blob, digest, decoded->size(), !encrypted, &crypt))
		std::abort();
	return 0;
}
