// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/fsutil.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shared/fd_io.h"
#include "shared/log.h"

namespace fr::guest {

Result<UniqueFd> openBeneath(int dirfd, std::string_view path, int flags)
{
	const std::string p = path.empty() ? std::string(".") : std::string(path);
	UniqueFd fd(openAt2(dirfd, p.c_str(), static_cast<std::uint64_t>(flags | O_NOFOLLOW),
			    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV));
	if (!fd.isValid())
		return Error(errno, "openat2", path.substr(0, 200));
	return fd;
}

std::optional<proto::Entry> entryFromStat(const struct stat &st, std::string_view name)
{
	proto::Entry entry;
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		entry.type = proto::EntryType::File;
		break;
	case S_IFDIR:
		entry.type = proto::EntryType::Directory;
		break;
	case S_IFLNK:
		entry.type = proto::EntryType::Symlink;
		break;
	case S_IFBLK:
		entry.type = proto::EntryType::BlockDevice;
		break;
	case S_IFCHR:
		entry.type = proto::EntryType::CharDevice;
		break;
	case S_IFIFO:
		entry.type = proto::EntryType::Fifo;
		break;
	case S_IFSOCK:
		entry.type = proto::EntryType::Socket;
		break;
	default:
		return std::nullopt;
	}
	entry.mode = st.st_mode & 07777;
	entry.size = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
	entry.mtimeSec = st.st_mtim.tv_sec;
	entry.mtimeNsec = st.st_mtim.tv_nsec >= 0 && st.st_mtim.tv_nsec < 1000000000
				  ? static_cast<std::uint32_t>(st.st_mtim.tv_nsec)
				  : 0;
	entry.name = std::string(name);
	return entry;
}

Result<std::string> readLinkTarget(int linkFd)
{
	std::string target(proto::kPathMax + 1, '\0');
	const ssize_t n = ::readlinkat(linkFd, "", target.data(), target.size());
	if (n < 0)
		return Error(errno, "readlinkat", "symlink");
	if (static_cast<std::size_t>(n) > proto::kPathMax ||
	    std::memchr(target.data(), '\0', static_cast<std::size_t>(n)) != nullptr) {
		logf(LogLevel::Warning, "symlink target over %zu bytes or with a NUL: left out",
		     proto::kPathMax);
		return std::string();
	}
	target.resize(static_cast<std::size_t>(n));
	return target;
}

Result<std::optional<std::string_view>> DirReader::next()
{
	// The kernel's record layout, read through offsetof, never as a struct.
	struct Dirent64 {
		std::uint64_t ino;
		std::int64_t off;
		unsigned short reclen; // cppcheck-suppress unusedStructMember
		unsigned char type;    // cppcheck-suppress unusedStructMember
		char name[1];          // cppcheck-suppress unusedStructMember
	};
	for (;;) {
		if (pos_ >= end_) {
			if (done_)
				return std::optional<std::string_view>();
			const long n = ::syscall(SYS_getdents64, dir_.get(), buf_.data(), buf_.size());
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EINVAL && buf_.size() < std::size_t{256} * 1024) {
					// One entry larger than the buffer: grow once.
					buf_.resize(buf_.size() * 4);
					continue;
				}
				return Error(errno, "getdents64", "directory");
			}
			if (n == 0) {
				done_ = true;
				return std::optional<std::string_view>();
			}
			pos_ = 0;
			end_ = static_cast<std::size_t>(n);
		}
		const char *at = buf_.data() + pos_;
		unsigned short reclen;
		std::memcpy(&reclen, at + offsetof(Dirent64, reclen), sizeof(reclen));
		if (reclen < offsetof(Dirent64, name) + 1 || pos_ + reclen > end_)
			return Error(EIO, "getdents64", "malformed directory record");
		const char *name = at + offsetof(Dirent64, name);
		const std::size_t maxLen = reclen - offsetof(Dirent64, name);
		const std::size_t len = ::strnlen(name, maxLen);
		pos_ += reclen;
		const std::string_view view(name, len);
		if (view == "." || view == "..")
			continue;
		std::memcpy(&ino_, at + offsetof(Dirent64, ino), sizeof(ino_));
		return std::optional<std::string_view>(view);
	}
}

long peakRssKiB()
{
	// VmHWM from /proc (mounted first thing); getrusage's ru_maxrss lags
	// the kernel's batched RSS counters early in a process's life.
	if (FILE *status = std::fopen("/proc/self/status", "re")) {
		char line[256];
		long kib = -1;
		while (std::fgets(line, sizeof(line), status) != nullptr) {
			if (std::strncmp(line, "VmHWM:", 6) == 0) {
				char *end = nullptr;
				kib = std::strtol(line + 6, &end, 10);
				if (end == line + 6)
					kib = -1;
				break;
			}
		}
		(void)std::fclose(status);
		if (kib >= 0)
			return kib;
	}
	struct rusage usage {};
	return ::getrusage(RUSAGE_SELF, &usage) == 0 ? usage.ru_maxrss : -1;
}

} // namespace fr::guest
