// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's virtual tree (docs/protocol.md, "Paths"):
//
//   /                                  the disks: disk0, disk1, ...; lvm
//                                      and md when there are volume groups
//                                      spanning disks / md arrays
//   /disk<N>                           buckets: part (a partition table),
//                                      raw (the whole disk's content), lvm
//                                      (volume groups on this disk only)
//   /disk<N>/part/<n>/<rest>           inside partition n
//   /disk<N>/raw/<rest>                inside the whole disk
//   /disk<N>/lvm/<vg>/<lv>/<rest>      inside a logical volume
//   /lvm/<vg>/<lv>/<rest>              a volume group on several disks
//   /md/<name>/<rest>                  an assembled md array
//   <volume>/luks/<rest>               inside an opened LUKS volume
//   <btrfs volume>/subvol/<path>/<rest> inside a btrfs subvolume
//
// splitVirtualPath checks a request path strictly (proto::checkPath: no
// "." or "..", no empty component, no NUL, <= 4096 bytes) and splits it;
// the Volumes decide what the components mean. Opening `rest` beneath a
// mount is still done with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_XDEV): this parser is the first wall, not the only one.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::guest {

inline constexpr std::uint32_t kMaxDisks = 256;       // disk<N>: N < kMaxDisks
inline constexpr std::uint32_t kMaxPartition = 4096;  // part/<n>: 1 <= n <= kMaxPartition

// The bucket names (upstream proxmox-file-restore's, and issue 14's).
inline constexpr std::string_view kBucketPart = "part";
inline constexpr std::string_view kBucketRaw = "raw";
inline constexpr std::string_view kBucketLvm = "lvm";
inline constexpr std::string_view kTopMd = "md";
inline constexpr std::string_view kLayerLuks = "luks";
inline constexpr std::string_view kLayerSubvol = "subvol";

struct VirtualPath {
	std::vector<std::string_view> components; // views into the request path
	std::string lastName;                     // the last component ("" for "/")
};

// EINVAL for a malformed path (proto::checkPath's rules).
Result<VirtualPath> splitVirtualPath(std::string_view path);

// Plain decimal, no sign, no leading zero, value <= max.
bool parseVirtualNumber(std::string_view text, std::uint32_t max, std::uint32_t &value) noexcept;

// "/"-joined components from `from` on.
std::string joinComponents(const std::vector<std::string_view> &components, std::size_t from);

} // namespace fr::guest
