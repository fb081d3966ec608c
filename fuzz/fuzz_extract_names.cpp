// SPDX-License-Identifier: AGPL-3.0-or-later
// Extraction name handling (client/extract_names.h, client/safe_writer.h).
// First byte 0: the input is one member name; every component accepted
// must be a plain name that cannot climb or nest. Otherwise: the rest is a
// tar stream, unpacked by the safe writer into a fresh directory; nothing
// may appear next to that directory, and no symlink, device, FIFO or
// setuid file may appear inside it (symlinks are not requested here).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "client/extract_names.h"
#include "client/safe_writer.h"

namespace {

void checkName(std::string_view name)
{
	fr::Result<std::vector<std::string>> components = fr::client::memberComponents(name);
	if (components) {
		std::size_t total = 0;
		for (const std::string &c : *components) {
			if (c.empty() || c == "." || c == ".." || c.find('/') != std::string::npos ||
			    c.find('\0') != std::string::npos || c.size() > fr::client::kMemberNameMax)
				std::abort();
			total += c.size() + 1;
		}
		if (total > fr::client::kMemberPathMax + 1 || name.front() == '/')
			std::abort();
	}
	fr::client::StagingOwner owner;
	if (fr::client::parseStagingName(name, owner) && owner.pid < 1)
		std::abort();
	(void)fr::client::checkSymlinkTarget(name);
}

// Walks the tree: only regular files (0777 at most) and directories.
void checkTree(int dirFd)
{
	const int scan = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = ::fdopendir(scan);
	if (dir == nullptr)
		std::abort();
	while (const dirent *entry = ::readdir(dir)) {
		const std::string_view name(entry->d_name);
		if (name == "." || name == "..")
			continue;
		struct stat st {};
		if (::fstatat(dirFd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			std::abort();
		if ((st.st_mode & 07000) != 0)
			std::abort();
		if (S_ISDIR(st.st_mode)) {
			(void)!::fchmodat(dirFd, entry->d_name, 0700, 0);
			const int sub = ::openat(dirFd, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0)
				std::abort();
			checkTree(sub);
			::close(sub);
		} else if (!S_ISREG(st.st_mode)) {
			std::abort();
		}
	}
	::closedir(dir);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	if (size == 0)
		return 0;
	const std::string_view rest(reinterpret_cast<const char *>(data) + 1, size - 1);
	if (data[0] == 0) {
		checkName(rest);
		return 0;
	}
	char tmpl[] = "/tmp/fuzz-extract-XXXXXX";
	if (::mkdtemp(tmpl) == nullptr)
		return 0;
	const std::string base = tmpl;
	const int baseFd = ::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	::mkdirat(baseFd, "root", 0700);
	const int rootFd = ::openat(baseFd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const std::string stream(rest);
	int fds[2];
	if (::pipe(fds) == 0) {
		// Small inputs fit the pipe; bigger ones are cut (still a valid test
		// of truncated streams).
		const std::size_t n = stream.size() < 65536 ? stream.size() : 65536;
		(void)!::write(fds[1], stream.data(), n);
		::close(fds[1]);
		fr::client::UnpackOptions options;
		fr::client::UnpackReport report;
		(void)fr::client::unpackTar(fds[0], rootFd, options, report);
		::close(fds[0]);
	}
	// Nothing beside "root", and only plain files and directories inside.
	checkTree(rootFd);
	const int scan = ::openat(baseFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = ::fdopendir(scan);
	while (const dirent *entry = ::readdir(dir)) {
		const std::string_view name(entry->d_name);
		if (name != "." && name != ".." && name != "root")
			std::abort();
	}
	::closedir(dir);
	::close(rootFd);
	(void)fr::client::removeTree(baseFd, "root");
	::close(baseFd);
	::rmdir(base.c_str());
	return 0;
}
