// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/archives.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "client/guest_path.h"
#include "shared/display.h"
#include "shared/image_check.h"
#include "shared/unique_fd.h"

namespace fr::client {

namespace {

std::string lower(std::string_view text)
{
	std::string out(text);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c - 'A' + 'a');
	return out;
}

} // namespace

std::optional<ImageFormat> formatFromName(std::string_view fileName)
{
	const std::size_t dot = fileName.rfind('.');
	if (dot == std::string_view::npos)
		return std::nullopt;
	const std::string ext = lower(fileName.substr(dot + 1));
	if (ext == "img" || ext == "raw")
		return ImageFormat::Raw;
	const std::optional<ImageFormat> format = parseFormatName(ext);
	if (format == ImageFormat::Nbd)
		return std::nullopt;
	return format;
}

Status checkArchive(int fd, ImageFormat format, std::string_view nameForErrors)
{
	Status ok = checkImageHeader(fd, format, nameForErrors);
	if (!ok)
		return Error::invalid(EINVAL, "image", escapeForDisplay(nameForErrors),
				      "named %s, but: %s", formatName(format), ok.error().reason());
	return {};
}

Result<std::string> canonicalPath(const std::string &path, const char *what)
{
	char *resolved = ::realpath(path.c_str(), nullptr);
	if (resolved == nullptr)
		return Error(errno, what, escapeForDisplay(path));
	std::string out(resolved);
	std::free(resolved);
	return out;
}

Result<std::string> normaliseSnapshot(std::string_view snapshot)
{
	Result<std::vector<std::string>> components = splitUserPath(snapshot);
	if (!components)
		return Error::invalid(EINVAL, "snapshot", escapeForDisplay(snapshot), "%s",
				      components.error().reason());
	if (components->empty())
		return Error::invalid(EINVAL, "snapshot", escapeForDisplay(snapshot),
				      "names no snapshot directory");
	return joinPath(*components).substr(1);
}

Result<std::vector<Archive>> snapshotArchives(const std::string &snapshotDir)
{
	UniqueFd dirFd(::open(snapshotDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dirFd.isValid())
		return Error(errno, "snapshot", escapeForDisplay(snapshotDir));
	// Its own open file description: readdir() moves the offset.
	const int scanFd = ::openat(dirFd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = scanFd >= 0 ? ::fdopendir(scanFd) : nullptr;
	if (dir == nullptr) {
		const int err = errno;
		if (scanFd >= 0)
			::close(scanFd);
		return Error(err, "opendir", escapeForDisplay(snapshotDir));
	}
	std::vector<std::string> names;
	errno = 0;
	while (const dirent *entry = ::readdir(dir)) {
		if (entry->d_name[0] != '.')
			names.emplace_back(entry->d_name);
	}
	::closedir(dir);
	std::sort(names.begin(), names.end());

	std::vector<Archive> archives;
	for (const std::string &name : names) {
		struct stat st {};
		const std::optional<ImageFormat> format = formatFromName(name);
		const bool vhd = lower(name).ends_with(".vhd");
		// Follows symlinks: the user's own tree. The helper opens the
		// path again with the user's identity (or under its policy).
		if ((!format && !vhd) || ::fstatat(dirFd.get(), name.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode))
			continue;
		std::string path = snapshotDir;
		path.append("/").append(name);
		Archive archive{name, format.value_or(ImageFormat::Raw), std::move(path), {}};
		if (vhd) {
			archive.unusable = "VHD (vpc) images are not supported: convert it first "
					   "(qemu-img convert -O raw)";
		} else if (UniqueFd fd(::openat(dirFd.get(), name.c_str(),
						O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
			   fd.isValid()) {
			// Unreadable to us: the helper's policy may grant it, and
			// the helper checks it.
			if (Status ok = checkArchive(fd.get(), *format, archive.path); !ok)
				archive.unusable = ok.error().reason();
		}
		archives.push_back(std::move(archive));
	}
	if (archives.empty())
		return Error::invalid(ENOENT, "snapshot", escapeForDisplay(snapshotDir),
				      "holds no disk images (.img .raw .qcow2 .vmdk .vdi .vhdx)");
	return archives;
}

std::vector<Archive> usableArchives(const std::vector<Archive> &archives)
{
	std::vector<Archive> usable;
	for (const Archive &archive : archives)
		if (archive.unusable.empty())
			usable.push_back(archive);
	return usable;
}

Result<std::vector<Archive>> imageArchives(const std::vector<std::string> &paths,
					   std::optional<ImageFormat> explicitFormat)
{
	std::vector<Archive> archives;
	for (const std::string &path : paths) {
		Result<std::string> canonical = canonicalPath(path, "--image");
		if (!canonical)
			return canonical.error();
		UniqueFd fd(::open(canonical->c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
		if (!fd.isValid())
			return Error(errno, "--image", escapeForDisplay(path));
		struct stat st {};
		if (::fstat(fd.get(), &st) != 0)
			return Error(errno, "--image", escapeForDisplay(path));
		if (!S_ISREG(st.st_mode))
			return Error::invalid(EINVAL, "--image", escapeForDisplay(path),
					      "not a regular file");
		const std::string name = canonical->substr(canonical->rfind('/') + 1);
		const ImageFormat format = explicitFormat.value_or(formatFromName(name).value_or(ImageFormat::Raw));
		if (Status ok = checkArchive(fd.get(), format, *canonical); !ok)
			return ok.error();
		for (const Archive &other : archives)
			if (other.name == name)
				return Error::invalid(EINVAL, "--image", escapeForDisplay(path),
						      "two images are named '%s'; archives are "
						      "addressed by file name",
						      escapeForDisplay(name).substr(0, 100).c_str());
		archives.push_back({name, format, *canonical, {}});
	}
	return archives;
}

} // namespace fr::client
