// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "fr_config.h"
#include "guest/extract.h"
#include "guest/fsutil.h"
#include "shared/clock.h"
#include "shared/guest_abi.h"
#include "shared/log.h"

namespace fr::guest {

namespace {

constexpr std::uint64_t kLogListingEntries = 100000;
constexpr std::size_t kListBatchEntries = 65536;
constexpr std::size_t kListBatchBytes = std::size_t{4} << 20;

// A reason or warning as one line of text the protocol carries: control
// bytes (tool output quoting hostile metadata may hold any) become spaces,
// and it ends at kMessageMax bytes.
std::string oneLine(std::string_view text)
{
	std::string out(text.substr(0, proto::kMessageMax));
	for (char &c : out)
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			c = ' ';
	return out;
}

proto::Entry virtualDir(const VolumeEntry &volume)
{
	proto::Entry entry;
	entry.type = proto::EntryType::Directory;
	entry.isVirtual = true;
	entry.mode = 0555;
	entry.size = volume.sizeBytes;
	entry.name = volume.name;
	entry.reason = oneLine(volume.reason);
	return entry;
}

// The response's first frame, when the filesystem has something to say.
Status sendWarning(const Resolved &resolved, Responder &out)
{
	if (resolved.warning.empty())
		return {};
	return out.message(proto::Warning{oneLine(resolved.warning)});
}

// The entry for `name` in the directory `dirFd`, with a symlink's target;
// nullopt when it is left out. fstatat on the name only: a single component
// cannot leave the directory, and AT_SYMLINK_NOFOLLOW describes links as
// links.
std::optional<proto::Entry> describeEntry(int dirFd, const std::string &name)
{
	struct stat child {};
	if (::fstatat(dirFd, name.c_str(), &child, AT_SYMLINK_NOFOLLOW) != 0) {
		logf(LogLevel::Warning, "list: fstatat failed (errno %d): entry skipped", errno);
		return std::nullopt;
	}
	std::optional<proto::Entry> entry = entryFromStat(child, name);
	if (entry && entry->type == proto::EntryType::Symlink) {
		Result<UniqueFd> link = openBeneath(dirFd, name, O_PATH);
		if (link) {
			Result<std::string> target = readLinkTarget(link->get());
			if (target)
				entry->linkTarget = *target;
		}
	}
	return entry;
}

// Splits a Volume's rest into its parent directory and last name.
std::pair<std::string, std::string> splitRest(const std::string &rest)
{
	const std::size_t slash = rest.rfind('/');
	if (slash == std::string::npos)
		return {std::string(), rest};
	return {rest.substr(0, slash), rest.substr(slash + 1)};
}

} // namespace

proto::StatusInfo TreeHandler::status(bool keepTimeout)
{
	if (!keepTimeout)
		activity_.touch();
	proto::StatusInfo info;
	info.uptimeMs = static_cast<std::uint64_t>(bootTimeMs());
	info.idleLeftMs = activity_.idleLeftMs();
	info.idleTimeoutS = activity_.timeoutS();
	info.diskCount = volumes_.diskCount();
	info.mountCount = volumes_.mountCount();
	info.activeRequests = activity_.active();
	info.version = std::string(FR_VERSION).substr(0, proto::kVersionTextSize);
	return info;
}

void TreeHandler::stop()
{
	activity_.touch();
	activity_.requestStop();
}

Status TreeHandler::list(std::string_view path, Responder &out)
{
	Activity::Hold hold(activity_);
	Result<Located> located = locate(path);
	if (!located)
		return located.error();
	const VirtualPath &vp = located->vp;
	const Resolved &resolved = located->resolved;
	if (Status ok = sendWarning(resolved, out); !ok)
		return ok;
	const std::vector<VolumeEntry> &virtualEntries =
		resolved.isFilesystem ? resolved.rootExtras : resolved.entries;
	if (!resolved.isFilesystem || resolved.rest.empty()) {
		// A volume that cannot be opened is listed with its reason: it
		// never vanishes.
		for (const VolumeEntry &v : virtualEntries)
			if (Status ok = out.entry(virtualDir(v)); !ok)
				return ok;
	}
	if (!resolved.isFilesystem)
		return {};
	return listFilesystem(resolved.root, resolved.rest, vp.lastName, out);
}

namespace {

// The directory at `rest` below `root`, opened for reading; ENOTDIR when
// it is something else.
Result<UniqueFd> openDirectory(int root, const std::string &rest, const std::string &lastName)
{
	Result<UniqueFd> object = openBeneath(root, rest, O_PATH);
	if (!object)
		return object.error();
	struct stat st {};
	if (::fstat(object->get(), &st) != 0)
		return Error(errno, "fstat", rest);
	if (!S_ISDIR(st.st_mode))
		return Error::invalid(ENOTDIR, "list", lastName, "not a directory");
	return openBeneath(root, rest, O_RDONLY | O_DIRECTORY);
}

// Names are stat()ed in batches sorted by inode number. getdents of a
// hashed directory (ext4's htree) returns hash order, which is random
// against the inode table: in a directory larger than the guest's cache
// every fstatat read its own inode-table block (with 128 KiB of
// readahead), and 1,000,000 entries took 11 minutes under TCG. A batch is
// bounded (kListBatchEntries, kListBatchBytes), so memory stays flat
// however large the directory.
class InodeOrderedBatch {
public:
	InodeOrderedBatch(int dirFd, Responder &out) : dirFd_(dirFd), out_(out) {}

