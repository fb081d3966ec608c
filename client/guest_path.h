// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The virtual hierarchy users address, "/<archive>/<bucket>/<component>/...",
// and the guest's, "/disk<N>/<bucket>/<component>/...": the guest knows its
// disks only by index (virtio serials hold 20 bytes), the client maps names.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

// Longest path a user may ask for (bytes), the guest protocol's limit.
inline constexpr std::size_t kUserPathMax = 4096;
inline constexpr std::size_t kNameMax = 255;

// Splits a user path into its components. Leading, trailing and doubled '/'
// and "." components are dropped ("" and "/" give no components). Refused
// (EINVAL): "..", NUL bytes, a component longer than 255 bytes, a path
// longer than kUserPathMax.
Result<std::vector<std::string>> splitUserPath(std::string_view path);

// "/" + components joined by '/'.
std::string joinPath(const std::vector<std::string> &components);

// The guest's top-level trees of volumes that are no one archive's: a
// volume group spanning archives, md arrays, ZFS pools (docs/client.md).
// An archive of the same name takes precedence.
inline constexpr std::string_view kVolumeTrees[] = {"lvm", "md", "zfs"};
bool isVolumeTree(std::string_view name) noexcept;

// Where a user path points.
struct GuestTarget {
	// True for "/": the client lists the archives itself, then the guest's
	// volume trees.
	bool isRoot = false;
	// True for "/lvm/...", "/md/...", "/zfs/...": a path in one of the
	// guest's volume trees (disk is then meaningless).
	bool isVolumeTree = false;
	std::size_t disk = 0;
	// "/disk<N>[/rest]" (or "/lvm[/rest]", ...) for the guest.
	std::string guestPath;
	// The normalised user path ("/" or "/<archive>[/rest]").
	std::string userPath;
	// The last component of userPath (empty for the root).
	std::string baseName;
};

// Maps a user path onto the guest's hierarchy. ENOENT (naming the archive)
// when the first component is no archive of `archives` and no volume tree.
Result<GuestTarget> mapToGuest(const std::vector<Archive> &archives, std::string_view userPath);

// "/disk<index>".
std::string guestDiskPath(std::size_t index);

// The guest's words about `target` (a message, already escaped for
// display) in the user's terms: the guest's name of the target's disk
// ("/disk<N>", where it stands as a path of its own) becomes "/<archive>".
std::string toUserTerms(std::string_view text, const GuestTarget &target);

} // namespace fr::client
