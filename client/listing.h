// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// How listings look: text lines for people, proxmox-file-restore-shaped
// JSON for programs. Names come from the guest and are escaped for display
// in both (JSON's "filepath" carries the exact bytes, base64-encoded).

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "client/session.h"
#include "client/types.h"
#include "shared/result.h"

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

// `list`'s output: entries stream out to stdout as the guest sends them,
// text or JSON (the array written element by element), through a buffer of
// about 64 KiB, so memory stays flat however large the directory. Once
// anything went out, a later error leaves stdout mid-listing (in JSON an
// unterminated array); the caller then reports it on stderr.
class ListingPrinter {
public:
	// `directory`: the user path listed (JSON's "filepath" is below it).
	ListingPrinter(OutputFormat format, std::string directory);

	// One entry. Refuses (EPROTO) a name that is not one path component:
	// "filepath" would lie about where the entry is. Called from the guest
	// session's callback: returns errors, never throws.
	Status add(const GuestEntry &entry) noexcept;
	// The end of the listing (closes the JSON array), flushed.
	Status finish() noexcept;
	// Something was written to stdout already.
	bool started() const noexcept { return started_; }

private:
	Status append(const GuestEntry &entry);
	Status flush() noexcept;

	OutputFormat format_;
	std::string directory_;
	std::string pending_;
	std::uint64_t count_ = 0;
	bool started_ = false;
};

} // namespace fr::client
