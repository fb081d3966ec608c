// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/key_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <ctime>

#include <nlohmann/json.hpp>

namespace fr::pbs {

using nlohmann::json;

namespace {

Error bad(const char *field, const char *what)
{
	return Error::invalid(EINVAL, "key file", field, "%s", what);
}

// Standard padded base64 through OpenSSL. nullopt for anything else.
std::optional<Bytes> base64Decode(const std::string &text)
{
	if (text.size() % 4 != 0 || text.size() > kKeyFileMaxBytes)
		return std::nullopt;
	Bytes out(text.size() / 4 * 3);
	const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char *>(text.data()),
				      static_cast<int>(text.size()));
	if (n < 0)
		return std::nullopt;
	// EVP_DecodeBlock counts padding as zero bytes.
	std::size_t size = static_cast<std::size_t>(n);
	for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
		--size;
	out.resize(size);
	return out;
}

std::string base64Encode(ByteView data)
{
	std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
	const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data.data(),
				      static_cast<int>(data.size()));
	out.resize(static_cast<std::size_t>(n));
	return out;
}

bool readUnsigned(const json &object, const char *key, std::uint64_t &out)
{
	const auto it = object.find(key);
	if (it == object.end() || !it->is_number_unsigned())
		return false;
	out = it->get<std::uint64_t>();
	return true;
}

std::string rfc3339Now()
{
	const std::time_t now = std::time(nullptr);
	std::tm tm{};
	::gmtime_r(&now, &tm);
	char buf[32];
	if (std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "1970-01-01T00:00:00Z";
	return buf;
}

} // namespace

const char *kdfName(Kdf kdf) noexcept
{
	switch (kdf) {
	case Kdf::None:
		return "none";
	case Kdf::Scrypt:
		return "scrypt";
	case Kdf::Pbkdf2:
		return "pbkdf2";
	}
	return "?";
}

namespace {

// "kdf": null (an unprotected key) or one of {"Scrypt": {n, r, p, salt}} and
// {"PBKDF2": {iter, salt}}.
Status parseKdf(const json &root, KeyFile &out)
{
	const auto kdf = root.find("kdf");
	if (kdf == root.end() || kdf->is_null())
		return {};
	if (!kdf->is_object() || kdf->size() != 1)
		return bad("kdf", "not null, {\"Scrypt\": ...} or {\"PBKDF2\": ...}");
	const std::string name = kdf->begin().key();
	const json &params = kdf->begin().value();
	if (!params.is_object())
		return bad("kdf", "parameters are not an object");
	if (name == "Scrypt") {
		out.kdf = Kdf::Scrypt;
		if (!readUnsigned(params, "n", out.scryptN) ||
		    !readUnsigned(params, "r", out.scryptR) ||
		    !readUnsigned(params, "p", out.scryptP))
			return bad("kdf.Scrypt", "n, r and p must be unsigned integers");
	} else if (name == "PBKDF2") {
		out.kdf = Kdf::Pbkdf2;
		if (!readUnsigned(params, "iter", out.pbkdf2Iterations))
			return bad("kdf.PBKDF2", "iter must be an unsigned integer");
	} else {
		return bad("kdf", "unknown key derivation function");
	}
	const auto salt = params.find("salt");
	if (salt == params.end() || !salt->is_string())
		return bad("kdf.salt", "missing or not a string");
	std::optional<Bytes> saltBytes = base64Decode(salt->get<std::string>());
	if (!saltBytes)
		return bad("kdf.salt", "not base64");
	out.salt = std::move(*saltBytes);
	return {};
}

} // namespace

Result<KeyFile> parseKeyFile(std::string_view text)
{
	if (text.size() > kKeyFileMaxBytes)
		return bad("", "larger than 64 KiB");
	const json root = json::parse(text, nullptr, false);
	if (root.is_discarded() || !root.is_object())
		return bad("", "not a JSON object");
	KeyFile out;
	if (Status kdf = parseKdf(root, out); !kdf)
		return kdf.error();
	const auto data = root.find("data");
	if (data == root.end() || !data->is_string())
		return bad("data", "missing or not a string");
	std::optional<Bytes> dataBytes = base64Decode(data->get<std::string>());
	if (!dataBytes)
		return bad("data", "not base64");
	out.data = std::move(*dataBytes);
	if (out.kdf == Kdf::None && out.data.size() != 32)
		return bad("data", "an unprotected key must be 32 bytes");
	if (out.kdf != Kdf::None && out.data.size() != 32 + 32)
		return bad("data", "a protected key must be iv, tag and 32 bytes");
	const auto fp = root.find("fingerprint");
	if (fp != root.end() && !fp->is_null()) {
		if (!fp->is_string())
			return bad("fingerprint", "not a string");
		Result<Digest> parsed = parseFingerprint(fp->get<std::string>());
		if (!parsed)
			return bad("fingerprint", "not 32 colon-separated hex bytes");
		out.fingerprint = *parsed;
	}
	const auto hint = root.find("hint");
	if (hint != root.end() && hint->is_string())
		out.hint = hint->get<std::string>();
	return out;
}

