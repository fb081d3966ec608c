// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/output.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include "client/archives.h"
#include "client/listing.h"
#include "client/safe_writer.h"
#include "shared/display.h"
#include "shared/fd_io.h"

namespace fr::client {

// --- the terminal ------------------------------------------------------------

Status writeStdout(std::string_view data) noexcept
{
	Status written = writeAll(1, data, "stdout");
	if (!written && written.error().errnum() == EPIPE)
		return written.error().withKind(ErrorKind::OutputClosed);
	return written;
}

void warn(const std::string &message)
{
	const std::string line = "file-restore: " + message + (message.ends_with('\n') ? "" : "\n");
	(void)writeAll(2, line, "stderr");
}

namespace {

volatile sig_atomic_t gInterrupted = 0;

extern "C" void onInterrupt(int)
{
	gInterrupted = 1;
}

} // namespace

void installInterruptHandlers()
{
	gInterrupted = 0;
	struct sigaction action {};
	action.sa_handler = onInterrupt;
	action.sa_flags = SA_RESETHAND; // no SA_RESTART: blocking waits return EINTR
	sigemptyset(&action.sa_mask);
	for (int signal : {SIGINT, SIGTERM, SIGHUP})
		::sigaction(signal, &action, nullptr);
}

bool interrupted() noexcept
{
	return gInterrupted != 0;
}

Status notInterrupted() noexcept
{
	if (interrupted())
		return Error::invalid(EINTR, "file-restore", "signal", "interrupted");
	return {};
}

Status forUser(Status status, const char *operation, const GuestTarget &target)
{
	if (status || status.error().kind() != ErrorKind::Guest)
		return status;
	// Still the guest's error (the advice in nextStep depends on it).
	const std::string reason = toUserTerms(status.error().reason(), target);
	return Error::invalid(status.error().errnum(), operation, escapeForDisplay(target.userPath), "%s",
			      reason.c_str())
		.withKind(ErrorKind::Guest);
}

Progress::Progress(std::string what, std::optional<bool> tty)
	: what_(std::move(what)), tty_(tty.value_or(::isatty(2) == 1))
{
}

Progress::~Progress()
{
	clear();
}

void Progress::add(std::size_t bytes) noexcept
{
	total_ += bytes;
	if (!tty_)
		return;
	const auto now = Clock::now();
	if (now - start_ < std::chrono::seconds(1) || now - shown_ < std::chrono::milliseconds(500))
		return;
	shown_ = now;
	const double seconds = std::chrono::duration_cast<std::chrono::duration<double>>(now - start_).count();
	const std::string text = "\r\033[K" + line(total_, seconds);
	(void)writeAll(2, text, "stderr");
	visible_ = true;
}

std::string Progress::line(std::uint64_t done, double seconds) const
{
	const double mib = static_cast<double>(done) / 1048576.0;
	const double rate = seconds > 0 ? mib / seconds : 0;
	char text[256];
	int n = 0;
	if (expected_ && *expected_ > 0 && done <= *expected_) {
		const double share = 100.0 * static_cast<double>(done) / static_cast<double>(*expected_);
		const double left = static_cast<double>(*expected_ - done) / 1048576.0;
		const std::uint64_t eta = rate > 0 ? static_cast<std::uint64_t>(std::llround(left / rate)) : 0;
		n = std::snprintf(text, sizeof(text), "%s: %.1f of %.1f MiB (%.0f%%), %.1f MiB/s, %s left",
				  what_.c_str(), mib, static_cast<double>(*expected_) / 1048576.0, share, rate,
				  rate > 0 ? durationText(eta).c_str() : "?");
	} else {
		n = std::snprintf(text, sizeof(text), "%s: %.1f MiB, %.1f MiB/s", what_.c_str(), mib, rate);
	}
	return std::string(text, n > 0 ? std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(text) - 1) : 0);
}

void Progress::clear() noexcept
{
	if (visible_)
		(void)writeAll(2, "\r\033[K", "stderr");
	visible_ = false;
}

// --- ExtractSink ---------------------------------------------------------------

