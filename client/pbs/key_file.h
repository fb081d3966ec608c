// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// PBS encryption key files (pbs-key-config; proxmox-backup-client key create):
//
//   {"kdf": null | {"Scrypt": {"n": 65536, "r": 8, "p": 1, "salt": B64}}
//                | {"PBKDF2": {"iter": 65535, "salt": B64}},
//    "created": RFC 3339, "modified": RFC 3339,
//    "data": B64, "fingerprint": "aa:bb:...", "hint": "..."}
//
// Without a KDF, `data` is the 32-byte key. With one, the password derives a
// 32-byte key that decrypts `data` = iv[16] || tag[16] || AES-256-GCM(key).
// The key's fingerprint, when the file names one, must match the key.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "client/pbs/crypto.h"
#include "shared/result.h"

namespace fr::pbs {

inline constexpr std::size_t kKeyFileMaxBytes = 64 << 10;

enum class Kdf { None, Scrypt, Pbkdf2 };
const char *kdfName(Kdf kdf) noexcept;

struct KeyFile {
	Kdf kdf = Kdf::None;
	std::uint64_t scryptN = 0, scryptR = 0, scryptP = 0;
	std::uint64_t pbkdf2Iterations = 0;
	Bytes salt;
	Bytes data;
	std::optional<Digest> fingerprint;
	std::string hint;

	bool needsPassword() const { return kdf != Kdf::None; }
};

// Strict: EINVAL naming the offending field.
Result<KeyFile> parseKeyFile(std::string_view text);

// The raw key. `password` is ignored without a KDF; with one, PBS's rule
// applies (at least 5 bytes). EACCES for a wrong password (naming the hint
// if there is one); EBADMSG when the file's fingerprint does not match the
// key it holds.
Result<Key> decryptKeyFile(const KeyFile &file, std::string_view password);

// A key file for `key` (the tests), protected with `password` when `kdf`
// is not None (PBS's parameters, random salt and IV).
Result<std::string> encodeKeyFile(const Key &key, Kdf kdf, std::string_view password,
				  std::string_view hint = {});

} // namespace fr::pbs
