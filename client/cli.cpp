// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/cli.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include "client/archives.h"
#include "client/compat.h"
#include "client/encoding.h"
#include "client/guest_path.h"
#include "client/helper_launcher.h"
#include "client/listing.h"
#include "client/luks_key.h"
#include "client/mount.h"
#include "client/output.h"
#include "client/pbs_source.h"
#include "client/runtime_dir.h"
#include "client/safe_writer.h"
#include "client/state_store.h"
#include "client/transport.h"
#include "client/vm_manager.h"
#include "client/vm_name.h"
#include "fr_config.h"
#include "shared/display.h"
#include "shared/fd_io.h"
#include "shared/unit_name.h"
#include "shared/validate.h"

namespace fr::client {

namespace {

using nlohmann::json;

constexpr std::uint64_t kDefaultTimeout = 120;
// The guest bounds each LUKS key derivation (2 min); several volumes under
// TCG take longer than one ordinary answer.
constexpr std::chrono::minutes kUnlockTimeout{10};

// A failure with its exit code, thrown to runCli's one catch.
struct Failure {
	int code;
	std::string message;
};

[[noreturn]] void usage(const std::string &message)
{
	throw Failure{kExitUsage, message};
}

// The helper's failures: its exit status (client/helper_launcher.cpp) says
// whether it refused or the VM did not come up.
bool isHelperFailure(const Error &error)
{
	return error.kind() == ErrorKind::Helper || std::strcmp(error.call(), "file-restore-helper") == 0;
}

int exitCodeFor(const Error &error)
{
	if (isHelperFailure(error))
		return error.errnum() == EIO || error.errnum() == ETIMEDOUT ? kExitVmFailed : kExitRefused;
	if (error.kind() == ErrorKind::Usage)
		return kExitUsage;
	switch (error.errnum()) {
	case EINTR:
		return interrupted() ? kExitInterrupted : kExitFailure;
	case ENOENT:
		return kExitNotFound;
	case EEXIST:
		return kExitExists;
	case ETIMEDOUT:
	case EHOSTDOWN:
	case EINPROGRESS: // the VM is still starting
	case EBUSY:       // every request slot of the VM is taken
		return kExitVmFailed;
	default:
		return kExitFailure;
	}
}

// What to do next, for errors whose message does not say it already.
std::string nextStep(const Error &error, int code)
{
	const std::string_view call = error.call();
	switch (code) {
	case kExitNotFound:
		if (error.kind() == ErrorKind::Guest || call == "list" || call == "extract")
			return "list the parent directory to see what is there";
		if (call == "stop")
			return "";
		return "check the name (list '/' shows a snapshot's archives)";
	case kExitExists:
		return "remove it, or extract into another directory";
	case kExitVmFailed:
		if (error.errnum() == EINPROGRESS || error.errnum() == EBUSY)
			return ""; // says it
		if (isHelperFailure(error))
			return "";
		return "run it again with -v to see the VM's log";
	default:
		break;
	}
	if (error.errnum() == EOPNOTSUPP && error.kind() == ErrorKind::Guest)
		return "the VM cannot read this volume (docs/client.md lists what it can)";
	if (error.kind() == ErrorKind::Guest && error.errnum() == EIO)
		return "the backup may be damaged there; other files can still be read";
	// A LUKS volume without its key (the reason says which case it is).
	if (error.kind() == ErrorKind::Guest && error.errnum() == ENOKEY &&
	    std::string_view(error.reason()).find("locked: no key given") != std::string_view::npos)
		return "give its key with --luks-key-file FILE or --luks-passphrase-fd N";
	return "";
}

// Every error ends here. A reader of our output that went away (`| head`)
// is not worth a message: the one place a closed pipe is handled.
[[noreturn]] void fail(const Error &error)
{
	if (error.kind() == ErrorKind::OutputClosed)
		throw Failure{kExitFailure, ""};
	const int code = exitCodeFor(error);
	std::string message = error.message();
	if (const std::string step = nextStep(error, code); !step.empty())
		message += "; " + step;
	throw Failure{code, message};
}

template <typename T>
T check(Result<T> result)
{
	if (!result)
		fail(result.error());
	return std::move(result).value();
}

void check(const Status &status)
{
	if (!status)
		fail(status.error());
}

// check(), with a guest's error named by the user's path.
template <typename T>
T checkFor(Result<T> result, const char *operation, const GuestTarget &target)
{
	if (!result)
		fail(forUser(Status(result.error()), operation, target).error());
	return std::move(result).value();
}

// A path into an archive that cannot be used says why (the reason the list
// of `/` shows too), and so does any VM path when no archive is usable.
Status checkUsable(const std::vector<Archive> &all, const std::vector<Archive> &usable, std::string_view path)
{
	const std::string_view rest = path.substr(path.find_first_not_of('/') == std::string_view::npos
							  ? path.size()
							  : path.find_first_not_of('/'));
	if (rest.empty())
		return {};
	const std::string_view first = rest.substr(0, rest.find('/'));
	for (const Archive &archive : all)
		if (archive.name == first && !archive.unusable.empty())
			return Error::invalid(EINVAL, "archive", escapeForDisplay(archive.name), "cannot be used: %s",
					      escapeForDisplay(archive.unusable).c_str());
	if (usable.empty())
		return Error::invalid(ENOENT, "snapshot", "", "no archive of it can be used (`list SNAPSHOT /` says why)");
	return {};
}

// Options shared by list, extract and mount.
struct Target {
	std::string repository;
	std::vector<std::string> images;
	std::string imageFormat; // --image-format: what the --image files are
	bool base64 = false;
	std::string timeout;
	std::string transport = "auto";
	std::string memory;
	std::string idleTimeout;
	std::string luksKeyFile;
	std::string luksPassphraseFd;
	// A PBS datastore as the repository (client/pbs_source.h), with
	// proxmox-file-restore's option names. --crypt-mode and --driver are
	// accepted as upstream's callers pass them.
	std::string ns;
	std::string keyFile;
	std::string keyFd;
	std::string keyPasswordFd;
	std::string cryptMode;
	std::string driver;
};

struct Options {
	bool verbose = false;
	std::string outputFormat = "text";
	Target target;
	std::vector<std::string> positionals;
	// extract
	std::string format;
	bool zstd = false;
	bool symlinks = false;
	// status / stop
	bool namesOnly = false;
	bool all = false;
	// mount
	bool foreground = false;
	std::vector<std::string> mountOptions;
};

OutputFormat outputFormatOf(const std::string &text)
{
	if (text == "json")
		return OutputFormat::Json;
	if (text == "json-pretty")
		return OutputFormat::JsonPretty;
	return OutputFormat::Text;
}

std::optional<std::uint32_t> optionalNumber(const std::string &text, const char *what,
					    std::uint64_t min, std::uint64_t max)
{
	if (text.empty())
		return std::nullopt;
	Result<std::uint64_t> value = parseDecimal(text, min, max, what);
	if (!value)
		usage(value.error().message());
	return static_cast<std::uint32_t>(*value);
}

class Commands {
public:
	Commands(Options &options, SessionFactory &sessions) : o_(options), sessions_(sessions) {}

