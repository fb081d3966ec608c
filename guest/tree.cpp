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

std::uint64_t uptimeMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_BOOTTIME, &ts);
	return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
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
	info.uptimeMs = uptimeMs();
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

Status TreeHandler::listFilesystem(int root, const std::string &rest, const std::string &lastName, Responder &out)
{
	Result<UniqueFd> object = openBeneath(root, rest, O_PATH);
	if (!object)
		return object.error();
	struct stat st {};
	if (::fstat(object->get(), &st) != 0)
		return Error(errno, "fstat", rest);
	if (!S_ISDIR(st.st_mode))
		return Error::invalid(ENOTDIR, "list", lastName, "not a directory");
	Result<UniqueFd> dir = openBeneath(root, rest, O_RDONLY | O_DIRECTORY);
	if (!dir)
		return dir.error();
	DirReader reader(std::move(*dir));
	std::uint64_t skipped = 0;
	std::uint64_t listed = 0;
	// Names are stat()ed in batches sorted by inode number. getdents of a
	// hashed directory (ext4's htree) returns hash order, which is random
	// against the inode table: in a directory larger than the guest's
	// cache every fstatat read its own inode-table block (with 128 KiB of
	// readahead), and 1,000,000 entries took 11 minutes under TCG. A
	// batch is bounded (kListBatchEntries, kListBatchBytes), so memory stays
	// flat however large the directory.
	struct Pending {
		std::uint64_t ino;
		std::string name;
	};
	std::vector<Pending> batch;
	std::size_t batchBytes = 0;
	auto statBatch = [&]() -> Status {
		std::sort(batch.begin(), batch.end(),
			  [](const Pending &a, const Pending &b) { return a.ino < b.ino; });
		for (const Pending &pending : batch) {
			// fstatat on the name only: a single component cannot leave
			// the directory, and AT_SYMLINK_NOFOLLOW describes links as
			// links.
			struct stat child {};
			if (::fstatat(reader.fd(), pending.name.c_str(), &child, AT_SYMLINK_NOFOLLOW) != 0) {
				logf(LogLevel::Warning, "list: fstatat failed (errno %d): entry skipped", errno);
				++skipped;
				continue;
			}
			std::optional<proto::Entry> entry = entryFromStat(child, pending.name);
			if (!entry) {
				++skipped;
				continue;
			}
			if (entry->type == proto::EntryType::Symlink) {
				Result<UniqueFd> link = openBeneath(reader.fd(), pending.name, O_PATH);
				if (link) {
					Result<std::string> target = readLinkTarget(link->get());
					if (target)
						entry->linkTarget = *target;
				}
			}
			if (Status ok = out.entry(*entry); !ok)
				return ok;
			++listed;
		}
		batch.clear();
		batchBytes = 0;
		return {};
	};
	for (;;) {
		Result<std::optional<std::string_view>> next = reader.next();
		if (!next)
			return next.error();
		if (!*next)
			break;
		const std::string_view name = **next;
		if (!proto::checkName(name)) {
			++skipped; // longer than 255 bytes (vfat + utf8 can), or '/'
			continue;
		}
		batch.push_back(Pending{reader.ino(), std::string(name)});
		batchBytes += sizeof(Pending) + name.size();
		if (batch.size() >= kListBatchEntries || batchBytes >= kListBatchBytes)
			if (Status ok = statBatch(); !ok)
				return ok;
	}
	if (Status ok = statBatch(); !ok)
		return ok;
	if (skipped > 0)
		logf(LogLevel::Warning, "list: %llu entries left out (names the protocol cannot carry)",
		     static_cast<unsigned long long>(skipped));
	// Large directories stream: the daemon's memory must not grow with
	// them (bench/compare.sh reads this line). Small ones are not logged:
	// the serial console is slow under emulation.
	if (listed >= kLogListingEntries)
		logf(LogLevel::Info, "list: %llu entries, peak RSS %ld KiB", static_cast<unsigned long long>(listed),
		     peakRssKiB());
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
