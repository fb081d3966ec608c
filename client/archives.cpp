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
#include "shared/unique_fd.h"

namespace fr::client {

namespace {

bool startsWith(std::span<const unsigned char> bytes, std::size_t offset, std::string_view magic)
{
	if (bytes.size() < offset + magic.size())
		return false;
	return std::memcmp(bytes.data() + offset, magic.data(), magic.size()) == 0;
}

std::string lower(std::string_view text)
{
	std::string out(text);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c - 'A' + 'a');
	return out;
}

std::optional<ImageFormat> formatFromExtension(std::string_view fileName)
{
	const std::size_t dot = fileName.rfind('.');
	if (dot == std::string_view::npos)
		return std::nullopt;
	const std::string ext = lower(fileName.substr(dot + 1));
	if (ext == "img" || ext == "raw")
		return ImageFormat::Raw;
	return parseFormatName(ext);
}

} // namespace

Result<std::optional<ImageFormat>> detectMagic(std::span<const unsigned char> header)
{
	using namespace std::string_view_literals;
	if (startsWith(header, 0, "QFI\xfb"sv))
		return std::optional<ImageFormat>(ImageFormat::Qcow2);
	// VMDK: a hosted sparse extent ("KDMV"), an ESX sparse one ("COWD") or a
	// text descriptor.
	if (startsWith(header, 0, "KDMV"sv) || startsWith(header, 0, "COWD"sv) ||
	    startsWith(header, 0, "# Disk DescriptorFile"sv))
		return std::optional<ImageFormat>(ImageFormat::Vmdk);
	// VDI: signature 0xbeda107f (little endian) after the 64-byte text.
	if (startsWith(header, 0x40, "\x7f\x10\xda\xbe"sv))
		return std::optional<ImageFormat>(ImageFormat::Vdi);
	if (startsWith(header, 0, "vhdxfile"sv))
		return std::optional<ImageFormat>(ImageFormat::Vhdx);
	if (startsWith(header, 0, "conectix"sv))
		return Error::invalid(EINVAL, "image", "vhd",
				      "VHD (vpc) images are not supported; convert with qemu-img");
	if (startsWith(header, 0, "QED\0"sv))
		return Error::invalid(EINVAL, "image", "qed",
				      "QED images are not supported; convert with qemu-img");
	return std::optional<ImageFormat>();
}

Result<ImageFormat> detectFormat(int fd, std::string_view nameForErrors)
{
	unsigned char header[kHeaderBytes] = {};
	std::size_t got = 0;
	while (got < sizeof(header)) {
		const ssize_t n = ::pread(fd, header + got, sizeof(header) - got, static_cast<off_t>(got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", escapeForDisplay(nameForErrors));
		if (n == 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	Result<std::optional<ImageFormat>> magic = detectMagic({header, got});
	if (!magic)
		return Error::invalid(EINVAL, "image", escapeForDisplay(nameForErrors), "%s",
				      magic.error().reason());
	return magic->value_or(ImageFormat::Raw);
}

bool hasImageExtension(std::string_view fileName)
{
	return formatFromExtension(fileName).has_value();
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
		// Follows symlinks: the user's own tree. The helper opens the
		// path again with the user's identity (or under its policy).
		if (::fstatat(dirFd.get(), name.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode))
			continue;
		const std::optional<ImageFormat> byExtension = formatFromExtension(name);
		UniqueFd fd(::openat(dirFd.get(), name.c_str(),
				     O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
		std::optional<ImageFormat> format;
		if (fd.isValid()) {
			unsigned char header[kHeaderBytes] = {};
			const ssize_t n = ::pread(fd.get(), header, sizeof(header), 0);
			if (n < 0)
				return Error(errno, "read", escapeForDisplay(snapshotDir + "/" + name));
			Result<std::optional<ImageFormat>> magic =
				detectMagic({header, static_cast<std::size_t>(n)});
			if (!magic) {
				if (!byExtension)
					continue; // a VHD next to the images is not ours to judge
				return Error::invalid(EINVAL, "image",
						      escapeForDisplay(snapshotDir + "/" + name), "%s",
						      magic.error().reason());
			}
			format = *magic;
			if (!format && byExtension)
				format = ImageFormat::Raw;
		} else if (byExtension) {
			// Unreadable to us; the helper's policy may grant it. Only the
			// name can tell the format then.
			format = byExtension;
		}
		if (!format)
			continue;
		archives.push_back({name, *format, snapshotDir + "/" + name});
	}
	if (archives.empty())
		return Error::invalid(ENOENT, "snapshot", escapeForDisplay(snapshotDir),
				      "holds no disk images (.img .raw .qcow2 .vmdk .vdi .vhdx)");
	return archives;
}

Result<std::vector<Archive>> imageArchives(const std::vector<std::string> &paths)
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
		Result<ImageFormat> format = detectFormat(fd.get(), *canonical);
		if (!format)
			return format.error();
		const std::string name = canonical->substr(canonical->rfind('/') + 1);
		for (const Archive &other : archives)
			if (other.name == name)
				return Error::invalid(EINVAL, "--image", escapeForDisplay(path),
						      "two images are named '%s'; archives are "
						      "addressed by file name",
						      escapeForDisplay(name).substr(0, 100).c_str());
		archives.push_back({name, *format, *canonical});
	}
	return archives;
}

} // namespace fr::client
