// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/pbs_source.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <openssl/crypto.h>

#include "client/pbs/file_io.h"
#include "client/pbs/fixed_index.h"
#include "client/pbs/key_file.h"
#include "client/pbs/manifest.h"
#include "client/pbs/nbd_server.h"
#include "client/pbs/sandbox.h"
#include "shared/display.h"
#include "shared/landlock.h"

namespace fr::client {

namespace {

constexpr std::size_t kPasswordMax = 4096;

// Wipes a secret string's bytes before it goes.
struct Secret {
	std::string text;
	~Secret() { OPENSSL_cleanse(text.data(), text.size()); }
};

Status readPasswordFd(int fd, Secret &out)
{
	char c = 0;
	for (;;) {
		const ssize_t n = ::read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Error(errno, "--key-password-fd", std::to_string(fd));
		if (n == 0 || c == '\n')
			break;
		if (out.text.size() >= kPasswordMax)
			return Error::invalid(E2BIG, "--key-password-fd", std::to_string(fd),
					      "longer than %zu bytes", kPasswordMax);
		out.text += c;
	}
	OPENSSL_cleanse(&c, 1);
	return {};
}

// Asks on the controlling terminal with echo off; restores it whatever
// happens.
Status promptPassword(const std::string &hint, Secret &out)
{
	UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
	if (!tty.isValid())
		return Error::invalid(EACCES, "key file", "",
				      "it is protected by a password and there is no terminal to "
				      "ask on: set FILE_RESTORE_KEY_PASSWORD or use "
				      "--key-password-fd");
	std::string prompt = "Encryption key password";
	if (!hint.empty())
		prompt += " (hint: " + escapeForDisplay(hint).substr(0, 100) + ")";
	prompt += ": ";
	(void)!::write(tty.get(), prompt.data(), prompt.size());
	termios saved{};
	const bool haveTermios = ::tcgetattr(tty.get(), &saved) == 0;
	if (haveTermios) {
		termios quiet = saved;
		quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
		quiet.c_lflag |= ECHONL;
		(void)::tcsetattr(tty.get(), TCSAFLUSH, &quiet);
	}
	Status read = readPasswordFd(tty.get(), out);
	if (haveTermios)
		(void)::tcsetattr(tty.get(), TCSAFLUSH, &saved);
	return read;
}

bool endsWith(std::string_view text, std::string_view suffix)
{
	return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

} // namespace

Result<std::optional<pbs::Key>> loadPbsKey(const PbsKeyOptions &options)
{
	if (options.keyFile.empty() && !options.keyFd)
		return std::optional<pbs::Key>();
	if (!options.keyFile.empty() && options.keyFd)
		return Error::invalid(EINVAL, "--keyfd", std::to_string(*options.keyFd),
				      "give --keyfile or --keyfd, not both");
	const std::string what =
		options.keyFd ? "--keyfd " + std::to_string(*options.keyFd) : options.keyFile;
	Result<pbs::Bytes> text =
		options.keyFd ? pbs::readWholeFd(*options.keyFd, pbs::kKeyFileMaxBytes, what)
			      : pbs::readWholeFile(AT_FDCWD, options.keyFile, pbs::kKeyFileMaxBytes, what);
	if (!text && options.keyFd && text.error().errnum() == EINVAL) {
		// A pipe: read it to its end, bounded.
		pbs::Bytes data;
		char buf[4096];
		for (;;) {
			const ssize_t n = ::read(*options.keyFd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return Error(errno, "--keyfd", std::to_string(*options.keyFd));
			if (n == 0)
				break;
			data.insert(data.end(), buf, buf + n);
			if (data.size() > pbs::kKeyFileMaxBytes)
				return Error::invalid(EFBIG, "--keyfd", std::to_string(*options.keyFd),
						      "more than a key file");
		}
		text = std::move(data);
	}
	if (!text)
		return text.error();
	Result<pbs::KeyFile> file = pbs::parseKeyFile(
		std::string_view(reinterpret_cast<const char *>(text->data()), text->size()));
	OPENSSL_cleanse(text->data(), text->size());
	if (!file)
		return Error::invalid(EINVAL, "key file", escapeForDisplay(what), "%s: %s",
				      file.error().object(), file.error().reason());
	Secret password;
	if (file->needsPassword()) {
		const char *fromEnv = std::getenv("FILE_RESTORE_KEY_PASSWORD");
		if (options.passwordFd) {
			if (Status s = readPasswordFd(*options.passwordFd, password); !s)
				return s.error();
		} else if (fromEnv != nullptr) {
			password.text = fromEnv;
		} else if (Status s = promptPassword(file->hint, password); !s) {
			return s.error();
		}
	}
	Result<pbs::Key> key = pbs::decryptKeyFile(*file, password.text);
	OPENSSL_cleanse(file->data.data(), file->data.size());
	if (!key)
		return Error::invalid(key.error().errnum(), "key file", escapeForDisplay(what), "%s",
				      key.error().reason());
	return std::optional<pbs::Key>(*key);
}

Result<PbsSelection> selectPbsSnapshot(const std::string &datastore, std::string_view snapshotArg,
				       std::string_view ns, std::optional<pbs::Key> key)
{
	Result<pbs::SnapshotId> id = pbs::parseSnapshotId(snapshotArg, ns);
	if (!id)
		return id.error();
	Result<pbs::Snapshot> snapshot = pbs::openSnapshot(datastore, *id);
	if (!snapshot)
		return snapshot.error();
	std::optional<pbs::CryptConfig> crypt;
	if (key) {
		Result<pbs::CryptConfig> made = pbs::CryptConfig::create(*key);
		if (!made)
			return made.error();
		crypt = std::move(*made);
	}
	if (Status s = pbs::checkManifestKey(snapshot->manifest, crypt ? &*crypt : nullptr); !s)
		return s.error();
	if (snapshot->images.empty())
		return Error::invalid(ENOENT, "snapshot", escapeForDisplay(id->path()),
				      "holds no disk images (*.img.fidx)");
	PbsSelection out;
	out.datastore = datastore;
	out.key = key;
	UniqueFd dir(::open(snapshot->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!dir.isValid())
		return Error(errno, "snapshot", escapeForDisplay(snapshot->dir));
	for (const pbs::ImageArchive &image : snapshot->images) {
		// The server checks again when it starts; checking here makes a
		// bad index an error before any VM exists.
		Result<pbs::FixedIndex> index =
			pbs::readFixedIndex(dir.get(), image.name, id->path() + "/" + image.name);
		if (!index)
			return index.error();
		if (index->computeCsum() != image.csum || index->header.size != image.size)
			return Error::invalid(EBADMSG, "fixed index",
					      escapeForDisplay(id->path() + "/" + image.name),
					      "does not match the manifest's checksum and size");
		if ((image.cryptMode == pbs::CryptMode::Encrypt) && !key)
			return Error::invalid(EACCES, "archive", escapeForDisplay(image.name),
					      "is encrypted; give --keyfile");
		out.archives.push_back({image.name, ImageFormat::Nbd, image.indexPath, {}});
	}
	std::sort(out.archives.begin(), out.archives.end(),
		  [](const Archive &a, const Archive &b) { return a.name < b.name; });
	out.snapshot = std::move(*snapshot);
	return out;
}

std::string withFidxArchiveName(const std::vector<Archive> &archives, const std::string &path)
{
	std::size_t start = 0;
	while (start < path.size() && path[start] == '/')
		++start;
	const std::size_t end = path.find('/', start);
	const std::string first =
		path.substr(start, end == std::string::npos ? std::string::npos : end - start);
	if (first.empty() || endsWith(first, ".fidx"))
		return path;
	bool exact = false;
	bool withFidx = false;
	for (const Archive &archive : archives) {
		exact = exact || archive.name == first;
		withFidx = withFidx || archive.name == first + ".fidx";
	}
	if (exact || !withFidx)
		return path;
	return path.substr(0, start) + first + ".fidx" +
	       (end == std::string::npos ? std::string() : path.substr(end));
}

Result<std::vector<UniqueFd>> startPbsServers(const PbsSelection &selection, int logFd,
					      std::chrono::milliseconds timeout)
{
	if (landlock::abi() <= 0)
		return Error::invalid(ENOSYS, "nbd server", selection.datastore,
				      "this kernel has no Landlock, which the datastore reader "
				      "requires (docs/pbs.md)");
	std::vector<pbs::NbdServer> servers;
	const auto stopAll = [&servers] {
		for (pbs::NbdServer &server : servers) {
			server.socket.reset(); // it exits on EOF
			::kill(server.pid, SIGKILL);
			::waitpid(server.pid, nullptr, 0);
		}
	};
	for (const Archive &archive : selection.archives) {
		const pbs::ImageArchive *image = pbs::findImage(selection.snapshot, archive.name);
		if (image == nullptr) {
			stopAll();
			return Error(ENOENT, "archive", escapeForDisplay(archive.name));
		}
		pbs::NbdServerSpec spec;
		spec.datastore = selection.datastore;
		spec.indexPath = selection.snapshot.id.path() + "/" + image->name;
		spec.csum = image->csum;
		spec.size = image->size;
		spec.encrypted = image->cryptMode == pbs::CryptMode::Encrypt;
		if (spec.encrypted)
			spec.key = selection.key;
		spec.logFd = logFd;
		Result<pbs::NbdServer> server = pbs::startNbdServer(spec, timeout);
		if (spec.key)
			OPENSSL_cleanse(spec.key->data(), spec.key->size());
		if (!server) {
			stopAll();
			return server.error();
		}
		servers.push_back(std::move(*server));
	}
	std::vector<UniqueFd> sockets;
	sockets.reserve(servers.size());
	for (pbs::NbdServer &server : servers)
		sockets.push_back(std::move(server.socket));
	return sockets;
}

std::vector<std::string> badChunkReports(int runtimeDirFd, const std::string &logName,
					 std::size_t max)
{
	std::vector<std::string> out;
	Result<pbs::Bytes> text = pbs::readWholeFile(runtimeDirFd, logName, 4 << 20, logName);
	if (!text)
		return out;
	const std::string_view all(reinterpret_cast<const char *>(text->data()), text->size());
	std::size_t start = 0;
	while (start < all.size()) {
		std::size_t end = all.find('\n', start);
		if (end == std::string_view::npos)
			end = all.size();
		const std::string_view line = all.substr(start, end - start);
		const std::size_t at = line.find("chunk(");
		if (at != std::string_view::npos)
			out.push_back(escapeForDisplay(line.substr(at)));
		start = end + 1;
	}
	if (out.size() > max)
		out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(max));
	return out;
}

} // namespace fr::client
