// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/vsock.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "shared/guest_abi.h"

namespace fr::helper {

namespace {

// From <linux/vhost.h>, which pulls in <linux/virtio_ring.h>, not valid C++.
constexpr unsigned long kVhostVsockSetGuestCid = _IOW(0xAF, 0x60, std::uint64_t);

int setGuestCid(int fd, std::uint64_t cid)
{
	std::uint64_t value = cid;
	return ::ioctl(fd, kVhostVsockSetGuestCid, &value);
}

} // namespace

VsockDevice realVsockDevice() noexcept { return {"/dev/vhost-vsock", setGuestCid}; }

Result<UniqueFd> openVsockDevice(const VsockDevice &device)
{
	UniqueFd fd(::open(device.path, O_RDWR | O_CLOEXEC | O_NOCTTY));
	if (!fd.isValid())
		return Error(errno, "open", device.path);
	return fd;
}

Result<std::uint32_t> reserveCid(const VsockDevice &device, int fd, std::uint32_t wanted,
				 std::uint32_t min, std::uint32_t max)
{
	if (min < abi::kMinCid)
		min = abi::kMinCid;
	if (min > max)
		return Error::invalid(EADDRINUSE, "cid", "", "empty CID range");
	std::uint64_t cid = wanted < min || wanted > max ? min : wanted;
	const std::uint64_t span = std::uint64_t{max} - min + 1;
	const std::uint64_t attempts = span < kMaxCidAttempts ? span : kMaxCidAttempts;
	for (std::uint64_t i = 0; i < attempts; ++i) {
		if (device.setGuestCid(fd, cid) == 0)
			return static_cast<std::uint32_t>(cid);
		if (errno != EADDRINUSE)
			return Error(errno, "ioctl(VHOST_VSOCK_SET_GUEST_CID)", device.path);
		cid = cid == max ? min : cid + 1;
	}
	return Error::invalid(EADDRINUSE, "cid", "", "no free CID in %u..%u (%llu tried)", min, max,
			      static_cast<unsigned long long>(attempts));
}

} // namespace fr::helper
