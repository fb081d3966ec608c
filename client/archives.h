// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Which disk images a snapshot holds, and their formats. The format is read
// from the image's header by the client and always passed to the helper
// (and so to QEMU) explicitly: QEMU never probes.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

// Bytes of the header the detection looks at (VDI's signature sits at 0x40).
inline constexpr std::size_t kHeaderBytes = 512;

// The format whose magic `header` starts with, nullopt when none matches
// (which means raw). Images of formats QEMU knows but file-restore does not
// serve (VHD "conectix", QED) give EINVAL: as raw they would only show
// their container bytes.
Result<std::optional<ImageFormat>> detectMagic(std::span<const unsigned char> header);

// Reads the header from `fd` (which the caller keeps owning) and detects.
Result<ImageFormat> detectFormat(int fd, std::string_view nameForErrors);

// Whether a file name looks like a disk image: .img .raw .qcow2 .vmdk
// .vdi .vhdx (case-insensitive).
bool hasImageExtension(std::string_view fileName);

// The disk images of a snapshot directory, sorted by name (byte order):
// regular files, not hidden, with an image extension or a known magic. A
// file the user cannot read (the helper's policy may still grant it) is
// taken by its extension, format from the extension (else raw). ENOENT when
// the directory holds none.
Result<std::vector<Archive>> snapshotArchives(const std::string &snapshotDir);

// Ad-hoc images (--image): each named by its file name, format from its
// header. Paths are made canonical. Two images with the same file name are
// refused (EINVAL): names address the archives.
Result<std::vector<Archive>> imageArchives(const std::vector<std::string> &paths);

// A snapshot argument made relative and normalised ("vm/100/x"): no "..",
// no empty result.
Result<std::string> normaliseSnapshot(std::string_view snapshot);

// realpath(3) as a Result.
Result<std::string> canonicalPath(const std::string &path, const char *what);

} // namespace fr::client
