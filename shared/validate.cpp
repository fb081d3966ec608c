// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/validate.h"

#include <cerrno>

namespace fr {

namespace {

// Shows at most this much of a hostile value in an error message.
constexpr std::size_t kShown = 64;

std::string_view shown(std::string_view text) noexcept
{
	return text.substr(0, kShown);
}

// All paths share the structural rules; `byteOk` decides the byte set.
template <typename ByteOk>
Status checkPathShape(std::string_view path, const char *what, ByteOk byteOk) noexcept
{
	if (path.empty() || path.front() != '/')
		return Error::invalid(EINVAL, what, shown(path), "must be an absolute path");
	if (path.size() > kPathMax)
		return Error::invalid(ENAMETOOLONG, what, shown(path), "longer than %zu bytes", kPathMax);
	for (std::size_t i = 0; i < path.size(); ++i) {
		const auto c = static_cast<unsigned char>(path[i]);
		if (!byteOk(c))
			return Error::invalid(EINVAL, what, shown(path),
					      "byte \\x%02x at offset %zu is not allowed", c, i);
	}
	// Components: no "", ".", ".." (a trailing '/' is an empty component too,
	// except for "/" itself).
	std::size_t start = 1;
	while (start <= path.size()) {
		std::size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		const std::string_view component = path.substr(start, end - start);
		if (path.size() > 1 && (component.empty() || component == "." || component == ".."))
			return Error::invalid(EINVAL, what, shown(path),
					      "empty, '.' or '..' path component");
		start = end + 1;
	}
	return {};
}

} // namespace

Result<std::uint64_t> parseDecimal(std::string_view text, std::uint64_t min, std::uint64_t max,
				   const char *what) noexcept
{
	if (text.empty() || text.size() > 20)
		return Error::invalid(EINVAL, what, shown(text), "must be a decimal integer from %llu to %llu",
				      static_cast<unsigned long long>(min),
				      static_cast<unsigned long long>(max));
	if (text.size() > 1 && text.front() == '0')
		return Error::invalid(EINVAL, what, shown(text), "leading zeros are not allowed");
	std::uint64_t value = 0;
	for (char c : text) {
		if (c < '0' || c > '9')
			return Error::invalid(EINVAL, what, shown(text),
					      "must be a decimal integer from %llu to %llu",
					      static_cast<unsigned long long>(min),
					      static_cast<unsigned long long>(max));
		const auto digit = static_cast<std::uint64_t>(c - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return Error::invalid(ERANGE, what, shown(text), "out of range %llu..%llu",
					      static_cast<unsigned long long>(min),
					      static_cast<unsigned long long>(max));
		value = value * 10 + digit;
	}
	if (value < min || value > max)
		return Error::invalid(ERANGE, what, shown(text), "out of range %llu..%llu",
				      static_cast<unsigned long long>(min),
				      static_cast<unsigned long long>(max));
	return value;
}

Status checkChars(std::string_view text, const CharSet &allowed, std::size_t maxLength,
		  const char *what) noexcept
{
	if (text.empty())
		return Error::invalid(EINVAL, what, "", "must not be empty");
	if (text.size() > maxLength)
		return Error::invalid(ENAMETOOLONG, what, shown(text), "longer than %zu bytes", maxLength);
	const std::size_t bad = allowed.firstNotIn(text);
	if (bad != std::string_view::npos)
		return Error::invalid(EINVAL, what, shown(text), "byte \\x%02x at offset %zu is not allowed",
				      static_cast<unsigned char>(text[bad]), bad);
	return {};
}

Status checkVmName(std::string_view name, const char *what) noexcept
{
	Status status = checkChars(name, kVmNameChars, kVmNameMax, what);
	if (!status)
		return status;
	if (name == "." || name == "..")
		return Error::invalid(EINVAL, what, name, "is not a name");
	return {};
}

Status checkAbsolutePath(std::string_view path, const CharSet &allowed, const char *what) noexcept
{
	return checkPathShape(path, what,
			      [&allowed](unsigned char c) { return allowed.contains(c); });
}

bool isPathByte(unsigned char c) noexcept
{
	return c >= 0x20 && c != 0x7f;
}

Status checkAbsolutePath(std::string_view path, const char *what) noexcept
{
	return checkPathShape(path, what, isPathByte);
}

Status checkLowerHex(std::string_view text, std::size_t length, const char *what) noexcept
{
	if (text.size() != length)
		return Error::invalid(EINVAL, what, "", "must be exactly %zu hexadecimal digits", length);
	const std::size_t bad = kLowerHexChars.firstNotIn(text);
	if (bad != std::string_view::npos)
		return Error::invalid(EINVAL, what, "", "byte at offset %zu is not a lowercase hex digit",
				      bad);
	return {};
}

} // namespace fr
