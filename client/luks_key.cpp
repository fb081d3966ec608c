// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/luks_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>

#include "shared/display.h"
#include "shared/protocol.h"
#include "shared/unique_fd.h"

namespace fr::client {

namespace {

// Reads up to `max` bytes into `into` (wiping every buffer on the way),
// stopping after a newline when `line` (the newline is not kept).
Status readInto(int fd, std::string &into, std::size_t max, bool line, const std::string &what)
{
	char buf[512];
	Status result;
	for (;;) {
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			result = Error(errno, "read", what);
			break;
		}
		if (n == 0)
			break;
		const std::string_view chunk(buf, static_cast<std::size_t>(n));
		const std::size_t newline = line ? chunk.find('\n') : std::string_view::npos;
		const std::string_view keep = chunk.substr(0, newline);
		if (into.size() + keep.size() > max) {
			result = Error::invalid(EINVAL, "LUKS key", what, "longer than %zu bytes", max);
			break;
		}
		// Reserved up front: appending never reallocates (and so never
		// leaves a copy of the key in a freed buffer).
		into.append(keep);
		if (newline != std::string_view::npos)
			break;
	}
	sodium_memzero(buf, sizeof(buf));
	if (result && into.empty())
		result = Error::invalid(EINVAL, "LUKS key", what, "empty");
	return result;
}

} // namespace

LuksKey::LuksKey(LuksKey &&other) noexcept
{
	bytes_.reserve(proto::kKeyMax);
	bytes_.assign(other.bytes_);
	proto::wipeSecret(other.bytes_);
}

LuksKey &LuksKey::operator=(LuksKey &&other) noexcept
{
	if (this != &other) {
		proto::wipeSecret(bytes_);
		bytes_.reserve(proto::kKeyMax);
		bytes_.assign(other.bytes_);
		proto::wipeSecret(other.bytes_);
	}
	return *this;
}

LuksKey::~LuksKey()
{
	proto::wipeSecret(bytes_);
}

Result<LuksKey> readLuksKeyFile(const std::string &path)
{
	const std::string what = "--luks-key-file " + escapeForDisplay(path);
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
	if (!fd.isValid())
		return Error(errno, "open", what);
	LuksKey key;
	key.bytes_.reserve(proto::kKeyMax);
	if (Status ok = readInto(fd.get(), key.bytes_, proto::kKeyMax, false, what); !ok)
		return ok.error();
	return key;
}

Result<LuksKey> readLuksPassphrase(int fd)
{
	const std::string what = "--luks-passphrase-fd " + std::to_string(fd);
	if (fd < 0 || fd == 1 || fd == 2 || ::fcntl(fd, F_GETFD) < 0)
		return Error::invalid(EBADF, "LUKS passphrase", what, "not an open file descriptor to read from");
	LuksKey key;
	key.bytes_.reserve(proto::kKeyMax);
	if (Status ok = readInto(fd, key.bytes_, proto::kKeyMax, true, what); !ok)
		return ok.error();
	return key;
}

} // namespace fr::client
