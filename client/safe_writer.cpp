// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/safe_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "client/encoding.h"
#include "client/extract_names.h"
#include "client/process.h"
#include "shared/display.h"
#include "shared/fd_io.h"

namespace fr::client {

namespace {

constexpr std::uint64_t kResolve =
	RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

std::string joined(const std::vector<std::string> &components, std::size_t count)
{
	std::string out;
	for (std::size_t i = 0; i < count; ++i) {
		if (i > 0)
			out += '/';
		out += components[i];
	}
	return out;
}

Status writeAllAt(int fd, const char *data, std::size_t size, off_t offset, const std::string &name)
{
	while (size > 0) {
		const ssize_t n = ::pwrite(fd, data, size, offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "write", escapeForDisplay(name));
		data += n;
		size -= static_cast<std::size_t>(n);
		offset += n;
	}
	return {};
}

// Writes a data block into a file this unpacker just created (O_EXCL, so
// every byte not written reads as zero): pieces of zeros, cut at the file's
// kHoleBlock boundaries, are left out and the rest is written in runs, so
// a sparse file in a backup (a disk image, a database file) stays sparse
// on the host instead of filling the target's filesystem. Blocks arrive in
// any size; the final size is set by ftruncate.
constexpr std::size_t kHoleBlock = 4096;

bool allZero(const char *data, std::size_t size)
{
	return size == 0 || (data[0] == 0 && std::memcmp(data, data + 1, size - 1) == 0);
}

Status writeSparseAt(int fd, const char *data, std::size_t size, off_t offset, const std::string &name)
{
	std::size_t run = 0; // data bytes before `at` not yet written
	std::size_t at = 0;
	while (at < size) {
		const std::size_t piece = std::min(
			size - at, kHoleBlock - static_cast<std::size_t>(offset + static_cast<off_t>(at)) % kHoleBlock);
		if (allZero(data + at, piece)) {
			if (run > 0)
				if (Status ok = writeAllAt(fd, data + at - run, run, offset + static_cast<off_t>(at - run), name); !ok)
					return ok;
			run = 0;
		} else {
			run += piece;
		}
		at += piece;
	}
	return run > 0 ? writeAllAt(fd, data + size - run, run, offset + static_cast<off_t>(size - run), name)
		       : Status{};
}

timespec toTimespec(std::int64_t seconds, long nanoseconds)
{
	timespec ts {};
	ts.tv_sec = static_cast<time_t>(seconds);
	ts.tv_nsec = nanoseconds >= 0 && nanoseconds < 1000000000 ? nanoseconds : 0;
	return ts;
}

// A new open file description of a directory for readdir(): a dup() would
// share (and move) the caller's directory offset, so a second scan through
// the same fd would see nothing.
int reopenDir(int dirFd)
{
	return ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

struct DirMeta {
	std::string path; // relative to the root; "" is the root
	std::size_t depth;
	mode_t mode;
	std::optional<timespec> mtime; // none for parents the stream never named
};

class Unpacker {
public:
	Unpacker(int rootFd, const UnpackOptions &options, UnpackReport &report)
		: rootFd_(rootFd), options_(options), report_(report)
	{
	}

	Status run(int tarFd);

private:
	Status entry(archive *a, archive_entry *e);
	Result<UniqueFd> parentDir(const std::vector<std::string> &components);
	Status makeDirectory(const std::vector<std::string> &components, archive_entry *e);
	Status makeFile(archive *a, const std::vector<std::string> &components, archive_entry *e);
	Status makeSymlink(const std::vector<std::string> &components, archive_entry *e);
	Status makeHardlinkCopy(const std::vector<std::string> &components, archive_entry *e);
	Status applyDirectoryMetadata();
	void skip(const std::string &name, const char *why)
	{
		report_.skipped.push_back(escapeForDisplay(name) + ": " + why);
	}
	mode_t mask(mode_t mode) const { return mode & 0777 & ~options_.umask; }
	// The member name as components below the root; atRoot: it names the
	// root itself.
	Result<std::vector<std::string>> memberPath(std::string_view name, bool &atRoot);

	int rootFd_;
	const UnpackOptions &options_;
	UnpackReport &report_;
	std::vector<DirMeta> dirs_;
	std::set<std::string> topNames_;
	std::optional<std::string> fileAtTop_;
};

Result<std::vector<std::string>> Unpacker::memberPath(std::string_view name, bool &atRoot)
{
	Result<std::vector<std::string>> components = memberComponents(name);
	if (components)
		atRoot = components->empty(); // "." or "./": the root itself
	return components;
}

Result<UniqueFd> Unpacker::parentDir(const std::vector<std::string> &components)
{
	// Walks (and creates, 0700 for now) each parent below the root; every
	// step is one component resolved beneath the previous directory, so no
	// symlink and no ".." can be crossed.
	UniqueFd current(::fcntl(rootFd_, F_DUPFD_CLOEXEC, 3));
	if (!current.isValid())
		return Error(errno, "dup", "extraction root");
	for (std::size_t i = 0; i + 1 < components.size(); ++i) {
		const std::string &component = components[i];
		Result<UniqueFd> next =
			openBeneath(current.get(), component, O_PATH | O_DIRECTORY | O_NOFOLLOW);
		if (!next && next.error().errnum() == ENOENT) {
			if (::mkdirat(current.get(), component.c_str(), 0700) != 0 && errno != EEXIST)
				return Error(errno, "mkdir", escapeForDisplay(joined(components, i + 1)));
			dirs_.push_back({joined(components, i + 1), i + 1, mask(0777), std::nullopt});
			next = openBeneath(current.get(), component, O_PATH | O_DIRECTORY | O_NOFOLLOW);
		}
		if (!next)
			return Error::invalid(next.error().errnum(), "archive member",
					      escapeForDisplay(joined(components, components.size())),
					      "parent %s: %s",
					      escapeForDisplay(joined(components, i + 1)).substr(0, 100).c_str(),
					      next.error().reason());
		current = std::move(*next);
	}
	return current;
}

Status Unpacker::makeDirectory(const std::vector<std::string> &components, archive_entry *e)
{
	Result<UniqueFd> parent = parentDir(components);
	if (!parent)
		return parent.error();
	const std::string path = joined(components, components.size());
	const std::string &leaf = components.back();
	if (::mkdirat(parent->get(), leaf.c_str(), 0700) != 0) {
		// Created implicitly for an earlier member: fine if it is really a
		// directory (not a symlink or file of the same name).
		struct stat st {};
		if (errno != EEXIST ||
		    ::fstatat(parent->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(st.st_mode))
			return Error::invalid(EEXIST, "archive member", escapeForDisplay(path),
					      "exists already and is no directory");
		for (auto it = dirs_.begin(); it != dirs_.end(); ++it)
			if (it->path == path) {
				dirs_.erase(it);
				break;
			}
	} else {
		++report_.directories;
	}
	dirs_.push_back({path, components.size(), mask(archive_entry_perm(e)),
			 toTimespec(archive_entry_mtime(e), archive_entry_mtime_nsec(e))});
	return {};
}

Status Unpacker::makeFile(archive *a, const std::vector<std::string> &components, archive_entry *e)
{
	Result<UniqueFd> parent = parentDir(components);
	if (!parent)
		return parent.error();
	const std::string path = joined(components, components.size());
	Result<UniqueFd> fd = openBeneath(parent->get(), components.back(),
					  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (!fd)
		return Error::invalid(fd.error().errnum(), "archive member", escapeForDisplay(path),
				      "%s", fd.error().reason());
	const void *block = nullptr;
	std::size_t size = 0;
	la_int64_t offset = 0;
	for (;;) {
		const int rc = archive_read_data_block(a, &block, &size, &offset);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
			return Error::invalid(EPROTO, "archive member", escapeForDisplay(path), "%s",
					      archive_error_string(a) ? archive_error_string(a)
								      : "unreadable data");
		if (offset < 0)
			return Error::invalid(EPROTO, "archive member", escapeForDisplay(path),
					      "negative offset");
		Status written = writeSparseAt(fd->get(), static_cast<const char *>(block), size,
					       static_cast<off_t>(offset), path);
		if (!written)
			return written;
		report_.bytes += size;
	}
	// Trailing holes of a sparse file are not data blocks.
	if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 &&
	    ::ftruncate(fd->get(), static_cast<off_t>(archive_entry_size(e))) != 0)
		return Error(errno, "truncate", escapeForDisplay(path));
	if (::fchmod(fd->get(), mask(archive_entry_perm(e))) != 0)
		return Error(errno, "chmod", escapeForDisplay(path));
	const timespec times[2] = {toTimespec(0, UTIME_OMIT),
				   toTimespec(archive_entry_mtime(e), archive_entry_mtime_nsec(e))};
	if (archive_entry_mtime_is_set(e) && ::futimens(fd->get(), times) != 0)
		return Error(errno, "utimens", escapeForDisplay(path));
	++report_.files;
	return {};
}

Status Unpacker::makeSymlink(const std::vector<std::string> &components, archive_entry *e)
{
	const std::string path = joined(components, components.size());
	if (!options_.symlinks) {
		skip(path, "symlink not extracted (use --symlinks)");
		return {};
	}
	const char *target = archive_entry_symlink(e);
	const std::string_view targetText = target != nullptr ? target : "";
	Status ok = checkSymlinkTarget(targetText);
	if (!ok)
		return ok;
	Result<UniqueFd> parent = parentDir(components);
	if (!parent)
		return parent.error();
	// symlinkat never follows anything: an existing name (even a symlink)
	// makes it fail with EEXIST.
	if (::symlinkat(target, parent->get(), components.back().c_str()) != 0)
		return Error(errno, "symlink", escapeForDisplay(path));
	++report_.symlinks;
	return {};
}

Status Unpacker::makeHardlinkCopy(const std::vector<std::string> &components, archive_entry *e)
{
	const std::string path = joined(components, components.size());
	bool atRoot = false;
	Result<std::vector<std::string>> source = memberPath(archive_entry_hardlink(e), atRoot);
	if (!source)
		return source.error();
	if (atRoot) {
		skip(path, "hardlink to the root not extracted");
		return {};
	}
	// The source was created by us earlier in this stream, beneath the
	// root; O_NOFOLLOW + RESOLVE_NO_SYMLINKS keep it there.
	Result<UniqueFd> in = openBeneath(rootFd_, joined(*source, source->size()),
					  O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	struct stat st {};
	if (!in || ::fstat(in->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
		skip(path, "hardlink to a file that was not extracted");
		return {};
	}
	Result<UniqueFd> parent = parentDir(components);
	if (!parent)
		return parent.error();
	Result<UniqueFd> out = openBeneath(parent->get(), components.back(),
					   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (!out)
		return Error::invalid(out.error().errnum(), "archive member", escapeForDisplay(path),
				      "%s", out.error().reason());
	char buf[65536];
	off_t offset = 0;
	for (;;) {
		const ssize_t n = ::read(in->get(), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", escapeForDisplay(path));
		if (n == 0)
			break;
		Status written = writeAllAt(out->get(), buf, static_cast<std::size_t>(n), offset, path);
		if (!written)
			return written;
		offset += n;
		report_.bytes += static_cast<std::uint64_t>(n);
	}
	if (::fchmod(out->get(), st.st_mode & 0777) != 0)
		return Error(errno, "chmod", escapeForDisplay(path));
	const timespec times[2] = {toTimespec(0, UTIME_OMIT), st.st_mtim};
	(void)::futimens(out->get(), times);
	++report_.files;
	return {};
}

Status Unpacker::entry(archive *a, archive_entry *e)
{
	const char *rawName = archive_entry_pathname(e);
	if (rawName == nullptr)
		return Error::invalid(EPROTO, "archive member", "", "no name");
	const std::string_view name(rawName);
	bool atRoot = false;
	Result<std::vector<std::string>> components = memberPath(name, atRoot);
	if (!components)
		return components.error();
	const mode_t type = archive_entry_filetype(e);
	const bool isHardlink = archive_entry_hardlink(e) != nullptr;

	if (atRoot) {
		if (type == AE_IFDIR && !isHardlink) {
			dirs_.push_back({"", 0, mask(archive_entry_perm(e)),
					 toTimespec(archive_entry_mtime(e), archive_entry_mtime_nsec(e))});
			return {};
		}
		return Error::invalid(EPROTO, "archive member", escapeForDisplay(name),
				      "a non-directory at the top of the stream");
	}
	topNames_.insert(components->front());
	if (components->size() == 1 && type != AE_IFDIR)
		fileAtTop_ = components->front();

	if (isHardlink)
		return makeHardlinkCopy(*components, e);
	switch (type) {
	case AE_IFDIR:
		return makeDirectory(*components, e);
	case AE_IFREG:
		return makeFile(a, *components, e);
	case AE_IFLNK:
		return makeSymlink(*components, e);
	case AE_IFCHR:
	case AE_IFBLK:
		skip(std::string(name), "device node not extracted");
		return {};
	case AE_IFIFO:
		skip(std::string(name), "FIFO not extracted");
		return {};
	case AE_IFSOCK:
		skip(std::string(name), "socket not extracted");
		return {};
	default:
		skip(std::string(name), "unknown file type not extracted");
		return {};
	}
}

Status Unpacker::applyDirectoryMetadata()
{
	// Deepest first, so that a read-only parent is made read-only only
	// after its children got their metadata.
	std::stable_sort(dirs_.begin(), dirs_.end(),
			 [](const DirMeta &x, const DirMeta &y) { return x.depth > y.depth; });
	for (const DirMeta &dir : dirs_) {
		UniqueFd fd;
		if (dir.path.empty()) {
			fd.reset(::fcntl(rootFd_, F_DUPFD_CLOEXEC, 3));
		} else {
			Result<UniqueFd> opened =
				openBeneath(rootFd_, dir.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (!opened)
				return opened.error();
			fd = std::move(*opened);
		}
		if (!fd.isValid())
			return Error(errno, "open", escapeForDisplay(dir.path));
		if (::fchmod(fd.get(), dir.mode) != 0)
			return Error(errno, "chmod", escapeForDisplay(dir.path));
		if (dir.mtime) {
			const timespec times[2] = {toTimespec(0, UTIME_OMIT), *dir.mtime};
			(void)::futimens(fd.get(), times);
		}
	}
	return {};
}

Status Unpacker::run(int tarFd)
{
	std::unique_ptr<archive, int (*)(archive *)> a(archive_read_new(), archive_read_free);
	if (!a)
		return Error(ENOMEM, "archive_read_new", "");
	// tar (ustar, pax, GNU) only, no decompression filter: the guest sends
	// an uncompressed pax stream and nothing else is accepted.
	archive_read_support_format_tar(a.get());
	if (archive_read_open_fd(a.get(), tarFd, std::size_t{64} << 10) != ARCHIVE_OK)
		return Error::invalid(EPROTO, "archive", "", "%s", archive_error_string(a.get()));
	for (;;) {
		archive_entry *e = nullptr;
		const int rc = archive_read_next_header(a.get(), &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
			return Error::invalid(EPROTO, "archive", "", "%s",
					      archive_error_string(a.get()) ? archive_error_string(a.get())
									    : "bad header");
		Status done = entry(a.get(), e);
		if (!done)
			return done;
	}
	if (topNames_.size() == 1 && fileAtTop_ && *topNames_.begin() == *fileAtTop_)
		report_.singleFile = fileAtTop_;
	return applyDirectoryMetadata();
}

} // namespace

Result<UniqueFd> openBeneath(int dirFd, const std::string &path, std::uint64_t flags, mode_t mode)
{
	UniqueFd fd(openAt2(dirFd, path.c_str(), flags, kResolve, mode));
	if (!fd.isValid())
		return Error(errno, "openat2", escapeForDisplay(path));
	return fd;
}

Status removeTree(int dirFd, const std::string &name)
{
	UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (!fd.isValid()) {
		if (errno == ENOENT)
			return {};
		// A file, a symlink (ELOOP with O_NOFOLLOW) or something else that
		// is not a directory: unlink the name itself.
		if ((errno == ENOTDIR || errno == ELOOP) && ::unlinkat(dirFd, name.c_str(), 0) == 0)
			return {};
		if (errno != EACCES)
			return Error(errno, "remove", escapeForDisplay(name));
		// A directory we made unreadable (mode 0000 from the archive).
		if (::fchmodat(dirFd, name.c_str(), 0700, 0) != 0)
			return Error(errno, "chmod", escapeForDisplay(name));
		fd.reset(::openat(dirFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
		if (!fd.isValid())
			return Error(errno, "remove", escapeForDisplay(name));
	}
	(void)::fchmod(fd.get(), 0700);
	std::vector<std::string> children;
	{
		const int scan = reopenDir(fd.get());
		DIR *dir = scan >= 0 ? ::fdopendir(scan) : nullptr;
		if (dir == nullptr) {
			if (scan >= 0)
				::close(scan);
			return Error(errno, "opendir", escapeForDisplay(name));
		}
		while (const dirent *entry = ::readdir(dir)) {
			const std::string_view child(entry->d_name);
			if (child != "." && child != "..")
				children.emplace_back(child);
		}
		::closedir(dir);
	}
	for (const std::string &child : children) {
		Status removed = removeTree(fd.get(), child);
		if (!removed)
			return removed;
	}
	if (::unlinkat(dirFd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
		return Error(errno, "rmdir", escapeForDisplay(name));
	return {};
}

Status unpackTar(int tarFd, int rootFd, const UnpackOptions &options, UnpackReport &report)
{
	Unpacker unpacker(rootFd, options, report);
	return unpacker.run(tarFd);
}

TarSink::TarSink(int rootFd, UnpackOptions options) : rootFd_(rootFd), options_(options) {}

TarSink::~TarSink()
{
	(void)stopThread();
}

Status TarSink::start()
{
	// A socketpair rather than a pipe: send(MSG_NOSIGNAL) reports a reader
	// that gave up as EPIPE without raising SIGPIPE.
	int fds[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
		return Error(errno, "socketpair", "archive stream");
	readEnd_.reset(fds[0]);
	writeEnd_.reset(fds[1]);
	const int readFd = readEnd_.get();
	thread_ = std::thread([this, readFd] {
		Status status = unpackTar(readFd, rootFd_, options_, report_);
		if (status) {
			// libarchive stops at the end-of-archive blocks; the record
			// padding after them still has to be drained so the writer
			// does not block on a full socket.
			char buf[65536];
			ssize_t n;
			while ((n = ::read(readFd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
			}
		}
		result_ = status;
		::shutdown(readFd, SHUT_RDWR);
	});
	return {};
}

Status TarSink::write(std::string_view chunk)
{
	while (!chunk.empty()) {
		const ssize_t n = ::send(writeEnd_.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			const int err = errno;
			Status reader = stopThread();
			if (!reader)
				return reader;
			return Error(err, "write", "archive stream");
		}
		chunk.remove_prefix(static_cast<std::size_t>(n));
	}
	return {};
}

Status TarSink::stopThread()
{
	if (writeEnd_.isValid()) {
		::shutdown(writeEnd_.get(), SHUT_WR);
		writeEnd_.reset();
	}
	if (thread_.joinable())
		thread_.join();
	readEnd_.reset();
	return result_.value_or(Status{});
}

Status TarSink::finish()
{
	return stopThread();
}

Result<std::unique_ptr<Staging>> Staging::create(int targetDirFd, const std::string &targetDirPath,
						 int journalDirFd)
{
	Result<std::uint64_t> startTime = readStartTime(::getpid());
	if (!startTime)
		return startTime.error();
	unsigned char random[6];
	randombytes_buf(random, sizeof(random));
	std::unique_ptr<Staging> staging(new Staging());
	staging->targetDirFd_ = targetDirFd;
	staging->name_ = std::string(kStagingPrefix) + std::to_string(::getpid()) + "-" +
			 std::to_string(*startTime) + "-" +
			 hexEncode(std::string_view(reinterpret_cast<const char *>(random), sizeof(random)));
	if (journalDirFd >= 0) {
		// Journal first: a kill between the two steps leaves an entry
		// without a directory, which the cleanup simply drops.
		staging->journalName_ = "partial" + staging->name_;
		UniqueFd journal(::openat(journalDirFd, staging->journalName_.c_str(),
					  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
		if (!journal.isValid())
			return Error(errno, "open", staging->journalName_);
		const std::string record = targetDirPath + std::string(1, '\0') + staging->name_;
		if (::write(journal.get(), record.data(), record.size()) !=
		    static_cast<ssize_t>(record.size())) {
			const Error error(errno, "write", staging->journalName_);
			::unlinkat(journalDirFd, staging->journalName_.c_str(), 0);
			return error;
		}
		staging->journalDirFd_ = journalDirFd;
	}
	if (::mkdirat(targetDirFd, staging->name_.c_str(), 0700) != 0)
		return Error(errno, "mkdir", escapeForDisplay(targetDirPath + "/" + staging->name_));
	staging->fd_.reset(::openat(targetDirFd, staging->name_.c_str(),
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (!staging->fd_.isValid())
		return Error(errno, "open", escapeForDisplay(targetDirPath + "/" + staging->name_));
	return staging;
}

void Staging::discard()
{
	if (done_)
		return;
	done_ = true;
	fd_.reset();
	(void)removeTree(targetDirFd_, name_);
	if (journalDirFd_ >= 0)
		::unlinkat(journalDirFd_, journalName_.c_str(), 0);
}

Staging::~Staging()
{
	discard();
}

Status Staging::commit(const std::string &inner, const std::string &finalName)
{
	const int fromDir = inner.empty() ? targetDirFd_ : fd_.get();
	const std::string &from = inner.empty() ? name_ : inner;
	if (::renameat2(fromDir, from.c_str(), targetDirFd_, finalName.c_str(), RENAME_NOREPLACE) != 0) {
		const int err = errno;
		discard();
		if (err == EEXIST)
			return Error::invalid(EEXIST, "extract", escapeForDisplay(finalName),
					      "exists already in the target directory; not replaced");
		return Error(err, "rename", escapeForDisplay(finalName));
	}
	discard();
	return {};
}

void cleanLeftovers(int targetDirFd)
{
	const int scan = reopenDir(targetDirFd);
	DIR *dir = scan >= 0 ? ::fdopendir(scan) : nullptr;
	if (dir == nullptr) {
		if (scan >= 0)
			::close(scan);
		return;
	}
	std::vector<std::string> stale;
	while (const dirent *entry = ::readdir(dir)) {
		StagingOwner owner;
		if (!parseStagingName(entry->d_name, owner))
			continue;
		struct stat st {};
		// Only our own: in a shared directory another user's staging
		// directory is not ours to judge.
		if (::fstatat(targetDirFd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    st.st_uid != ::geteuid())
			continue;
		Result<std::uint64_t> startTime = readStartTime(owner.pid);
		if (startTime && *startTime == owner.startTime)
			continue; // its extraction is still running
		stale.emplace_back(entry->d_name);
	}
	::closedir(dir);
	for (const std::string &name : stale)
		(void)removeTree(targetDirFd, name);
}

void cleanJournal(int runtimeDirFd)
{
	const int scan = reopenDir(runtimeDirFd);
	DIR *dir = scan >= 0 ? ::fdopendir(scan) : nullptr;
	if (dir == nullptr) {
		if (scan >= 0)
			::close(scan);
		return;
	}
	std::vector<std::string> entries;
	while (const dirent *entry = ::readdir(dir)) {
		const std::string_view name(entry->d_name);
		if (name.substr(0, 7) == "partial")
			entries.emplace_back(name);
	}
	::closedir(dir);
	for (const std::string &entry : entries) {
		StagingOwner owner;
		const std::string staging = entry.substr(7);
		if (!parseStagingName(staging, owner))
			continue;
		Result<std::uint64_t> startTime = readStartTime(owner.pid);
		if (startTime && *startTime == owner.startTime)
			continue;
		UniqueFd fd(::openat(runtimeDirFd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
		char buf[8192];
		const ssize_t n = fd.isValid() ? ::read(fd.get(), buf, sizeof(buf)) : -1;
		if (n > 0) {
			const std::string record(buf, static_cast<std::size_t>(n));
			const std::size_t nul = record.find('\0');
			// Only the staging name this entry was written for, in the
			// directory it names.
			if (nul != std::string::npos && record.substr(nul + 1) == staging) {
				UniqueFd target(::open(record.substr(0, nul).c_str(),
						       O_RDONLY | O_DIRECTORY | O_CLOEXEC));
				struct stat st {};
				if (target.isValid() &&
				    ::fstatat(target.get(), staging.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    st.st_uid == ::geteuid())
					(void)removeTree(target.get(), staging);
			}
		}
		::unlinkat(runtimeDirFd, entry.c_str(), 0);
	}
}

} // namespace fr::client
