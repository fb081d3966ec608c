// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "guest/fsutil.h"
#include "shared/log.h"

namespace fr::guest {

namespace {

constexpr std::size_t kReadSize = std::size_t{256} * 1024;
constexpr int kZstdLevel = 3;
// Deeper trees than this are refused rather than walked (each level holds
// an open directory); crafted filesystems can loop or nest without end.
constexpr std::size_t kMaxDepth = 2048;

struct ArchiveDeleter {
	void operator()(archive *a) const noexcept { archive_write_free(a); }
};
struct EntryDeleter {
	void operator()(archive_entry *e) const noexcept { archive_entry_free(e); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;
using EntryPtr = std::unique_ptr<archive_entry, EntryDeleter>;

Result<struct stat> statFd(int fd, std::string_view what)
{
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", what.substr(0, 200));
	return st;
}

// Reads up to buf.size() bytes, restarting after EINTR.
// --- raw -------------------------------------------------------------------

Status sendRaw(int fd, std::string_view what, proto::Compression compression, Responder &out)
{
	if (compression == proto::Compression::None)
		return out.file(fd, what); // spliced where the transport allows it
	std::vector<std::uint8_t> buf(kReadSize);
	std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
	if (!cctx)
		return Error(ENOMEM, "ZSTD_createCCtx", what.substr(0, 200));
	ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, kZstdLevel);
	ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
	std::vector<std::uint8_t> packed(ZSTD_CStreamOutSize());
	for (;;) {
		Result<std::size_t> n = readSome(fd, buf, what);
		if (!n)
			return n.error();
		const ZSTD_EndDirective mode = *n == 0 ? ZSTD_e_end : ZSTD_e_continue;
		ZSTD_inBuffer in{buf.data(), *n, 0};
		for (;;) {
			ZSTD_outBuffer o{packed.data(), packed.size(), 0};
			const std::size_t left = ZSTD_compressStream2(cctx.get(), &o, &in, mode);
			if (ZSTD_isError(left))
				return Error::invalid(EIO, "zstd", what.substr(0, 200), "%s",
						      ZSTD_getErrorName(left));
			if (o.pos > 0)
				if (Status ok = out.data(std::span(packed.data(), o.pos)); !ok)
					return ok;
			if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
				break;
		}
		if (*n == 0)
			return {};
	}
}

// --- archives --------------------------------------------------------------

class ArchiveWriter {
public:
	explicit ArchiveWriter(Responder &out) : out_(out), buf_(kReadSize) {}

	Status open(proto::ExtractFormat format, proto::Compression compression)
	{
		a_.reset(archive_write_new());
		if (!a_)
			return Error(ENOMEM, "archive_write_new", "archive");
		int r;
		if (format == proto::ExtractFormat::Tar) {
			r = archive_write_set_format_pax_restricted(a_.get());
		} else {
			zip_ = true;
			r = archive_write_set_format_zip(a_.get());
			// With zstd around the whole stream, deflate inside would
			// only cost time.
			if (r == ARCHIVE_OK && compression == proto::Compression::Zstd)
				r = archive_write_zip_set_compression_store(a_.get());
		}
		if (r == ARCHIVE_OK && compression == proto::Compression::Zstd) {
			r = archive_write_add_filter_zstd(a_.get());
			if (r == ARCHIVE_OK)
				r = archive_write_set_filter_option(a_.get(), "zstd", "compression-level", "3");
			// libarchive pads the last block of the *compressed* stream
			// to the tar record size by default; zeros after the zstd
			// frame make it unreadable to zstd(1).
			if (r == ARCHIVE_OK)
				r = archive_write_set_bytes_in_last_block(a_.get(), 1);
		}
		if (r != ARCHIVE_OK)
			return archiveError("archive_write_set_format");
		r = archive_write_open(a_.get(), this, nullptr, &ArchiveWriter::writeCallback, nullptr);
		if (r != ARCHIVE_OK)
			return archiveError("archive_write_open");
		return {};
	}

	Status close()
	{
		if (archive_write_close(a_.get()) != ARCHIVE_OK)
			return archiveError("archive_write_close");
		if (warnings_ > 0)
			logf(LogLevel::Info, "archive: %llu warning(s), the first: %s",
			     static_cast<unsigned long long>(warnings_), firstWarning_.c_str());
		return {};
	}

