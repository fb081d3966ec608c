// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Debian's own tools for the volume layers (lvm, mdadm, cryptsetup,
// ntfs-3g), run by the daemon in child processes. They live in a zstd
// squashfs in the initramfs (/tools.sqfs, guest/build-image.sh) that is
// mounted read-only on a loop device the first time a disk needs one of
// them: a boot with plain disks never pays for it.
//
// Every run is bounded: a wall-clock timeout (the process group is killed
// with SIGKILL), optionally an address-space limit (a LUKS header with an
// absurd KDF memory cost fails with ENOMEM instead of taking the VM's RAM),
// and bounded captured output. Secrets go in on stdin, never in argv or the
// environment.
//
// The daemon is PID 1 and reaps every child (reapChildren from the main
// loop); a child a ToolRunner waits for is registered before it can exit,
// and its status is kept for the runner.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "guest/modules.h"
#include "shared/result.h"

namespace fr::guest {

// Reaps every exited child; keeps the status of registered ones. Called by
// the main loop (orphans: a daemonised ntfs-3g that later exits) and by the
// runner.
void reapChildren() noexcept;

struct ToolCommand {
	std::string program;           // a file in the tools' bin/
	std::vector<std::string> args; // argv[1..]
	std::vector<std::string> env;  // extra NAME=VALUE entries
	std::string_view input;        // written to stdin, then closed (secrets: the caller zeroes its copy)
	int timeoutMs = 60000;
	std::uint64_t memoryLimit = 0; // RLIMIT_AS in bytes; 0: none
};

struct ToolResult {
	int exitCode = -1; // -1 when killed by a signal
	int signal = 0;
	bool timedOut = false;
	std::string out; // stdout, at most 1 MiB
	std::string err; // stderr, at most 64 KiB
	bool ok() const { return exitCode == 0 && !timedOut; }
	// The last non-empty line of stderr (else stdout), for a one-line
	// reason; or what killed it.
	std::string summary() const;
};

class Tools {
public:
	explicit Tools(ModuleLoader &modules, std::string image = "/tools.sqfs", std::string mountPoint = "/tools")
		: modules_(modules), image_(std::move(image)), mountPoint_(std::move(mountPoint))
	{
	}

	// Mounts the tools image (once). ENOENT when the image has none.
	Status ensureMounted();
	// Runs a tool to completion (or to its timeout). The Result is an
	// error only when it could not be started.
	Result<ToolResult> run(const ToolCommand &command);

private:
	ModuleLoader &modules_;
	std::string image_;
	std::string mountPoint_;
	std::mutex mutex_;
	bool mounted_ = false;
};

} // namespace fr::guest
