// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The client's side of a Proxmox Backup Server datastore as a repository
// (docs/client.md, "Proxmox Backup Server datastores"; docs/pbs.md): the
// key and its password, the snapshot and its disk images checked against
// the manifest before any VM starts, the NBD servers that serve the images
// when a VM starts, and the servers' reports of bad chunks.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/pbs/crypto.h"
#include "client/pbs/datastore.h"
#include "client/types.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

struct PbsKeyOptions {
	std::string keyFile;		 // --keyfile FILE
	std::optional<int> keyFd;	 // --keyfd N: the key file's text on fd N
	std::optional<int> passwordFd;	 // --key-password-fd N
};

// The raw key, or nullopt when no key option was given. A password, when
// the key file needs one, comes from --key-password-fd, else
// $FILE_RESTORE_KEY_PASSWORD, else a prompt on /dev/tty (no echo); none of
// them available is an error saying how to give one (EACCES).
Result<std::optional<pbs::Key>> loadPbsKey(const PbsKeyOptions &options);

struct PbsSelection {
	std::string datastore; // canonical path
	pbs::Snapshot snapshot;
	std::optional<pbs::Key> key;
	// The disk images as archives: format Nbd, name "drive-scsi0.img.fidx",
	// path the index's absolute path. In byte order of the names.
	std::vector<Archive> archives;
};

// Opens `snapshotArg` (in namespace `ns`) of the datastore and checks it:
// the key against the manifest (a missing or wrong key names the
// fingerprints), every disk image's index against the manifest's checksum
// and size. Errors before any VM starts.
Result<PbsSelection> selectPbsSnapshot(const std::string &datastore, std::string_view snapshotArg,
				       std::string_view ns, std::optional<pbs::Key> key);

// "/drive-scsi0.img/..." -> "/drive-scsi0.img.fidx/..." when that is an
// archive's name and the given one is not; other paths unchanged.
std::string withFidxArchiveName(const std::vector<Archive> &archives, const std::string &path);

// Starts one NBD server per archive of `selection` (docs/pbs.md), each
// logging to `logFd` (borrowed), and returns the sockets QEMU gets, in
// archive order. Stops what it started on error.
Result<std::vector<UniqueFd>> startPbsServers(const PbsSelection &selection, int logFd,
					      std::chrono::milliseconds timeout);

// The bad-chunk reports in the NBD servers' log `logName` (vm_manager.h's
// nbdLogName) in the runtime directory: the last `max`, escaped for display.
std::vector<std::string> badChunkReports(int runtimeDirFd, const std::string &logName,
					 std::size_t max);

} // namespace fr::client