	int list();
	int extract();
	int status();
	int stop();
	int mount();
	int umount();
	// extract to stdout: errors must not go there, even as JSON.
	bool stdoutIsData() const { return stdoutIsData_; }
	// Whether an error of `list` may still be answered as JSON on stdout
	// (nothing of the listing went out yet).
	bool listAnswersErrors() const { return listing_ && !stdoutIsData_; }

private:
	struct Resolved {
		VmSpec spec;          // its archives: the usable ones, the VM's disks
		GuestTarget target;
		std::vector<Archive> archives; // all, unusable ones with their reason
		std::shared_ptr<const PbsSelection> pbs; // a datastore's snapshot
	};
	// snapshot: empty with --image.
	Resolved resolve(std::string_view snapshot, const std::string &path);
	// The guest's volume layers: the LUKS key given (if any) tried on its
	// locked volumes, before the path is looked at (unlockVolumes: or
	// fail); its warning about what was answered said once.
	Status unlock(VmConnection &vm);
	void unlockVolumes(VmConnection &vm) { check(unlock(vm)); }
	void sayWarning(const VmSession &session);
	std::string repository() const;
	std::shared_ptr<const PbsSelection> selectDatastoreSnapshot(const std::string &datastore,
								     std::string_view snapshot);
	int listSnapshots();
	// A failed request on a datastore's VM: the NBD servers' reports of
	// bad chunks go to stderr first (they say which chunk, and why).
	Status withChunkReports(Status status, const Resolved &r);
	void openRuntime();
	VmManager &manager();
	Deadline deadline() const
	{
		const std::uint64_t seconds =
			o_.target.timeout.empty()
				? kDefaultTimeout
				: *optionalNumber(o_.target.timeout, "--timeout", 1, 86400);
		return start_ + std::chrono::seconds(seconds);
	}
	OutputFormat format() const { return outputFormatOf(o_.outputFormat); }
	void print(const std::string &text) { check(writeStdout(text)); }
	// The sink for extract's arguments (the target: '-' or a directory).
	std::unique_ptr<OutputSink> extractSink(const Resolved &r, std::string target, VmSession *session);
	nlohmann::json statusJson(const std::vector<VmStatusRow> &rows, std::int64_t now) const;
	static std::string statusText(const VmStatusRow &row, std::int64_t now);

