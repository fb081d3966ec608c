// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "client/file_lock.h"
#include "shared/fd_io.h"
#include "shared/unique_fd.h"

namespace fr::client {

namespace {

constexpr const char *kTempFile = "vm-map.json.tmp";

std::string utcStamp()
{
	const std::time_t now = std::time(nullptr);
	std::tm tm {};
	::gmtime_r(&now, &tm);
	char buf[32];
	if (std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm) == 0)
		return std::to_string(now);
	return buf;
}

} // namespace

Result<StateMap> StateStore::load(std::optional<CorruptMap> &corrupt)
{
	UniqueFd fd(::openat(dirFd_, kStateMapFile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
	if (!fd.isValid()) {
		if (errno == ENOENT)
			return StateMap{};
		return Error(errno, "open", dirPath_ + "/" + kStateMapFile);
	}
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0)
		return Error(errno, "fstat", dirPath_ + "/" + kStateMapFile);
	// The directory is ours and 0700, so this only trips when something is
	// badly wrong (another uid's file copied in): refuse rather than trust.
	if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid())
		return Error::invalid(EPERM, "state map", dirPath_ + "/" + kStateMapFile,
				      "not a regular file owned by us (uid %u)", ::geteuid());
	if ((st.st_mode & 077) != 0 && ::fchmod(fd.get(), 0600) != 0)
		return Error(errno, "chmod", dirPath_ + "/" + kStateMapFile);

	std::string reason;
	Result<std::string> text = readAll(fd.get(), kStateMapMaxBytes, kStateMapFile);
	if (text) {
		Result<StateMap> map = parseStateMap(*text);
		if (map)
			return map;
		reason = map.error().message();
	} else if (text.error().errnum() == EFBIG) {
		reason = text.error().message();
	} else {
		return text.error();
	}

	// Keep it for the user (and for recovering its VMs by hand), under a
	// name no later call will reuse.
	const std::string base = std::string(kStateMapFile) + ".corrupt-" + utcStamp();
	std::string kept = base;
	for (int i = 1;; ++i) {
		if (::renameat2(dirFd_, kStateMapFile, dirFd_, kept.c_str(), RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST || i > 100)
			return Error(errno, "rename", dirPath_ + "/" + kStateMapFile);
		kept = base + "." + std::to_string(i);
	}
	corrupt = CorruptMap{dirPath_ + "/" + kept, reason};
	return StateMap{};
}

Status StateStore::store(const StateMap &map)
{
	const std::string text = serializeStateMap(map);
	// A temporary left by a killed writer is ours to replace: we hold the
	// lock, so no one else is writing it.
	if (::unlinkat(dirFd_, kTempFile, 0) != 0 && errno != ENOENT)
		return Error(errno, "unlink", dirPath_ + "/" + kTempFile);
	UniqueFd fd(::openat(dirFd_, kTempFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0600));
	if (!fd.isValid())
		return Error(errno, "open", dirPath_ + "/" + kTempFile);
	Status written = writeAll(fd.get(), text, kTempFile);
	if (written && ::fsync(fd.get()) != 0)
		written = Error(errno, "fsync", dirPath_ + "/" + kTempFile);
	if (!written) {
		::unlinkat(dirFd_, kTempFile, 0);
		return written;
	}
	fd.reset();
	if (::renameat(dirFd_, kTempFile, dirFd_, kStateMapFile) != 0) {
		const Error error(errno, "rename", dirPath_ + "/" + kStateMapFile);
		::unlinkat(dirFd_, kTempFile, 0);
		return error;
	}
	return {};
}

Status StateStore::update(Deadline deadline, const Change &change,
			  std::optional<CorruptMap> &corrupt)
{
	Result<FileLock> lock = FileLock::acquire(dirFd_, kStateLockFile, deadline, "state map lock");
	if (!lock)
		return lock.error();
	Result<StateMap> map = load(corrupt);
	if (!map)
		return map.error();
	bool changed = false;
	Status status = change(*map, changed);
	if (!status)
		return status;
	if (changed || corrupt)
		return store(*map);
	return {};
}

Result<StateMap> StateStore::read(Deadline deadline, std::optional<CorruptMap> &corrupt)
{
	StateMap copy;
	Status status = update(
		deadline,
		// cppcheck-suppress constParameter ; the signature of a Change
		[&](StateMap &map, bool &) {
			copy = map;
			return Status{};
		},
		corrupt);
	if (!status)
		return status.error();
	return copy;
}

} // namespace fr::client
