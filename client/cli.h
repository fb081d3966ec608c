// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The file-restore command line: list, extract, status, stop.

#include <memory>

#include "client/session.h"

namespace fr::client {

// Exit codes (docs/client.md, file-restore(1)).
enum ExitCode : int {
	kExitOk = 0,
	kExitFailure = 1,   // anything not listed below
	kExitUsage = 2,     // a bad option or argument
	kExitNotFound = 3,  // snapshot, image, archive, path or VM name not found
	kExitRefused = 4,   // the helper refused (policy, limits, validation)
	kExitVmFailed = 5,  // the VM did not start or answer in time, or stayed busy
	kExitExists = 6,    // the extraction target exists; nothing was replaced
	kExitInterrupted = 130, // SIGINT/SIGTERM/SIGHUP; partial output removed
};

// Runs the CLI; `sessions` speaks the guest protocol (tests pass fakes).
int runCli(int argc, char **argv, SessionFactory &sessions);

} // namespace fr::client