	Options &o_;
	SessionFactory &sessions_;
	Clock::time_point start_ = Clock::now();
	std::optional<RuntimeDir> dir_;
	std::unique_ptr<StateStore> store_;
	std::unique_ptr<SpawnHelperRunner> helper_;
	SystemDialer dialer_;
	std::unique_ptr<VmManager> manager_;
	bool stdoutIsData_ = false;
	std::optional<LuksKey> luksKey_;
	bool listing_ = false;
};

void Commands::openRuntime()
{
	if (dir_)
		return;
	const std::string base = check(runtimeBase(std::getenv("XDG_RUNTIME_DIR")));
	dir_ = check(openRuntimeDir(base));
	// Staging directories of extractions whose client was killed.
	cleanJournal(dir_->fd.get());
}

VmManager &Commands::manager()
{
	if (manager_)
		return *manager_;
	openRuntime();
	store_ = std::make_unique<StateStore>(dir_->fd.get(), dir_->path);
	helper_ = std::make_unique<SpawnHelperRunner>(helperPath());
	ManagerContext ctx;
	ctx.dir = &*dir_;
	ctx.store = store_.get();
	ctx.helper = helper_.get();
	ctx.dialer = &dialer_;
	ctx.sessions = &sessions_;
	ctx.warn = warn;
	// "starting restore VM…": for people at a terminal, not for programs.
	if (::isatty(2) == 1)
		ctx.note = [](const std::string &text) { warn(text); };
	ctx.verbose = o_.verbose;
	ctx.vhostVsockUsable = vhostVsockUsable();
	manager_ = std::make_unique<VmManager>(std::move(ctx));
	return *manager_;
}

std::string Commands::repository() const
{
	std::string repository = o_.target.repository;
	if (repository.empty()) {
		const char *fromEnv = std::getenv("FILE_RESTORE_REPOSITORY");
		repository = fromEnv != nullptr ? fromEnv : "";
	}
	if (repository.empty())
		usage("no repository: pass --repository DIR or set FILE_RESTORE_REPOSITORY "
		      "(or use --image FILE)");
	if (looksLikeRemoteRepository(repository) && ::access(repository.c_str(), F_OK) != 0)
		usage("--repository " + escapeForDisplay(repository) +
		      ": a remote Proxmox Backup Server is not supported; give the datastore's "
		      "directory on this machine");
	return check(canonicalPath(repository, "repository"));
}

std::shared_ptr<const PbsSelection>
Commands::selectDatastoreSnapshot(const std::string &datastore, std::string_view snapshot)
{
	const Target &t = o_.target;
	PbsKeyOptions keyOptions;
	keyOptions.keyFile = t.keyFile;
	if (!t.keyFd.empty())
		keyOptions.keyFd = static_cast<int>(*optionalNumber(t.keyFd, "--keyfd", 0, 1 << 20));
	if (!t.keyPasswordFd.empty())
		keyOptions.passwordFd = static_cast<int>(
			*optionalNumber(t.keyPasswordFd, "--key-password-fd", 0, 1 << 20));
	std::optional<pbs::Key> key = check(loadPbsKey(keyOptions));
	Result<PbsSelection> selected = selectPbsSnapshot(datastore, snapshot, t.ns, key);
	if (key)
		OPENSSL_cleanse(key->data(), key->size());
	if (!selected && selected.error().errnum() == EINVAL &&
	    (std::strcmp(selected.error().call(), "snapshot") == 0 ||
	     std::strcmp(selected.error().call(), "--ns") == 0))
		usage(selected.error().message());
	return std::make_shared<const PbsSelection>(check(std::move(selected)));
}

Status Commands::withChunkReports(Status status, const Resolved &r)
{
	if (status || !r.pbs || !dir_)
		return status;
	for (const std::string &line : badChunkReports(dir_->fd.get(), nbdLogName(r.spec.name), 8))
		warn("the datastore: " + line);
	return status;
}

Commands::Resolved Commands::resolve(std::string_view snapshot, const std::string &rawPath)
{
	Resolved out;
	const Target &t = o_.target;
	if (Status ok = checkDatastoreOptions({t.ns, t.keyFile, t.keyFd, t.cryptMode, t.driver}); !ok)
		usage(ok.error().message());
	std::string path = rawPath;
	if (t.base64) {
		std::optional<std::string> decoded = base64Decode(rawPath);
		if (!decoded)
			usage("--base64: the path '" + escapeForDisplay(rawPath) +
			      "' is not valid base64");
		path = *decoded;
	}
	if (!t.images.empty()) {
		std::optional<ImageFormat> imageFormat;
		if (!t.imageFormat.empty()) {
			imageFormat = parseFormatName(t.imageFormat);
			if (!imageFormat || imageFormat == ImageFormat::Nbd)
				usage("--image-format: must be raw, qcow2, vmdk, vdi or vhdx");
		}
		out.spec.archives = check(imageArchives(t.images, imageFormat));
		std::vector<std::string> paths;
		for (const Archive &archive : out.spec.archives)
			paths.push_back(archive.path);
		out.spec.name = imageVmName(paths);
	} else if (const std::string repo = repository(); pbs::isDatastore(repo)) {
		// A PBS datastore: the snapshot and its key are checked against
		// the manifest here, before any VM starts.
		out.pbs = selectDatastoreSnapshot(repo, snapshot);
		out.spec.archives = out.pbs->archives;
		const std::string id = out.pbs->snapshot.id.path();
		out.spec.name = snapshotVmName(repo, id);
		out.spec.datastore = repo;
		out.spec.snapshot = id;
		out.spec.startNbdServers = [selection = out.pbs](int logFd) {
			return startPbsServers(*selection, logFd, std::chrono::seconds(20));
		};
		path = withFidxArchiveName(out.spec.archives, path);
	} else {
		// A directory of images is no datastore: namespaces and keys
		// have nothing to apply to.
		if (!t.ns.empty() || !t.keyFile.empty() || !t.keyFd.empty() || !t.keyPasswordFd.empty() ||
		    t.cryptMode == "encrypt")
			usage("--ns, --keyfile, --keyfd, --key-password-fd and --crypt-mode=encrypt need a "
			      "Proxmox Backup Server datastore as the repository (a directory with .chunks); " +
			      escapeForDisplay(repo) + " is not a PBS datastore");
		Result<std::string> normalised = normaliseSnapshot(snapshot);
		if (!normalised)
			usage(normalised.error().message());
		const std::string dir = check(canonicalPath(repo + "/" + *normalised, "snapshot"));
		out.archives = check(snapshotArchives(dir));
		out.spec.archives = usableArchives(out.archives);
		out.spec.name = snapshotVmName(repo, *normalised);
	}
	if (out.archives.empty())
		out.archives = out.spec.archives;
	check(checkUsable(out.archives, out.spec.archives, path));
	Result<GuestTarget> target = mapToGuest(out.spec.archives, path);
	if (!target && target.error().errnum() != ENOENT)
		usage(target.error().message());
	out.target = check(std::move(target));

	const std::optional<TransportChoice> transport = parseTransportChoice(t.transport);
	if (!transport)
		usage("--transport: must be auto, vsock or serial");
	out.spec.transport = *transport;
	out.spec.memoryMib = optionalNumber(t.memory, "--memory", 1, std::uint64_t{1} << 20);
	out.spec.idleTimeout = optionalNumber(t.idleTimeout, "--idle-timeout", 1, std::uint64_t{7} * 86400);
	// Read before any VM starts: a key that cannot be read fails first.
	if (!t.luksKeyFile.empty() && !t.luksPassphraseFd.empty())
		usage("give --luks-key-file or --luks-passphrase-fd, not both");
	if (!t.luksKeyFile.empty())
		luksKey_ = check(readLuksKeyFile(t.luksKeyFile));
	if (!t.luksPassphraseFd.empty())
		luksKey_ = check(readLuksPassphrase(
			static_cast<int>(*optionalNumber(t.luksPassphraseFd, "--luks-passphrase-fd", 0, 1 << 20))));
	return out;
}

Status Commands::unlock(VmConnection &vm)
{
	if (!luksKey_)
		return {};
	Result<std::uint64_t> opened = vm.session().unlock(luksKey_->bytes(), kUnlockTimeout);
	if (!opened)
		return opened.error();
	if (o_.verbose)
		warn("LUKS key: " + std::to_string(*opened) + " volume(s) opened");
	return {};
}

void Commands::sayWarning(const VmSession &session)
{
	const std::string warning = session.warning();
	if (!warning.empty())
		warn("warning: " + escapeForDisplay(warning));
}

int Commands::listSnapshots()
{
	const std::string repo = repository();
	if (!pbs::isDatastore(repo))
		usage("list SNAPSHOT [PATH] (listing the snapshots needs a Proxmox Backup Server "
		      "datastore as the repository)");
	Result<std::vector<std::string>> ns = pbs::parseNamespace(o_.target.ns);
	if (!ns)
		usage(ns.error().message());
	const std::vector<pbs::SnapshotSummary> rows = check(pbs::listSnapshots(repo, *ns, true));
	if (format() != OutputFormat::Text) {
		json out = json::array();
		for (const pbs::SnapshotSummary &row : rows) {
			json item = {{"snapshot", row.id.path()},
				     {"group", row.id.group()},
				     {"time", row.id.time},
				     {"size", row.size},
				     {"encrypted", row.encrypted},
				     {"protected", row.isProtected},
				     {"archives", row.images}};
			if (!row.problem.empty())
				item["problem"] = escapeForDisplay(row.problem);
			out.push_back(std::move(item));
		}
		print(dumpJson(out, format()));
		return kExitOk;
	}
	std::string text;
	for (const pbs::SnapshotSummary &row : rows) {
		char size[32];
		(void)std::snprintf(size, sizeof(size), "%.1f GiB",
				    static_cast<double>(row.size) / (1024.0 * 1024.0 * 1024.0));
		text += row.id.path() + "  " + (row.problem.empty() ? size : "-") + "  " +
			(row.encrypted ? "encrypted" : "not encrypted") +
			(row.isProtected ? ", protected" : "") +
			(row.problem.empty() ? "" : "  (" + escapeForDisplay(row.problem) + ")") + "\n";
	}
	if (rows.empty())
		text = "no snapshots\n";
	print(text);
	return kExitOk;
}

int Commands::list()
{
	listing_ = true;
	const bool images = !o_.target.images.empty();
	if (!images && o_.positionals.empty())
		return listSnapshots();
	const std::size_t wanted = images ? 1 : 2;
	if (o_.positionals.size() > wanted || o_.positionals.size() + 1 < wanted)
		usage(images ? "list --image FILE... [PATH]" : "list SNAPSHOT [PATH]");
	const std::string_view snapshot = images ? std::string_view() : o_.positionals[0];
	const std::string path = o_.positionals.size() == wanted ? o_.positionals.back()
								 : (o_.target.base64 ? "Lw==" : "/");
	Resolved r = resolve(snapshot, path);

	ListingPrinter directory(format(), r.target.userPath);
	ListingPrinter *printer = &directory;
	std::optional<ListingPrinter> parent; // listing a file: named below its parent
	Status listed;
	if (r.target.isRoot) {
		// The archives: known without starting a VM (unusable ones too).
		// What no one archive holds (a volume group spanning archives, md
		// arrays) is asked for by its path: /lvm, /md (docs/client.md).
		for (const Archive &archive : r.archives) {
			GuestEntry entry;
			entry.name = archive.name;
			entry.type = EntryType::Virtual;
			entry.reason = archive.unusable;
			struct stat st {};
			if (r.pbs) { // the disk's size, from the manifest
				if (const pbs::ImageArchive *image = pbs::findImage(r.pbs->snapshot, archive.name))
					entry.size = image->size;
			} else if (::stat(archive.path.c_str(), &st) == 0 && st.st_size > 0) {
				entry.size = static_cast<std::uint64_t>(st.st_size);
			}
			if (listed = printer->add(entry); !listed)
				break;
		}
	} else {
		VmConnection vm = check(manager().acquire(r.spec, deadline()));
		unlockVolumes(vm);
		listed = vm.session().list(r.target.guestPath, [&](const GuestEntry &entry) noexcept {
			Status shown = printer->add(entry);
			return shown ? notInterrupted() : shown;
		});
		// A file (or anything but a directory) lists as itself, as
		// proxmox-file-restore does.
		if (!listed && listed.error().kind() == ErrorKind::Guest && listed.error().errnum() == ENOTDIR &&
		    !printer->started()) {
			Result<GuestEntry> object = vm.session().stat(r.target.guestPath);
			if (object) {
				const std::string &user = r.target.userPath;
				const std::size_t slash = user.rfind('/');
				parent.emplace(format(), slash == 0 ? std::string("/") : user.substr(0, slash));
				printer = &*parent;
				listed = printer->add(*object);
			} else {
				listed = object.error();
			}
		}
		sayWarning(vm.session());
	}
	if (listed)
		listed = printer->finish();
	// Once anything went out, an error goes to stderr (stdout ends
	// mid-listing).
	stdoutIsData_ = printer->started();
	check(forUser(withChunkReports(listed, r), "list", r.target));
	return kExitOk;
}

std::unique_ptr<OutputSink> Commands::extractSink(const Resolved &r, std::string target, VmSession *session)
{
	if (target == "-" || !o_.format.empty()) {
		// To stdout, as proxmox-file-restore: a file's bytes, a
		// directory as zip, unless --format says otherwise.
		std::string formatName = o_.format;
		if (formatName.empty() && session != nullptr) {
			GuestEntry object = checkFor(session->stat(r.target.guestPath), "extract", r.target);
			formatName = object.type == EntryType::Directory || object.type == EntryType::Virtual
					     ? "zip"
					     : "plain";
		}
		if (formatName == "zip" || formatName == "tar")
			return archiveStdoutSink(formatName == "zip" ? ExtractFormat::Zip : ExtractFormat::Tar,
						 o_.zstd);
		return rawStdoutSink(o_.zstd);
	}
	openRuntime();
	DirectorySinkOptions options;
	options.target = target.empty() ? "." : std::move(target);
	options.finalName = r.target.baseName;
	options.symlinks = o_.symlinks;
	options.verbose = o_.verbose;
	options.journalDirFd = dir_->fd.get();
	return directorySink(std::move(options));
}

int Commands::extract()
{
	const bool images = !o_.target.images.empty();
	const std::size_t minimum = images ? 1 : 2;
	if (o_.positionals.size() < minimum || o_.positionals.size() > minimum + 1)
		usage(images ? "extract --image FILE... PATH [TARGET]"
			     : "extract SNAPSHOT PATH [TARGET]");
	const std::string_view snapshot = images ? std::string_view() : o_.positionals[0];
	const std::string &path = o_.positionals[minimum - 1];
	std::string target = o_.positionals.size() > minimum ? o_.positionals[minimum] : "";
	if (o_.format == "pxar")
		usage("--format pxar: not supported (pxar is the Proxmox archive format of container "
		      "backups; use zip or tar, which every unpacker reads: docs/client.md)");
	if (!o_.format.empty() && !target.empty() && target != "-")
		usage("--format writes the archive to stdout: give '-' as the target (or none)");
	if (o_.zstd && o_.format.empty() && target != "-")
		usage("--zstd compresses what goes to stdout: give '-' as the target");

	Resolved r = resolve(snapshot, path);
	if (r.target.isRoot)
		usage("extract needs a path inside an archive, e.g. /" +
		      escapeForDisplay(r.spec.archives.front().name) + "/part/1/etc");
	const bool toStdout = target == "-" || !o_.format.empty();
	stdoutIsData_ = toStdout;
	std::unique_ptr<OutputSink> sink;
	if (!toStdout) {
		sink = extractSink(r, target, nullptr);
		check(sink->prepare());
	}
	VmConnection vm = check(manager().acquire(r.spec, deadline()));
	// Before anything is asked about the path (extractSink's stat): the
	// volumes the key opens may hold it.
	unlockVolumes(vm);
	if (toStdout) {
		sink = extractSink(r, std::move(target), &vm.session());
		check(sink->prepare());
	}
	const Status received = sink->receive(vm.session(), r.target);
	sayWarning(vm.session());
	check(withChunkReports(received, r));
	return kExitOk;
}

int Commands::mount()
{
	const bool images = !o_.target.images.empty();
	const std::size_t wanted = images ? 2 : 3;
	if (o_.positionals.size() != wanted)
		usage(images ? "mount --image FILE... PATH MOUNTPOINT" : "mount SNAPSHOT PATH MOUNTPOINT");
	const std::string_view snapshot = images ? std::string_view() : o_.positionals[0];
	Resolved r = resolve(snapshot, o_.positionals[wanted - 2]);
	MountOptions options;
	options.mountpoint = o_.positionals[wanted - 1];
	options.foreground = o_.foreground;
	options.verbose = o_.verbose;
	options.fuseOptions = o_.mountOptions;
	options.beforeLookup = [this](VmConnection &vm) { return unlock(vm); };
	VmManager &vms = manager();
	return check(runMount(vms, r.spec, r.target, deadline(), options));
}

int Commands::umount()
{
	if (o_.positionals.size() != 1)
		usage("umount MOUNTPOINT");
	check(unmount(o_.positionals[0]));
	return kExitOk;
}

// status: proxmox-file-restore's shape, {"Qemu": {"ids": {ID: {...}}}} (or
// {"Qemu": {}} without VMs), ID the VM's unescaped name; ours adds the
// escaped name and the rest of what we know to each VM's object.
nlohmann::json Commands::statusJson(const std::vector<VmStatusRow> &rows, std::int64_t now) const
{
	json ids = json::object();
	for (const VmStatusRow &row : rows) {
		const VmRecord &vm = row.record;
		json archives = json::array();
		for (const Archive &archive : vm.archives)
			archives.push_back(escapeForDisplay(archive.name));
		json item = {
			{"name", vm.name},
			{"pid", vm.pid},
			{"cid", vm.cid ? json(*vm.cid) : json(nullptr)},
			{"transport", transportName(vm.transport)},
			{"uptime", std::max<std::int64_t>(0, now - vm.startedAt)},
			{"state", row.state},
			{"archives", archives},
			{"idle_left", nullptr},
		};
		if (!vm.datastore.empty()) {
			item["datastore"] = escapeForDisplay(vm.datastore);
			item["snapshot"] = escapeForDisplay(vm.snapshot);
		}
		if (row.guest) {
			json guest = json::object();
			if (row.guest->idleLeftSeconds) {
				item["idle_left"] = *row.guest->idleLeftSeconds;
				item["timeout"] = *row.guest->idleLeftSeconds; // upstream's name
			}
			if (row.guest->uptimeSeconds) {
				guest["uptime"] = *row.guest->uptimeSeconds;
				item["uptime"] = *row.guest->uptimeSeconds;
			}
			for (const auto &[key, value] : row.guest->details)
				guest[escapeForDisplay(key)] = escapeForDisplay(value);
			item["guest"] = guest;
		}
		if (!row.problem.empty()) {
			item["problem"] = row.problem;
			item["error"] = row.problem; // upstream's name
		}
		const std::optional<std::string> id = unescapeUnitName(vm.name);
		ids[escapeForDisplay(id ? *id : vm.name)] = item;
	}
	json qemu = json::object();
	if (!ids.empty())
		qemu["ids"] = ids;
	return {{"Qemu", qemu}};
}

std::string Commands::statusText(const VmStatusRow &row, std::int64_t now)
{
	const VmRecord &vm = row.record;
	std::string line = vm.name + "\n";
	line += "  pid " + std::to_string(vm.pid) + ", " + transportName(vm.transport) +
		(vm.cid ? " cid " + std::to_string(*vm.cid) : std::string()) + ", up " +
		durationText(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - vm.startedAt))) +
		", " + row.state;
	if (row.guest && row.guest->idleLeftSeconds)
		line += ", idle timeout in " + durationText(*row.guest->idleLeftSeconds);
	if (!vm.datastore.empty())
		line += "\n  datastore " + escapeForDisplay(vm.datastore) + ", snapshot " +
			escapeForDisplay(vm.snapshot);
	line += "\n  disks:";
	for (std::size_t i = 0; i < vm.archives.size(); ++i)
		line += (i ? ", " : " ") + escapeForDisplay(vm.archives[i].name);
	line += "\n";
	if (row.guest && !row.guest->details.empty()) {
		line += "  guest:";
		for (std::size_t i = 0; i < row.guest->details.size(); ++i)
			line += (i ? ", " : " ") + escapeForDisplay(row.guest->details[i].first) + " " +
				escapeForDisplay(row.guest->details[i].second);
		line += "\n";
	}
	if (!row.problem.empty())
		line += "  did not answer (" + row.problem + "); stopped\n";
	return line;
}

