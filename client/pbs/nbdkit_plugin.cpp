// SPDX-License-Identifier: AGPL-3.0-or-later
//
// nbdkit-file-restore-pbs-plugin: serves one PBS fixed index (a VM disk in a
// datastore) read-only over NBD. The client runs it as
//
//   nbdkit -s -r -t 4 --log=stderr PLUGIN datastore=DIR index=REL
//          csum=HEX size=N encrypted=BOOL [key-fd=N] [cache-mib=N] [readahead=N]
//
// with stdin/stdout one end of a socketpair whose other end QEMU gets
// (through the helper). It exits when QEMU closes its end. docs/pbs.md
// describes it; nbd_server.h starts it.
//
// Order (every step before serving happens before the first byte):
//  1. config: parse the parameters (each at most once, strictly);
//  2. config_complete: undo nbdkit's exit-with-parent (the client exits
//     long before QEMU does), open the datastore, take PBS's shared lock on the
//     snapshot directory (prune takes it exclusively), read the whole index
//     and check it against the manifest's checksum and size (which the
//     client verified with the key), read the key from its pipe;
//  3. get_ready: enter the sandbox: Landlock (read-only, the datastore
//     only), then seccomp (a short allow-list, anything else kills);
//  4. after_fork: start the read-ahead thread;
//  5. pread: every chunk checked (CRC, crypt mode, size, digest) before a
//     byte reaches QEMU; a bad chunk is an EIO for the reads touching it,
//     logged once with the chunk's digest and byte range.

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <openssl/crypto.h>

#include "client/pbs/image_reader.h"
#include "client/pbs/sandbox.h"
#include "shared/unique_fd.h"

