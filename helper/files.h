// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Everything the helper opens or creates. Each function says with whose
// identity it opens; the caller keeps owning any fd passed in.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "helper/identity.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

// Reads the policy at `path` as root, trusting it only if every directory
// from "/" down and the file itself are owned by root and not writable by
// group or others, nothing on the way is a symlink (each component opened
// O_NOFOLLOW relative to the previous one's fd), the file is regular and at
// most kPolicyMaxBytes. nullopt: the file (or a directory on the way)
// does not exist. Error: anything else; the helper then denies everything.
Result<std::optional<std::string>> readPolicyFile(std::string_view path);

// Opens an image read-only (O_RDONLY|O_NOCTTY|O_NONBLOCK, O_NONBLOCK cleared
// afterwards) and proves it is a regular file by fstat on the fd:
//  - below one of `grantedDirs` (policy image-dir lines for this caller):
//    as root, the directory opened without following symlinks, the rest
//    with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//    RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
//  - anywhere else: with the caller's fsuid/fsgid (so exactly what the caller
//    could open), openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS).
// Error: openat2's errno, or EPERM "not a regular file".
Result<UniqueFd> openImage(const std::string &path, const std::vector<std::string> &grantedDirs,
			   const Identity &caller);

// Opens a file of the image directory (kernel, base initramfs) read-only
// with the caller's identity, no magic links, regular files only.
Result<UniqueFd> openAsCaller(const std::string &path, const Identity &caller);

// Creates the serial transport's listening socket at `path` with the
// caller's fsuid/fsgid (never as root), mode 0600 (umask 0177 around bind).
// bind() refuses an existing path (EADDRINUSE), symlinks included.
Result<UniqueFd> createSerialSocket(const std::string &path, const Identity &caller);
// Removes it again (as the caller) when a later step fails.
void removeSerialSocket(const std::string &path, const Identity &caller) noexcept;

// Reads the ticket from `fd` (a pipe): exactly abi::kTicketHexLength
// lowercase hex digits, waiting at most `timeoutMs` for them; more bytes
// already waiting behind them are an error. Error: EINVAL (not a pipe, bad
// ticket), ETIMEDOUT, or read's errno.
Result<std::string> readTicket(int fd, int timeoutMs);

// The number of running QEMUs started by this helper for `uid`: processes
// whose real uid is `uid`, whose argv[0] is `qemuBinary` and which carry
// the "-name guest=file-restore:" marker. Read from /proc as root.
std::uint32_t countRunningVms(uid_t uid, std::string_view qemuBinary);

// The host's TSC frequency in kHz (under TCG the guest sees the host's
// TSC): /sys/devices/system/cpu/cpu0/tsc_freq_khz where the kernel offers
// it, else measured against CLOCK_MONOTONIC_RAW for ~20 ms. nullopt on
// anything but x86-64 or when the measurement is implausible.
std::optional<std::uint64_t> hostTscKhz();

} // namespace fr::helper
