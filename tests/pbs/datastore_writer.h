// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Tests only: writes Proxmox Backup Server datastores the way PBS lays them
// out (datastore.rs, chunk_store.rs, fixed_index.rs, manifest.rs), so that
// the reader is proven against the format rather than against itself:
//
//   <root>/.chunks/<4 hex>/<64 hex>     chunks as blobs (plain, zstd,
//                                       encrypted, encrypted + zstd),
//                                       written once (deduplicated)
//   <root>/[ns/<a>/...]<type>/<id>/owner
//   <root>/[ns/<a>/...]<type>/<id>/<time>/<name>.img.fidx
//                                       /index.json.blob (zstd, signed
//                                       and fingerprinted with a key)
//
// PBS creates all 65536 chunk prefix directories when it creates a
// datastore; this writer creates them as chunks need them (the reader
// never lists them).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/pbs/crypto.h"
#include "client/pbs/datastore.h"
#include "client/pbs/fixed_index.h"
#include "client/pbs/manifest.h"
#include "shared/result.h"

namespace fr::pbs::test {

struct ImageOptions {
	std::uint64_t chunkSize = 4 << 20;
	bool compress = true;		// zstd level 1, kept when smaller
	const CryptConfig *crypt = nullptr; // encrypted chunks
};

class DatastoreWriter {
public:
	// Creates <root> and <root>/.chunks if needed.
	static Result<DatastoreWriter> create(std::string root);

	const std::string &root() const { return root_; }

	// Writes the chunks of the `size` bytes read from `fd` (pread from 0)
	// and the index `name` (e.g. "drive-scsi0.img.fidx") into the snapshot
	// directory. Returns the manifest's entry for it.
	Result<ManifestFile> addImage(const SnapshotId &snapshot, const std::string &name, int fd,
				      std::uint64_t size, const ImageOptions &options);
	// The same from memory.
	Result<ManifestFile> addImage(const SnapshotId &snapshot, const std::string &name,
				      ByteView image, const ImageOptions &options);
	// A blob file in the snapshot (qemu-server.conf.blob), encoded like a
	// chunk; the manifest's entry has the file's size and SHA-256.
	Result<ManifestFile> addBlob(const SnapshotId &snapshot, const std::string &name,
				     ByteView data, const ImageOptions &options);
	// The manifest (index.json.blob, zstd), signed when `crypt`.
	Status finishSnapshot(const SnapshotId &snapshot, const std::vector<ManifestFile> &files,
			      const CryptConfig *crypt);

	// The chunk file of `digest` (absolute path).
	std::string chunkFile(const Digest &digest) const;
	// The digests an index lists.
	Result<std::vector<Digest>> indexDigests(const SnapshotId &snapshot,
						 const std::string &name) const;

	// Corruption, for the tests of what the reader must catch:
	// one payload byte flipped (the CRC then fails) ...
	Status flipPayloadByte(const Digest &digest);
	// ... or the chunk re-encoded from other data with a fresh, valid
	// CRC (only the digest check can catch it).
	Status replaceChunkContent(const Digest &digest, ByteView otherData,
				   const ImageOptions &options);
	std::uint64_t chunksWritten() const { return chunksWritten_; }
	std::uint64_t chunksDeduplicated() const { return chunksDeduplicated_; }

private:
	explicit DatastoreWriter(std::string root) : root_(std::move(root)) {}
	Status writeChunk(const Digest &digest, ByteView blob);
	std::string snapshotDir(const SnapshotId &snapshot) const;

	std::string root_;
	std::uint64_t chunksWritten_ = 0;
	std::uint64_t chunksDeduplicated_ = 0;
};

// Creates a directory and its parents (mode 0755). EEXIST is success.
Status makeDirs(const std::string &path);
// Writes a file atomically (temporary + rename).
Status writeFileAtomic(const std::string &path, ByteView data);

} // namespace fr::pbs::test
