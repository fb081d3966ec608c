// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/result.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace fr {

namespace {

void copyTruncated(char *dst, std::size_t dstSize, std::string_view src) noexcept
{
	const std::size_t n = src.size() < dstSize - 1 ? src.size() : dstSize - 1;
	if (n > 0) // an empty string_view may carry a null data(): memcpy's args must not be null
		std::memcpy(dst, src.data(), n);
	dst[n] = '\0';
}

} // namespace

Error::Error(int errnum, const char *call, std::string_view object) noexcept
	: errnum_(errnum), call_(call != nullptr ? call : "")
{
	copyTruncated(object_, sizeof(object_), object);
	detail_[0] = '\0';
}

Error Error::invalid(int errnum, const char *what, std::string_view object,
		     const char *fmt, ...) noexcept
{
	Error error(errnum, what, object);
	va_list args;
	va_start(args, fmt);
	(void)std::vsnprintf(error.detail_, sizeof(error.detail_), fmt, args);
	va_end(args);
	return error;
}

const char *Error::reason() const noexcept
{
	if (detail_[0] != '\0')
		return detail_;
	const char *text = strerrordesc_np(errnum_);
	return text != nullptr ? text : "Unknown error";
}

std::size_t Error::format(char *buf, std::size_t size) const noexcept
{
	const int n = std::snprintf(buf, size, "%s(%s): %s", call_, object_, reason());
	return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::string Error::message() const
{
	std::string out(call_);
	out += '(';
	out += object_;
	out += "): ";
	out += reason();
	return out;
}

} // namespace fr
