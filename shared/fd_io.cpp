// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/fd_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "shared/unique_fd.h"

namespace fr {

Status writeAll(int fd, std::span<const std::uint8_t> data, std::string_view what) noexcept
{
	while (!data.empty()) {
		const ssize_t n = ::write(fd, data.data(), data.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "write", what);
		data = data.subspan(static_cast<std::size_t>(n));
	}
	return {};
}

Status writeAll(int fd, std::string_view data, std::string_view what) noexcept
{
	return writeAll(fd, std::span(reinterpret_cast<const std::uint8_t *>(data.data()), data.size()), what);
}

Result<std::string> readAll(int fd, std::size_t limit, std::string_view what)
{
	std::string text;
	char buf[65536];
	for (;;) {
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", what);
		if (n == 0)
			return text;
		text.append(buf, static_cast<std::size_t>(n));
		if (text.size() > limit)
			return Error::invalid(EFBIG, "read", what, "larger than %zu bytes", limit);
	}
}

Result<std::string> readFile(const std::string &path, std::size_t limit, int extraFlags)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | extraFlags));
	if (!fd.isValid())
		return Error(errno, "open", path);
	return readAll(fd.get(), limit, path);
}

} // namespace fr