Status ExtractSink::receive(VmSession &session, const GuestTarget &target)
{
	if (Status ok = open(); !ok)
		return ok;
	Progress progress(progress_);
	const Status received = session.extract(
		target.guestPath, format_, zstd_,
		[&](const GuestEntry &object) noexcept {
			// A file's size is what a raw stream carries (compressed:
			// an estimate, still a good one for the time left).
			if (object.type == EntryType::File)
				progress.expect(object.size);
			return start(object);
		},
		[&](std::string_view chunk) noexcept {
			progress.add(chunk.size());
			if (Status ok = notInterrupted(); !ok)
				return ok;
			return write(chunk);
		});
	progress.clear();
	return finish(forUser(received, "extract", target), target);
}

namespace {

// --- to stdout -------------------------------------------------------------------

class StdoutSink : public ExtractSink {
public:
	using ExtractSink::ExtractSink;

	bool usesStdout() const noexcept override { return true; }
	Status prepare() override { return {}; }

protected:
	Status start(const GuestEntry &) noexcept override { return {}; }
	Status write(std::string_view chunk) noexcept override { return writeStdout(chunk); }
};

// A regular file's bytes, as they are.
class RawStdoutSink final : public StdoutSink {
public:
	explicit RawStdoutSink(bool zstd) : StdoutSink(ExtractFormat::Raw, zstd, "receiving") {}

protected:
	Status finish(const Status &received, const GuestTarget &) override
	{
		if (received || received.error().errnum() != EISDIR)
			return received;
		return Error::invalid(EISDIR, "extract", received.error().object(),
				      "%.120s (a directory needs --format zip|tar, or a target directory)",
				      received.error().reason())
			.withKind(ErrorKind::Usage);
	}
};

// An archive of any object (a directory recursively), as the guest makes it.
class ArchiveStdoutSink final : public StdoutSink {
public:
	ArchiveStdoutSink(ExtractFormat format, bool zstd) : StdoutSink(format, zstd, "receiving") {}

protected:
	Status finish(const Status &received, const GuestTarget &) override { return received; }
};

// --- into a directory ----------------------------------------------------------

// mkdir -p: the target is the user's own path, trusted as such (everything
// below it is written by the safe writer).
Status makeDirectories(const std::string &path)
{
	if (::mkdir(path.c_str(), 0777) == 0 || errno == EEXIST)
		return {};
	for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1))
		(void)::mkdir(path.substr(0, slash).c_str(), 0777);
	if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST)
		return Error(errno, "mkdir", escapeForDisplay(path));
	return {};
}

// The guest sends a tar of the object, unpacked by the safe writer into a
// staging directory in the target, renamed into place once complete.
class DirectorySink final : public ExtractSink {
public:
	explicit DirectorySink(DirectorySinkOptions options)
		: ExtractSink(ExtractFormat::Tar, false, "extracting"), o_(std::move(options))
	{
	}

	bool usesStdout() const noexcept override { return false; }
	Status prepare() override;

protected:
	Status open() override;
	Status start(const GuestEntry &object) noexcept override
	{
		object_ = object;
		return {};
	}
	Status write(std::string_view chunk) noexcept override { return tar_->write(chunk); }
	Status finish(const Status &received, const GuestTarget &target) override;

private:
	// Puts the staged object in place under its final name.
	Status commit(const GuestTarget &target);
	std::string finalPath() const { return escapeForDisplay(targetPath_ + "/" + o_.finalName); }

	DirectorySinkOptions o_;
	UniqueFd targetFd_;
	std::string targetPath_;
	mode_t umask_ = 022;
	std::unique_ptr<Staging> staging_;
	std::unique_ptr<TarSink> tar_;
	std::optional<GuestEntry> object_;
};