int Commands::status()
{
	if (o_.namesOnly) {
		for (const std::string &name : check(manager().names(deadline())))
			print(name + "\n");
		return kExitOk;
	}
	const std::vector<VmStatusRow> rows = check(manager().status(deadline()));
	const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
	if (format() != OutputFormat::Text) {
		print(dumpJson(statusJson(rows, now), format()));
		return kExitOk;
	}
	if (rows.empty())
		print("no VMs running\n");
	for (const VmStatusRow &row : rows)
		print(statusText(row, now));
	return kExitOk;
}

const char *stopText(StopOutcome outcome)
{
	switch (outcome) {
	case StopOutcome::PoweredOff:
		return "powered off";
	case StopOutcome::Killed:
		return "killed (it did not power off when asked)";
	case StopOutcome::KilledInUse:
		return "killed (it was in use by another file-restore call)";
	case StopOutcome::NotRunning:
		return "was not running; its entry was removed";
	}
	return "";
}

const char *stopJsonText(StopOutcome outcome)
{
	switch (outcome) {
	case StopOutcome::PoweredOff:
		return "powered-off";
	case StopOutcome::Killed:
	case StopOutcome::KilledInUse:
		return "killed";
	case StopOutcome::NotRunning:
		return "not-running";
	}
	return "";
}