	Status add(std::uint64_t ino, std::string_view name)
	{
		pending_.push_back(Pending{ino, std::string(name)});
		bytes_ += sizeof(Pending) + name.size();
		if (pending_.size() >= kListBatchEntries || bytes_ >= kListBatchBytes)
			return send();
		return {};
	}
	// Stats and sends what is pending, in inode order.
	Status send()
	{
		std::sort(pending_.begin(), pending_.end(),
			  [](const Pending &a, const Pending &b) { return a.ino < b.ino; });
		for (const Pending &pending : pending_) {
			const std::optional<proto::Entry> entry = describeEntry(dirFd_, pending.name);
			if (!entry) {
				++skipped;
				continue;
			}
			if (Status ok = out_.entry(*entry); !ok)
				return ok;
			++listed;
		}
		pending_.clear();
		bytes_ = 0;
		return {};
	}

	std::uint64_t listed = 0;
	std::uint64_t skipped = 0;

private:
	struct Pending {
		std::uint64_t ino;
		// cppcheck-suppress unusedStructMember ; read in send() (pending.name)
		std::string name;
	};
	int dirFd_;
	Responder &out_;
	std::vector<Pending> pending_;
	std::size_t bytes_ = 0;
};

} // namespace

Status TreeHandler::listFilesystem(int root, const std::string &rest, const std::string &lastName, Responder &out)
{
	Result<UniqueFd> dir = openDirectory(root, rest, lastName);
	if (!dir)
		return dir.error();
	DirReader reader(std::move(*dir));
	InodeOrderedBatch batch(reader.fd(), out);
	for (;;) {
		Result<std::optional<std::string_view>> next = reader.next();
		if (!next)
			return next.error();
		if (!*next)
			break;
		const std::string_view name = **next;
		if (!proto::checkName(name)) {
			++batch.skipped; // longer than 255 bytes (vfat + utf8 can), or '/'
			continue;
		}
		if (Status ok = batch.add(reader.ino(), name); !ok)
			return ok;
	}
	if (Status ok = batch.send(); !ok)
		return ok;
	if (batch.skipped > 0)
		logf(LogLevel::Warning, "list: %llu entries left out (names the protocol cannot carry)",
		     static_cast<unsigned long long>(batch.skipped));
	// Large directories stream: the daemon's memory must not grow with
	// them (bench/compare.sh reads this line). Small ones are not logged:
	// the serial console is slow under emulation.
	if (batch.listed >= kLogListingEntries)
		logf(LogLevel::Info, "list: %llu entries, peak RSS %ld KiB",
		     static_cast<unsigned long long>(batch.listed), peakRssKiB());
	return {};
}

Status TreeHandler::extract(const proto::ExtractRequest &request, Responder &out)
{
	Activity::Hold hold(activity_);
	Result<Located> located = locate(request.path);
	if (!located)
		return located.error();
	const VirtualPath &vp = located->vp;
	const Resolved &resolved = located->resolved;
	if (!resolved.isFilesystem)
		return Error::invalid(EOPNOTSUPP, "extract", request.path.substr(0, 64),
				      "only paths inside a filesystem can be extracted");
	if (Status ok = sendWarning(resolved, out); !ok)
		return ok;
	if (resolved.rest.empty())
		return extractObject(resolved.root, "", vp.lastName, request.format, request.compression, out);
	const auto [parent, name] = splitRest(resolved.rest);
	Result<UniqueFd> dir = openBeneath(resolved.root, parent, O_PATH | O_DIRECTORY);
	if (!dir)
		return dir.error();
	return extractObject(dir->get(), name, name, request.format, request.compression, out);
}

Result<std::uint64_t> TreeHandler::unlock(std::string_view key)
{
	Activity::Hold hold(activity_);
	const std::uint64_t start = monotonicMs();
	Result<std::uint32_t> opened = volumes_.unlock(key);
	if (opened)
		logf(LogLevel::Info, "unlock: %u LUKS volume(s) opened in %llu ms", *opened,
		     static_cast<unsigned long long>(monotonicMs() - start));
	if (!opened)
		return opened.error();
	return std::uint64_t{*opened};
}

Result<TreeHandler::Located> TreeHandler::locate(std::string_view path)
{
	Result<VirtualPath> vp = splitVirtualPath(path);
	if (!vp)
		return vp.error();
	Result<Resolved> resolved = volumes_.resolve(vp->components);
	if (!resolved)
		return resolved.error();
	return Located{std::move(*vp), std::move(*resolved)};
}

Result<TreeHandler::Object> TreeHandler::openObject(const Resolved &resolved)
{
	Result<UniqueFd> fd = openBeneath(resolved.root, resolved.rest, O_PATH);
	if (!fd)
		return fd.error();
	Object object;
	object.fd = std::move(*fd);
	if (::fstat(object.fd.get(), &object.st) != 0)
		return Error(errno, "fstat", resolved.rest.substr(0, 200));
	return object;
}

Status TreeHandler::stat(std::string_view path, Responder &out)
{
	activity_.touch();
	Result<Located> located = locate(path);
	if (!located)
		return located.error();
	const VirtualPath &vp = located->vp;
	const Resolved &resolved = located->resolved;
	if (!resolved.isFilesystem) {
		VolumeEntry level;
		level.name = vp.lastName;
		return out.entry(virtualDir(level));
	}
	Result<Object> object = openObject(resolved);
	if (!object)
		return object.error();
	std::optional<proto::Entry> entry = entryFromStat(object->st, vp.lastName);
	if (!entry)
		return Error::invalid(EOPNOTSUPP, "stat", vp.lastName.substr(0, 64), "unknown file type");
	if (entry->type == proto::EntryType::Symlink) {
		Result<std::string> target = readLinkTarget(object->fd.get());
		if (target)
			entry->linkTarget = *target;
	}
	return out.entry(*entry);
}

Status TreeHandler::read(const proto::ReadRequest &request, Responder &out)
{
	Activity::Hold hold(activity_);
	Result<Located> located = locate(request.path);
	if (!located)
		return located.error();
	const VirtualPath &vp = located->vp;
	const Resolved &resolved = located->resolved;
	if (!resolved.isFilesystem || resolved.rest.empty())
		return Error::invalid(EISDIR, "read", vp.lastName.substr(0, 64), "is a directory");
	Result<Object> object = openObject(resolved);
	if (!object)
		return object.error();
	if (S_ISDIR(object->st.st_mode))
		return Error::invalid(EISDIR, "read", vp.lastName.substr(0, 64), "is a directory");
	if (!S_ISREG(object->st.st_mode))
		return Error::invalid(EOPNOTSUPP, "read", vp.lastName.substr(0, 64), "not a regular file");
	// Opened again for reading: a regular file (checked above on a
	// read-only filesystem) never blocks the open.
	Result<UniqueFd> file = openBeneath(resolved.root, resolved.rest, O_RDONLY | O_NONBLOCK);
	if (!file)
		return file.error();
	std::vector<std::uint8_t> buf(request.length);
	std::size_t got = 0;
	while (got < buf.size()) {
		const ssize_t n = ::pread(file->get(), buf.data() + got, buf.size() - got,
					  static_cast<off_t>(request.offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "read", vp.lastName.substr(0, 64));
		if (n == 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	return out.data(std::span<const std::uint8_t>(buf.data(), got));
}

Status TreeHandler::xattrs(std::string_view path, Responder &out)
{
	activity_.touch();
	Result<Located> located = locate(path);
	if (!located)
		return located.error();
	const VirtualPath &vp = located->vp;
	const Resolved &resolved = located->resolved;
	if (!resolved.isFilesystem)
		return {}; // virtual directories have none
	Result<Object> object = openObject(resolved);
	if (!object)
		return object.error();
	// fgetxattr needs a real fd: regular files and directories are opened
	// for reading; the others (symlinks, devices) are reported without
	// attributes rather than opened.
	if (!S_ISREG(object->st.st_mode) && !S_ISDIR(object->st.st_mode))
		return {};
	Result<UniqueFd> fd = openBeneath(resolved.root, resolved.rest, O_RDONLY | O_NONBLOCK);
	if (!fd)
		return fd.error();
	std::vector<char> names(proto::kXattrValueMax);
	const ssize_t listed = ::flistxattr(fd->get(), names.data(), names.size());
	if (listed < 0) {
		if (errno == ENOTSUP || errno == EOPNOTSUPP)
			return {}; // the filesystem has none
		return Error(errno, "flistxattr", vp.lastName.substr(0, 64));
	}
	std::vector<char> value(proto::kXattrValueMax);
	for (std::size_t at = 0; at < static_cast<std::size_t>(listed);) {
		const std::string name(names.data() + at);
		at += name.size() + 1;
		if (name.empty() || name.size() > proto::kXattrNameMax)
			continue;
		const ssize_t n = ::fgetxattr(fd->get(), name.c_str(), value.data(), value.size());
		if (n < 0)
			continue; // removed meanwhile, or too large: left out
		proto::Xattr xattr;
		xattr.name = name;
		xattr.value.assign(value.data(), static_cast<std::size_t>(n));
		if (Status ok = out.xattr(xattr); !ok)
			return ok;
	}
	return {};
}

} // namespace fr::guest
