// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/blob.h"

#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace fr::pbs {

namespace {

// Windows beyond 16 MiB are refused: PBS's chunks are at most a few MiB, so
// a larger window only serves to make the decoder allocate.
constexpr int kZstdWindowLogMax = 24;

struct DctxDeleter {
	void operator()(ZSTD_DCtx *ctx) const { ZSTD_freeDCtx(ctx); }
};

// One decompression context per thread: the reader decodes chunks on
// several threads at once, and a context is costly to set up per chunk.
ZSTD_DCtx *threadDctx()
{
	thread_local std::unique_ptr<ZSTD_DCtx, DctxDeleter> ctx;
	if (!ctx) {
		ctx.reset(ZSTD_createDCtx());
		if (ctx)
			ZSTD_DCtx_setParameter(ctx.get(), ZSTD_d_windowLogMax, kZstdWindowLogMax);
	} else {
		ZSTD_DCtx_reset(ctx.get(), ZSTD_reset_session_only);
	}
	return ctx.get();
}

std::uint32_t readLe32(const std::uint8_t *p)
{
	return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
	       static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void writeLe32(std::uint8_t *p, std::uint32_t v)
{
	for (int i = 0; i < 4; ++i)
		p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::size_t headerSize(BlobKind kind)
{
	return isEncrypted(kind) ? kEncryptedBlobHeaderSize : kBlobHeaderSize;
}

Status checkSize(std::size_t size, const DecodeLimits &limits)
{
	if (limits.exactSize && size != *limits.exactSize)
		return Error::invalid(EBADMSG, "blob", "", "decodes to %zu bytes, expected %zu", size,
				      *limits.exactSize);
	if (size > limits.maxSize)
		return Error::invalid(EFBIG, "blob", "", "decodes to more than %zu bytes",
				      limits.maxSize);
	return {};
}

// Decompresses every zstd frame in `in`, producing at most the bound the
// limits allow (one byte more is room to notice an overlong payload).
Result<Bytes> zstdDecode(ByteView in, const DecodeLimits &limits)
{
	const std::size_t bound = limits.exactSize ? *limits.exactSize : limits.maxSize;
	ZSTD_DCtx *ctx = threadDctx();
	if (ctx == nullptr)
		return Error(ENOMEM, "ZSTD_createDCtx");
	Bytes out;
	std::size_t capacity = limits.exactSize ? bound + 1 : std::min<std::size_t>(bound + 1, 1 << 20);
	out.resize(capacity);
	ZSTD_inBuffer input{in.data(), in.size(), 0};
	ZSTD_outBuffer output{out.data(), out.size(), 0};
	std::size_t ret = 1;
	while (input.pos < input.size || ret != 0) {
		if (output.pos == output.size) {
			if (output.size > bound)
				return Error::invalid(limits.exactSize ? EBADMSG : EFBIG, "blob", "",
						      "decompresses to more than %zu bytes", bound);
			capacity = std::min(bound + 1, capacity * 2);
			out.resize(capacity);
			output.dst = out.data();
			output.size = out.size();
		}
		const std::size_t before = output.pos;
		const std::size_t inBefore = input.pos;
		ret = ZSTD_decompressStream(ctx, &output, &input);
		if (ZSTD_isError(ret))
			return Error::invalid(EBADMSG, "zstd", "", "%s", ZSTD_getErrorName(ret));
		if (ret != 0 && input.pos == input.size && output.pos < output.size &&
		    output.pos == before && input.pos == inBefore)
			return Error::invalid(EBADMSG, "zstd", "", "truncated frame");
	}
	out.resize(output.pos);
	if (Status s = checkSize(out.size(), limits); !s)
		return s.error();
	return out;
}

} // namespace

const char *blobKindName(BlobKind kind) noexcept
{
	switch (kind) {
	case BlobKind::Plain:
		return "plain";
	case BlobKind::Zstd:
		return "zstd";
	case BlobKind::Encrypted:
		return "encrypted";
	case BlobKind::EncryptedZstd:
		return "encrypted zstd";
	}
	return "?";
}

Result<BlobKind> blobKind(ByteView blob)
{
	if (blob.size() < kBlobHeaderSize)
		return Error::invalid(EINVAL, "blob", "", "%zu bytes: shorter than a blob header",
				      blob.size());
	BlobKind kind;
	if (std::equal(kPlainBlobMagic.begin(), kPlainBlobMagic.end(), blob.begin()))
		kind = BlobKind::Plain;
	else if (std::equal(kZstdBlobMagic.begin(), kZstdBlobMagic.end(), blob.begin()))
		kind = BlobKind::Zstd;
	else if (std::equal(kEncryptedBlobMagic.begin(), kEncryptedBlobMagic.end(), blob.begin()))
		kind = BlobKind::Encrypted;
	else if (std::equal(kEncryptedZstdBlobMagic.begin(), kEncryptedZstdBlobMagic.end(),
			    blob.begin()))
		kind = BlobKind::EncryptedZstd;
	else
		return Error::invalid(EINVAL, "blob", "", "unknown magic number");
	if (blob.size() < headerSize(kind))
		return Error::invalid(EINVAL, "blob", "",
				      "%zu bytes: shorter than an encrypted blob header",
				      blob.size());
	return kind;
}

Status verifyBlobCrc(ByteView blob)
{
	Result<BlobKind> kind = blobKind(blob);
	if (!kind)
		return kind.error();
	const std::uint32_t stored = readLe32(blob.data() + 8);
	const std::uint32_t actual = crc32(blob.subspan(headerSize(*kind)));
	if (stored != actual)
		return Error::invalid(EBADMSG, "blob", "", "CRC mismatch (stored %08x, computed %08x)",
				      stored, actual);
	return {};
}

Result<Bytes> decodeBlob(ByteView blob, const CryptConfig *crypt, const DecodeLimits &limits)
{
	Result<BlobKind> kind = blobKind(blob);
	if (!kind)
		return kind.error();
	if (Status crc = verifyBlobCrc(blob); !crc)
		return crc.error();
	const ByteView payload = blob.subspan(headerSize(*kind));
	switch (*kind) {
	case BlobKind::Plain: {
		if (Status s = checkSize(payload.size(), limits); !s)
			return s.error();
		return Bytes(payload.begin(), payload.end());
	}
	case BlobKind::Zstd:
		return zstdDecode(payload, limits);
	case BlobKind::Encrypted:
	case BlobKind::EncryptedZstd:
		break;
	}
	if (crypt == nullptr)
		return Error::invalid(EACCES, "blob", "", "encrypted, and no key was given");
	const ByteView iv = blob.subspan(12, 16);
	const ByteView tag = blob.subspan(28, 16);
	if (*kind == BlobKind::Encrypted) {
		if (Status s = checkSize(payload.size(), limits); !s)
			return s.error();
	} else if (payload.size() > limits.maxSize + (1 << 20)) {
		// Compressed data this large cannot decode to the allowed size
		// in any sane blob; refuse before decrypting it.
		return Error::invalid(EFBIG, "blob", "", "%zu bytes of compressed data",
				      payload.size());
	}
	Bytes plain(payload.size());
	if (Status s = aes256GcmDecrypt(crypt->encKey(), iv, tag, payload, plain.data()); !s)
		return s.error();
	if (*kind == BlobKind::Encrypted)
		return plain;
	return zstdDecode(plain, limits);
}

Result<Bytes> decodeChunk(ByteView blob, const Digest &digest, std::size_t length,
			  bool wantEncrypted, const CryptConfig *crypt)
{
	Result<BlobKind> kind = blobKind(blob);
	if (!kind)
		return kind.error();
	if (isEncrypted(*kind) != wantEncrypted)
		return Error::invalid(EBADMSG, "chunk", "", "is %s, but the backup is %s",
				      blobKindName(*kind), wantEncrypted ? "encrypted" : "not encrypted");
	Result<Bytes> data = decodeBlob(blob, crypt, DecodeLimits{length, length});
	if (!data)
		return data.error();
	if (chunkDigest(*data, wantEncrypted ? crypt : nullptr) != digest)
		return Error::invalid(EBADMSG, "chunk", "", "content does not match its digest");
	return data;
}

Result<Bytes> decodeChunk(Bytes &&blob, const Digest &digest, std::size_t length,
			  bool wantEncrypted, const CryptConfig *crypt)
{
	Result<BlobKind> kind = blobKind(blob);
	if (!kind || *kind != BlobKind::Plain || wantEncrypted)
		return decodeChunk(ByteView(blob), digest, length, wantEncrypted, crypt);
	if (Status crc = verifyBlobCrc(blob); !crc)
		return crc.error();
	if (blob.size() - kBlobHeaderSize != length)
		return Error::invalid(EBADMSG, "blob", "", "decodes to %zu bytes, expected %zu",
				      blob.size() - kBlobHeaderSize, length);
	blob.erase(blob.begin(), blob.begin() + kBlobHeaderSize);
	if (sha256(blob) != digest)
		return Error::invalid(EBADMSG, "chunk", "", "content does not match its digest");
	return std::move(blob);
}

Digest chunkDigest(ByteView data, const CryptConfig *crypt)
{
	return crypt != nullptr ? crypt->computeDigest(data) : sha256(data);
}

Result<Bytes> encodeBlob(ByteView data, const CryptConfig *crypt, bool compress,
			 const std::array<std::uint8_t, 16> *fixedIv)
{
	Bytes compressed;
	if (compress) {
		compressed.resize(ZSTD_compressBound(data.size()));
		const std::size_t n =
			ZSTD_compress(compressed.data(), compressed.size(), data.data(), data.size(), 1);
		if (ZSTD_isError(n))
			return Error::invalid(EIO, "zstd", "", "%s", ZSTD_getErrorName(n));
		compressed.resize(n);
	}
	if (crypt == nullptr) {
		const bool useZstd = compress && compressed.size() < data.size();
		const ByteView payload = useZstd ? ByteView(compressed) : data;
		Bytes out(kBlobHeaderSize + payload.size());
		const Magic &magic = useZstd ? kZstdBlobMagic : kPlainBlobMagic;
		std::copy(magic.begin(), magic.end(), out.begin());
		std::copy(payload.begin(), payload.end(), out.begin() + kBlobHeaderSize);
		writeLe32(out.data() + 8, crc32(ByteView(out).subspan(kBlobHeaderSize)));
		return out;
	}
	const bool useZstd = compress && compressed.size() < data.size();
	const ByteView payload = useZstd ? ByteView(compressed) : data;
	Bytes out(kEncryptedBlobHeaderSize + payload.size());
	const Magic &magic = useZstd ? kEncryptedZstdBlobMagic : kEncryptedBlobMagic;
	std::copy(magic.begin(), magic.end(), out.begin());
	std::array<std::uint8_t, 16> iv{};
	if (fixedIv != nullptr)
		iv = *fixedIv;
	else if (Status s = randomBytes(iv); !s)
		return s.error();
	std::copy(iv.begin(), iv.end(), out.begin() + 12);
	std::array<std::uint8_t, 16> tag{};
	if (Status s = aes256GcmEncrypt(crypt->encKey(), iv, payload,
					out.data() + kEncryptedBlobHeaderSize, tag);
	    !s)
		return s.error();
	std::copy(tag.begin(), tag.end(), out.begin() + 28);
	writeLe32(out.data() + 8, crc32(ByteView(out).subspan(kEncryptedBlobHeaderSize)));
	return out;
}

} // namespace fr::pbs