	// The object `name` in `dirfd` (or dirfd itself for an empty name),
	// as member `member` ("" for a directory's own root: not a member).
	Status addObject(int dirfd, std::string_view name, const std::string &member)
	{
		Result<UniqueFd> fd = openBeneath(dirfd, name, O_PATH);
		if (!fd)
			return fd.error();
		Result<struct stat> st = statFd(fd->get(), member);
		if (!st)
			return st.error();
		if (S_ISDIR(st->st_mode)) {
			if (!member.empty())
				if (Status ok = header(*st, member, {}); !ok)
					return ok;
			Result<UniqueFd> dir = openBeneath(dirfd, name, O_RDONLY | O_DIRECTORY);
			if (!dir)
				return dir.error();
			return walk(std::move(*dir), member.empty() ? std::string() : member + "/", *st);
		}
		return addLeaf(dirfd, name, fd->get(), *st, member);
	}

private:
	struct Level {
		DirReader reader;
		std::string prefix; // member path of the directory, with a trailing '/'
		dev_t dev;
		ino_t ino;
	};

	static la_ssize_t writeCallback(archive *, void *self, const void *buf, size_t n)
	{
		auto *w = static_cast<ArchiveWriter *>(self);
		Status ok = w->out_.data(std::span(static_cast<const std::uint8_t *>(buf), n));
		if (!ok) {
			w->sinkError_ = true;
			return -1;
		}
		return static_cast<la_ssize_t>(n);
	}

	Error archiveError(const char *call)
	{
		if (sinkError_)
			return Error(EPIPE, call, "host connection");
		const char *text = archive_error_string(a_.get());
		const int err = archive_errno(a_.get());
		return Error::invalid(err > 0 ? err : EIO, call, "archive", "%s",
				      text != nullptr ? text : "libarchive error");
	}

	Status header(const struct stat &st, const std::string &member, const std::string &target)
	{
		EntryPtr e(archive_entry_new());
		if (!e)
			return Error(ENOMEM, "archive_entry_new", member.substr(0, 200));
		archive_entry_copy_pathname(e.get(), member.c_str());
		archive_entry_set_mode(e.get(), st.st_mode);
		archive_entry_set_uid(e.get(), st.st_uid);
		archive_entry_set_gid(e.get(), st.st_gid);
		archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		if (S_ISREG(st.st_mode))
			archive_entry_set_size(e.get(), st.st_size);
		else
			archive_entry_set_size(e.get(), 0);
		if (S_ISLNK(st.st_mode))
			archive_entry_copy_symlink(e.get(), target.c_str());
		if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
			archive_entry_set_rdev(e.get(), st.st_rdev);
		const int r = archive_write_header(a_.get(), e.get());
		if (r == ARCHIVE_WARN) {
			// A name that is not valid UTF-8: stored as raw bytes
			// (pax hdrcharset=BINARY). Worth one log line, not one per
			// file.
			if (warnings_++ == 0) {
				const char *text = archive_error_string(a_.get());
				firstWarning_ = text != nullptr ? text : "?";
			}
			return {};
		}
		if (r != ARCHIVE_OK)
			return archiveError("archive_write_header");
		return {};
	}

	// A non-directory.
	Status addLeaf(int dirfd, std::string_view name, int pathFd, const struct stat &st,
		       const std::string &member)
	{
		const std::string leafMember = member.empty() ? std::string(name) : member;
		switch (st.st_mode & S_IFMT) {
		case S_IFREG:
			return addFile(dirfd, name, st, leafMember);
		case S_IFLNK: {
			Result<std::string> target = readLinkTarget(pathFd);
			if (!target)
				return target.error();
			return header(st, leafMember, *target);
		}
		case S_IFCHR:
		case S_IFBLK:
		case S_IFIFO:
			if (zip_)
				return {}; // zip has no such members
			return header(st, leafMember, {});
		default:
			return {}; // sockets: nothing to archive
		}
	}

	Status addFile(int dirfd, std::string_view name, const struct stat &st, const std::string &member)
	{
		Result<UniqueFd> fd = openBeneath(dirfd, name, O_RDONLY | O_NOCTTY | O_NONBLOCK);
		if (!fd)
			return fd.error();
		Result<struct stat> now = statFd(fd->get(), member);
		if (!now)
			return now.error();
		if (!S_ISREG(now->st_mode) || now->st_size != st.st_size)
			return Error::invalid(EIO, "extract", member.substr(0, 200), "changed while archiving");
		if (Status ok = header(st, member, {}); !ok)
			return ok;
		// Exactly st_size bytes: the header promised them.
		std::uint64_t left = static_cast<std::uint64_t>(st.st_size);
		while (left > 0) {
			Result<std::size_t> n = readSome(fd->get(), buf_, member);
			if (!n)
				return n.error();
			if (*n == 0)
				return Error::invalid(EIO, "read", member.substr(0, 200),
						      "file shorter than its size");
			const std::size_t use = *n < left ? *n : static_cast<std::size_t>(left);
			const la_ssize_t w = archive_write_data(a_.get(), buf_.data(), use);
			if (w < 0 || static_cast<std::size_t>(w) != use)
				return archiveError("archive_write_data");
			left -= use;
		}
		return {};
	}

