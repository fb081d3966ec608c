// SPDX-License-Identifier: AGPL-3.0-or-later
// The PBS fixed index parser (client/pbs/fixed_index.h) on arbitrary bytes.
// An index comes from the datastore, which the user may not control (a
// shared backup server, a synced remote). Whatever parses must be
// self-consistent: the right length, a chunk size in bounds, every chunk's
// length in (0, chunk size], and the header's checksum over its digests.
#include <cstdint>
#include <cstdlib>

#include "client/pbs/fixed_index.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using namespace fr::pbs;
	const ByteView bytes(data, size);
	fr::Result<FixedIndexHeader> header = parseFixedIndexHeader(bytes);
	fr::Result<FixedIndex> index = parseFixedIndex(bytes);
	if (!index)
		return 0;
	if (!header)
		std::abort();
	const std::uint64_t cs = index->header.chunkSize;
	if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0)
		std::abort();
	if (size != kFixedIndexHeaderSize + index->digests.size() * 32 ||
	    index->digests.size() != index->header.chunkCount())
		std::abort();
	if (index->computeCsum() != index->header.indexCsum)
		std::abort();
	std::uint64_t total = 0;
	for (std::size_t i = 0; i < index->digests.size(); ++i) {
		const std::uint64_t length = index->chunkLength(i);
		if (length == 0 || length > cs)
			std::abort();
		total += length;
	}
	if (total != index->header.size)
		std::abort();
	return 0;
}
