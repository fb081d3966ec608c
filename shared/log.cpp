// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/log.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "shared/fd_io.h"

namespace fr {

namespace {

const char *gIdentity = nullptr;
int gFd = 2;
LogLevel gLevel = LogLevel::Info;

// Appends "identity: " and returns the offset after it.
std::size_t prefix(char *buf, std::size_t size) noexcept
{
	if (gIdentity == nullptr)
		return 0;
	const int n = std::snprintf(buf, size, "%s: ", gIdentity);
	if (n < 0)
		return 0;
	return static_cast<std::size_t>(n) < size ? static_cast<std::size_t>(n) : size - 1;
}

// Writes the message as one line: every control byte in it (ESC, CR, a
// newline from some argument, DEL) as \xHH, so that what callers passed
// can neither drive the reader's terminal nor forge a second line.
void finish(char *buf, std::size_t size, std::size_t len) noexcept
{
	if (len >= size - 1)
		len = size - 2; // truncated
	char out[4 * 1024 + 2];
	std::size_t n = 0;
	for (std::size_t i = 0; i < len && n + 5 < sizeof(out); ++i) {
		const auto c = static_cast<unsigned char>(buf[i]);
		if (c >= 0x20 && c != 0x7f) {
			out[n++] = static_cast<char>(c);
			continue;
		}
		static const char hex[] = "0123456789abcdef";
		out[n++] = '\\';
		out[n++] = 'x';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	out[n++] = '\n';
	(void)writeAll(gFd, std::string_view(out, n), "log"); // nowhere to report it
}

} // namespace

void setLogIdentity(const char *identity) noexcept { gIdentity = identity; }
void setLogFd(int fd) noexcept { gFd = fd; }
void setLogLevel(LogLevel level) noexcept { gLevel = level; }
LogLevel logLevel() noexcept { return gLevel; }

void logf(LogLevel level, const char *fmt, ...) noexcept
{
	if (level < gLevel)
		return;
	const int savedErrno = errno;
	char buf[1024];
	std::size_t len = prefix(buf, sizeof(buf));
	va_list args;
	va_start(args, fmt);
	const int n = std::vsnprintf(buf + len, sizeof(buf) - len, fmt, args);
	va_end(args);
	if (n > 0)
		len += static_cast<std::size_t>(n);
	finish(buf, sizeof(buf), len);
	errno = savedErrno;
}

void logError(const Error &error, LogLevel level) noexcept
{
	if (level < gLevel)
		return;
	const int savedErrno = errno;
	char buf[1024];
	std::size_t len = prefix(buf, sizeof(buf));
	len += error.format(buf + len, sizeof(buf) - len);
	finish(buf, sizeof(buf), len);
	errno = savedErrno;
}

} // namespace fr
