// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The VM's initramfs: the base image from the image directory with the
// per-VM ticket appended as a second, uncompressed cpio archive, in a sealed
// memfd. The kernel unpacks concatenated archives in order (compressed or
// not), skipping zero padding between them.

#include <string>
#include <string_view>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr {

// Upper bound on the base initramfs (refused above).
inline constexpr long long kMaxInitramfsBytes = 1LL << 30;

// The bytes appended after the base image of length `baseSize`: zero padding
// to a 4-byte boundary (a new cpio must start 4-aligned), then a newc
// ("070701") archive holding abi::kTicketPath, mode 0400, uid/gid 0, with
// the ticket's 64 hex digits as its content (no newline), then the trailer.
std::string ticketArchive(std::string_view ticket, std::size_t baseSize);

// Copies the base image from `baseFd` (the caller keeps owning it) into a
// new memfd, appends ticketArchive(), seals the memfd against any change and
// returns it reopened read-only. Error: the failing call (memfd_create,
// read, write, fcntl(F_ADD_SEALS), open of /proc/self/fd/N), or EFBIG for a
// base larger than kMaxInitramfsBytes.
Result<UniqueFd> buildInitramfs(int baseFd, std::string_view ticket);

} // namespace fr
