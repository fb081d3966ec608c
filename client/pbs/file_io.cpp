// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "shared/display.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

Result<Bytes> readWholeFd(int fd, std::size_t maxSize, const std::string &displayName)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", escapeForDisplay(displayName));
	if (!S_ISREG(st.st_mode))
		return Error::invalid(EINVAL, "read", escapeForDisplay(displayName),
				      "not a regular file");
	if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > maxSize)
		return Error::invalid(EFBIG, "read", escapeForDisplay(displayName),
				      "%lld bytes: larger than the %zu allowed",
				      static_cast<long long>(st.st_size), maxSize);
	const std::size_t size = static_cast<std::size_t>(st.st_size);
	Bytes out(size);
	std::size_t got = 0;
	while (got < size) {
		const ssize_t n = ::pread(fd, out.data() + got, size - got, static_cast<off_t>(got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", escapeForDisplay(displayName));
		if (n == 0)
			return Error::invalid(EIO, "read", escapeForDisplay(displayName),
					      "shrank while being read (%zu of %zu bytes)", got, size);
		got += static_cast<std::size_t>(n);
	}
	return out;
}

Result<Bytes> readWholeFile(int dirFd, const std::string &name, std::size_t maxSize,
			    const std::string &displayName)
{
	UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
	if (!fd.isValid())
		return Error(errno, "open", escapeForDisplay(displayName));
	return readWholeFd(fd.get(), maxSize, displayName);
}

} // namespace fr::pbs