int Commands::stop()
{
	std::vector<std::string> names = o_.positionals;
	if (o_.all) {
		if (!names.empty())
			usage("stop: give VM names or --all, not both");
		names = check(manager().names(deadline()));
	} else if (names.empty()) {
		usage("stop: which VM? (names from 'file-restore status', or --all)");
	}
	json out = json::array();
	for (const std::string &given : names) {
		// Both forms: the escaped name (ours, `status --names`) and the
		// unescaped id proxmox-file-restore's `status` shows.
		std::string name = given;
		const std::vector<std::string> known = check(manager().names(deadline()));
		if (std::find(known.begin(), known.end(), name) == known.end()) {
			const std::string escaped = escapeUnitName(given);
			if (std::find(known.begin(), known.end(), escaped) != known.end())
				name = escaped;
		}
		const StopOutcome outcome = check(manager().stop(name, deadline()));
		if (format() == OutputFormat::Text)
			print(name + ": " + stopText(outcome) + "\n");
		else
			out.push_back({{"name", name},
				       {"result", stopJsonText(outcome)},
				       {"stopped", outcome != StopOutcome::NotRunning}});
	}
	if (format() != OutputFormat::Text)
		print(dumpJson(out, format()));
	return kExitOk;
}

void addOutputFormat(CLI::App *command, Options &o)
{
	command->add_option("--output-format", o.outputFormat, "text, json or json-pretty")
		->check(CLI::IsMember({"text", "json", "json-pretty"}));
}

