// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs/fixed_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client/pbs/file_io.h"
#include "shared/unique_fd.h"

namespace fr::pbs {

namespace {

std::uint64_t readLe64(const std::uint8_t *p)
{
	std::uint64_t v = 0;
	for (int i = 7; i >= 0; --i)
		v = v << 8 | p[i];
	return v;
}

void writeLe64(std::uint8_t *p, std::uint64_t v)
{
	for (int i = 0; i < 8; ++i)
		p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

} // namespace

Result<FixedIndexHeader> parseFixedIndexHeader(ByteView header)
{
	if (header.size() < kFixedIndexHeaderSize)
		return Error::invalid(EINVAL, "fixed index", "", "%zu bytes: shorter than its header",
				      header.size());
	if (!std::equal(kFixedIndexMagic.begin(), kFixedIndexMagic.end(), header.begin()))
		return Error::invalid(EINVAL, "fixed index", "", "not a fixed index (wrong magic)");
	FixedIndexHeader out;
	std::copy_n(header.begin() + 8, 16, out.uuid.begin());
	out.ctime = static_cast<std::int64_t>(readLe64(header.data() + 24));
	std::copy_n(header.begin() + 32, 32, out.indexCsum.begin());
	out.size = readLe64(header.data() + 64);
	out.chunkSize = readLe64(header.data() + 72);
	const std::uint64_t cs = out.chunkSize;
	if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0)
		return Error::invalid(EINVAL, "fixed index", "",
				      "chunk size %llu is not a power of two from 4 KiB to 16 MiB",
				      static_cast<unsigned long long>(cs));
	// size / cs first: (size + cs - 1) could overflow.
	if (out.size / cs > kMaxIndexEntries || out.chunkCount() > kMaxIndexEntries)
		return Error::invalid(EFBIG, "fixed index", "",
				      "%llu bytes in %llu-byte chunks: more than %llu chunks",
				      static_cast<unsigned long long>(out.size),
				      static_cast<unsigned long long>(cs),
				      static_cast<unsigned long long>(kMaxIndexEntries));
	return out;
}

std::uint64_t FixedIndex::chunkLength(std::size_t index) const
{
	const std::uint64_t start = static_cast<std::uint64_t>(index) * header.chunkSize;
	return std::min(header.chunkSize, header.size - start);
}

Digest FixedIndex::computeCsum() const
{
	Sha256 hasher;
	for (const Digest &digest : digests)
		hasher.update(digest);
	return hasher.finish();
}

Result<FixedIndex> parseFixedIndex(ByteView file)
{
	Result<FixedIndexHeader> header = parseFixedIndexHeader(file);
	if (!header)
		return header.error();
	const std::uint64_t count = header->chunkCount();
	const std::uint64_t expected = kFixedIndexHeaderSize + count * 32;
	if (file.size() != expected)
		return Error::invalid(EBADMSG, "fixed index", "",
				      "%zu bytes, but %llu chunks need %llu (truncated or padded)",
				      file.size(), static_cast<unsigned long long>(count),
				      static_cast<unsigned long long>(expected));
	FixedIndex index;
	index.header = *header;
	index.digests.resize(count);
	if (count > 0) // an empty image has no digests (and memcpy no null pointers)
		std::memcpy(index.digests.data(), file.data() + kFixedIndexHeaderSize, count * 32);
	if (index.computeCsum() != index.header.indexCsum)
		return Error::invalid(EBADMSG, "fixed index", "",
				      "its digests do not match the header's index checksum");
	return index;
}

Result<FixedIndex> readFixedIndex(int dirFd, const std::string &name, const std::string &displayName)
{
	Result<Bytes> data = readWholeFile(dirFd, name, kFixedIndexHeaderSize + kMaxIndexEntries * 32,
					   displayName);
	if (!data)
		return data.error();
	Result<FixedIndex> index = parseFixedIndex(*data);
	if (!index)
		return Error::invalid(index.error().errnum(), "fixed index", displayName, "%s",
				      index.error().reason());
	return index;
}

Bytes encodeFixedIndex(const FixedIndexHeader &header, const std::vector<Digest> &digests)
{
	Bytes out(kFixedIndexHeaderSize + digests.size() * 32, 0);
	std::copy(kFixedIndexMagic.begin(), kFixedIndexMagic.end(), out.begin());
	std::copy(header.uuid.begin(), header.uuid.end(), out.begin() + 8);
	writeLe64(out.data() + 24, static_cast<std::uint64_t>(header.ctime));
	std::copy(header.indexCsum.begin(), header.indexCsum.end(), out.begin() + 32);
	writeLe64(out.data() + 64, header.size);
	writeLe64(out.data() + 72, header.chunkSize);
	for (std::size_t i = 0; i < digests.size(); ++i)
		std::copy(digests[i].begin(), digests[i].end(),
			  out.begin() + static_cast<std::ptrdiff_t>(kFixedIndexHeaderSize + i * 32));
	return out;
}

} // namespace fr::pbs
