// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/cpio.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

namespace fr {

namespace {

void pad4(std::vector<std::uint8_t> &out)
{
	while (out.size() % 4 != 0)
		out.push_back(0);
}

void appendEntry(std::vector<std::uint8_t> &out, std::uint32_t ino, std::uint32_t mode,
		 std::uint32_t nlink, const std::string &name, const std::string &data,
		 std::uint32_t rmajor, std::uint32_t rminor)
{
	char header[111];
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with NUL), check
	(void)std::snprintf(header, sizeof(header), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		      ino, mode, 0U, 0U, nlink, 0U, static_cast<unsigned>(data.size()), 0U, 0U, rmajor,
		      rminor, static_cast<unsigned>(name.size() + 1), 0U);
	out.insert(out.end(), header, header + 110);
	out.insert(out.end(), name.begin(), name.end());
	out.push_back(0);
	pad4(out);
	out.insert(out.end(), data.begin(), data.end());
	pad4(out);
}

} // namespace

std::vector<std::uint8_t> writeNewc(std::vector<CpioEntry> entries)
{
	std::sort(entries.begin(), entries.end(),
		  [](const CpioEntry &a, const CpioEntry &b) { return a.path < b.path; });
	std::vector<std::uint8_t> out;
	std::uint32_t ino = 1;
	for (const CpioEntry &e : entries) {
		std::uint32_t type = S_IFREG;
		std::uint32_t nlink = 1;
		if (e.type == CpioEntry::Type::Directory) {
			type = S_IFDIR;
			nlink = 2;
		} else if (e.type == CpioEntry::Type::CharDevice) {
			type = S_IFCHR;
		} else if (e.type == CpioEntry::Type::Symlink) {
			type = S_IFLNK;
		}
		appendEntry(out, ino++, type | (e.mode & 07777), nlink, e.path,
			    e.type == CpioEntry::Type::File || e.type == CpioEntry::Type::Symlink ? e.data : std::string(), e.rdevMajor, e.rdevMinor);
	}
	appendEntry(out, 0, 0, 1, "TRAILER!!!", std::string(), 0, 0);
	return out;
}

} // namespace fr
