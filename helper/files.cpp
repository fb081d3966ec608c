// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shared/clock.h"
#include "shared/fd_io.h"
#include "shared/guest_abi.h"
#include "shared/image_check.h"
#include "shared/policy.h"
#include "shared/validate.h"

namespace fr::helper {

namespace {


Status trustedByRoot(int fd, std::string_view what)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", what);
	if (st.st_uid != 0)
		return Error::invalid(EPERM, "policy", what, "not owned by root");
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return Error::invalid(EPERM, "policy", what, "writable by group or others");
	return {};
}

} // namespace

Result<std::optional<std::string>> readPolicyFile(std::string_view path)
{
	const std::string copy(path);
	UniqueFd dir(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!dir.isValid())
		return Error(errno, "open", "/");
	if (Status ok = trustedByRoot(dir.get(), "/"); !ok)
		return ok.error();
	std::size_t start = 1;
	for (;;) {
		const std::size_t slash = copy.find('/', start);
		const bool last = slash == std::string::npos;
		const std::string name = copy.substr(start, last ? std::string::npos : slash - start);
		const std::string sofar = copy.substr(0, last ? copy.size() : slash);
		const int flags = last ? O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC
				       : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
		UniqueFd next(::openat(dir.get(), name.c_str(), flags));
		if (!next.isValid()) {
			if (errno == ENOENT)
				return std::optional<std::string>();
			if (errno == ELOOP || errno == ENOTDIR)
				return Error::invalid(EPERM, "policy", sofar, "is a symlink or not a directory");
			return Error(errno, "open", sofar);
		}
		if (Status ok = trustedByRoot(next.get(), sofar); !ok)
			return ok.error();
		if (!last) {
			dir = std::move(next);
			start = slash + 1;
			continue;
		}
		struct stat st {};
		if (::fstat(next.get(), &st) != 0)
			return Error(errno, "fstat", sofar);
		if (!S_ISREG(st.st_mode))
			return Error::invalid(EPERM, "policy", sofar, "not a regular file");
		if (st.st_size > static_cast<off_t>(kPolicyMaxBytes))
			return Error::invalid(EFBIG, "policy", sofar, "larger than %zu bytes", kPolicyMaxBytes);
		Result<std::string> text = readAll(next.get(), kPolicyMaxBytes, sofar);
		if (!text && text.error().errnum() == EFBIG)
			return Error::invalid(EFBIG, "policy", sofar, "larger than %zu bytes", kPolicyMaxBytes);
		if (!text)
			return text.error();
		return std::optional<std::string>(std::move(*text));
	}
}

std::optional<Result<UniqueFd>> openGrantedImage(const std::string &path,
						 const std::vector<std::string> &grantedDirs)
{
	for (const std::string &granted : grantedDirs) {
		const std::optional<std::string_view> rest = pathBelow(path, granted);
		if (!rest)
			continue;
		// As root: the policy grants this directory to this caller. The
		// directory itself is reached without symlinks; below it nothing
		// may leave it, by symlink, "..", magic link or mount point.
		UniqueFd dir(openAt2(AT_FDCWD, granted.c_str(), O_PATH | O_DIRECTORY,
				     RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
		if (!dir.isValid())
			return Result<UniqueFd>(Error(errno, "open", granted));
		UniqueFd fd(openAt2(dir.get(), std::string(*rest).c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK,
				    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV));
		if (!fd.isValid())
			return Result<UniqueFd>(Error(errno, "open", path));
		return Result<UniqueFd>(std::move(fd));
	}
	return std::nullopt;
}

Status checkImageFd(int fd, contract::ImageFormat format, std::string_view what)
{
	if (Status ok = checkImageFile(fd, what); !ok)
		return ok;
	if (Status ok = checkImageHeader(fd, format, what); !ok)
		return ok;
	const int flags = ::fcntl(fd, F_GETFL);
	if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
		return Error(errno, "fcntl(F_SETFL)", what);
	return {};
}

Status checkNbdSocket(int fd)
{
	const std::string what = "nbd:" + std::to_string(fd);
	struct stat st {};
	int domain = 0, type = 0, listening = 1;
	socklen_t len = sizeof(int);
	sockaddr_un peer{};
	socklen_t peerLen = sizeof(peer);
	if (::fstat(fd, &st) != 0)
		return Error(errno, "--image", what);
	const bool ok = S_ISSOCK(st.st_mode) &&
			::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX &&
			::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM &&
			::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 0 &&
			::getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &peerLen) == 0;
	if (!ok)
		return Error::invalid(EINVAL, "--image", what, "not a connected unix stream socket");
	return {};
}

Result<std::string> readTicket(int fd, int timeoutMs)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", "--ticket-fd");
	if (!S_ISFIFO(st.st_mode))
		return Error::invalid(EINVAL, "--ticket-fd", "", "not a pipe");
	char buf[abi::kTicketHexLength + 1];
	std::size_t got = 0;
	const std::int64_t deadline = monotonicMs() + timeoutMs;
	// One byte more than a ticket: anything already behind it is an error.
	while (got <= abi::kTicketHexLength) {
		const bool haveTicket = got == abi::kTicketHexLength;
		pollfd pfd{fd, POLLIN, 0};
		const int ready = ::poll(&pfd, 1, haveTicket ? 0 : msLeft(deadline, timeoutMs));
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			return Error(errno, "poll", "--ticket-fd");
		}
		if (ready == 0) {
			if (haveTicket)
				break;
			return Error::invalid(ETIMEDOUT, "--ticket-fd", "", "no ticket within %d ms", timeoutMs);
		}
		const ssize_t n = ::read(fd, buf + got, sizeof(buf) - got);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return Error(errno, "read", "--ticket-fd");
		}
		if (n == 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	const std::string_view ticket(buf, got);
	if (Status ok = checkLowerHex(ticket, abi::kTicketHexLength, "--ticket-fd"); !ok)
		return ok.error();
	return std::string(ticket);
}

} // namespace fr::helper