Result<Key> decryptKeyFile(const KeyFile &file, std::string_view password)
{
	Key key{};
	if (file.kdf == Kdf::None) {
		std::copy(file.data.begin(), file.data.end(), key.begin());
	} else {
		if (password.size() < 5)
			return Error::invalid(EACCES, "key file", "",
					      "the password is too short (PBS requires 5 bytes)");
		Result<Key> derived =
			file.kdf == Kdf::Scrypt
				? deriveScrypt(asBytes(password), file.salt, file.scryptN,
					       file.scryptR, file.scryptP)
				: derivePbkdf2Sha256(asBytes(password), file.salt,
						     file.pbkdf2Iterations);
		if (!derived)
			return derived.error();
		const ByteView data(file.data);
		Status s = aes256GcmDecrypt(*derived, data.subspan(0, 16), data.subspan(16, 16),
					    data.subspan(32), key.data());
		OPENSSL_cleanse(derived->data(), derived->size());
		if (!s) {
			if (!file.hint.empty())
				return Error::invalid(EACCES, "key file", "",
						      "wrong password (hint: %.100s)",
						      file.hint.c_str());
			return Error::invalid(EACCES, "key file", "", "wrong password");
		}
	}
	if (file.fingerprint) {
		Result<CryptConfig> crypt = CryptConfig::create(key);
		if (!crypt)
			return crypt.error();
		if (crypt->fingerprint() != *file.fingerprint)
			return Error::invalid(EBADMSG, "key file",
					      formatFingerprint(*file.fingerprint),
					      "names this fingerprint, but its key has %s",
					      formatFingerprint(crypt->fingerprint()).c_str());
	}
	return key;
}

Result<std::string> encodeKeyFile(const Key &key, Kdf kdf, std::string_view password,
				  std::string_view hint)
{
	Result<CryptConfig> crypt = CryptConfig::create(key);
	if (!crypt)
		return crypt.error();
	json root = json::object();
	if (kdf == Kdf::None) {
		root["kdf"] = nullptr;
		root["data"] = base64Encode(key);
	} else {
		std::array<std::uint8_t, 32> salt{};
		std::array<std::uint8_t, 16> iv{};
		if (Status s = randomBytes(salt); !s)
			return s.error();
		if (Status s = randomBytes(iv); !s)
			return s.error();
		Result<Key> derived = kdf == Kdf::Scrypt
					      ? deriveScrypt(asBytes(password), salt, 65536, 8, 1)
					      : derivePbkdf2Sha256(asBytes(password), salt, 65535);
		if (!derived)
			return derived.error();
		Bytes data(32 + 32);
		std::copy(iv.begin(), iv.end(), data.begin());
		std::array<std::uint8_t, 16> tag{};
		if (Status s = aes256GcmEncrypt(*derived, iv, key, data.data() + 32, tag); !s)
			return s.error();
		std::copy(tag.begin(), tag.end(), data.begin() + 16);
		if (kdf == Kdf::Scrypt)
			root["kdf"] = {{"Scrypt",
					{{"n", 65536}, {"r", 8}, {"p", 1}, {"salt", base64Encode(salt)}}}};
		else
			root["kdf"] = {{"PBKDF2", {{"iter", 65535}, {"salt", base64Encode(salt)}}}};
		root["data"] = base64Encode(data);
	}
	root["created"] = rfc3339Now();
	root["modified"] = root["created"];
	root["fingerprint"] = formatFingerprint(crypt->fingerprint());
	if (!hint.empty())
		root["hint"] = std::string(hint);
	return root.dump(2);
}

} // namespace fr::pbs
