// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Writing what the guest sends onto the host's filesystem, safely. The
// stream is hostile (a crafted disk image controls the guest). Rules:
//  - everything is created beneath one directory fd, opened with
//    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//    RESOLVE_NO_XDEV); files with O_CREAT | O_EXCL | O_NOFOLLOW;
//  - only regular files, directories and (when asked for) symlinks are
//    created: no device nodes, FIFOs or sockets; a hardlink becomes a copy
//    of its target's bytes; nothing is chown()ed;
//  - modes are masked to 0777 (no setuid, setgid, sticky) and by the umask;
//  - member names are checked (extract_names.h): "..", absolute names,
//    over-long names end the extraction with an error;
//  - the tree is built in a staging directory inside the target directory
//    and renamed into place only when the whole stream (and the guest's
//    success trailer) arrived; on any failure it is removed. A client
//    killed mid-way leaves a staging directory named after its pid and start
//    time plus a journal entry in the runtime directory; later calls remove
//    both (cleanLeftovers, cleanJournal).
// Archives are read with libarchive's read side only (never
// archive_write_disk, which follows the archive's wishes).

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

struct UnpackOptions {
	// Create symlinks (as they are; never followed). Else they are skipped.
	bool symlinks = false;
	// Applied to every mode, like tar does for ordinary users.
	mode_t umask = 022;
};

struct UnpackReport {
	std::uint64_t files = 0;
	std::uint64_t directories = 0;
	std::uint64_t symlinks = 0;
	std::uint64_t bytes = 0;
	// "name: reason", escaped for display, for what was left out.
	std::vector<std::string> skipped;
	// The root member, when the stream holds a single non-directory at the
	// top (a file extracted on its own): its name inside the root.
	std::optional<std::string> singleFile;
};

// openat2() beneath `dirFd` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV. O_CLOEXEC is added.
Result<UniqueFd> openBeneath(int dirFd, const std::string &path, std::uint64_t flags,
			     mode_t mode = 0);

// Removes `name` under `dirFd` and everything below it without following
// any symlink (directories are made writable first). ENOENT is success.
Status removeTree(int dirFd, const std::string &name);

// Reads a tar (pax) stream from `tarFd` to its end and creates its members
// beneath `rootFd` following the rules above. On error, what was created is
// left for the caller's staging directory to remove.
Status unpackTar(int tarFd, int rootFd, const UnpackOptions &options, UnpackReport &report);

// Feeds a tar stream that arrives in chunks (the guest session's callback)
// to unpackTar running on a thread.
class TarSink {
public:
	TarSink(int rootFd, UnpackOptions options);
	~TarSink();
	TarSink(const TarSink &) = delete;
	TarSink &operator=(const TarSink &) = delete;

	Status start();
	// Fails when the unpacker already gave up (with its error).
	Status write(std::string_view chunk);
	// The stream is complete: waits for the unpacker's verdict.
	Status finish();
	const UnpackReport &report() const { return report_; }

private:
	Status stopThread();

	int rootFd_;
	UnpackOptions options_;
	UnpackReport report_;
	UniqueFd writeEnd_;
	UniqueFd readEnd_;
	std::thread thread_;
	std::optional<Status> result_;
};

// A staging directory ".file-restore-tmp-<pid>-<start>-<random>" (0700)
// inside a target directory, removed on destruction unless committed.
class Staging {
public:
	// `targetDirFd` is borrowed and must outlive the staging. `journalDirFd`
	// (the runtime directory, or -1) receives a journal entry naming
	// `targetDirPath` and the staging name, so that a later call can clean
	// up after a kill -9 even if it extracts elsewhere.
	static Result<std::unique_ptr<Staging>> create(int targetDirFd, const std::string &targetDirPath,
						       int journalDirFd);
	~Staging();
	Staging(const Staging &) = delete;
	Staging &operator=(const Staging &) = delete;

	int fd() const { return fd_.get(); }
	const std::string &name() const { return name_; }

	// Renames `inner` (a name inside the staging directory; empty: the
	// staging directory itself) to `finalName` in the target directory,
	// never replacing anything (EEXIST), then removes what is left.
	Status commit(const std::string &inner, const std::string &finalName);

private:
	Staging() = default;
	void discard();

	int targetDirFd_ = -1;
	int journalDirFd_ = -1;
	std::string name_;
	std::string journalName_;
	UniqueFd fd_;
	bool done_ = false;
};

// Removes staging directories in `targetDirFd` that belong to us (owner)
// and whose creating process is gone (pid + start time no longer match).
void cleanLeftovers(int targetDirFd);
// Processes journal entries in the runtime directory whose writer is gone:
// removes their staging directories, then the entries.
void cleanJournal(int runtimeDirFd);

} // namespace fr::client
