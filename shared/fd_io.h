// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Whole reads and writes on file descriptors, once for every component:
// retried after EINTR and short transfers. The fds are borrowed, never
// closed. Errors carry the failing call's errno and name `what` as their
// object.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "shared/result.h"

namespace fr {

// Writes all of `data`. Allocates nothing (usable between fork and exec).
// Errors: write's errno (EPIPE where the reader went away and SIGPIPE is
// ignored).
Status writeAll(int fd, std::span<const std::uint8_t> data, std::string_view what) noexcept;
Status writeAll(int fd, std::string_view data, std::string_view what) noexcept;

// Reads `fd` to its end. Errors: read's errno; EFBIG when it holds more
// than `limit` bytes (nothing beyond limit + one read is kept).
Result<std::string> readAll(int fd, std::size_t limit, std::string_view what);

// Opens `path` read-only (O_CLOEXEC | extraFlags, e.g. O_NOFOLLOW) and
// reads it to its end, as readAll. Errors: open's errno too; the object is
// the path.
Result<std::string> readFile(const std::string &path, std::size_t limit, int extraFlags = 0);

// openat2(2), which glibc 2.36 does not wrap: O_CLOEXEC is added; retried
// after EINTR and EAGAIN (a rename or mount raced the lookup; at most 8
// times). Returns the fd (the caller owns it) or -1 with errno. No heap.
int openAt2(int dirfd, const char *path, std::uint64_t flags, std::uint64_t resolve,
	    mode_t mode = 0) noexcept;

// One datagram on a unix socket with an fd beside it (SCM_RIGHTS; -1:
// none), and its receiving end. MSG_NOSIGNAL: a vanished peer is EPIPE.
// receiveWithFd returns the bytes read (0: the peer is gone, -1: errno) and
// sets `fd` to the fd received (close-on-exec, owned by the caller) or -1.
Status sendWithFd(int sock, std::span<const std::uint8_t> data, int fd) noexcept;
ssize_t receiveWithFd(int sock, std::span<std::uint8_t> data, int &fd) noexcept;

} // namespace fr
