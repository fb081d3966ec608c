// SPDX-License-Identifier: AGPL-3.0-or-later
#include "tests/pbs/datastore_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "client/pbs/blob.h"
#include "client/pbs/file_io.h"
#include "client/pbs/image_reader.h"
#include "shared/unique_fd.h"

namespace fr::pbs::test {

Status makeDirs(const std::string &path)
{
	std::string partial;
	std::size_t start = 0;
	while (start < path.size()) {
		const std::size_t slash = path.find('/', start);
		const std::size_t end = slash == std::string::npos ? path.size() : slash;
		partial = path.substr(0, end);
		start = end + 1;
		if (partial.empty())
			continue;
		if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
			return Error(errno, "mkdir", partial);
	}
	return {};
}

Status writeFileAtomic(const std::string &path, ByteView data)
{
	const std::string tmp = path + ".tmp";
	UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd.isValid())
		return Error(errno, "open", tmp);
	std::size_t done = 0;
	while (done < data.size()) {
		const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "write", tmp);
		done += static_cast<std::size_t>(n);
	}
	fd.reset();
	if (::rename(tmp.c_str(), path.c_str()) != 0)
		return Error(errno, "rename", path);
	return {};
}

Result<DatastoreWriter> DatastoreWriter::create(std::string root)
{
	if (Status s = makeDirs(root + "/.chunks"); !s)
		return s.error();
	return DatastoreWriter(std::move(root));
}

std::string DatastoreWriter::snapshotDir(const SnapshotId &snapshot) const
{
	return root_ + "/" + snapshot.path();
}

std::string DatastoreWriter::chunkFile(const Digest &digest) const
{
	return root_ + "/.chunks/" + chunkPath(digest);
}

Status DatastoreWriter::writeChunk(const Digest &digest, ByteView blob)
{
	const std::string path = chunkFile(digest);
	struct stat st {};
	if (::stat(path.c_str(), &st) == 0) {
		++chunksDeduplicated_; // PBS's insert_chunk: an existing chunk is kept
		return {};
	}
	if (Status s = makeDirs(path.substr(0, path.rfind('/'))); !s)
		return s;
	++chunksWritten_;
	return writeFileAtomic(path, blob);
}

Result<ManifestFile> DatastoreWriter::addImage(const SnapshotId &snapshot, const std::string &name,
					       int fd, std::uint64_t size,
					       const ImageOptions &options)
{
	const std::string dir = snapshotDir(snapshot);
	if (Status s = makeDirs(dir); !s)
		return s.error();
	FixedIndexHeader header;
	header.size = size;
	header.chunkSize = options.chunkSize;
	header.ctime = static_cast<std::int64_t>(std::time(nullptr));
	if (Status s = randomBytes(header.uuid); !s)
		return s.error();
	std::vector<Digest> digests;
	Bytes buffer(options.chunkSize);
	for (std::uint64_t offset = 0; offset < size; offset += options.chunkSize) {
		const std::size_t length =
			static_cast<std::size_t>(std::min<std::uint64_t>(options.chunkSize, size - offset));
		std::size_t got = 0;
		while (got < length) {
			const ssize_t n = ::pread(fd, buffer.data() + got, length - got,
						  static_cast<off_t>(offset + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return Error(n < 0 ? errno : EIO, "read", name);
			got += static_cast<std::size_t>(n);
		}
		const ByteView data(buffer.data(), length);
		const Digest digest = chunkDigest(data, options.crypt);
		Result<Bytes> blob = encodeBlob(data, options.crypt, options.compress);
		if (!blob)
			return blob.error();
		if (Status s = writeChunk(digest, *blob); !s)
			return s.error();
		digests.push_back(digest);
	}
	FixedIndex index;
	index.header = header;
	index.digests = digests;
	index.header.indexCsum = index.computeCsum();
	if (Status s = writeFileAtomic(dir + "/" + name, encodeFixedIndex(index.header, digests)); !s)
		return s.error();
	return ManifestFile{name, options.crypt ? CryptMode::Encrypt : CryptMode::None, size,
			    index.header.indexCsum};
}

Result<ManifestFile> DatastoreWriter::addImage(const SnapshotId &snapshot, const std::string &name,
					       ByteView image, const ImageOptions &options)
{
	UniqueFd fd(::memfd_create("image", MFD_CLOEXEC));
	if (!fd.isValid())
		return Error(errno, "memfd_create");
	if (::write(fd.get(), image.data(), image.size()) != static_cast<ssize_t>(image.size()))
		return Error(errno, "write", "memfd");
	return addImage(snapshot, name, fd.get(), image.size(), options);
}

Result<ManifestFile> DatastoreWriter::addBlob(const SnapshotId &snapshot, const std::string &name,
					      ByteView data, const ImageOptions &options)
{
	const std::string dir = snapshotDir(snapshot);
	if (Status s = makeDirs(dir); !s)
		return s.error();
	Result<Bytes> blob = encodeBlob(data, options.crypt, options.compress);
	if (!blob)
		return blob.error();
	if (Status s = writeFileAtomic(dir + "/" + name, *blob); !s)
		return s.error();
	return ManifestFile{name, options.crypt ? CryptMode::Encrypt : CryptMode::None,
			    blob->size(), sha256(*blob)};
}

Status DatastoreWriter::finishSnapshot(const SnapshotId &snapshot,
				       const std::vector<ManifestFile> &files,
				       const CryptConfig *crypt)
{
	Result<std::int64_t> time = parseSnapshotTime(snapshot.time);
	if (!time)
		return time.error();
	Manifest manifest;
	manifest.backupType = snapshot.type;
	manifest.backupId = snapshot.id;
	manifest.backupTime = *time;
	manifest.files = files;
	Result<std::string> text = encodeManifestJson(manifest, crypt);
	if (!text)
		return text.error();
	// The manifest is a zstd blob, never encrypted (its signature
	// protects it).
	Result<Bytes> blob = encodeBlob(asBytes(*text), nullptr, true);
	if (!blob)
		return blob.error();
	const std::string dir = snapshotDir(snapshot);
	if (Status s = makeDirs(dir); !s)
		return s;
	const std::string owner = "root@pam\n";
	if (Status s = writeFileAtomic(root_ + "/" + snapshot.group() + "/owner", asBytes(owner)); !s)
		return s;
	return writeFileAtomic(dir + "/" + kManifestName, *blob);
}

Result<std::vector<Digest>> DatastoreWriter::indexDigests(const SnapshotId &snapshot,
							  const std::string &name) const
{
	UniqueFd dir(::open(snapshotDir(snapshot).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dir.isValid())
		return Error(errno, "open", snapshotDir(snapshot));
	Result<FixedIndex> index = readFixedIndex(dir.get(), name, name);
	if (!index)
		return index.error();
	return index->digests;
}

Status DatastoreWriter::flipPayloadByte(const Digest &digest)
{
	const std::string path = chunkFile(digest);
	Result<Bytes> data = readWholeFile(AT_FDCWD, path, 64 << 20, path);
	if (!data)
		return data.error();
	if (data->size() <= kEncryptedBlobHeaderSize)
		return Error::invalid(EINVAL, "corrupt", path, "too small");
	(*data)[data->size() / 2] ^= 0x40;
	return writeFileAtomic(path, *data);
}

Status DatastoreWriter::replaceChunkContent(const Digest &digest, ByteView otherData,
					    const ImageOptions &options)
{
	Result<Bytes> blob = encodeBlob(otherData, options.crypt, options.compress);
	if (!blob)
		return blob.error();
	return writeFileAtomic(chunkFile(digest), *blob);
}

} // namespace fr::pbs::test
