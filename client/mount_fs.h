// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The filesystem a `file-restore mount` shows: a read-only view of a guest
// directory, answered by the VM over the guest protocol (stat, list, read,
// xattrs). This is the FUSE operations table's logic without libfuse
// (client/mount.cpp is the glue), so that it is tested on machines without
// /dev/fuse: each operation takes a path below the mount's root and
// returns 0 or a negative errno, as FUSE wants.
//
// Everything comes from the guest and is hostile: names are single
// components (the codec checked them), sizes and times are taken as they
// are (they only describe what reads return), a read never returns more
// than asked. A backup does not change, so what was learnt is cached
// (bounded): attributes from listings and stats, file contents in chunks
// of kChunkSize with read-ahead for sequential reads, extended attributes.
//
// The VM can die (killed, or a crash): then every operation answers EIO at
// once, and the mount can be unmounted; nothing waits for a VM that is gone.

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/session.h"
#include "shared/result.h"

namespace fr::client {

// Sessions with the VM for the mount's threads. with() runs `use` on a
// session nobody else uses meanwhile; a session that failed other than
// with a guest error is replaced (connected again) before its next use.
// EIO (kind Local, call "VM") once the VM is gone.
class SessionPool {
public:
	virtual ~SessionPool() = default;
	using Use = std::function<Status(VmSession &)>;
	virtual Status with(const Use &use) = 0;
};

struct MountFsOptions {
	uid_t uid = 0; // owner shown for everything (the mounting user)
	gid_t gid = 0;
	std::size_t cacheBytes = std::size_t{64} << 20; // file contents
	std::size_t attrEntries = 200000;               // cached attributes
	int readAhead = 2;                              // chunks fetched ahead
};

class MountFs {
public:
	// File contents move in chunks of this size (the protocol's cap on one
	// read request).
	static constexpr std::size_t kChunkSize = kMaxReadLength;

	// `guestRoot`: the guest path shown at the mount's root ("/disk0/part/1").
	MountFs(SessionPool &pool, std::string guestRoot, const MountFsOptions &options);
	~MountFs();
	MountFs(const MountFs &) = delete;
	MountFs &operator=(const MountFs &) = delete;

	// FUSE's operations. `path` is "/" or "/a/b" below the mount's root.
	int getattr(const std::string &path, struct stat &st);
	int readlink(const std::string &path, std::string &target);
	using Filler = std::function<bool(const std::string &name, const struct stat &st)>;
	int readdir(const std::string &path, const Filler &fill);
	int open(const std::string &path, int flags);
	int read(const std::string &path, char *buf, std::size_t size, off_t offset);
	// FUSE's conventions: size 0 asks for the size needed; ERANGE when
	// `size` is too small; the value's (list's) length on success.
	int listxattr(const std::string &path, char *list, std::size_t size);
	int getxattr(const std::string &path, const std::string &name, char *value, std::size_t size);

	// The VM is gone: every operation answers EIO from now on.
	void vmGone() noexcept;
	bool alive() const noexcept { return alive_; }

	// Counters for tests: read requests sent, chunks served from the cache.
	std::uint64_t readRequests() const noexcept { return readRequests_; }
	std::uint64_t cacheHits() const noexcept { return cacheHits_; }

	// The stat FUSE shows for an entry.
	struct stat toStat(const GuestEntry &entry) const;

private:
	using Chunk = std::shared_ptr<const std::string>;
	struct ChunkSlot {
		Chunk data;
		bool loading = false;
		std::list<std::pair<std::string, std::uint64_t>>::iterator lru;
	};
	using ChunkKey = std::pair<std::string, std::uint64_t>;

	std::string guestPath(const std::string &path) const;
	// The entry at `path`, from the cache or the guest.
	Result<GuestEntry> entry(const std::string &path);
	void remember(const std::string &path, const GuestEntry &entry);
	// One chunk of a file, from the cache or the guest; waits for one that
	// is being loaded.
	Result<Chunk> chunk(const std::string &path, std::uint64_t index, std::uint64_t fileSize);
	Result<Chunk> load(const std::string &path, std::uint64_t index);
	void store(const ChunkKey &key, Result<Chunk> loaded);
	void readAhead(const std::string &path, std::uint64_t index, std::uint64_t fileSize);
	void prefetchLoop();
	// Maps a failed status to a negative errno (marking the VM gone when
	// the failure says so).
	int fail(const Error &error);

	SessionPool &pool_;
	std::string guestRoot_;
	MountFsOptions options_;
	std::atomic<bool> alive_{true};
	std::atomic<std::uint64_t> readRequests_{0};
	std::atomic<std::uint64_t> cacheHits_{0};

	std::mutex attrMutex_;
	std::map<std::string, GuestEntry> attrs_;
	std::map<std::string, std::vector<std::pair<std::string, std::string>>> xattrs_;
	std::map<std::string, std::uint64_t> lastChunk_; // sequential-read detection

	std::mutex chunkMutex_;
	std::condition_variable chunkChanged_;
	std::map<ChunkKey, ChunkSlot> chunks_;
	std::list<ChunkKey> lru_; // most recent first
	std::size_t chunkBytes_ = 0;

	std::mutex prefetchMutex_;
	std::condition_variable prefetchWake_;
	std::deque<std::pair<ChunkKey, std::uint64_t>> prefetch_; // key, file size
	bool stopping_ = false;
	std::thread prefetcher_;
};

// errno for FUSE from a guest error (ENOENT, ENOTDIR, EISDIR, EACCES for
// Refused, EOPNOTSUPP, EIO, ...).
int fuseErrno(const Error &error);

} // namespace fr::client
