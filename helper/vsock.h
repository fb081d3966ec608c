// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The vsock CID: reserved on the vhost-vsock fd before QEMU starts, so that
// two VMs can never be given the same CID (the kernel refuses a CID in use
// with EADDRINUSE). The device and the ioctl sit behind this seam so tests
// can simulate a busy range and exhaustion: this CI has no vhost-vsock.

#include <cstdint>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::helper {

struct VsockDevice {
	const char *path;                                   // "/dev/vhost-vsock"
	int (*setGuestCid)(int fd, std::uint64_t cid);       // 0, or -1 with errno
};

// The real device: /dev/vhost-vsock and VHOST_VSOCK_SET_GUEST_CID.
VsockDevice realVsockDevice() noexcept;

// Opens the device (O_RDWR | O_CLOEXEC, as the helper: it is privileged).
Result<UniqueFd> openVsockDevice(const VsockDevice &device);

// Tries `wanted` (clamped into [min, max]) and then each next CID upwards,
// wrapping around to `min` once, until the kernel accepts one. Never returns
// a CID below abi::kMinCid. Error: EADDRINUSE when every CID in the range
// (at most kMaxCidAttempts of them) is taken, or the ioctl's own errno.
inline constexpr std::uint64_t kMaxCidAttempts = 1U << 16;
Result<std::uint32_t> reserveCid(const VsockDevice &device, int fd, std::uint32_t wanted,
				 std::uint32_t min, std::uint32_t max);

} // namespace fr::helper
