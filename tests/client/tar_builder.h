// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Builds (hostile) pax tar streams in memory with libarchive's write side,
// for the safe writer's tests and fake guest sessions.

#include <archive.h>
#include <archive_entry.h>
#include <sys/sysmacros.h>

#include <string>
#include <vector>

namespace fr::client::test {

struct Member {
	std::string name;
	mode_t type = AE_IFREG;
	std::string content;
	mode_t perm = 0644;
	std::string link;     // symlink target
	std::string hardlink; // hardlink target name
	time_t mtime = 1700000000;
	std::int64_t declaredSize = -1; // override the header's size
};

inline std::string buildTar(const std::vector<Member> &members)
{
	std::string out;
	archive *a = archive_write_new();
	archive_write_set_format_pax(a);
	archive_write_set_bytes_per_block(a, 10240);
	archive_write_open(
		a, &out, nullptr,
		[](archive *, void *data, const void *buf, size_t size) -> la_ssize_t {
			static_cast<std::string *>(data)->append(static_cast<const char *>(buf), size);
			return static_cast<la_ssize_t>(size);
		},
		nullptr);
	for (const Member &m : members) {
		archive_entry *e = archive_entry_new();
		archive_entry_copy_pathname(e, m.name.c_str());
		archive_entry_set_filetype(e, m.type);
		archive_entry_set_perm(e, m.perm);
		archive_entry_set_mtime(e, m.mtime, 0);
		if (!m.link.empty())
			archive_entry_copy_symlink(e, m.link.c_str());
		if (!m.hardlink.empty())
			archive_entry_copy_hardlink(e, m.hardlink.c_str());
		if (m.type == AE_IFCHR || m.type == AE_IFBLK)
			archive_entry_set_rdev(e, makedev(1, 3));
		const bool hasData = m.type == AE_IFREG && m.hardlink.empty();
		archive_entry_set_size(e, hasData ? static_cast<la_int64_t>(m.content.size()) : 0);
		archive_write_header(a, e);
		if (hasData && !m.content.empty())
			archive_write_data(a, m.content.data(), m.content.size());
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return out;
}

} // namespace fr::client::test
