// SPDX-License-Identifier: AGPL-3.0-or-later
//
// fr-pbs-make-datastore (tests and benchmarks only): lays a raw disk image
// out as a snapshot of a Proxmox Backup Server datastore, through
// datastore_writer.h.
//
//   fr-pbs-make-datastore [--ns A/B] [--keyfile FILE] [--chunk-size BYTES]
//       [--no-compress] DATASTORE TYPE/ID/TIME NAME=IMAGE [NAME=IMAGE ...]
//   fr-pbs-make-datastore --new-key FILE    a fresh key file (kdf none)
//
// NAME is the archive's name without ".fidx" ("drive-scsi0.img"). A key
// file protected by a password takes it from FILE_RESTORE_KEY_PASSWORD.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "client/pbs/file_io.h"
#include "client/pbs/key_file.h"
#include "shared/unique_fd.h"
#include "tests/pbs/datastore_writer.h"

using namespace fr;
using namespace fr::pbs;

namespace {

int usage()
{
	std::fprintf(stderr, "usage: fr-pbs-make-datastore [--ns A/B] [--keyfile FILE] "
			     "[--chunk-size BYTES] [--no-compress] DATASTORE TYPE/ID/TIME "
			     "NAME=IMAGE...\n       fr-pbs-make-datastore --new-key FILE\n");
	return 2;
}

int failed(const Error &error)
{
	std::fprintf(stderr, "fr-pbs-make-datastore: %s\n", error.message().c_str());
	return 1;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc == 3 && std::string(argv[1]) == "--new-key") {
		Key key{};
		if (Status s = randomBytes(key); !s)
			return failed(s.error());
		Result<std::string> text = encodeKeyFile(key, Kdf::None, "");
		if (!text)
			return failed(text.error());
		if (Status s = test::writeFileAtomic(argv[2], asBytes(*text + "\n")); !s)
			return failed(s.error());
		return 0;
	}
	std::string ns;
	std::string keyFile;
	test::ImageOptions options;
	std::vector<std::string> positional;
	for (int i = 1; i < argc; ++i) {
		const std::string arg = argv[i];
		if (arg == "--ns" && i + 1 < argc)
			ns = argv[++i];
		else if (arg == "--keyfile" && i + 1 < argc)
			keyFile = argv[++i];
		else if (arg == "--chunk-size" && i + 1 < argc)
			options.chunkSize = std::strtoull(argv[++i], nullptr, 10);
		else if (arg == "--no-compress")
			options.compress = false;
		else if (arg.rfind("--", 0) == 0)
			return usage();
		else
			positional.push_back(arg);
	}
	if (positional.size() < 3)
		return usage();

	std::optional<CryptConfig> crypt;
	if (!keyFile.empty()) {
		Result<Bytes> text = readWholeFile(AT_FDCWD, keyFile, kKeyFileMaxBytes, keyFile);
		if (!text)
			return failed(text.error());
		Result<KeyFile> parsed = parseKeyFile(
			std::string_view(reinterpret_cast<const char *>(text->data()), text->size()));
		if (!parsed)
			return failed(parsed.error());
		const char *password = std::getenv("FILE_RESTORE_KEY_PASSWORD");
		Result<Key> key = decryptKeyFile(*parsed, password != nullptr ? password : "");
		if (!key)
			return failed(key.error());
		Result<CryptConfig> made = CryptConfig::create(*key);
		if (!made)
			return failed(made.error());
		crypt = std::move(*made);
		options.crypt = &*crypt;
	}
	Result<SnapshotId> snapshot = parseSnapshotId(positional[1], ns);
	if (!snapshot)
		return failed(snapshot.error());
	Result<test::DatastoreWriter> writer = test::DatastoreWriter::create(positional[0]);
	if (!writer)
		return failed(writer.error());
	std::vector<ManifestFile> files;
	for (std::size_t i = 2; i < positional.size(); ++i) {
		const std::size_t eq = positional[i].find('=');
		if (eq == std::string::npos)
			return usage();
		const std::string name = positional[i].substr(0, eq) + ".fidx";
		const std::string path = positional[i].substr(eq + 1);
		UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
		struct stat st {};
		if (!fd.isValid() || ::fstat(fd.get(), &st) != 0)
			return failed(Error(errno, "open", path));
		Result<ManifestFile> file = writer->addImage(*snapshot, name, fd.get(),
							     static_cast<std::uint64_t>(st.st_size),
							     options);
		if (!file)
			return failed(file.error());
		files.push_back(*file);
	}
	if (Status s = writer->finishSnapshot(*snapshot, files, options.crypt); !s)
		return failed(s.error());
	std::printf("%s: %llu chunks written, %llu shared\n", snapshot->path().c_str(),
		    static_cast<unsigned long long>(writer->chunksWritten()),
		    static_cast<unsigned long long>(writer->chunksDeduplicated()));
	return 0;
}
