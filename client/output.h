// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Where the CLI's output goes. What `extract` (and, to come, `mount`) takes
// out of a VM goes to one OutputSink per output mode, chosen by the command
// line:
//
//   rawStdoutSink       a file's bytes to stdout                extract PATH -
//   archiveStdoutSink   a tar or zip stream (zstd) to stdout    extract --format tar|zip PATH
//   directorySink       files unpacked beneath a directory      extract PATH [DIR]
//
// The three extract sinks share ExtractSink, which runs one extract
// stream. The fourth way out of a VM, a read-only FUSE mount, serves many
// requests over several sessions and lives in client/mount.h.
//
// Standard output is written through writeStdout() only: a reader that went
// away (`| head`) becomes an Error of kind ErrorKind::OutputClosed there,
// and the CLI turns that kind into a quiet exit 1 in one place (cli.cpp,
// fail()).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client/guest_path.h"
#include "client/session.h"
#include "shared/result.h"

namespace fr::client {

// Writes all of `data` to stdout. EPIPE is an Error of kind OutputClosed.
Status writeStdout(std::string_view data) noexcept;

// "file-restore: <message>" on stderr.
void warn(const std::string &message);

// The first SIGINT/SIGTERM/SIGHUP asks the running transfer to stop (so
// that partial output is removed on the normal error path); the handler
// then resets itself, and a second signal kills as usual.
void installInterruptHandlers();
bool interrupted() noexcept;
// EINTR ("interrupted") once a signal arrived.
Status notInterrupted() noexcept;

// A guest error (ErrorKind::Guest) names the guest's path ("/disk0/part/1/
// etc"): this says `operation(userPath)` instead, and the guest's message
// names the archive where it names the disk (toUserTerms). Other statuses
// pass.
Status forUser(Status status, const char *operation, const GuestTarget &target);

// Progress on stderr for transfers longer than a second, only when stderr
// is a terminal (never on a pipe or file): bytes, rate, and, when the size
// is known, the share done and the time left.
class Progress {
public:
	// `tty`: whether to show anything (default: stderr is a terminal).
	explicit Progress(std::string what, std::optional<bool> tty = std::nullopt);
	~Progress();
	Progress(const Progress &) = delete;
	Progress &operator=(const Progress &) = delete;

	// The bytes expected in all (a file's size), when known.
	void expect(std::uint64_t bytes) noexcept { expected_ = bytes; }
	void add(std::size_t bytes) noexcept;
	void clear() noexcept;

	// The line for `done` bytes after `seconds` (tests).
	std::string line(std::uint64_t done, double seconds) const;

private:
	using Clock = std::chrono::steady_clock;

	std::string what_;
	bool tty_;
	bool visible_ = false;
	std::uint64_t total_ = 0;
	std::optional<std::uint64_t> expected_;
	Clock::time_point start_ = Clock::now();
	Clock::time_point shown_ = start_;
};

class OutputSink {
public:
	virtual ~OutputSink() = default;

	// The data goes to stdout: errors must not go there, even as JSON.
	virtual bool usesStdout() const noexcept = 0;
	// Before any VM is started: checks (and creates) the destination, so
	// that what cannot work fails without booting a VM.
	virtual Status prepare() = 0;
	// Moves the object at target.guestPath out of the VM. Errors of kind
	// ErrorKind::Usage: it cannot be done as asked (exit 2).
	virtual Status receive(VmSession &session, const GuestTarget &target) = 0;
};

// An OutputSink fed by one extract stream: the guest sends the entry of the
// object, then its bytes (raw, or an archive of it), then its trailer.
class ExtractSink : public OutputSink {
public:
	Status receive(VmSession &session, const GuestTarget &target) final;

protected:
	// What to ask the guest for; `progress` labels the progress line.
	ExtractSink(ExtractFormat format, bool zstd, const char *progress)
		: format_(format), zstd_(zstd), progress_(progress)
	{
	}

	// The VM answers: opens what takes the data.
	virtual Status open() { return {}; }
	// The callbacks of the stream (shared/status_callback.h): they return
	// errors, which end the stream; they never throw.
	virtual Status start(const GuestEntry &object) noexcept = 0;
	virtual Status write(std::string_view chunk) noexcept = 0;
	// After the stream: `received` is the guest's verdict, its errors
	// already naming the user's path. Completes the output, or discards it.
	virtual Status finish(const Status &received, const GuestTarget &target) = 0;

private:
	ExtractFormat format_;
	bool zstd_;
	const char *progress_;
};

// A file's bytes (zstd: compressed by the guest).
std::unique_ptr<OutputSink> rawStdoutSink(bool zstd = false);
std::unique_ptr<OutputSink> archiveStdoutSink(ExtractFormat format, bool zstd);

struct DirectorySinkOptions {
	std::string target;    // the directory; created (mkdir -p) if missing
	std::string finalName; // what the object is called there
	bool symlinks = false; // create the symlinks found (else skip them)
	bool verbose = false;  // say what was extracted
	int journalDirFd = -1; // the runtime directory (Staging's journal)
};
std::unique_ptr<OutputSink> directorySink(DirectorySinkOptions options);

} // namespace fr::client
