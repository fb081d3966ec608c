// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/runtime_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "shared/display.h"

namespace fr::client {

namespace {

Status checkPrivateDir(const std::string &path, const char *what)
{
	struct stat st {};
	if (::stat(path.c_str(), &st) != 0)
		return Error(errno, what, escapeForDisplay(path));
	if (!S_ISDIR(st.st_mode))
		return Error::invalid(ENOTDIR, what, escapeForDisplay(path), "not a directory");
	if (st.st_uid != ::geteuid())
		return Error::invalid(EPERM, what, escapeForDisplay(path),
				      "owned by uid %u, not by us (uid %u)", st.st_uid, ::geteuid());
	if ((st.st_mode & 022) != 0)
		return Error::invalid(EPERM, what, escapeForDisplay(path),
				      "writable by group or others (mode %04o)", st.st_mode & 07777);
	return {};
}

} // namespace

Result<std::string> runtimeBase(const char *xdgRuntimeDir)
{
	if (xdgRuntimeDir != nullptr && xdgRuntimeDir[0] != '\0') {
		std::string base(xdgRuntimeDir);
		if (base.front() != '/')
			return Error::invalid(EINVAL, "XDG_RUNTIME_DIR", escapeForDisplay(base),
					      "must be an absolute path");
		Status ok = checkPrivateDir(base, "XDG_RUNTIME_DIR");
		if (!ok)
			return ok.error();
		return base;
	}
	// Without a login session (cron, su, a service) systemd-logind's
	// directory may still exist; anything else (a shared /tmp) would let
	// other users race us for the names inside.
	std::string fallback = "/run/user/" + std::to_string(::geteuid());
	Status ok = checkPrivateDir(fallback, "XDG_RUNTIME_DIR");
	if (!ok)
		return Error::invalid(ENOENT, "XDG_RUNTIME_DIR", "unset",
				      "%s is not usable either (%s): set XDG_RUNTIME_DIR to a "
				      "private directory (mode 0700, yours)",
				      fallback.c_str(), ok.error().reason());
	return fallback;
}

Result<RuntimeDir> openRuntimeDir(const std::string &base)
{
	const std::string path = (base.size() > 1 && base.back() == '/' ? base.substr(0, base.size() - 1)
									 : base) +
				 "/file-restore";
	UniqueFd baseFd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!baseFd.isValid())
		return Error(errno, "open", escapeForDisplay(base));
	if (::mkdirat(baseFd.get(), "file-restore", 0700) != 0 && errno != EEXIST)
		return Error(errno, "mkdir", escapeForDisplay(path));
	UniqueFd fd(::openat(baseFd.get(), "file-restore",
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd.isValid())
		return Error(errno, "open", escapeForDisplay(path));
	struct stat st {};
	if (::fstat(fd.get(), &st) != 0)
		return Error(errno, "fstat", escapeForDisplay(path));
	if (st.st_uid != ::geteuid())
		return Error::invalid(EPERM, "runtime directory", escapeForDisplay(path),
				      "owned by uid %u, not by us (uid %u)", st.st_uid, ::geteuid());
	if ((st.st_mode & 07777) != 0700 && ::fchmod(fd.get(), 0700) != 0)
		return Error(errno, "chmod", escapeForDisplay(path));
	return RuntimeDir{path, std::move(fd)};
}

} // namespace fr::client
