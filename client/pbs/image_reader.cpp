// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/image_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client/pbs/blob.h"
#include "client/pbs/file_io.h"

namespace fr::pbs {

namespace {

// An encrypted chunk that did not compress is the largest blob a chunk can
// be: its data plus the 44-byte header.
constexpr std::size_t kChunkFileSlack = kEncryptedBlobHeaderSize + 4096;

} // namespace

std::string chunkPath(const Digest &digest)
{
	const std::string digits = hex(digest);
	return digits.substr(0, 4) + "/" + digits;
}

Result<Bytes> loadChunk(int chunksDirFd, const Digest &digest, std::size_t length,
			bool encrypted, const CryptConfig *crypt)
{
	const std::string name = hex(digest);
	const std::string path = chunkPath(digest);
	UniqueFd fd(::openat(chunksDirFd, path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
	if (!fd.isValid()) {
		const int err = errno;
		if (err == ENOENT)
			return Error::invalid(ENOENT, "chunk", name,
					      "missing from the chunk store (pruned and "
					      "garbage-collected while in use?)");
		return Error(err, "chunk", name);
	}
	Result<Bytes> raw = readWholeFd(fd.get(), length + kChunkFileSlack, name);
	if (!raw)
		return Error::invalid(raw.error().errnum(), "chunk", name, "%s", raw.error().reason());
	if (raw->empty())
		return Error::invalid(EIO, "chunk", name,
				      "is an empty placeholder (not in this datastore's local cache)");
	Result<Bytes> data = decodeChunk(std::move(*raw), digest, length, encrypted, crypt);
	if (!data)
		return Error::invalid(data.error().errnum() == EACCES ? EACCES : EIO, "chunk", name,
				      "%s", data.error().reason());
	return data;
}

ImageReader::ImageReader(FixedIndex index, UniqueFd chunksDir, std::optional<CryptConfig> crypt,
			 bool encrypted, ImageReaderOptions options)
	: index_(std::move(index)), chunksDir_(std::move(chunksDir)), crypt_(std::move(crypt)),
	  encrypted_(encrypted), options_(options)
{
}

ImageReader::~ImageReader()
{
	{
		std::lock_guard lock(mutex_);
		stopping_ = true;
	}
	queued_.notify_all();
	if (worker_.joinable())
		worker_.join();
}

void ImageReader::startReadAhead()
{
	if (options_.readAhead == 0 || worker_.joinable())
		return;
	worker_ = std::thread([this] { readAheadLoop(); });
}

ImageReaderStats ImageReader::stats() const
{
	std::lock_guard lock(mutex_);
	ImageReaderStats out = stats_;
	out.cachedBytes = cachedBytes_;
	return out;
}

void ImageReader::evictLocked()
{
	// The most recent entry always stays: the reader that just loaded it
	// holds it anyway, and a cache smaller than a chunk still works.
	while (cachedBytes_ > options_.cacheBytes && lru_.size() > 1) {
		const Digest victim = lru_.back();
		lru_.pop_back();
		auto it = entries_.find(victim);
		cachedBytes_ -= it->second.data->size();
		entries_.erase(it);
	}
}

Result<std::shared_ptr<const Bytes>> ImageReader::chunk(std::size_t index, bool forReadAhead)
{
	const Digest &digest = index_.digests[index];
	std::unique_lock lock(mutex_);
	for (;;) {
		auto it = entries_.find(digest);
		if (it == entries_.end())
			break;
		if (!it->second.loading) {
			lru_.splice(lru_.begin(), lru_, it->second.lru);
			if (!forReadAhead)
				++stats_.hits;
			return it->second.data;
		}
		if (forReadAhead)
			return std::shared_ptr<const Bytes>(); // someone is on it
		// Another thread is decoding this chunk: wait for its result
		// rather than decoding it twice.
		loaded_.wait(lock);
	}
	entries_.emplace(digest, Entry{});
	// Bounded decoding: memory, not cores, is what more decoders cost.
	decoderFree_.wait(lock, [this] { return decoding_ < std::max(1U, options_.decoders); });
	++decoding_;
	lock.unlock();

	Result<Bytes> data = loadChunk(chunksDir_.get(), digest,
				       static_cast<std::size_t>(index_.chunkLength(index)), encrypted_,
				       crypt_ ? &*crypt_ : nullptr);

	lock.lock();
	--decoding_;
	decoderFree_.notify_one();
	auto it = entries_.find(digest);
	if (!data) {
		// Failures are not cached: the next read tries again (and
		// reports again), which also covers a chunk restored meanwhile.
		entries_.erase(it);
		++stats_.failures;
		lock.unlock();
		loaded_.notify_all();
		return data.error();
	}
	auto shared = std::make_shared<const Bytes>(std::move(*data));
	it->second.loading = false;
	it->second.data = shared;
	lru_.push_front(digest);
	it->second.lru = lru_.begin();
	cachedBytes_ += shared->size();
	++(forReadAhead ? stats_.readAheadLoads : stats_.loads);
	evictLocked();
	lock.unlock();
	loaded_.notify_all();
	return shared;
}

void ImageReader::noteAccess(std::size_t index)
{
	if (options_.readAhead == 0 || !worker_.joinable())
		return;
	std::lock_guard lock(mutex_);
	const bool sequential = lastChunk_ && (index == *lastChunk_ || index == *lastChunk_ + 1);
	lastChunk_ = index;
	if (!sequential)
		return;
	// Only the chunks just ahead of the reader matter: older requests
	// are dropped when the reader has moved on.
	queue_.clear();
	for (unsigned i = 1; i <= options_.readAhead; ++i) {
		const std::size_t next = index + i;
		if (next >= index_.digests.size())
			break;
		if (entries_.count(index_.digests[next]) == 0)
			queue_.push_back(next);
	}
	if (!queue_.empty())
		queued_.notify_one();
}

void ImageReader::readAheadLoop()
{
	for (;;) {
		std::size_t next = 0;
		{
			std::unique_lock lock(mutex_);
			queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
			if (stopping_)
				return;
			next = queue_.front();
			queue_.pop_front();
		}
		// Errors are reported when a reader reaches the chunk.
		(void)chunk(next, true);
	}
}

Status ImageReader::read(std::uint64_t offset, std::size_t length, std::uint8_t *out)
{
	const std::uint64_t imageSize = index_.header.size;
	if (offset > imageSize || length > imageSize - offset)
		return Error::invalid(EINVAL, "read", "image",
				      "%zu bytes at %llu: beyond the end (%llu bytes)", length,
				      static_cast<unsigned long long>(offset),
				      static_cast<unsigned long long>(imageSize));
	const std::uint64_t chunkSize = index_.header.chunkSize;
	std::size_t done = 0;
	while (done < length) {
		const std::uint64_t pos = offset + done;
		const std::size_t number = static_cast<std::size_t>(pos / chunkSize);
		const std::size_t within = static_cast<std::size_t>(pos % chunkSize);
		Result<std::shared_ptr<const Bytes>> data = chunk(number, false);
		if (!data) {
			const std::uint64_t start = static_cast<std::uint64_t>(number) * chunkSize;
			return Error::invalid(data.error().errnum(), "chunk", data.error().object(),
					      "#%zu, bytes %llu-%llu of the disk: %s", number,
					      static_cast<unsigned long long>(start),
					      static_cast<unsigned long long>(
						      start + index_.chunkLength(number) - 1),
					      data.error().reason());
		}
		noteAccess(number);
		const std::size_t n = std::min(length - done, (*data)->size() - within);
		std::memcpy(out + done, (*data)->data() + within, n);
		done += n;
	}
	return {};
}

} // namespace fr::pbs
