// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// What the helper opens or reads as root (the policy, granted images, the
// ticket pipe, /proc for the VM count) and the checks of
// every image fd; the caller's own paths are opened by the caller agent
// (helper/caller_agent.h). The caller keeps owning any fd passed in.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/helper_contract.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

// Reads the policy at `path`, trusting it only if every directory from "/"
// down and the file are root's and not group/world-writable, none a symlink
// (each component opened O_NOFOLLOW from the previous one's fd), the file
// regular and at most kPolicyMaxBytes. nullopt: it does not exist. Error:
// anything else; the helper then denies everything.
Result<std::optional<std::string>> readPolicyFile(std::string_view path);

// Opens an image below a directory the policy grants this caller, as root,
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV) from it. nullopt: below none of `grantedDirs` (the caller
// agent opens it). Error: openat2's errno.
std::optional<Result<UniqueFd>> openGrantedImage(const std::string &path,
						 const std::vector<std::string> &grantedDirs);

// What an image fd must be before QEMU gets it: a regular file on a disk
// filesystem, its header agreeing with `format` and naming no other file
// (shared/image_check.h); then O_NONBLOCK is cleared. Error: EPERM or EINVAL
// (refused) or the failing call's errno.
Status checkImageFd(int fd, contract::ImageFormat format, std::string_view what);

// An nbd image: `fd` must be a connected AF_UNIX stream socket (the
// client's end of its NBD server), nothing else. Error: EINVAL naming it.
Status checkNbdSocket(int fd);

// Reads the ticket from `fd` (a pipe): exactly abi::kTicketHexLength
// lowercase hex digits, waiting at most `timeoutMs` for them; more bytes
// already waiting behind them are an error. Error: EINVAL (not a pipe, bad
// ticket), ETIMEDOUT, or read's errno.
Result<std::string> readTicket(int fd, int timeoutMs);

} // namespace fr::helper
