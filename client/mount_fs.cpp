// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/mount_fs.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fr::client {

namespace {

// A backup that lists more entries than this between evictions is still
// served; only the cache starts over.
std::string childPath(const std::string &dir, const std::string &name)
{
	return dir == "/" ? "/" + name : dir + "/" + name;
}

} // namespace

int fuseErrno(const Error &error)
{
	switch (error.errnum()) {
	case ENOENT:
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
	case EOPNOTSUPP:
	case EINVAL:
		return error.errnum();
	case EPERM:
	case EACCES:
		return EACCES; // the guest refused (a path through a symlink)
	default:
		return EIO;
	}
}

MountFs::MountFs(SessionPool &pool, std::string guestRoot, const MountFsOptions &options)
	: pool_(pool), guestRoot_(std::move(guestRoot)), options_(options)
{
	if (options_.readAhead > 0)
		prefetcher_ = std::thread([this] { prefetchLoop(); });
}

MountFs::~MountFs()
{
	{
		std::lock_guard lock(prefetchMutex_);
		stopping_ = true;
	}
	prefetchWake_.notify_all();
	if (prefetcher_.joinable())
		prefetcher_.join();
}

void MountFs::vmGone() noexcept
{
	alive_ = false;
	chunkChanged_.notify_all();
}

std::string MountFs::guestPath(const std::string &path) const
{
	return path == "/" ? guestRoot_ : guestRoot_ + path;
}

int MountFs::fail(const Error &error)
{
	if (!alive_)
		return -EIO;
	if (error.kind() == ErrorKind::Guest)
		return -fuseErrno(error);
	if (error.errnum() == EHOSTDOWN)
		vmGone();
	// A path the protocol cannot carry (longer than 4096 bytes).
	if (error.errnum() == ENAMETOOLONG || (error.errnum() == EINVAL && std::strcmp(error.call(), "path") == 0))
		return -error.errnum();
	return -EIO;
}

namespace {

// The S_IF* bits an entry is shown with (a virtual level is a directory).
mode_t typeBits(EntryType type)
{
	switch (type) {
	case EntryType::Directory:
	case EntryType::Virtual:
		return S_IFDIR;
	case EntryType::Symlink:
		return S_IFLNK;
	case EntryType::BlockDevice:
		return S_IFBLK;
	case EntryType::CharDevice:
		return S_IFCHR;
	case EntryType::Fifo:
		return S_IFIFO;
	case EntryType::Socket:
		return S_IFSOCK;
	case EntryType::File:
	case EntryType::Hardlink:
		break;
	}
	return S_IFREG;
}

} // namespace

struct stat MountFs::toStat(const GuestEntry &entry) const
{
	struct stat st {};
	std::uint32_t perm = entry.mode & 07777;
	if (entry.type == EntryType::Virtual)
		perm = 0555;
	else if (entry.type == EntryType::Symlink)
		perm = 0777;
	st.st_mode = typeBits(entry.type) | perm;
	st.st_nlink = S_ISDIR(st.st_mode) ? 2 : 1;
	st.st_uid = options_.uid;
	st.st_gid = options_.gid;
	// A hostile size is only a size: reads stop where the guest's data does.
	const std::uint64_t size = entry.type == EntryType::Symlink ? entry.linkTarget.size() : entry.size;
	st.st_size = static_cast<off_t>(std::min<std::uint64_t>(size, static_cast<std::uint64_t>(INT64_MAX)));
	st.st_blksize = 4096;
	st.st_blocks = static_cast<blkcnt_t>((std::min<std::uint64_t>(size, INT64_MAX - 511) + 511) / 512);
	st.st_mtim.tv_sec = static_cast<time_t>(entry.mtime);
	st.st_atim = st.st_mtim;
	st.st_ctim = st.st_mtim;
	return st;
}

void MountFs::remember(const std::string &path, const GuestEntry &entry)
{
	std::lock_guard lock(attrMutex_);
	// Bounded: a tree larger than the cache is walked all the same, the
	// cache starting over now and then (the kernel caches attributes too).
	if (attrs_.size() >= options_.attrEntries)
		attrs_.clear();
	attrs_[path] = entry;
}

Result<GuestEntry> MountFs::entry(const std::string &path)
{
	{
		std::lock_guard lock(attrMutex_);
		if (auto it = attrs_.find(path); it != attrs_.end())
			return it->second;
	}
	GuestEntry found;
	Status got = pool_.with([&](VmSession &session) -> Status {
		Result<GuestEntry> e = session.stat(guestPath(path));
		if (!e)
			return e.error();
		found = std::move(*e);
		return {};
	});
	if (!got)
		return got.error();
	remember(path, found);
	return found;
}

int MountFs::getattr(const std::string &path, struct stat &st)
{
	if (!alive_)
		return -EIO;
	Result<GuestEntry> e = entry(path);
	if (!e)
		return fail(e.error());
	st = toStat(*e);
	return 0;
}

