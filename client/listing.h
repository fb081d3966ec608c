// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// How listings look: text lines for people, proxmox-file-restore-shaped
// JSON for programs. Names come from the guest and are escaped for display
// in both (JSON's "filepath" carries the exact bytes, base64-encoded).

#include <string>

#include <nlohmann/json.hpp>

#include "client/session.h"
#include "client/types.h"

namespace fr::client {

enum class OutputFormat { Text, Json, JsonPretty };

// {"filepath": base64(fullPath), "text": escaped name, "type": "d"|...,
//  "leaf": not a directory, "size": N|null, "mtime": N|null}. Virtual
// entries (archives, buckets) have null size and mtime.
nlohmann::json entryJson(const std::string &fullPath, const GuestEntry &entry);

// "<type> <mode> <size> <mtime> <name>[ -> <target>]", escaped; no newline.
std::string entryText(const GuestEntry &entry);

// "rwxr-xr-x" from the low 9 bits (plus s/S, t/T).
std::string modeText(std::uint32_t mode);

// Seconds as "1h02m", "3m05s", "42s".
std::string durationText(std::uint64_t seconds);

// JSON text in the requested format (compact or indented), with a newline.
std::string dumpJson(const nlohmann::json &value, OutputFormat format);

} // namespace fr::client
