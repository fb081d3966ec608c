// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// What makes file-restore a drop-in for proxmox-file-restore's callers
// (the Proxmox VE API calls `proxmox-file-restore list ... --output-format
// json` and `extract ... - --format tar --zstd 1`): its way of writing
// booleans, its datastore options, its error object. docs/client.md,
// "Calling it as proxmox-file-restore", says what is and is not the same.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/result.h"

namespace fr::client {

// argv as a vector, with proxmox-file-restore's boolean options made
// CLI11 flags: "--base64 1", "--base64=true" become "--base64"; "--base64
// 0", "--base64=false" disappear. Values: 1/0, true/false, yes/no, on/off
// (any case). The options: --base64, --zstd, --symlinks, --verbose, --all,
// --names, --foreground. A following word that is no boolean stays a
// positional argument ("--base64 L2V0Yw==").
std::vector<std::string> normaliseBooleanOptions(int argc, char **argv);

// "user@host:datastore", "host:datastore": proxmox-file-restore's remote
// repository syntax (the caller checks whether such a path exists here).
bool looksLikeRemoteRepository(const std::string &repository);

// The datastore options as given on the command line.
struct DatastoreOptions {
	std::string ns;        // --ns: a PBS namespace, "a/b/c"
	std::string keyFile;   // --keyfile
	std::string keyFd;     // --keyfd
	std::string cryptMode; // --crypt-mode: none, encrypt, sign-only
	std::string driver;    // --driver: qemu
};

// Checks their syntax (EINVAL naming the option): a namespace of at most 7
// levels of [A-Za-z0-9_][A-Za-z0-9._-]*, a key fd that is open, a known
// crypt mode, the qemu driver. Whether they apply (a PBS datastore) is the
// caller's business.
Status checkDatastoreOptions(const DatastoreOptions &options);

// The HTTP status proxmox-file-restore's callers act on, for our exit
// code: 503 (the VM is still starting, or busy: ask again) for 5, 404 for
// 3, 400 for 2, 403 for 4, 409 for 6, 500 otherwise.
int httpStatusFor(int exitCode);

// The error object: {"message": M, "code": HTTP, "error": M, "exit_code": N}.
nlohmann::json errorJson(int exitCode, const std::string &message);

} // namespace fr::client
