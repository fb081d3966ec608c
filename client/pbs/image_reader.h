// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A disk image read through its fixed index from the chunk store: what the
// NBD server serves. Every chunk is checked before a byte of it is handed
// out: CRC, crypt mode, decoded size and digest (keyed when encrypted). A
// bad or missing chunk fails the reads that touch it, with an error naming
// the chunk, and nothing else.
//
// Decoded chunks are cached by digest (LRU, bounded in bytes): a chunk that
// appears at several places of a disk (zeros, above all) is decoded once.
// Sequential reads make a background thread decode the next chunks ahead
// of the reader.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "client/pbs/crypto.h"
#include "client/pbs/fixed_index.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

// The path of a chunk under the datastore's `.chunks` directory:
// "<first 2 bytes as 4 hex digits>/<64 hex digits>".
std::string chunkPath(const Digest &digest);

// Reads and checks one chunk from a chunk store directory (`.chunks`).
// Errors: call "chunk", object the digest in hex, reason saying what is
// wrong (missing, empty placeholder, CRC, crypt mode, size, digest).
Result<Bytes> loadChunk(int chunksDirFd, const Digest &digest, std::size_t length,
			bool encrypted, const CryptConfig *crypt);

struct ImageReaderOptions {
	// Bound on the decoded chunks kept (the chunk being read may exceed
	// it by one chunk: at least one chunk is always kept).
	std::size_t cacheBytes = 32 << 20;
	// Chunks decoded ahead of a sequential reader (0: none).
	unsigned readAhead = 2;
	// Chunks decoded at once (the rest wait): each needs its file's bytes
	// and its decoded bytes in memory (about 2 chunk sizes), and more
	// decoders than cores only add memory.
	unsigned decoders = 2;
};

struct ImageReaderStats {
	std::uint64_t hits = 0;
	std::uint64_t loads = 0;
	std::uint64_t readAheadLoads = 0;
	std::uint64_t failures = 0;
	std::size_t cachedBytes = 0;
};

class ImageReader {
public:
	// `chunksDir`: the datastore's `.chunks` directory, owned from now on.
	// `crypt` is required when `encrypted`.
	ImageReader(FixedIndex index, UniqueFd chunksDir, std::optional<CryptConfig> crypt,
		    bool encrypted, ImageReaderOptions options);
	~ImageReader();
	ImageReader(const ImageReader &) = delete;
	ImageReader &operator=(const ImageReader &) = delete;

	std::uint64_t size() const { return index_.header.size; }
	const FixedIndex &index() const { return index_; }

	// Copies [offset, offset + length) into `out`. Thread-safe. EINVAL
	// beyond the end; for a bad chunk, loadChunk's error (object: the
	// digest) with the chunk's number and byte range put in front of the
	// reason.
	Status read(std::uint64_t offset, std::size_t length, std::uint8_t *out);

	// Starts the read-ahead thread (no-op when readAhead is 0). Separate
	// from the constructor so that a sandbox can be entered first.
	void startReadAhead();

	ImageReaderStats stats() const;

private:
	struct Entry {
		bool loading = true;
		std::shared_ptr<const Bytes> data;
		std::list<Digest>::iterator lru;
	};

	Result<std::shared_ptr<const Bytes>> chunk(std::size_t index, bool forReadAhead);
	// The cache's key: the digest, with the length (only the last chunk
	// may be short, and a short chunk has another digest anyway).
	void noteAccess(std::size_t index);
	void evictLocked();
	void readAheadLoop();

	const FixedIndex index_;
	const UniqueFd chunksDir_;
	const std::optional<CryptConfig> crypt_;
	const bool encrypted_;
	const ImageReaderOptions options_;

	mutable std::mutex mutex_;
	std::condition_variable loaded_;
	std::map<Digest, Entry> entries_;
	std::list<Digest> lru_; // front: most recently used, ready entries only
	std::size_t cachedBytes_ = 0;
	ImageReaderStats stats_;

	unsigned decoding_ = 0;
	std::condition_variable decoderFree_;

	std::optional<std::size_t> lastChunk_;
	std::deque<std::size_t> queue_;
	std::condition_variable queued_;
	bool stopping_ = false;
	std::thread worker_;
};

} // namespace fr::pbs
