// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// What the helper (and, for early and per-archive messages, the client)
// checks on every disk image before QEMU sees it. The format always comes
// from the archive's name or the user's explicit choice, never from the
// image's bytes (a guest wrote those). These checks only verify that the
// bytes agree with the named format and refuse every construct that would
// make QEMU open another file by name:
//  - qcow2: a backing file, an external data file (shared/qcow2.h);
//  - vmdk:  anything but one self-contained binary sparse extent ("KDMV"):
//           a text descriptor (its extent lines name files: CVE-2010-3851's
//           class; QEMU parses every file that is not KDMV/COWD as one), an
//           ESX "COWD" extent, a KDMV header of capacity 0 (QEMU then reads
//           its embedded descriptor as a text descriptor), a parent disk;
//  - vdi:   anything but a normal or fixed image (no differencing/undo);
//  - vhdx:  a differencing disk (has-parent flag or a parent locator);
//  - raw:   nothing to check: raw is raw.
// And an image is a regular file on a disk filesystem: never procfs, sysfs,
// devtmpfs, debugfs, securityfs, cgroupfs and their kin (an open of
// /proc/kallsyms or /proc/<pid>/maps with more privilege than the caller's
// would leak what the caller could not read).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "shared/helper_contract.h"
#include "shared/result.h"

namespace fr {

// Reads up to out.size() bytes at `offset`; returns how many were read
// (fewer only at the end of the image). Error: the read's errno.
using ReadAt = std::function<Result<std::size_t>(std::uint64_t offset, std::span<unsigned char> out)>;

// Readers over an fd (pread; the caller keeps owning the fd) and over bytes
// in memory (the fuzz targets and unit tests).
ReadAt fdReader(int fd);
ReadAt bytesReader(std::string_view bytes);

// The header checks of the formats above. Error (naming `what`): EINVAL when
// the bytes are not the format at all or are malformed, EPERM for a
// well-formed image that is refused (it would open other files, or needs a
// parent disk), or the read's errno.
Status checkVmdkHeader(const ReadAt &read, std::string_view what);
Status checkVdiHeader(const ReadAt &read, std::string_view what);
Status checkVhdxHeader(const ReadAt &read, std::string_view what);

// The check for `format` on an open image (qcow2: checkQcow2File; raw:
// nothing). The caller keeps owning `fd`.
Status checkImageHeader(int fd, contract::ImageFormat format, std::string_view what);

// The name of the kernel filesystem with this statfs magic ("procfs",
// "sysfs", ...), nullopt for any other filesystem.
std::optional<std::string_view> kernelFilesystemName(std::uint64_t magic) noexcept;

// The filesystem type of mount `mountId` in a /proc/self/mountinfo text
// ("devtmpfs", "tmpfs", ...), nullopt when the id is not listed.
std::optional<std::string_view> mountFilesystemType(std::string_view mountinfo,
						    std::uint64_t mountId) noexcept;

// Whether `fd` is a regular file on a filesystem that may hold disk images:
// fstat (a regular file), fstatfs (not a kernel filesystem) and, for the
// tmpfs magic that devtmpfs shares, the mount's type from
// /proc/self/mountinfo. Error: EPERM naming the filesystem or "not a regular
// file", or the failing call's errno (fail closed: an unknown filesystem
// type on a tmpfs magic is refused).
Status checkImageFile(int fd, std::string_view what);

} // namespace fr