int MountFs::readlink(const std::string &path, std::string &target)
{
	if (!alive_)
		return -EIO;
	Result<GuestEntry> e = entry(path);
	if (!e)
		return fail(e.error());
	if (e->type != EntryType::Symlink)
		return -EINVAL;
	target = e->linkTarget;
	return 0;
}

int MountFs::readdir(const std::string &path, const Filler &fill)
{
	if (!alive_)
		return -EIO;
	std::vector<GuestEntry> entries;
	Status listed = pool_.with([&](VmSession &session) -> Status {
		entries.clear();
		return session.list(guestPath(path), [&](const GuestEntry &e) noexcept -> Status {
			try {
				entries.push_back(e);
			} catch (...) {
				return Error(ENOMEM, "readdir", "entries");
			}
			return {};
		});
	});
	if (!listed)
		return fail(listed.error());
	for (const GuestEntry &e : entries) {
		remember(childPath(path, e.name), e);
		if (!fill(e.name, toStat(e)))
			break; // the kernel's buffer is full
	}
	return 0;
}

int MountFs::open(const std::string &path, int flags)
{
	if (!alive_)
		return -EIO;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0)
		return -EROFS;
	Result<GuestEntry> e = entry(path);
	if (!e)
		return fail(e.error());
	if (e->type == EntryType::Directory || e->type == EntryType::Virtual)
		return -EISDIR;
	return 0;
}

Result<MountFs::Chunk> MountFs::load(const std::string &path, std::uint64_t index)
{
	auto data = std::make_shared<std::string>();
	++readRequests_;
	Status fetched = pool_.with([&](VmSession &session) -> Status {
		data->clear();
		Result<std::uint64_t> n = session.read(guestPath(path), index * kChunkSize,
						       static_cast<std::uint32_t>(kChunkSize),
						       [&](std::string_view bytes) noexcept -> Status {
							       data->append(bytes);
							       return {};
						       });
		return n ? Status{} : Status(n.error());
	});
	if (!fetched)
		return fetched.error();
	return Chunk(std::move(data));
}

void MountFs::store(const ChunkKey &key, Result<Chunk> loaded)
{
	std::lock_guard lock(chunkMutex_);
	auto it = chunks_.find(key);
	if (it == chunks_.end())
		return;
	if (!loaded) {
		chunks_.erase(it); // a later read asks again
	} else {
		it->second.data = std::move(*loaded);
		it->second.loading = false;
		lru_.push_front(key);
		it->second.lru = lru_.begin();
		chunkBytes_ += it->second.data->size();
		while (chunkBytes_ > options_.cacheBytes && lru_.size() > 1) {
			const ChunkKey victim = lru_.back();
			lru_.pop_back();
			auto v = chunks_.find(victim);
			chunkBytes_ -= v->second.data->size();
			chunks_.erase(v);
		}
	}
	chunkChanged_.notify_all();
}

Result<MountFs::Chunk> MountFs::chunk(const std::string &path, std::uint64_t index, std::uint64_t)
{
	const ChunkKey key{path, index};
	std::unique_lock lock(chunkMutex_);
	for (;;) {
		if (!alive_)
			return Error::invalid(EHOSTDOWN, "VM", "mount", "the VM is gone");
		auto it = chunks_.find(key);
		if (it == chunks_.end())
			break;
		if (!it->second.loading) {
			lru_.splice(lru_.begin(), lru_, it->second.lru);
			++cacheHits_;
			return it->second.data;
		}
		chunkChanged_.wait(lock); // read ahead, or another thread's read
	}
	chunks_[key].loading = true;
	lock.unlock();
	Result<Chunk> loaded = load(path, index);
	if (loaded) {
		Chunk data = *loaded;
		store(key, std::move(loaded));
		return data;
	}
	Error error = loaded.error();
	store(key, std::move(loaded));
	return error;
}

void MountFs::readAhead(const std::string &path, std::uint64_t index, std::uint64_t fileSize)
{
	std::vector<ChunkKey> wanted;
	{
		std::lock_guard lock(chunkMutex_);
		for (int i = 1; i <= options_.readAhead; ++i) {
			const std::uint64_t next = index + static_cast<std::uint64_t>(i);
			if (next * kChunkSize >= fileSize)
				break;
			if (chunks_.count({path, next}) == 0)
				wanted.emplace_back(path, next);
		}
	}
	if (wanted.empty())
		return;
	{
		std::lock_guard lock(prefetchMutex_);
		for (ChunkKey &key : wanted)
			if (prefetch_.size() < 16)
				prefetch_.emplace_back(std::move(key), fileSize);
	}
	prefetchWake_.notify_one();
}

