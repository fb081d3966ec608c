// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/random.h>
#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "shared/hex.h"

namespace fr::pbs {

namespace {

// SHA-256("Proxmox Backup Encryption Key Fingerprint"), crypt_config.rs's
// FINGERPRINT_INPUT (a unit test recomputes it).
constexpr Digest kFingerprintInput = {
	110, 208, 239, 119, 71,  31,  255, 77,  85, 199, 168, 254, 74,  157, 182, 33,
	97,  64,  127, 19,  76,  114, 93,  223, 48, 153, 45,  37,  236, 69,  237, 38,
};

constexpr char kIdKeySalt[] = "_id_key";

// OpenSSL reads openssl.cnf (or $OPENSSL_CONF) on first use, and a config
// can load engines and providers: shared objects, into the client or the
// NBD server. Nothing here needs one: initialise without the config,
// before any other OpenSSL call of this library.
[[maybe_unused]] const bool kOpensslInitialised =
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr) == 1;
constexpr int kIdKeyIterations = 10;

// Key files: bounded so that a hostile or broken file cannot make the
// client commit gigabytes or hours. PBS writes n = 65536, r = 8, p = 1
// (64 MiB) and 65535 PBKDF2 iterations.
constexpr std::uint64_t kScryptMaxMemory = 1025ULL << 20; // PBS's own limit
constexpr std::uint64_t kPbkdf2MaxIterations = 10'000'000;

struct CipherCtx {
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
	CipherCtx() = default;
	CipherCtx(const CipherCtx &) = delete;
	CipherCtx &operator=(const CipherCtx &) = delete;
};

int sizeAsInt(std::size_t n)
{
	return n > static_cast<std::size_t>(INT_MAX) ? -1 : static_cast<int>(n);
}

// Feeds `in` through EVP_CipherUpdate in pieces that fit an int.
bool cipherUpdate(EVP_CIPHER_CTX *ctx, ByteView in, std::uint8_t *out)
{
	constexpr std::size_t kPiece = 1 << 30;
	std::size_t done = 0;
	while (done < in.size()) {
		const std::size_t n = std::min(kPiece, in.size() - done);
		int outLen = 0;
		if (EVP_CipherUpdate(ctx, out + done, &outLen, in.data() + done, static_cast<int>(n)) !=
			    1 ||
		    static_cast<std::size_t>(outLen) != n)
			return false;
		done += n;
	}
	return true;
}

} // namespace

Digest sha256(ByteView data)
{
	Digest out{};
	::SHA256(data.data(), data.size(), out.data());
	return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new())
{
	if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX *>(ctx_), EVP_sha256(), nullptr) != 1)
		__builtin_trap(); // out of memory in OpenSSL: nothing sensible to do
}

Sha256::~Sha256()
{
	EVP_MD_CTX_free(static_cast<EVP_MD_CTX *>(ctx_));
}

void Sha256::update(ByteView data)
{
	EVP_DigestUpdate(static_cast<EVP_MD_CTX *>(ctx_), data.data(), data.size());
}

Digest Sha256::finish()
{
	Digest out{};
	unsigned int len = 0;
	EVP_DigestFinal_ex(static_cast<EVP_MD_CTX *>(ctx_), out.data(), &len);
	return out;
}

std::uint32_t crc32(ByteView data)
{
	uLong crc = ::crc32(0L, Z_NULL, 0);
	std::size_t done = 0;
	while (done < data.size()) {
		const std::size_t n = std::min<std::size_t>(data.size() - done, 1U << 30);
		crc = ::crc32(crc, data.data() + done, static_cast<uInt>(n));
		done += n;
	}
	return static_cast<std::uint32_t>(crc);
}

Status randomBytes(std::span<std::uint8_t> out)
{
	std::size_t done = 0;
	while (done < out.size()) {
		const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return Error(n < 0 ? errno : EIO, "getrandom");
		done += static_cast<std::size_t>(n);
	}
	return {};
}

std::string hex(ByteView data)
{
	static constexpr char kDigits[] = "0123456789abcdef";
	std::string out;
	out.reserve(data.size() * 2);
	for (const std::uint8_t b : data) {
		out += kDigits[b >> 4];
		out += kDigits[b & 15];
	}
	return out;
}

bool parseHex(std::string_view text, std::span<std::uint8_t> out)
{
	if (text.size() != out.size() * 2)
		return false;
	for (std::size_t i = 0; i < out.size(); ++i) {
		const int hi = hexValue(text[2 * i]);
		const int lo = hexValue(text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
	}
	return true;
}

std::string formatFingerprint(const Digest &fingerprint)
{
	const std::string digits = hex(fingerprint);
	std::string out;
	out.reserve(digits.size() * 3 / 2);
	for (std::size_t i = 0; i < digits.size(); i += 2) {
		if (i > 0)
			out += ':';
		out.append(digits, i, 2);
	}
	return out;
}

Result<Digest> parseFingerprint(std::string_view text)
{
	Digest out{};
	if (text.size() != out.size() * 3 - 1)
		return Error::invalid(EINVAL, "fingerprint", text.substr(0, 100),
				      "not 32 colon-separated hex bytes");
	for (std::size_t i = 0; i < out.size(); ++i) {
		if (i > 0 && text[3 * i - 1] != ':')
			return Error::invalid(EINVAL, "fingerprint", text,
					      "not 32 colon-separated hex bytes");
		if (!parseHex(text.substr(3 * i, 2), std::span<std::uint8_t>(&out[i], 1)))
			return Error::invalid(EINVAL, "fingerprint", text,
					      "not 32 colon-separated hex bytes");
	}
	return out;
}

Status aes256GcmDecrypt(const Key &key, ByteView iv, ByteView tag, ByteView ciphertext,
			std::uint8_t *plaintext)
{
	if (tag.size() != 16 || iv.empty() || sizeAsInt(iv.size()) < 0)
		return Error::invalid(EINVAL, "aes-256-gcm", "", "bad IV or tag length");
	CipherCtx c;
	if (c.ctx == nullptr)
		return Error(ENOMEM, "EVP_CIPHER_CTX_new");
	// PBS uses 16-byte IVs; GCM's default is 12, so the length is set first.
	if (EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, sizeAsInt(iv.size()), nullptr) != 1 ||
	    EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key.data(), iv.data()) != 1)
		return Error(EIO, "EVP_DecryptInit_ex");
	if (!cipherUpdate(c.ctx, ciphertext, plaintext))
		return Error(EIO, "EVP_DecryptUpdate");
	if (EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, 16,
				const_cast<std::uint8_t *>(tag.data())) != 1)
		return Error(EIO, "EVP_CTRL_GCM_SET_TAG");
	int finalLen = 0;
	std::uint8_t scratch[16];
	if (EVP_DecryptFinal_ex(c.ctx, scratch, &finalLen) != 1)
		return Error::invalid(EBADMSG, "aes-256-gcm", "",
				      "authentication failed (wrong key or corrupt data)");
	return {};
}

