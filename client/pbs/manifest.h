// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A snapshot's manifest, `index.json.blob` (pbs-datastore/src/manifest.rs):
// a blob (zstd, never encrypted) holding
//
//   {"backup-type": "vm", "backup-id": "100", "backup-time": 1764064800,
//    "files": [{"filename": "drive-scsi0.img.fidx", "crypt-mode": "encrypt",
//               "size": 34359738368, "csum": "<sha256 hex>"}, ...],
//    "unprotected": {"key-fingerprint": "aa:bb:...", ...},
//    "signature": "<hmac hex>"}
//
// For a fixed index, `size` is the disk's size and `csum` the index
// checksum (SHA-256 over its digests). The signature (backups made with a
// key) is HMAC-SHA256 with the key's id_key over the canonical JSON of the
// manifest without "unprotected" and "signature": object keys sorted, no
// blanks (proxmox's to_canonical_json).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/pbs/crypto.h"
#include "shared/result.h"

namespace fr::pbs {

inline constexpr char kManifestName[] = "index.json.blob";
// A manifest lists a few files; anything near this is not one.
inline constexpr std::size_t kManifestMaxBytes = 4 << 20;

enum class CryptMode { None, Encrypt, SignOnly };
const char *cryptModeName(CryptMode mode) noexcept;

struct ManifestFile {
	std::string filename;
	CryptMode cryptMode = CryptMode::None;
	std::uint64_t size = 0;
	Digest csum{};
};

struct Manifest {
	std::string backupType;
	std::string backupId;
	std::int64_t backupTime = 0;
	std::vector<ManifestFile> files;
	std::optional<Digest> keyFingerprint; // unprotected.key-fingerprint
	std::optional<Digest> signature;
	// As parsed: what the signature covers. Shared (and never null after
	// parsing) so that a Manifest moves without throwing.
	std::shared_ptr<const nlohmann::json> json;

	const ManifestFile *find(std::string_view filename) const;
	// Whether any file is encrypted.
	bool encrypted() const;
};

// Strict: EINVAL naming the first offending field. File names must be
// plain names (no '/', not "." or "..", no NUL).
Result<Manifest> parseManifest(std::string_view text);
// A manifest blob: decoded (plain or zstd only) and parsed.
Result<Manifest> decodeManifest(ByteView blob);

// proxmox's canonical JSON: keys sorted, no blanks; null is refused (as
// proxmox refuses it). EINVAL for null or non-integer numbers.
Result<std::string> canonicalJson(const nlohmann::json &value);

// HMAC-SHA256(id_key, canonical JSON without "unprotected"/"signature").
Result<Digest> manifestSignature(const nlohmann::json &manifest, const CryptConfig &crypt);

// What using `manifest` with `crypt` (nullptr: no key given) means, as PBS
// decides it (BackupManifest::check_fingerprint and from_data):
//  - encrypted files and no key: EACCES naming the manifest's key
//    fingerprint;
//  - a key whose fingerprint differs from the manifest's: EACCES naming
//    both;
//  - a key and a signature that does not verify: EBADMSG.
// A manifest without a fingerprint accepts any key (and ignores it).
Status checkManifestKey(const Manifest &manifest, const CryptConfig *crypt);

// The JSON text of a manifest (the test datastore writer), signed and
// carrying the key's fingerprint when `crypt` is given.
Result<std::string> encodeManifestJson(const Manifest &manifest, const CryptConfig *crypt);

} // namespace fr::pbs