namespace {

using namespace fr;
using namespace fr::pbs;

struct Config {
	std::optional<std::string> datastore;
	std::optional<std::string> index;
	std::optional<Digest> csum;
	std::optional<std::uint64_t> size;
	std::optional<bool> encrypted;
	std::optional<int> keyFd;
	std::optional<unsigned> cacheMib;
	std::optional<unsigned> readAhead;
};

Config config;
UniqueFd snapshotLock;
std::unique_ptr<ImageReader> reader;
std::mutex reportedMutex;
std::set<std::string> reported; // digests of the chunks reported bad

int fail(const Error &error)
{
	nbdkit_error("%s", error.message().c_str());
	return -1;
}

// Each parser checks one parameter's value: the value, or nullopt after
// saying why not.
std::optional<std::string> absolutePath(const char *value)
{
	if (value[0] == '/')
		return value;
	nbdkit_error("datastore must be an absolute path");
	return std::nullopt;
}

std::optional<std::string> relativePath(const char *value)
{
	if (value[0] != '/' && value[0] != '\0' && std::strstr(value, "..") == nullptr)
		return value;
	nbdkit_error("index must be a path relative to the datastore, without ..");
	return std::nullopt;
}

std::optional<Digest> digestValue(const char *value)
{
	Digest csum{};
	if (parseHex(value, csum))
		return csum;
	nbdkit_error("csum must be 64 hex digits");
	return std::nullopt;
}

std::optional<std::uint64_t> sizeValue(const char *value)
{
	std::uint64_t size = 0;
	if (nbdkit_parse_uint64_t("size", value, &size) == -1)
		return std::nullopt;
	return size;
}

std::optional<bool> boolValue(const char *value)
{
	const int b = nbdkit_parse_bool(value);
	if (b == -1)
		return std::nullopt;
	return b == 1;
}

std::optional<int> keyFdValue(const char *value)
{
	int fd = -1;
	if (nbdkit_parse_int("key-fd", value, &fd) == -1)
		return std::nullopt;
	if (fd >= 3)
		return fd;
	nbdkit_error("key-fd must be 3 or more");
	return std::nullopt;
}

template <unsigned Max>
std::optional<unsigned> atMost(const char *key, const char *value)
{
	unsigned v = 0;
	if (nbdkit_parse_unsigned(key, value, &v) == -1)
		return std::nullopt;
	if (v <= Max)
		return v;
	nbdkit_error("%s: at most %u", key, Max);
	return std::nullopt;
}

// Stores a parameter given once with a value its parser accepts.
template <typename T, typename Parse>
int setOnce(std::optional<T> &slot, const char *key, Parse parse)
{
	if (slot) {
		nbdkit_error("%s given twice", key);
		return -1;
	}
	slot = parse();
	return slot ? 0 : -1;
}

int pbsConfig(const char *key, const char *value)
{
	const std::string k = key;
	if (k == "datastore")
		return setOnce(config.datastore, key, [&] { return absolutePath(value); });
	if (k == "index")
		return setOnce(config.index, key, [&] { return relativePath(value); });
	if (k == "csum")
		return setOnce(config.csum, key, [&] { return digestValue(value); });
	if (k == "size")
		return setOnce(config.size, key, [&] { return sizeValue(value); });
	if (k == "encrypted")
		return setOnce(config.encrypted, key, [&] { return boolValue(value); });
	if (k == "key-fd")
		return setOnce(config.keyFd, key, [&] { return keyFdValue(value); });
	if (k == "cache-mib")
		return setOnce(config.cacheMib, key, [&] { return atMost<4096>(key, value); });
	if (k == "readahead") // chunks
		return setOnce(config.readAhead, key, [&] { return atMost<16>(key, value); });
	nbdkit_error("unknown parameter '%s'", key);
	return -1;
}

// Reads exactly the 32-byte key from its pipe and closes it.
Result<Key> readKey(int fd)
{
	UniqueFd owned(fd);
	Key key{};
	std::size_t got = 0;
	while (got < key.size()) {
		const ssize_t n = ::read(fd, key.data() + got, key.size() - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return Error::invalid(n < 0 ? errno : EIO, "key-fd", std::to_string(fd),
					      "did not deliver 32 key bytes");
		got += static_cast<std::size_t>(n);
	}
	char extra = 0;
	if (::read(fd, &extra, 1) != 0)
		return Error::invalid(EINVAL, "key-fd", std::to_string(fd),
				      "delivered more than 32 key bytes");
	return key;
}

// PBS readers hold the snapshot directory's lock shared for as long as they
// read; prune and a running backup take it exclusively. A pruned snapshot's
// chunks may be garbage-collected a day later. Held in snapshotLock.
Status lockSnapshot(int store, const std::string &index)
{
	const std::size_t slash = index.rfind('/');
	const std::string snapshotDir = slash == std::string::npos ? "." : index.substr(0, slash);
	snapshotLock.reset(::openat(store, snapshotDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!snapshotLock.isValid())
		return Error(errno, "open", snapshotDir);
	if (::flock(snapshotLock.get(), LOCK_SH | LOCK_NB) != 0)
		return Error::invalid(errno, "flock", snapshotDir,
				      "the snapshot is locked by another operation "
				      "(a prune or a backup)");
	return {};
}

// The key from its pipe, made into the crypt config; the raw key is wiped.
Result<CryptConfig> cryptFromKeyFd(int fd)
{
	Result<Key> key = readKey(fd);
	if (!key)
		return key.error();
	Result<CryptConfig> made = CryptConfig::create(*key);
	OPENSSL_cleanse(key->data(), key->size());
	return made;
}

int pbsConfigComplete()
{
	// nbdkit --single asks for SIGTERM when its parent exits
	// (PR_SET_PDEATHSIG): the client call that started the server exits
	// long before the VM stops using it. The server's life is QEMU's end
	// of the socket: it exits when QEMU closes it.
	if (::prctl(PR_SET_PDEATHSIG, 0) != 0)
		return fail(Error(errno, "prctl(PR_SET_PDEATHSIG)"));
	// Chunk-sized buffers (MiBs) come and go with every decode: a fixed
	// mmap threshold returns them to the kernel when freed, where glibc's
	// adaptive one would keep them in per-thread arenas (RSS).
	::mallopt(M_MMAP_THRESHOLD, 256 << 10);
	if (!config.datastore || !config.index || !config.csum || !config.size ||
	    !config.encrypted) {
		nbdkit_error("datastore, index, csum, size and encrypted are required");
		return -1;
	}
	if (*config.encrypted != config.keyFd.has_value()) {
		nbdkit_error("key-fd is required for an encrypted index, and only then");
		return -1;
	}
	UniqueFd store(::open(config.datastore->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!store.isValid())
		return fail(Error(errno, "open", *config.datastore));
	UniqueFd chunks(::openat(store.get(), ".chunks",
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
	if (!chunks.isValid())
		return fail(Error(errno, "open", *config.datastore + "/.chunks"));

	const std::string &index = *config.index;
	if (Status locked = lockSnapshot(store.get(), index); !locked)
		return fail(locked.error());

	Result<FixedIndex> fidx = readFixedIndex(store.get(), index, index);
	if (!fidx)
		return fail(fidx.error());
	if (fidx->computeCsum() != *config.csum || fidx->header.size != *config.size)
		return fail(Error::invalid(EBADMSG, "fixed index", index,
					   "does not match the manifest's checksum and size"));

	std::optional<CryptConfig> crypt;
	if (config.keyFd) {
		Result<CryptConfig> made = cryptFromKeyFd(*config.keyFd);
		if (!made)
			return fail(made.error());
		crypt = std::move(*made);
	}
	ImageReaderOptions options;
	if (config.cacheMib)
		options.cacheBytes = static_cast<std::size_t>(*config.cacheMib) << 20;
	if (config.readAhead)
		options.readAhead = *config.readAhead;
	reader = std::make_unique<ImageReader>(std::move(*fidx), std::move(chunks), std::move(crypt),
					       *config.encrypted, options);
	return 0;
}

int pbsGetReady()
{
	// Landlock first (it needs open(O_PATH) on the datastore), then
	// seccomp, which forbids creating any more rulesets.
	// nbdkit -s reopens its stdin and stdout on /dev/null once it has
	// moved the socket elsewhere. Without Landlock the server does not
	// start: seccomp alone cannot tell /dev/null from any other file.
	if (Status s = restrictFilesystem({*config.datastore, "/dev/null"}, {"/dev/null"}); !s)
		return fail(s.error());
	if (Status s = loadServerSeccomp(); !s)
		return fail(s.error());
	return 0;
}

int pbsAfterFork()
{
	reader->startReadAhead();
	return 0;
}

void *pbsOpen(int /*readonly*/)
{
	// One connection (nbdkit -s); the handle is unused.
	static int handle;
	return &handle;
}

int64_t pbsGetSize(void * /*handle*/)
{
	return static_cast<int64_t>(reader->size());
}

int pbsCanWrite(void * /*handle*/)
{
	return 0;
}

int pbsCanMultiConn(void * /*handle*/)
{
	return 1; // read-only: every connection sees the same bytes
}

int pbsBlockSize(void * /*handle*/, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
	*minimum = 1;
	*preferred = 4096;
	*maximum = 0xffffffff;
	return 0;
}

int pbsPread(void * /*handle*/, void *buf, uint32_t count, uint64_t offset, uint32_t /*flags*/)
{
	Status s = reader->read(offset, count, static_cast<std::uint8_t *>(buf));
	if (s)
		return 0;
	bool firstReport = false;
	{
		std::lock_guard lock(reportedMutex);
		firstReport = reported.insert(s.error().object()).second;
	}
	// Once per chunk: a guest retries failed reads, and the user needs
	// the chunk's name, not a flood.
	if (firstReport)
		nbdkit_error("%s", s.error().message().c_str());
	nbdkit_set_error(s.error().errnum() == EINVAL ? EINVAL : EIO);
	return -1;
}

void pbsUnload()
{
	reader.reset();
}

struct nbdkit_plugin makePlugin()
{
	struct nbdkit_plugin p {};
	p.name = "file-restore-pbs";
	p.longname = "file-restore: a Proxmox Backup Server fixed index, read-only";
	p.version = "1";
	p.description = "Serves a PBS .fidx disk image from a datastore's chunk store";
	p.config = pbsConfig;
	p.config_complete = pbsConfigComplete;
	p.config_help = "datastore=DIR index=REL csum=HEX size=N encrypted=BOOL [key-fd=N] "
			"[cache-mib=N] [readahead=N]";
	p.get_ready = pbsGetReady;
	p.after_fork = pbsAfterFork;
	p.open = pbsOpen;
	p.get_size = pbsGetSize;
	p.can_write = pbsCanWrite;
	p.can_multi_conn = pbsCanMultiConn;
	p.block_size = pbsBlockSize;
	p.pread = pbsPread;
	p.unload = pbsUnload;
	return p;
}

struct nbdkit_plugin plugin = makePlugin();

} // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