void MountFs::prefetchLoop()
{
	for (;;) {
		std::pair<ChunkKey, std::uint64_t> job;
		{
			std::unique_lock lock(prefetchMutex_);
			prefetchWake_.wait(lock, [&] { return stopping_ || !prefetch_.empty(); });
			if (stopping_)
				return;
			job = std::move(prefetch_.front());
			prefetch_.pop_front();
		}
		if (!alive_)
			continue;
		{
			std::lock_guard lock(chunkMutex_);
			if (chunks_.count(job.first) != 0)
				continue; // cached, or being loaded
			chunks_[job.first].loading = true;
		}
		Result<Chunk> loaded = load(job.first.first, job.first.second);
		if (!loaded && loaded.error().errnum() == EHOSTDOWN)
			vmGone();
		store(job.first, std::move(loaded));
	}
}

int MountFs::read(const std::string &path, char *buf, std::size_t size, off_t offset)
{
	if (!alive_)
		return -EIO;
	if (offset < 0)
		return -EINVAL;
	Result<GuestEntry> e = entry(path);
	if (!e)
		return fail(e.error());
	if (e->type != EntryType::File && e->type != EntryType::Hardlink)
		return -EISDIR;
	const std::uint64_t fileSize = e->size;
	const std::uint64_t from = static_cast<std::uint64_t>(offset);
	if (from >= fileSize || size == 0)
		return 0;
	const std::uint64_t end = std::min<std::uint64_t>(fileSize, from + size);
	std::size_t done = 0;
	const std::uint64_t first = from / kChunkSize;
	for (std::uint64_t index = first; index * kChunkSize < end; ++index) {
		Result<Chunk> data = chunk(path, index, fileSize);
		if (!data)
			return fail(data.error());
		const std::uint64_t chunkStart = index * kChunkSize;
		const std::uint64_t copyFrom = std::max(from, chunkStart);
		const std::uint64_t copyTo = std::min(end, chunkStart + (*data)->size());
		if (copyTo <= copyFrom)
			break; // the file ends early (shorter than its size said)
		std::memcpy(buf + done, (*data)->data() + (copyFrom - chunkStart), copyTo - copyFrom);
		done += copyTo - copyFrom;
		if ((*data)->size() < kChunkSize)
			break;
	}
	// Sequential reads: fetch the next chunks before they are asked for.
	const std::uint64_t last = (end - 1) / kChunkSize;
	bool sequential = false;
	{
		std::lock_guard lock(attrMutex_);
		auto it = lastChunk_.find(path);
		sequential = first == 0 || (it != lastChunk_.end() && (it->second == first || it->second + 1 == first));
		if (lastChunk_.size() > 4096)
			lastChunk_.clear();
		lastChunk_[path] = last;
	}
	if (sequential && options_.readAhead > 0)
		readAhead(path, last, fileSize);
	return static_cast<int>(done);
}

int MountFs::listxattr(const std::string &path, char *list, std::size_t size)
{
	if (!alive_)
		return -EIO;
	std::vector<std::pair<std::string, std::string>> attrs;
	bool cached = false;
	{
		std::lock_guard lock(attrMutex_);
		if (auto it = xattrs_.find(path); it != xattrs_.end()) {
			attrs = it->second;
			cached = true;
		}
	}
	if (!cached) {
		Status got = pool_.with([&](VmSession &session) -> Status {
			attrs.clear();
			return session.xattrs(guestPath(path),
					      [&](const std::string &name, const std::string &value) noexcept -> Status {
						      try {
							      attrs.emplace_back(name, value);
						      } catch (...) {
							      return Error(ENOMEM, "xattrs", "list");
						      }
						      return {};
					      });
		});
		if (!got) {
			// A guest that cannot give any: none.
			if (got.error().kind() == ErrorKind::Guest && got.error().errnum() == EOPNOTSUPP)
				attrs.clear();
			else
				return fail(got.error());
		}
		std::lock_guard lock(attrMutex_);
		if (xattrs_.size() >= 65536)
			xattrs_.clear();
		xattrs_[path] = attrs;
	}
	std::size_t needed = 0;
	for (const auto &[name, value] : attrs)
		needed += name.size() + 1;
	if (size == 0)
		return static_cast<int>(needed);
	if (size < needed)
		return -ERANGE;
	for (const auto &[name, value] : attrs) {
		std::memcpy(list, name.c_str(), name.size() + 1);
		list += name.size() + 1;
	}
	return static_cast<int>(needed);
}

int MountFs::getxattr(const std::string &path, const std::string &name, char *value, std::size_t size)
{
	const int listed = listxattr(path, nullptr, 0);
	if (listed < 0)
		return listed;
	std::lock_guard lock(attrMutex_);
	auto it = xattrs_.find(path);
	if (it == xattrs_.end())
		return -ENODATA;
	for (const auto &[key, bytes] : it->second) {
		if (key != name)
			continue;
		if (size == 0)
			return static_cast<int>(bytes.size());
		if (size < bytes.size())
			return -ERANGE;
		std::copy(bytes.begin(), bytes.end(), value); // bytes, not a string
		return static_cast<int>(bytes.size());
	}
	return -ENODATA;
}

} // namespace fr::client
