// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Walking an untrusted filesystem without leaving it.

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/protocol.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// openat2(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW) with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV: no "..",
// no absolute path, no symlink anywhere (a trailing symlink opens as itself
// with O_PATH), no crossing into another mount. `path` "" means dirfd itself.
// Errors: the kernel's (ELOOP: a symlink on the way; EXDEV: another mount).
Result<UniqueFd> openBeneath(int dirfd, std::string_view path, int flags);

// The protocol entry for `st`, named `name` (checked by the caller).
// linkTarget is filled by the caller for symlinks. Returns nullopt for a file
// type the protocol does not know.
std::optional<proto::Entry> entryFromStat(const struct stat &st, std::string_view name);

// Reads a symlink's target through an O_PATH fd of the link. Targets over
// proto::kPathMax bytes come back truncated to nothing, with a log line.
Result<std::string> readLinkTarget(int linkFd);

// Directory entries straight from getdents64, with a fixed buffer: memory
// per open directory stays small however deep a tree walk goes.
class DirReader {
public:
	explicit DirReader(UniqueFd dir) : dir_(std::move(dir)), buf_(std::size_t{16} * 1024) {}
	// The next name (not "." or ".."), or nullopt at the end. The view is
	// valid until the next call.
	Result<std::optional<std::string_view>> next();
	int fd() const noexcept { return dir_.get(); }
	// The inode number of the name next() returned last.
	std::uint64_t ino() const noexcept { return ino_; }

private:
	UniqueFd dir_;
	std::vector<char> buf_;
	std::size_t pos_ = 0;
	std::size_t end_ = 0;
	std::uint64_t ino_ = 0;
	bool done_ = false;
};

// The daemon's peak resident set (VmHWM), in KiB; for log
// lines that show its memory stays flat while large directories stream.
long peakRssKiB();

} // namespace fr::guest
