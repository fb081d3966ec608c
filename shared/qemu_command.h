// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// QEMU's command line and the guest kernel's, built from checked values
// only, and QEMU's fd layout with it: each fd gets its number in QEMU where
// the argument naming it is written, so the two cannot drift apart. Pure
// functions: the golden test pins their output. The helper execs QEMU with
// them; tests and benchmarks that boot the VM without the helper can use the
// same command line.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/helper_contract.h"

namespace fr {

using contract::ImageFormat;
using contract::Transport;

struct QemuConfig {
	std::string qemuBinary;
	std::string name;           // checked VM name
	bool kvm = false;
	std::uint32_t memoryMiB = 256;
	std::string kernelCmdline;
	Transport transport = Transport::Serial;
	std::uint32_t cid = 0;      // vsock only
	std::vector<ImageFormat> formats; // one per image, in --image order
};

// The helper's fds for QEMU (borrowed), before they are moved into place.
struct QemuFds {
	int devNull = -1;           // QEMU's stdin
	int log = -1;               // its stdout and stderr: the serial console
	int kernel = -1;
	int initrd = -1;
	int channel = -1;           // /dev/vhost-vsock or the listening socket
	std::vector<int> images;    // in --image order
};

struct QemuCommand {
	std::vector<std::string> argv; // argv[0] = qemuBinary
	std::vector<int> fds;          // the helper's fd to place at QEMU's fd i
};

// The guest kernel's command line: console on the serial port, quiet, no
// reboot on panic, the daemon's fr.* keys, and under TCG tsc_early_khz
// (microvm otherwise hangs about one boot in eight calibrating the TSC).
std::string buildKernelCmdline(std::uint32_t idleSeconds, Transport transport,
			       std::optional<std::uint64_t> tscKhz);

// QEMU's argv and fd layout: 0 /dev/null, 1 and 2 the log, then kernel,
// initrd, channel and the images in that order.
QemuCommand buildQemuCommand(const QemuConfig &config, const QemuFds &fds);

} // namespace fr
