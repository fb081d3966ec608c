// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Which disk images a snapshot holds, and their formats. The format comes
// from the archive's name (or the user's --image-format), never from its
// bytes: a guest wrote those (issue 11: a raw .img holding a VMDK text
// descriptor made QEMU open /etc/passwd). It is always passed to the helper
// (and so to QEMU) explicitly: QEMU never probes. The bytes are only checked
// to agree with the name (shared/image_check.h, the same checks the helper
// applies), so that a mismatch is an error that says so, never a silent
// switch.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

// The format a file name says: .img and .raw are raw, always; .qcow2 .vmdk
// .vdi .vhdx (case-insensitive). nullopt for any other name.
std::optional<ImageFormat> formatFromName(std::string_view fileName);

// Whether the open image `fd` (the caller keeps owning it) is what
// `format` says and names no other file: the helper's own checks, so that
// the user hears of a mismatch before any VM starts. EINVAL naming the
// image and what is wrong.
Status checkArchive(int fd, ImageFormat format, std::string_view nameForErrors);

// The disk images of a snapshot directory, sorted by name (byte order):
// regular files, not hidden, with an image name (formatFromName) or a
// disk-image name we cannot serve (.vhd). Each readable one is checked
// (checkArchive); one that fails stays in the list with the reason in
// Archive::unusable, so that one bad archive never hides the others. One
// the user cannot read (the helper's policy may still grant it) is left
// to the helper. ENOENT when the directory holds none.
Result<std::vector<Archive>> snapshotArchives(const std::string &snapshotDir);

// The archives that can be served, in order (the disks the VM gets).
std::vector<Archive> usableArchives(const std::vector<Archive> &archives);

// Ad-hoc images (--image): each named by its file name, the format from
// `format` when given (--image-format), else from the name, else raw; then
// checked (checkArchive). Paths are made canonical. Two images with the same
// file name are refused (EINVAL): names address the archives.
Result<std::vector<Archive>> imageArchives(const std::vector<std::string> &paths,
					   std::optional<ImageFormat> format = std::nullopt);

// A snapshot argument made relative and normalised ("vm/100/x"): no "..",
// no empty result.
Result<std::string> normaliseSnapshot(std::string_view snapshot);

// realpath(3) as a Result.
Result<std::string> canonicalPath(const std::string &path, const char *what);

} // namespace fr::client
