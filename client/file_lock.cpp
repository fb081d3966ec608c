// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "shared/display.h"

namespace fr::client {

namespace {

Result<UniqueFd> openLockFile(int dirFd, const std::string &name)
{
	UniqueFd fd(::openat(dirFd, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!fd.isValid())
		return Error(errno, "open", escapeForDisplay(name));
	return fd;
}

Result<bool> tryLock(int fd, const std::string &name, FileLock::Mode mode)
{
	const int op = mode == FileLock::Mode::Shared ? LOCK_SH : LOCK_EX;
	for (;;) {
		if (::flock(fd, op | LOCK_NB) == 0)
			return true;
		if (errno == EWOULDBLOCK)
			return false;
		if (errno != EINTR)
			return Error(errno, "flock", escapeForDisplay(name));
	}
}

} // namespace

Result<FileLock> FileLock::acquire(int dirFd, const std::string &name, Deadline deadline,
				   const char *what, Mode mode)
{
	Result<UniqueFd> fd = openLockFile(dirFd, name);
	if (!fd)
		return fd.error();
	// Polled rather than a blocking flock() under a timer signal: simple,
	// thread-safe, and the lock is rarely contended for long.
	auto pause = std::chrono::milliseconds(5);
	for (;;) {
		Result<bool> locked = tryLock(fd->get(), name, mode);
		if (!locked)
			return locked.error();
		if (*locked)
			return FileLock(std::move(*fd));
		if (Clock::now() >= deadline)
			return Error::invalid(ETIMEDOUT, what, escapeForDisplay(name),
					      "timed out waiting for the lock (another "
					      "file-restore call holds it)");
		std::this_thread::sleep_for(std::min(pause, remaining(deadline)));
		pause = std::min(pause * 2, std::chrono::milliseconds(100));
	}
}

Result<std::optional<FileLock>> FileLock::tryAcquire(int dirFd, const std::string &name, Mode mode)
{
	Result<UniqueFd> fd = openLockFile(dirFd, name);
	if (!fd)
		return fd.error();
	Result<bool> locked = tryLock(fd->get(), name, mode);
	if (!locked)
		return locked.error();
	if (!*locked)
		return std::optional<FileLock>();
	return std::optional<FileLock>(FileLock(std::move(*fd)));
}

Status FileLock::downgrade()
{
	for (;;) {
		if (::flock(fd_.get(), LOCK_SH) == 0)
			return {};
		if (errno != EINTR)
			return Error(errno, "flock", "downgrade");
	}
}

} // namespace fr::client