Status DirectorySink::prepare()
{
	if (Status ok = makeDirectories(o_.target); !ok)
		return ok;
	targetFd_ = UniqueFd(::open(o_.target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!targetFd_.isValid())
		return Error(errno, "open", escapeForDisplay(o_.target));
	Result<std::string> canonical = canonicalPath(o_.target, "target");
	if (!canonical)
		return canonical.error();
	targetPath_ = *canonical;
	cleanLeftovers(targetFd_.get());
	struct stat st {};
	if (::fstatat(targetFd_.get(), o_.finalName.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
		return Error::invalid(EEXIST, "extract", finalPath(), "exists already; not replaced");
	return {};
}

Status DirectorySink::open()
{
	Result<std::unique_ptr<Staging>> staging = Staging::create(targetFd_.get(), targetPath_, o_.journalDirFd);
	if (!staging)
		return staging.error();
	staging_ = std::move(*staging);
	umask_ = ::umask(0);
	::umask(umask_);
	UnpackOptions unpack;
	unpack.symlinks = o_.symlinks;
	unpack.umask = umask_;
	tar_ = std::make_unique<TarSink>(staging_->fd(), unpack);
	return tar_->start();
}

Status DirectorySink::finish(const Status &received, const GuestTarget &target)
{
	const Status unpacked = tar_->finish();
	if (!received)
		return received;
	if (!unpacked)
		return unpacked;
	const UnpackReport &report = tar_->report();
	for (const std::string &skipped : report.skipped)
		warn("skipped " + skipped);
	if (Status ok = commit(target); !ok)
		return ok;
	if (o_.verbose)
		warn("extracted " + escapeForDisplay(target.userPath) + " to " + finalPath() + " (" +
		     std::to_string(report.files) + " files, " + std::to_string(report.directories) +
		     " directories, " + std::to_string(report.bytes) + " bytes)");
	return {};
}

Status DirectorySink::commit(const GuestTarget &target)
{
	const std::string userPath = escapeForDisplay(target.userPath);
	if (!object_)
		return Error::invalid(EPROTO, "extract", userPath, "the guest did not describe what it sent");
	// A directory's members are named relative to it (it is no member
	// itself): the staging directory becomes the directory, with the
	// metadata of the leading entry. Anything else is one member named
	// after it.
	if (object_->type == EntryType::Directory) {
		if (::fchmod(staging_->fd(), object_->mode & 0777 & ~umask_) != 0)
			return Error(errno, "chmod", finalPath());
		const timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(object_->mtime), 0}};
		(void)::futimens(staging_->fd(), times);
		return staging_->commit("", o_.finalName);
	}
	// (The unpacker skipped a symlink without --symlinks, but still names
	// it as the single member.)
	if (object_->type == EntryType::Symlink && !o_.symlinks)
		return Error::invalid(EINVAL, "extract", userPath, "is a symlink; --symlinks extracts it as one")
			.withKind(ErrorKind::Usage);
	const UnpackReport &report = tar_->report();
	if (!report.singleFile)
		return Error::invalid(EPROTO, "extract", userPath,
				      "not a regular file, directory or symlink, or the guest sent something else");
	// The stream must hold what the guest announced: a guest that says
	// "file" and sends a symlink (or the reverse) would put a symlink
	// where the user asked for a file's bytes.
	const bool matches = (object_->type == EntryType::File && report.singleFileType == SingleFileType::Regular) ||
			     (object_->type == EntryType::Symlink && report.singleFileType == SingleFileType::Symlink);
	if (!matches)
		return Error::invalid(EPROTO, "extract", userPath,
				      "the guest announced %s but sent %s; nothing was extracted",
				      object_->type == EntryType::File      ? "a regular file"
				      : object_->type == EntryType::Symlink ? "a symlink"
									    : "another type",
				      report.singleFileType == SingleFileType::Regular   ? "a regular file"
				      : report.singleFileType == SingleFileType::Symlink ? "a symlink"
											  : "something else");
	return staging_->commit(*report.singleFile, o_.finalName);
}

} // namespace

std::unique_ptr<OutputSink> rawStdoutSink(bool zstd)
{
	return std::make_unique<RawStdoutSink>(zstd);
}

std::unique_ptr<OutputSink> archiveStdoutSink(ExtractFormat format, bool zstd)
{
	return std::make_unique<ArchiveStdoutSink>(format, zstd);
}

std::unique_ptr<OutputSink> directorySink(DirectorySinkOptions options)
{
	return std::make_unique<DirectorySink>(std::move(options));
}

} // namespace fr::client
