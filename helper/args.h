// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The helper's command line, parsed by hand against a fixed grammar (no
// getopt: no abbreviations, no "--opt=value", no permutation, no
// POSIXLY_CORRECT, no locale):
//
//   file-restore-helper --version
//   file-restore-helper start --name NAME --transport vsock|serial
//           [--cid N] [--socket PATH] [--memory MIB] [--timeout SECONDS]
//           --ticket-fd FD [--log-fd FD] --image FORMAT:PATH [--image ...]
//
// Every value is checked against an allow-list here; nothing that could be
// QEMU option syntax (',', '=') survives in a value that reaches QEMU's
// command line (image paths never do: images are passed as fds).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/result.h"

namespace fr::helper {

enum class Transport { Vsock, Serial };

struct ImageArg {
	std::string format; // raw, qcow2, vmdk, vdi, vhdx
	std::string path;   // absolute, normalised, no control bytes
};

struct Args {
	bool version = false;
	std::string name;
	Transport transport = Transport::Serial;
	std::optional<std::uint32_t> cid;
	std::string socketPath;
	std::optional<std::uint32_t> memoryMiB;
	std::optional<std::uint32_t> timeout;
	int ticketFd = -1;
	int logFd = -1; // -1: none
	std::vector<ImageArg> images;
};

// Bounds of the grammar itself (policy limits come on top).
inline constexpr int kMaxArgc = 160;
inline constexpr std::size_t kMaxArgLength = 4200;
inline constexpr std::size_t kMaxImages = 64;
inline constexpr int kMaxFd = 1 << 20;
// sun_path holds 108 bytes including the terminating NUL.
inline constexpr std::size_t kMaxSocketPath = 107;

// Parses argv (argc >= 1; argv[0] is ignored). Error (EINVAL, E2BIG,
// ENAMETOOLONG, ERANGE) names the offending option and value; the helper
// exits 2 on any of them.
Result<Args> parseArgs(int argc, const char *const *argv);

} // namespace fr::helper
