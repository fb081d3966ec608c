// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// What the daemon's tar and zip streams hold, read back on the host with
// libarchive (tree_test, vm_test).

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include <clocale>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fr::test {

struct ArchiveMember {
	unsigned type = 0; // AE_IF*
	unsigned mode = 0; // permission bits
	std::string data;
	std::string target; // symlinks
};

// A zstd stream decompressed in full (the archive is then read from memory,
// seekable: a zip's central directory holds the modes and symlinks).
inline std::string unzstd(const std::string &packed)
{
	std::string out;
	std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
	ZSTD_inBuffer in{packed.data(), packed.size(), 0};
	std::vector<char> buf(1 << 16);
	while (in.pos < in.size) {
		ZSTD_outBuffer o{buf.data(), buf.size(), 0};
		const std::size_t r = ZSTD_decompressStream(dctx.get(), &o, &in);
		if (ZSTD_isError(r))
			return "zstd error: " + std::string(ZSTD_getErrorName(r));
		out.append(buf.data(), o.pos);
	}
	return out;
}

// The members by name (a directory's without its trailing '/'). A stream
// libarchive cannot read gives what it read so far, and its error in
// `error` when given.
inline std::map<std::string, ArchiveMember> readArchive(const std::string &bytes, std::string *error = nullptr)
{
	std::map<std::string, ArchiveMember> out;
	if (bytes.size() >= 4 && bytes.compare(0, 4, "\x28\xb5\x2f\xfd") == 0)
		return readArchive(unzstd(bytes), error);
	// Names: UTF-8 ones as such, others raw (pax hdrcharset=BINARY), as
	// the daemon writes them under C.UTF-8; read them back the same way.
	std::setlocale(LC_CTYPE, "C.UTF-8");
	archive *a = archive_read_new();
	archive_read_support_format_all(a);
	int r = archive_read_open_memory(a, bytes.data(), bytes.size());
	archive_entry *e = nullptr;
	while (r == ARCHIVE_OK && ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
		ArchiveMember m;
		m.type = archive_entry_filetype(e);
		m.mode = archive_entry_perm(e);
		if (const char *t = archive_entry_symlink(e))
			m.target = t;
		char buf[65536];
		la_ssize_t n;
		while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
			m.data.append(buf, static_cast<std::size_t>(n));
		const char *raw = archive_entry_pathname(e);
		if (raw == nullptr)
			raw = archive_entry_pathname_utf8(e);
		std::string name = raw != nullptr ? raw : "<undecodable name>";
		if (!name.empty() && name.back() == '/')
			name.pop_back();
		out[name] = m;
		r = ARCHIVE_OK;
	}
	if (r != ARCHIVE_EOF && error != nullptr)
		*error = archive_error_string(a) != nullptr ? archive_error_string(a) : "unreadable archive";
	archive_read_free(a);
	return out;
}

} // namespace fr::test
