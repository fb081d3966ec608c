// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The qcow2 check the helper applies to every image passed as "qcow2"
// before QEMU sees it. A qcow2 header can make QEMU open other files by name
// (a backing file, an external data file), which would let a crafted image
// reach files the caller could not otherwise hand to the VM. The helper also
// tells QEMU backing=null; this check refuses such images outright, with a
// clear error, instead of letting them half-work.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shared/result.h"

namespace fr {

// Largest header area read: the header and its extensions live in the first
// cluster, and clusters are at most 2 MiB.
inline constexpr std::size_t kQcow2MaxHeaderArea = std::size_t{2} << 20;

// Checks a qcow2 header area (the file's first bytes: at least the header,
// ideally the whole first cluster). Refuses (Error naming `what`):
//  - wrong magic, a version other than 2 or 3, a bad header length or
//    cluster size (EINVAL);
//  - a backing file (offset or size non-zero) (EPERM);
//  - the external-data-file feature bit, or an external data file name
//    extension (EPERM);
//  - incompatible feature bits this check does not know (EPERM);
//  - encryption (EPERM: QEMU could not open it without a secret anyway);
//  - header extensions that run past `area` or past the first cluster (EINVAL).
// Pure function: no I/O, no allocation.
Status checkQcow2Header(std::string_view area, std::string_view what) noexcept;

// Reads the header area from `fd` with pread (offset 0; the fd's position is
// not used or changed) and checks it. The caller keeps owning `fd`. Error:
// the pread's errno, EINVAL for a short file, or checkQcow2Header's error.
Status checkQcow2File(int fd, std::string_view what) noexcept;

} // namespace fr
