/* SPDX-License-Identifier: AGPL-3.0-or-later */
/*
 * Why this file exists: the daemon is linked statically, and libarchive's
 * pax writer calls one helper, __archive_write_entry_filetype_unsupported,
 * that lives in archive_write_set_format.o together with the table of every
 * writer libarchive has. Pulling that object in drags the xar writer, then
 * libxml2, then ICU (~30 MB) into the initramfs. Defining the helper here
 * (same behaviour as libarchive 3.6's, which only sets an error; EILSEQ is
 * its ARCHIVE_ERRNO_FILE_FORMAT on Linux) keeps that
 * object out. tests/guest checks the daemon's size stays small.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stddef.h>

void __archive_write_entry_filetype_unsupported(struct archive *a, struct archive_entry *entry,
						 const char *format);

void __archive_write_entry_filetype_unsupported(struct archive *a, struct archive_entry *entry,
						 const char *format)
{
	const char *name = NULL;
	switch (archive_entry_filetype(entry)) {
	case AE_IFDIR:
		name = "directories";
		break;
	case AE_IFLNK:
		name = "symbolic links";
		break;
	case AE_IFCHR:
		name = "character devices";
		break;
	case AE_IFBLK:
		name = "block devices";
		break;
	case AE_IFIFO:
		name = "named pipes";
		break;
	case AE_IFSOCK:
		name = "sockets";
		break;
	default:
		break;
	}
	if (name != NULL)
		archive_set_error(a, EILSEQ, "%s: %s format cannot archive %s",
				  archive_entry_pathname(entry), format, name);
	else
		archive_set_error(a, EILSEQ, "%s: unsupported filetype",
				  archive_entry_pathname(entry));
}
