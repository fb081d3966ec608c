// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Byte-string encodings (libsodium underneath: no hand-written codecs).

#include <optional>
#include <string>
#include <string_view>

namespace fr::client {

// Standard base64 with padding (RFC 4648 §4), as proxmox-file-restore's
// `filepath` and --base64 use.
std::string base64Encode(std::string_view bytes);
// nullopt when `text` is not canonical padded base64 (no blanks, no
// missing padding, no junk).
std::optional<std::string> base64Decode(std::string_view text);

// Lowercase hexadecimal SHA-256 of `bytes`.
std::string sha256Hex(std::string_view bytes);

// Lowercase hexadecimal of `bytes`.
std::string hexEncode(std::string_view bytes);

} // namespace fr::client
