// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/encoding.h"

#include <sodium.h>

#include <cstdlib>

namespace fr::client {

namespace {

void ensureSodium()
{
	// sodium_init() is idempotent and thread-safe; it fails only when the
	// system has no usable randomness, which nothing here can work without.
	static const bool ready = sodium_init() >= 0;
	if (!ready)
		std::abort();
}

const unsigned char *bytesOf(std::string_view text)
{
	return reinterpret_cast<const unsigned char *>(text.data());
}

} // namespace

std::string base64Encode(std::string_view bytes)
{
	ensureSodium();
	const std::size_t size = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
	std::string out(size, '\0');
	sodium_bin2base64(out.data(), size, bytesOf(bytes), bytes.size(),
			  sodium_base64_VARIANT_ORIGINAL);
	out.resize(size - 1); // the terminating NUL
	return out;
}

std::optional<std::string> base64Decode(std::string_view text)
{
	ensureSodium();
	std::string out(text.size() / 4 * 3 + 3, '\0');
	std::size_t length = 0;
	const char *end = nullptr;
	if (sodium_base642bin(reinterpret_cast<unsigned char *>(out.data()), out.size(),
			      text.data(), text.size(), nullptr, &length, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return std::nullopt;
	// sodium stops at the first byte it cannot use; anything left is junk.
	if (end != text.data() + text.size())
		return std::nullopt;
	out.resize(length);
	// Refuse non-canonical forms (stray bits in the last character) so that
	// one path has exactly one spelling.
	if (base64Encode(out) != text)
		return std::nullopt;
	return out;
}

std::string hexEncode(std::string_view bytes)
{
	ensureSodium();
	std::string out(bytes.size() * 2 + 1, '\0');
	sodium_bin2hex(out.data(), out.size(), bytesOf(bytes), bytes.size());
	out.resize(bytes.size() * 2);
	return out;
}

std::string sha256Hex(std::string_view bytes)
{
	ensureSodium();
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, bytesOf(bytes), bytes.size());
	return hexEncode(std::string_view(reinterpret_cast<const char *>(digest), sizeof(digest)));
}

} // namespace fr::client
