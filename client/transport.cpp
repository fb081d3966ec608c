// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/transport.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client/channel_broker.h"
#include "shared/display.h"
#include "shared/guest_abi.h"

namespace fr::client {

Transport resolveTransport(TransportChoice choice, bool usable)
{
	switch (choice) {
	case TransportChoice::Serial:
		return Transport::Serial;
	case TransportChoice::Vsock:
		return Transport::Vsock;
	case TransportChoice::Auto:
		break;
	}
	return usable ? Transport::Vsock : Transport::Serial;
}

bool vhostVsockUsable()
{
	struct stat st {};
	return ::stat(kVhostVsockDevice, &st) == 0 && S_ISCHR(st.st_mode) &&
	       ::access(kVhostVsockDevice, R_OK | W_OK) == 0;
}

sockaddr_vm vsockAddress(std::uint32_t cid)
{
	sockaddr_vm address {};
	address.svm_family = AF_VSOCK;
	address.svm_cid = cid;
	address.svm_port = abi::kVsockPort;
	return address;
}

Result<sockaddr_un> unixAddress(std::string_view path)
{
	sockaddr_un address {};
	address.sun_family = AF_UNIX;
	if (path.empty() || path.size() >= sizeof(address.sun_path))
		return Error::invalid(ENAMETOOLONG, "socket", escapeForDisplay(path),
				      "a unix socket path holds at most %zu bytes",
				      sizeof(address.sun_path) - 1);
	std::memcpy(address.sun_path, path.data(), path.size());
	return address;
}

Result<UniqueFd> SystemDialer::dial(const VmRecord &vm)
{
	if (vm.transport == Transport::Vsock) {
		if (!vm.cid)
			return Error::invalid(EINVAL, "connect", vm.name, "vsock VM without a cid");
		UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
		if (!fd.isValid())
			return Error(errno, "socket(AF_VSOCK)", vm.name);
		const sockaddr_vm address = vsockAddress(*vm.cid);
		if (::connect(fd.get(), reinterpret_cast<const sockaddr *>(&address), sizeof(address)) != 0)
			return Error(errno, "connect(vsock)", std::to_string(*vm.cid));
		return fd;
	}
	// Serial: through the VM's channel broker, never QEMU's socket itself
	// (it takes one connection at a time; the broker holds it).
	const std::string path = channelSocketPath(vm.socketPath);
	Result<sockaddr_un> address = unixAddress(path);
	if (!address)
		return address.error();
	UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd.isValid())
		return Error(errno, "socket(AF_UNIX)", path);
	if (::connect(fd.get(), reinterpret_cast<const sockaddr *>(&*address), sizeof(*address)) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			return Error::invalid(ENOTCONN, "channel broker", vm.name, "not running (%s)",
					      errno == ENOENT ? "no socket" : "nobody listens");
		return Error(errno, "connect", path);
	}
	return fd;
}

Status setSocketTimeout(int fd, std::chrono::milliseconds timeout)
{
	timeval tv {};
	tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
	tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
	if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return Error(errno, "setsockopt", "SO_RCVTIMEO");
	if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return Error(errno, "setsockopt", "SO_SNDTIMEO");
	return {};
}

} // namespace fr::client