void addTargetOptions(CLI::App *command, Target &t)
{
	command->add_option("--repository", t.repository,
			    "the repository directory (default: $FILE_RESTORE_REPOSITORY)");
	command->add_option("--image-format", t.imageFormat,
			    "the format of the --image files: raw, qcow2, vmdk, vdi or vhdx (default: "
			    "from each file's name, .img/.raw and anything else raw; never from the bytes)");
	command->add_option("--image", t.images,
			    "an ad-hoc disk image instead of a snapshot (repeatable)")
		->allow_extra_args(false);
	command->add_flag("--base64", t.base64, "PATH is base64-encoded (for any byte string)");
	command->add_option("--timeout", t.timeout,
			    "seconds to wait for the VM: locks, boot, answers (default 120)");
	command->add_option("--transport", t.transport, "auto, vsock or serial (default auto)")
		->check(CLI::IsMember({"auto", "vsock", "serial"}));
	command->add_option("--memory", t.memory, "guest memory in MiB when starting a VM");
	command->add_option("--idle-timeout", t.idleTimeout,
			    "seconds before an unused VM powers off (when starting it)");
	command->add_option("--luks-key-file", t.luksKeyFile,
			    "a key file for the LUKS volumes (every byte, at most 4096)");
	command->add_option("--luks-passphrase-fd", t.luksPassphraseFd,
			    "read a LUKS passphrase from this file descriptor (up to a newline)");
	command->add_option("--ns", t.ns, "a datastore's namespace, e.g. a/b (PBS datastores)");
	command->add_option("--keyfile", t.keyFile,
			    "the encryption key file of an encrypted PBS backup");
	command->add_option("--keyfd", t.keyFd, "the key file's text on this inherited fd");
	command->add_option("--key-password-fd", t.keyPasswordFd,
			    "read the key file's password from this fd (else "
			    "$FILE_RESTORE_KEY_PASSWORD, else the terminal)");
	command->add_option("--crypt-mode", t.cryptMode, "none, encrypt or sign-only (as proxmox-file-restore)");
	command->add_option("--driver", t.driver, "the block driver: qemu (the only one)");
}