Status aes256GcmEncrypt(const Key &key, ByteView iv, ByteView plaintext, std::uint8_t *ciphertext,
			std::span<std::uint8_t, 16> tag)
{
	if (iv.empty() || sizeAsInt(iv.size()) < 0)
		return Error::invalid(EINVAL, "aes-256-gcm", "", "bad IV length");
	CipherCtx c;
	if (c.ctx == nullptr)
		return Error(ENOMEM, "EVP_CIPHER_CTX_new");
	if (EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_IVLEN, sizeAsInt(iv.size()), nullptr) != 1 ||
	    EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key.data(), iv.data()) != 1)
		return Error(EIO, "EVP_EncryptInit_ex");
	if (!cipherUpdate(c.ctx, plaintext, ciphertext))
		return Error(EIO, "EVP_EncryptUpdate");
	int finalLen = 0;
	std::uint8_t scratch[16];
	if (EVP_EncryptFinal_ex(c.ctx, scratch, &finalLen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, 16, tag.data()) != 1)
		return Error(EIO, "EVP_EncryptFinal_ex");
	return {};
}

Result<Key> deriveScrypt(ByteView password, ByteView salt, std::uint64_t n, std::uint64_t r,
			 std::uint64_t p)
{
	if (n < 2 || (n & (n - 1)) != 0 || r == 0 || p == 0 || r > 1024 || p > 1024 ||
	    n > kScryptMaxMemory / 128 / r / p)
		return Error::invalid(EINVAL, "scrypt", "key file",
				      "parameters out of range (n=%llu r=%llu p=%llu; at most %llu MiB)",
				      static_cast<unsigned long long>(n),
				      static_cast<unsigned long long>(r),
				      static_cast<unsigned long long>(p),
				      static_cast<unsigned long long>(kScryptMaxMemory >> 20));
	Key out{};
	if (EVP_PBE_scrypt(reinterpret_cast<const char *>(password.data()), password.size(),
			   salt.data(), salt.size(), n, r, p, kScryptMaxMemory + (1 << 20), out.data(),
			   out.size()) != 1)
		return Error(ENOMEM, "EVP_PBE_scrypt", "key file");
	return out;
}

Result<Key> derivePbkdf2Sha256(ByteView password, ByteView salt, std::uint64_t iterations)
{
	if (iterations == 0 || iterations > kPbkdf2MaxIterations || sizeAsInt(password.size()) < 0 ||
	    sizeAsInt(salt.size()) < 0)
		return Error::invalid(EINVAL, "pbkdf2", "key file",
				      "iteration count %llu out of range (1 to %llu)",
				      static_cast<unsigned long long>(iterations),
				      static_cast<unsigned long long>(kPbkdf2MaxIterations));
	Key out{};
	if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char *>(password.data()),
			      static_cast<int>(password.size()), salt.data(),
			      static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
			      static_cast<int>(out.size()), out.data()) != 1)
		return Error(EIO, "PKCS5_PBKDF2_HMAC", "key file");
	return out;
}

Result<CryptConfig> CryptConfig::create(const Key &encKey)
{
	CryptConfig config;
	config.encKey_ = encKey;
	if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char *>(encKey.data()),
			      static_cast<int>(encKey.size()),
			      reinterpret_cast<const unsigned char *>(kIdKeySalt), sizeof(kIdKeySalt) - 1,
			      kIdKeyIterations, EVP_sha256(), static_cast<int>(config.idKey_.size()),
			      config.idKey_.data()) != 1)
		return Error(EIO, "PKCS5_PBKDF2_HMAC", "id key");
	return config;
}

CryptConfig::~CryptConfig()
{
	OPENSSL_cleanse(encKey_.data(), encKey_.size());
	OPENSSL_cleanse(idKey_.data(), idKey_.size());
}

Digest CryptConfig::computeDigest(ByteView data) const
{
	// The id key goes last: appending it rules out length extension.
	Sha256 hasher;
	hasher.update(data);
	hasher.update(idKey_);
	return hasher.finish();
}

Digest CryptConfig::authTag(ByteView data) const
{
	Digest out{};
	unsigned int len = 0;
	::HMAC(EVP_sha256(), idKey_.data(), static_cast<int>(idKey_.size()), data.data(), data.size(),
	       out.data(), &len);
	return out;
}

Digest CryptConfig::fingerprint() const
{
	return computeDigest(kFingerprintInput);
}

} // namespace fr::pbs
