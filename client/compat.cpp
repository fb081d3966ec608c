// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/compat.h"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <optional>
#include <string_view>

#include "shared/display.h"
#include "shared/validate.h"

namespace fr::client {

namespace {

constexpr std::array<std::string_view, 7> kBooleanOptions = {
	"--base64", "--zstd", "--symlinks", "--verbose", "--all", "--names", "--foreground"};

std::optional<bool> booleanValue(std::string_view text)
{
	std::string lower(text);
	std::transform(lower.begin(), lower.end(), lower.begin(),
		       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
	if (lower == "1" || lower == "true" || lower == "yes" || lower == "on")
		return true;
	if (lower == "0" || lower == "false" || lower == "no" || lower == "off")
		return false;
	return std::nullopt;
}

bool isBooleanOption(std::string_view arg)
{
	return std::find(kBooleanOptions.begin(), kBooleanOptions.end(), arg) != kBooleanOptions.end();
}

// [A-Za-z0-9_][A-Za-z0-9._-]*, at most 32 bytes: a PBS namespace level.
bool validNamespaceLevel(std::string_view level)
{
	if (level.empty() || level.size() > 32)
		return false;
	if (!std::isalnum(static_cast<unsigned char>(level[0])) && level[0] != '_')
		return false;
	return std::all_of(level.begin(), level.end(), [](char c) {
		return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
	});
}

} // namespace

std::vector<std::string> normaliseBooleanOptions(int argc, char **argv)
{
	std::vector<std::string> out;
	for (int i = 0; i < argc; ++i) {
		const std::string_view arg(argv[i]);
		if (arg == "--") {
			for (; i < argc; ++i)
				out.emplace_back(argv[i]);
			break;
		}
		const std::size_t eq = arg.find('=');
		if (eq != std::string_view::npos && isBooleanOption(arg.substr(0, eq))) {
			// "--base64=0": CLI11 would read the value itself, but
			// not every spelling of it; say it one way.
			const std::optional<bool> value = booleanValue(arg.substr(eq + 1));
			if (!value) {
				out.emplace_back(arg); // CLI11 names the bad value
			} else if (*value) {
				out.emplace_back(arg.substr(0, eq));
			}
			continue;
		}
		if (isBooleanOption(arg) && i + 1 < argc) {
			if (const std::optional<bool> value = booleanValue(argv[i + 1])) {
				if (*value)
					out.emplace_back(arg);
				++i;
				continue;
			}
		}
		out.emplace_back(arg);
	}
	return out;
}

bool looksLikeRemoteRepository(const std::string &repository)
{
	if (repository.empty() || repository.front() == '/' || repository.front() == '.')
		return false;
	const std::size_t colon = repository.rfind(':');
	return colon != std::string::npos && colon > 0 && colon + 1 < repository.size() &&
	       repository.find('/', colon) == std::string::npos;
}

Status checkDatastoreOptions(const DatastoreOptions &options)
{
	if (!options.ns.empty()) {
		std::string_view rest = options.ns;
		while (!rest.empty() && rest.front() == '/')
			rest.remove_prefix(1);
		while (!rest.empty() && rest.back() == '/')
			rest.remove_suffix(1);
		int depth = 0;
		while (!rest.empty()) {
			const std::size_t slash = rest.find('/');
			const std::string_view level = rest.substr(0, slash);
			if (!validNamespaceLevel(level) || ++depth > 7)
				return Error::invalid(EINVAL, "--ns", escapeForDisplay(options.ns),
						      "a namespace is up to 7 levels of [A-Za-z0-9_][A-Za-z0-9._-]*, "
						      "separated by '/'");
			rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
		}
	}
	if (!options.keyFd.empty()) {
		Result<std::uint64_t> fd = parseDecimal(options.keyFd, 0, 1 << 20, "--keyfd");
		if (!fd)
			return fd.error();
		if (::fcntl(static_cast<int>(*fd), F_GETFD) < 0)
			return Error::invalid(EBADF, "--keyfd", options.keyFd, "is not an open file descriptor");
	}
	if (!options.keyFile.empty() && !options.keyFd.empty())
		return Error::invalid(EINVAL, "--keyfile", escapeForDisplay(options.keyFile),
				      "give --keyfile or --keyfd, not both");
	if (!options.cryptMode.empty() && options.cryptMode != "none" && options.cryptMode != "encrypt" &&
	    options.cryptMode != "sign-only")
		return Error::invalid(EINVAL, "--crypt-mode", escapeForDisplay(options.cryptMode),
				      "must be none, encrypt or sign-only");
	if (options.cryptMode == "none" && (!options.keyFile.empty() || !options.keyFd.empty()))
		return Error::invalid(EINVAL, "--crypt-mode", "none", "contradicts --keyfile/--keyfd");
	if (!options.driver.empty()) {
		std::string lower = options.driver;
		std::transform(lower.begin(), lower.end(), lower.begin(),
			       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
		if (lower != "qemu")
			return Error::invalid(EINVAL, "--driver", escapeForDisplay(options.driver),
					      "the only block driver is qemu");
	}
	return {};
}

int httpStatusFor(int exitCode)
{
	switch (exitCode) {
	case 2:
		return 400;
	case 3:
		return 404;
	case 4:
		return 403;
	case 5:
		return 503;
	case 6:
		return 409;
	default:
		return 500;
	}
}

nlohmann::json errorJson(int exitCode, const std::string &message)
{
	return {{"message", message}, {"code", httpStatusFor(exitCode)}, {"error", message}, {"exit_code", exitCode}};
}

} // namespace fr::client
