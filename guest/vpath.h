// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's virtual tree (docs/protocol.md, "Paths"):
//
//   /                          the disks: disk0, disk1, ...
//   /disk<N>                   buckets: part (a partition table), raw (a
//                              filesystem on the whole disk)
//   /disk<N>/part              the partitions: 1, 2, ...
//   /disk<N>/part/<n>/<rest>   inside partition n's filesystem
//   /disk<N>/raw/<rest>        inside the whole disk's filesystem
//
// parseVirtualPath turns a request path into one of these, strictly: the
// path must pass proto::checkPath (no "." or "..", no empty component, no
// NUL, <= 4096 bytes), numbers are plain decimal without leading zeros, and
// `rest` is a relative path of valid names joined by single '/' (empty for a
// filesystem's root), never starting with '/', never holding "..". Opening
// `rest` beneath the mount is still done with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV): this parser is the first wall,
// not the only one.

#include <cstdint>
#include <string>
#include <string_view>

#include "shared/result.h"

namespace fr::guest {

inline constexpr std::uint32_t kMaxDisks = 256;       // disk<N>: N < kMaxDisks
inline constexpr std::uint32_t kMaxPartition = 4096;  // part/<n>: 1 <= n <= kMaxPartition

// The bucket names below disk<N> (upstream proxmox-file-restore's names).
inline constexpr std::string_view kBucketPart = "part";
inline constexpr std::string_view kBucketRaw = "raw";

enum class Bucket { Part, Raw };

struct VirtualPath {
	enum class Kind {
		Root,       // "/"
		Disk,       // "/disk<N>"
		Partitions, // "/disk<N>/part"
		Volume,     // inside a filesystem: "/disk<N>/part/<n>/..." or "/disk<N>/raw/..."
	};
	Kind kind = Kind::Root;
	std::uint32_t disk = 0;
	Bucket bucket = Bucket::Raw;
	std::uint32_t partition = 0; // Bucket::Part only
	std::string rest;            // Volume only: "" is the filesystem's root
	std::string lastName;        // the last component ("" for "/")
};

// Errors: EINVAL for a malformed path (proto::checkPath's rules), ENOENT for a
// well-formed path outside the tree (an unknown top-level name, "disk01",
// "disk0/other", partition 0).
Result<VirtualPath> parseVirtualPath(std::string_view path);

} // namespace fr::guest
