// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/datastore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "client/pbs/file_io.h"
#include "shared/display.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

namespace {

constexpr std::size_t kSafeIdMax = 128;

// PBS's PROXMOX_SAFE_ID: [A-Za-z0-9_][A-Za-z0-9._-]*
bool isSafeId(std::string_view name)
{
	if (name.empty() || name.size() > kSafeIdMax)
		return false;
	for (std::size_t i = 0; i < name.size(); ++i) {
		const char c = name[i];
		const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				   (c >= '0' && c <= '9') || c == '_';
		if (!alnum && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

bool isBackupType(std::string_view type)
{
	return type == "vm" || type == "ct" || type == "host";
}

std::vector<std::string> split(std::string_view text)
{
	std::vector<std::string> out;
	std::size_t start = 0;
	while (start <= text.size()) {
		const std::size_t slash = text.find('/', start);
		const std::size_t end = slash == std::string_view::npos ? text.size() : slash;
		out.emplace_back(text.substr(start, end - start));
		if (slash == std::string_view::npos)
			break;
		start = slash + 1;
	}
	return out;
}

// The names in a directory (fd kept by the caller), sorted; "." entries
// excluded.
Result<std::vector<std::string>> directoryNames(int dirFd, const std::string &display)
{
	const int scanFd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = scanFd >= 0 ? ::fdopendir(scanFd) : nullptr;
	if (dir == nullptr) {
		const int err = errno;
		if (scanFd >= 0)
			::close(scanFd);
		return Error(err, "opendir", escapeForDisplay(display));
	}
	std::vector<std::string> names;
	while (const dirent *entry = ::readdir(dir))
		if (entry->d_name[0] != '.')
			names.emplace_back(entry->d_name);
	::closedir(dir);
	std::sort(names.begin(), names.end());
	return names;
}

UniqueFd openDir(int dirFd, const std::string &name)
{
	return UniqueFd(::openat(dirFd, name.c_str(),
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
}

bool endsWith(std::string_view text, std::string_view suffix)
{
	return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string nsPath(const std::vector<std::string> &ns)
{
	std::string out;
	for (const std::string &name : ns)
		out += "ns/" + name + "/";
	return out;
}

Result<Manifest> readManifest(int snapshotFd, const std::string &display)
{
	Result<Bytes> blob = readWholeFile(snapshotFd, kManifestName, kManifestMaxBytes,
					   display + "/" + kManifestName);
	if (!blob)
		return blob.error();
	Result<Manifest> manifest = decodeManifest(*blob);
	if (!manifest)
		return Error::invalid(manifest.error().errnum(), "manifest",
				      escapeForDisplay(display + "/" + kManifestName), "%s: %s",
				      manifest.error().object(), manifest.error().reason());
	return manifest;
}

void listGroup(int groupFd, const std::vector<std::string> &ns, const std::string &type,
	       const std::string &id, const std::string &display, std::vector<SnapshotSummary> &out)
{
	Result<std::vector<std::string>> times = directoryNames(groupFd, display);
	if (!times)
		return;
	for (const std::string &time : *times) {
		if (!parseSnapshotTime(time))
			continue;
		UniqueFd snapFd = openDir(groupFd, time);
		if (!snapFd.isValid())
			continue;
		SnapshotSummary summary;
		summary.id = SnapshotId{ns, type, id, time};
		struct stat st {};
		summary.isProtected = ::fstatat(snapFd.get(), ".protected", &st, 0) == 0;
		std::string where = display;
		where += '/';
		where += time;
		Result<Manifest> manifest = readManifest(snapFd.get(), where);
		if (!manifest) {
			summary.problem = manifest.error().errnum() == ENOENT
						  ? "incomplete (no manifest)"
						  : manifest.error().message();
		} else {
			for (const ManifestFile &file : manifest->files) {
				summary.size += file.size;
				if (endsWith(file.filename, ".img.fidx"))
					summary.images.push_back(file.filename);
			}
			summary.encrypted = manifest->encrypted();
		}
		out.push_back(std::move(summary));
	}
}

Status listNamespace(int nsFd, const std::vector<std::string> &ns, bool recursive,
		     const std::string &display, std::vector<SnapshotSummary> &out)
{
	Result<std::vector<std::string>> names = directoryNames(nsFd, display);
	if (!names)
		return names.error();
	for (const std::string &type : *names) {
		if (!isBackupType(type))
			continue;
		UniqueFd typeFd = openDir(nsFd, type);
		if (!typeFd.isValid())
			continue;
		Result<std::vector<std::string>> ids = directoryNames(typeFd.get(), display + type);
		if (!ids)
			continue;
		for (const std::string &id : *ids) {
			if (!isSafeId(id))
				continue;
			UniqueFd groupFd = openDir(typeFd.get(), id);
			std::string where = display;
			where.append(type).append("/").append(id);
			if (groupFd.isValid())
				listGroup(groupFd.get(), ns, type, id, where, out);
		}
	}
	if (!recursive || ns.size() >= kMaxNamespaceDepth)
		return {};
	UniqueFd childrenFd = openDir(nsFd, "ns");
	if (!childrenFd.isValid())
		return {};
	Result<std::vector<std::string>> children = directoryNames(childrenFd.get(), display + "ns");
	if (!children)
		return {};
	for (const std::string &child : *children) {
		if (!isSafeId(child))
			continue;
		UniqueFd childFd = openDir(childrenFd.get(), child);
		if (!childFd.isValid())
			continue;
		std::vector<std::string> childNs = ns;
		childNs.push_back(child);
		std::string where = display;
		where.append("ns/").append(child).append("/");
		(void)listNamespace(childFd.get(), childNs, true, where, out);
	}
	return {};
}

} // namespace

bool isDatastore(const std::string &dir)
{
	struct stat st {};
	return ::stat((dir + "/.chunks").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> parseNamespace(std::string_view ns)
{
	std::vector<std::string> out;
	if (ns.empty())
		return out;
	std::string_view trimmed = ns;
	if (trimmed.back() == '/')
		trimmed.remove_suffix(1);
	for (const std::string &name : split(trimmed)) {
		if (!isSafeId(name))
			return Error::invalid(EINVAL, "--ns", escapeForDisplay(ns),
					      "'%s' is not a namespace name "
					      "([A-Za-z0-9_][A-Za-z0-9._-]*)",
					      escapeForDisplay(name).substr(0, 64).c_str());
		out.push_back(name);
	}
	if (out.size() > kMaxNamespaceDepth)
		return Error::invalid(EINVAL, "--ns", escapeForDisplay(ns),
				      "namespaces nest at most %zu deep", kMaxNamespaceDepth);
	return out;
}

std::string SnapshotId::group() const
{
	return nsPath(ns) + type + "/" + id;
}

std::string SnapshotId::path() const
{
	return group() + "/" + time;
}

Result<std::int64_t> parseSnapshotTime(std::string_view time)
{
	// YYYY-MM-DDTHH:MM:SSZ, exactly.
	static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
	bool ok = time.size() == kShape.size();
	for (std::size_t i = 0; ok && i < kShape.size(); ++i)
		ok = kShape[i] == 'd' ? (time[i] >= '0' && time[i] <= '9') : time[i] == kShape[i];
	if (!ok)
		return Error::invalid(EINVAL, "snapshot time", escapeForDisplay(time),
				      "not of the form 2026-11-25T10:00:00Z");
	auto num = [&](std::size_t at, std::size_t len) {
		int v = 0;
		for (std::size_t i = 0; i < len; ++i)
			v = v * 10 + (time[at + i] - '0');
		return v;
	};
	std::tm tm{};
	tm.tm_year = num(0, 4) - 1900;
	tm.tm_mon = num(5, 2) - 1;
	tm.tm_mday = num(8, 2);
	tm.tm_hour = num(11, 2);
	tm.tm_min = num(14, 2);
	tm.tm_sec = num(17, 2);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return Error::invalid(EINVAL, "snapshot time", escapeForDisplay(time),
				      "not a valid date and time");
	return static_cast<std::int64_t>(::timegm(&tm));
}

Result<SnapshotId> parseSnapshotId(std::string_view text, std::string_view ns)
{
	std::string_view trimmed = text;
	while (!trimmed.empty() && trimmed.front() == '/')
		trimmed.remove_prefix(1);
	while (!trimmed.empty() && trimmed.back() == '/')
		trimmed.remove_suffix(1);
	const std::vector<std::string> parts = split(trimmed);
	const auto bad = [&](const char *why) {
		return Error::invalid(EINVAL, "snapshot", escapeForDisplay(text), "%s", why);
	};
	if (parts.size() < 3 || (parts.size() - 3) % 2 != 0)
		return bad("expected [ns/<name>/...]<type>/<id>/<time>, e.g. vm/100/2026-11-25T10:00:00Z");
	SnapshotId out;
	const std::size_t nsParts = parts.size() - 3;
	for (std::size_t i = 0; i < nsParts; i += 2) {
		if (parts[i] != "ns" || !isSafeId(parts[i + 1]))
			return bad("expected ns/<name>/... before <type>/<id>/<time>");
		out.ns.push_back(parts[i + 1]);
	}
	if (!ns.empty()) {
		if (!out.ns.empty())
			return bad("names its namespace and --ns gives one too");
		Result<std::vector<std::string>> parsed = parseNamespace(ns);
		if (!parsed)
			return parsed.error();
		out.ns = *parsed;
	}
	if (out.ns.size() > kMaxNamespaceDepth)
		return bad("namespaces nest at most 7 deep");
	out.type = parts[nsParts];
	out.id = parts[nsParts + 1];
	out.time = parts[nsParts + 2];
	if (!isBackupType(out.type))
		return bad("the backup type must be vm, ct or host");
	if (!isSafeId(out.id))
		return bad("the backup id must match [A-Za-z0-9_][A-Za-z0-9._-]*");
	if (!parseSnapshotTime(out.time))
		return bad("the time must look like 2026-11-25T10:00:00Z");
	return out;
}

Result<std::vector<SnapshotSummary>> listSnapshots(const std::string &datastore,
						   const std::vector<std::string> &ns,
						   bool recursive)
{
	const std::string nsDir = datastore + "/" + nsPath(ns);
	UniqueFd nsFd(::open(nsDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!nsFd.isValid()) {
		const int err = errno;
		if (err == ENOENT && !ns.empty())
			return Error::invalid(ENOENT, "namespace", escapeForDisplay(nsPath(ns)),
					      "does not exist in this datastore");
		return Error(err, "datastore", escapeForDisplay(datastore));
	}
	std::vector<SnapshotSummary> out;
	if (Status s = listNamespace(nsFd.get(), ns, recursive, nsPath(ns), out); !s)
		return s.error();
	std::sort(out.begin(), out.end(), [](const SnapshotSummary &a, const SnapshotSummary &b) {
		if (a.id.ns != b.id.ns)
			return a.id.ns < b.id.ns;
		if (a.id.type != b.id.type)
			return a.id.type < b.id.type;
		if (a.id.id != b.id.id)
			return a.id.id < b.id.id;
		return a.id.time < b.id.time;
	});
	return out;
}

Result<Snapshot> openSnapshot(const std::string &datastore, const SnapshotId &id)
{
	Snapshot out;
	out.datastore = datastore;
	out.id = id;
	out.dir = datastore + "/" + id.path();
	UniqueFd snapFd(::open(out.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!snapFd.isValid()) {
		const int err = errno;
		if (err == ENOENT)
			return Error::invalid(ENOENT, "snapshot", escapeForDisplay(id.path()),
					      "does not exist in this datastore");
		return Error(err, "snapshot", escapeForDisplay(out.dir));
	}
	Result<Manifest> manifest = readManifest(snapFd.get(), id.path());
	if (!manifest) {
		if (manifest.error().errnum() == ENOENT)
			return Error::invalid(ENOENT, "snapshot", escapeForDisplay(id.path()),
					      "has no manifest (an unfinished or failed backup)");
		return manifest.error();
	}
	Result<std::int64_t> time = parseSnapshotTime(id.time);
	if (manifest->backupType != id.type || manifest->backupId != id.id || !time ||
	    manifest->backupTime != *time)
		return Error::invalid(EBADMSG, "manifest", escapeForDisplay(id.path()),
				      "names another snapshot (%s/%s at %lld)",
				      escapeForDisplay(manifest->backupType).substr(0, 16).c_str(),
				      escapeForDisplay(manifest->backupId).substr(0, 64).c_str(),
				      static_cast<long long>(manifest->backupTime));
	out.manifest = std::move(*manifest);
	for (const ManifestFile &file : out.manifest.files) {
		if (!endsWith(file.filename, ".img.fidx"))
			continue;
		out.images.push_back(ImageArchive{file.filename, file.size, file.cryptMode, file.csum,
						  out.dir + "/" + file.filename});
	}
	std::sort(out.images.begin(), out.images.end(),
		  [](const ImageArchive &a, const ImageArchive &b) { return a.name < b.name; });
	return out;
}

const ImageArchive *findImage(const Snapshot &snapshot, std::string_view name)
{
	for (const ImageArchive &image : snapshot.images)
		if (image.name == name)
			return &image;
	for (const ImageArchive &image : snapshot.images)
		if (image.name == std::string(name) + ".fidx")
			return &image;
	return nullptr;
}

} // namespace fr::pbs
