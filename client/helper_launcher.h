// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Starting a VM through the setuid helper: its argv (DESIGN.md, "The
// helper's interface"), the ticket on a pipe (never in argv or the
// environment), the VM's log on an fd, and its one line of output.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/helper_output.h"
#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

struct HelperRequest {
	std::string name;
	Transport transport = Transport::Serial;
	std::optional<std::uint32_t> cid;
	std::string socketPath; // serial only
	std::optional<std::uint32_t> memoryMib;
	std::optional<std::uint32_t> idleTimeout;
	std::optional<std::uint32_t> tscKhz; // SpawnHelperRunner measures it
	std::vector<Archive> images;
	// One connected socket per Nbd image, in the images' order (a PBS
	// datastore's NBD servers, client/pbs_source.h); borrowed. The helper
	// gets them as fds contract::kFirstNbdFd, +1, ... ("--image nbd:5").
	std::vector<int> nbdFds;
};

// The helper's path: $FILE_RESTORE_HELPER when set and non-empty, else the
// compiled-in FR_HELPER_PATH.
std::string helperPath();

// argv[0] = helperPath, then the helper's grammar for `request`
// (contract::formatStartArgs), the ticket on contract::kTicketFd and the
// console on contract::kLogFd.
std::vector<std::string> helperArgv(const std::string &path, const HelperRequest &request);

class HelperRunner {
public:
	virtual ~HelperRunner() = default;
	// Starts the VM. `logFd` (borrowed) receives QEMU's console. Errors
	// carry the helper's exit code as errno (contract::HelperExit: Usage
	// EINVAL, Denied EACCES, Limit EUSERS, else EIO); the reason is the
	// helper's stderr line and what to do about it.
	virtual Result<HelperOutput> start(const HelperRequest &request, std::string_view ticketHex,
					   int logFd, Deadline deadline) = 0;
	// Anything the helper said on stderr while succeeding (e.g. that TCG
	// is slow), raw bytes for the caller to escape and pass on.
	virtual std::string notices() const { return {}; }
};

class SpawnHelperRunner final : public HelperRunner {
public:
	explicit SpawnHelperRunner(std::string path) : path_(std::move(path)) {}
	Result<HelperOutput> start(const HelperRequest &request, std::string_view ticketHex, int logFd,
				   Deadline deadline) override;
	std::string notices() const override { return notices_; }

private:
	std::string path_;
	std::string notices_;
};

} // namespace fr::client
