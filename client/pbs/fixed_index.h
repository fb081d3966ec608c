// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// PBS fixed index files (`*.img.fidx`, pbs-datastore/src/fixed_index.rs):
// one per VM disk. A 4096-byte header, then one 32-byte chunk digest per
// chunk_size bytes of the disk (the last chunk may be short):
//
//   0 magic[8] 2f 7f 41 ed 91 fd 0f cd
//   8 uuid[16]   24 ctime i64   32 index_csum[32] = SHA-256(digest1 || ...)
//  64 size u64 (disk bytes)     72 chunk_size u64 (a power of two)
//  80 reserved, to 4096
//
// All integers little-endian. The whole index is read into memory at once
// (PBS's reader maps it): a concurrent prune that removes the file cannot
// change what we serve afterwards.

#include <cstdint>
#include <string>
#include <vector>

#include "client/pbs/crypto.h"
#include "shared/result.h"

namespace fr::pbs {

inline constexpr std::size_t kFixedIndexHeaderSize = 4096;
inline constexpr std::array<std::uint8_t, 8> kFixedIndexMagic = {47, 127, 65, 237, 145, 253, 15, 205};
// Bounds for what we serve: chunk sizes PBS can write (its client allows 64
// KiB to 4 MiB; we take 4 KiB to 16 MiB) and at most 2^21 digests (64 MiB of
// index: 8 TiB of disk at 4 MiB chunks).
inline constexpr std::uint64_t kMinChunkSize = 4096;
inline constexpr std::uint64_t kMaxChunkSize = 16 << 20;
inline constexpr std::uint64_t kMaxIndexEntries = 1 << 21;

struct FixedIndexHeader {
	std::array<std::uint8_t, 16> uuid{};
	std::int64_t ctime = 0;
	Digest indexCsum{};
	std::uint64_t size = 0;
	std::uint64_t chunkSize = 0;

	std::uint64_t chunkCount() const { return (size + chunkSize - 1) / chunkSize; }
};

// Checks the magic, the chunk size and the entry count against the bounds.
// `header` must hold at least kFixedIndexHeaderSize bytes (EINVAL otherwise).
Result<FixedIndexHeader> parseFixedIndexHeader(ByteView header);

struct FixedIndex {
	FixedIndexHeader header;
	std::vector<Digest> digests;

	std::uint64_t chunkLength(std::size_t index) const;
	// SHA-256 over all digests in order (what the header and the manifest
	// hold).
	Digest computeCsum() const;
};

// A whole index file: the header, then exactly chunkCount() digests, and the
// header's index_csum matching them (EBADMSG otherwise).
Result<FixedIndex> parseFixedIndex(ByteView file);

// Reads `name` under `dirFd` (O_NOFOLLOW, a regular file, bounded size) and
// parses it. Errors name `displayName`.
Result<FixedIndex> readFixedIndex(int dirFd, const std::string &name, const std::string &displayName);

// The bytes of an index file for `digests` (the test datastore writer).
Bytes encodeFixedIndex(const FixedIndexHeader &header, const std::vector<Digest> &digests);

} // namespace fr::pbs