bool wantsJson(const std::vector<std::string> &args)
{
	for (std::size_t i = 1; i < args.size(); ++i) {
		const std::string_view arg(args[i]);
		if (arg == "--")
			break;
		if ((arg == "--output-format" && i + 1 < args.size() &&
		     std::string_view(args[i + 1]).starts_with("json")) ||
		    arg.starts_with("--output-format=json"))
			return true;
	}
	return false;
}

// JSON errors go to stdout, where JSON output is expected, except when
// stdout carries extracted data: then to stderr. The shape serves both
// proxmox-file-restore's callers ("message", and "code" as an HTTP status:
// 503 asks them to poll again) and ours ("error", "exit_code").
void printError(bool asJson, int code, const std::string &message, int jsonFd = 1)
{
	if (asJson) {
		const std::string text = dumpJson(errorJson(code, message), OutputFormat::Json);
		(void)writeAll(jsonFd, text, "error output");
	} else {
		warn("error: " + message);
	}
}

// The subcommands whose parsed() picks the command (else: stop).
struct Subcommands {
	CLI::App *list;
	CLI::App *extract;
	CLI::App *status;
	CLI::App *mount;
	CLI::App *umount;
};

Subcommands defineCommands(CLI::App &app, Options &o)
{
	app.set_version_flag("--version", std::string("file-restore ") + FR_VERSION);
	app.require_subcommand(1);
	app.fallthrough();
	app.add_flag("-v,--verbose", o.verbose, "more detail, and the VM's log when it fails");
	addOutputFormat(&app, o);

	CLI::App *list = app.add_subcommand("list", "list a directory of a snapshot or image");
	list->add_option("args", o.positionals, "SNAPSHOT PATH (with --image: PATH)");
	addTargetOptions(list, o.target);

	CLI::App *extract = app.add_subcommand(
		"extract", "extract a file or directory into TARGET (a directory; '-': stdout)");
	extract->add_option("args", o.positionals, "SNAPSHOT PATH [TARGET] (with --image: PATH [TARGET])");
	addTargetOptions(extract, o.target);
	extract->add_option("--format", o.format,
			    "to stdout: plain (a file's bytes), zip or tar (default: plain for a "
			    "file, zip for a directory)")
		->check(CLI::IsMember({"plain", "tar", "zip", "pxar"}));
	extract->add_flag("--zstd", o.zstd, "compress what goes to stdout with zstd");
	extract->add_flag("--symlinks", o.symlinks,
			  "create symlinks found in a directory (default: skip them)");

	CLI::App *mountCmd = app.add_subcommand(
		"mount", "mount PATH read-only at MOUNTPOINT (FUSE); 'umount' or fusermount3 -u ends it");
	mountCmd->add_option("args", o.positionals,
			     "SNAPSHOT PATH MOUNTPOINT (with --image: PATH MOUNTPOINT)");
	addTargetOptions(mountCmd, o.target);
	mountCmd->add_flag("-f,--foreground", o.foreground, "stay in the foreground until unmounted");
	mountCmd->add_option("-o", o.mountOptions, "FUSE mount options (e.g. allow_root)")
		->allow_extra_args(false);

	CLI::App *umountCmd = app.add_subcommand("umount", "unmount what 'mount' mounted");
	umountCmd->add_option("args", o.positionals, "MOUNTPOINT");

	CLI::App *status = app.add_subcommand("status", "show the VMs of this user");
	status->add_flag("--names", o.namesOnly,
			 "only the names, without contacting the VMs (for shell completion)");
	status->add_option("--timeout", o.target.timeout, "seconds to wait (default 120)");
	status->add_option("--driver", o.target.driver, "the block driver: qemu (the only one)");

	CLI::App *stop = app.add_subcommand("stop", "stop VMs by name");
	stop->add_option("names", o.positionals, "VM names (see status)");
	stop->add_flag("--all", o.all, "stop every VM of this user");
	stop->add_option("--timeout", o.target.timeout, "seconds to wait (default 120)");
	return Subcommands{list, extract, status, mountCmd, umountCmd};
}