	Status walk(UniqueFd root, std::string prefix, const struct stat &rootSt)
	{
		std::vector<Level> stack;
		stack.push_back(Level{DirReader(std::move(root)), std::move(prefix), rootSt.st_dev,
				      rootSt.st_ino});
		while (!stack.empty()) {
			Level &top = stack.back();
			Result<std::optional<std::string_view>> next = top.reader.next();
			if (!next)
				return next.error();
			if (!*next) {
				stack.pop_back();
				continue;
			}
			const std::string name(**next);
			if (Status ok = proto::checkName(name); !ok) {
				logf(LogLevel::Warning, "archive: skipping an entry whose name the protocol cannot carry");
				continue;
			}
			const std::string member = top.prefix + name;
			Result<UniqueFd> fd = openBeneath(top.reader.fd(), name, O_PATH);
			if (!fd) {
				if (fd.error().errnum() == EXDEV)
					continue; // a mount point: not this filesystem
				return fd.error();
			}
			Result<struct stat> st = statFd(fd->get(), member);
			if (!st)
				return st.error();
			if (!S_ISDIR(st->st_mode)) {
				if (Status ok = addLeaf(top.reader.fd(), name, fd->get(), *st, member); !ok)
					return ok;
				continue;
			}
			bool loop = false;
			for (const Level &level : stack)
				loop = loop || (level.dev == st->st_dev && level.ino == st->st_ino);
			if (loop) {
				logf(LogLevel::Warning, "archive: directory loop, not descending");
				continue;
			}
			if (stack.size() >= kMaxDepth)
				return Error::invalid(ELOOP, "extract", member.substr(0, 200),
						      "directory tree deeper than %zu levels", kMaxDepth);
			if (Status ok = header(*st, member, {}); !ok)
				return ok;
			Result<UniqueFd> dir = openBeneath(top.reader.fd(), name, O_RDONLY | O_DIRECTORY);
			if (!dir)
				return dir.error();
			// `top` may dangle after push_back: copy what is needed first.
			stack.push_back(Level{DirReader(std::move(*dir)), member + "/", st->st_dev, st->st_ino});
		}
		return {};
	}

	Responder &out_;
	ArchivePtr a_;
	std::vector<std::uint8_t> buf_;
	bool zip_ = false;
	bool sinkError_ = false;
	std::uint64_t warnings_ = 0;
	std::string firstWarning_;
};

} // namespace

Status extractObject(int dirfd, std::string_view name, std::string_view entryName,
		     proto::ExtractFormat format, proto::Compression compression, Responder &out)
{
	Result<UniqueFd> object = openBeneath(dirfd, name, O_PATH);
	if (!object)
		return object.error();
	Result<struct stat> st = statFd(object->get(), entryName);
	if (!st)
		return st.error();
	std::optional<proto::Entry> entry = entryFromStat(*st, entryName);
	if (!entry)
		return Error::invalid(EOPNOTSUPP, "extract", entryName, "unknown file type");
	if (entry->type == proto::EntryType::Symlink) {
		Result<std::string> target = readLinkTarget(object->get());
		if (!target)
			return target.error();
		entry->linkTarget = *target;
	}

	if (format == proto::ExtractFormat::Raw) {
		if (S_ISDIR(st->st_mode))
			return Error::invalid(EISDIR, "extract", entryName,
					      "a directory: ask for tar or zip");
		if (!S_ISREG(st->st_mode))
			return Error::invalid(EOPNOTSUPP, "extract", entryName,
					      "not a regular file: ask for tar or zip");
		Result<UniqueFd> fd = openBeneath(dirfd, name, O_RDONLY | O_NOCTTY | O_NONBLOCK);
		if (!fd)
			return fd.error();
		Result<struct stat> opened = statFd(fd->get(), entryName);
		if (!opened)
			return opened.error();
		if (!S_ISREG(opened->st_mode))
			return Error::invalid(EIO, "extract", entryName, "changed while opening");
		if (Status ok = out.entry(*entry); !ok)
			return ok;
		return sendRaw(fd->get(), entryName, compression, out);
	}

	if (Status ok = out.entry(*entry); !ok)
		return ok;
	ArchiveWriter writer(out);
	if (Status ok = writer.open(format, compression); !ok)
		return ok;
	// A directory's members are relative to it; a single object is one
	// member named after it.
	const std::string member = S_ISDIR(st->st_mode) ? std::string() : std::string(entryName);
	if (Status ok = writer.addObject(dirfd, name, member); !ok)
		return ok;
	return writer.close();
}

} // namespace fr::guest
