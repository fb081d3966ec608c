// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// QEMU's command line and the guest kernel's, built from checked values
// only. Pure functions: the golden test pins their output.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "helper/args.h"

namespace fr::helper {

// QEMU's fds, fixed so that the command line does not depend on which fd
// numbers the helper happened to get. The child moves everything into this
// layout right before exec and closes the rest.
inline constexpr int kQemuFdKernel = 3;
inline constexpr int kQemuFdInitrd = 4;
inline constexpr int kQemuFdChannel = 5; // vhost-vsock device or the listening unix socket
inline constexpr int kQemuFdFirstImage = 6;

struct QemuConfig {
	std::string qemuBinary;
	std::string name;           // checked VM name
	bool kvm = false;
	std::uint32_t memoryMiB = 256;
	std::string kernelCmdline;
	Transport transport = Transport::Serial;
	std::uint32_t cid = 0;      // vsock only
	std::vector<std::string> formats; // one per image, in --image order
};

// The guest kernel's command line: console on the serial port, quiet, no
// reboot on panic, the daemon's fr.* keys, and under TCG tsc_early_khz
// (microvm otherwise hangs about one boot in eight calibrating the TSC).
std::string buildKernelCmdline(std::uint32_t idleSeconds, Transport transport,
			       std::optional<std::uint64_t> tscKhz);

// argv for execve, argv[0] = qemuBinary.
std::vector<std::string> buildQemuArgv(const QemuConfig &config);

} // namespace fr::helper