// Runs the parsed command: the only place its failures are caught.
int runCommand(Commands &commands, const Subcommands &parsed, bool jsonErrors)
{
	try {
		if (parsed.list->parsed())
			return commands.list();
		if (parsed.extract->parsed())
			return commands.extract();
		if (parsed.status->parsed())
			return commands.status();
		if (parsed.mount->parsed())
			return commands.mount();
		if (parsed.umount->parsed())
			return commands.umount();
		return commands.stop();
	} catch (const Failure &failure) {
		if (failure.message.empty())
			return failure.code;
		// proxmox-file-restore answers a failed `list` in JSON with the
		// error object and exit status 0: its callers read the object
		// (503: the VM is still starting, poll again). Only while
		// stdout holds nothing else.
		if (jsonErrors && commands.listAnswersErrors()) {
			printError(true, failure.code, failure.message, 1);
			return kExitOk;
		}
		printError(jsonErrors, failure.code, failure.message, commands.stdoutIsData() ? 2 : 1);
		return failure.code;
	} catch (const std::exception &e) {
		printError(jsonErrors, kExitFailure, e.what(), commands.stdoutIsData() ? 2 : 1);
		return kExitFailure;
	}
}

} // namespace

int runCli(int argc, char **argv, SessionFactory &sessions)
{
	// proxmox-file-restore's callers write booleans as values ("--base64
	// 0"); CLI11 flags take none.
	std::vector<std::string> args = normaliseBooleanOptions(argc, argv);
	Options o;
	CLI::App app{"file-restore: restore single files from VM disk backups, without mounting "
		     "them on the host",
		     "file-restore"};
	const Subcommands commands = defineCommands(app, o);
	const bool jsonErrors = wantsJson(args);
	try {
		std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);
		app.parse(reversed);
	} catch (const CLI::CallForHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForAllHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForVersion &e) {
		return app.exit(e);
	} catch (const CLI::ParseError &e) {
		printError(jsonErrors, kExitUsage, e.what());
		if (!jsonErrors)
			warn("run 'file-restore --help' for usage");
		return kExitUsage;
	}

	installInterruptHandlers();
	Commands run(o, sessions);
	return runCommand(run, commands, jsonErrors);
}

} // namespace fr::client
