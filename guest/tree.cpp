// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

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

proto::Entry virtualDir(std::string name, std::uint64_t size = 0)
{
	proto::Entry entry;
	entry.type = proto::EntryType::Directory;
	entry.mode = 0555;
	entry.size = size;
	entry.name = std::move(name);
	return entry;
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
	Result<VirtualPath> vp = splitVirtualPath(path);
	if (!vp)
		return vp.error();
	Result<Resolved> resolved = volumes_.resolve(vp->components);
	if (!resolved)
		return resolved.error();
	if (!resolved->warning.empty())
		logf(LogLevel::Info, "list: %s", resolved->warning.c_str());
	const std::vector<VolumeEntry> &virtualEntries =
		resolved->isFilesystem ? resolved->rootExtras : resolved->entries;
	if (!resolved->isFilesystem || resolved->rest.empty()) {
		for (const VolumeEntry &v : virtualEntries) {
			// The reason is logged until the protocol carries it; the
			// entry is listed either way: a volume never vanishes.
			if (!v.reason.empty())
				logf(LogLevel::Info, "list: %s: %s", v.name.c_str(), v.reason.c_str());
			if (Status ok = out.entry(virtualDir(v.name, v.sizeBytes)); !ok)
				return ok;
		}
	}
	if (!resolved->isFilesystem)
		return {};
	return listFilesystem(resolved->root, resolved->rest, vp->lastName, out);
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
		// cppcheck-suppress unusedStructMember ; read by flush() (pending.name)
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
	Result<VirtualPath> vp = splitVirtualPath(request.path);
	if (!vp)
		return vp.error();
	Result<Resolved> resolved = volumes_.resolve(vp->components);
	if (!resolved)
		return resolved.error();
	if (!resolved->isFilesystem)
		return Error::invalid(EOPNOTSUPP, "extract", request.path.substr(0, 64),
				      "only paths inside a filesystem can be extracted");
	if (!resolved->warning.empty())
		logf(LogLevel::Info, "extract: %s", resolved->warning.c_str());
	if (resolved->rest.empty())
		return extractObject(resolved->root, "", vp->lastName, request.format, request.compression, out);
	const auto [parent, name] = splitRest(resolved->rest);
	Result<UniqueFd> dir = openBeneath(resolved->root, parent, O_PATH | O_DIRECTORY);
	if (!dir)
		return dir.error();
	return extractObject(dir->get(), name, name, request.format, request.compression, out);
}

} // namespace fr::guest
