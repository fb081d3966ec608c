// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Reaching a VM: a unix socket (serial transport, carried into the guest by
// virtio-serial) or AF_VSOCK to the VM's CID (vsock transport). The Dialer
// is a seam: tests never open AF_VSOCK on this machine (its /dev/vsock
// belongs to the host), they check the address and the choice instead.

#include <sys/socket.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

#include <cstdint>
#include <string_view>

#include "client/state_map.h"
#include "client/types.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

inline constexpr const char *kVhostVsockDevice = "/dev/vhost-vsock";

// `auto` is vsock when the helper can open /dev/vhost-vsock (it does so as
// root, but a device the user cannot use either is the common "no vsock
// here" case), else serial.
Transport resolveTransport(TransportChoice choice, bool vhostVsockUsable);
// Whether /dev/vhost-vsock exists and is a character device we may open
// read-write (access(2), without opening it).
bool vhostVsockUsable();

// {AF_VSOCK, cid, abi::kVsockPort}.
sockaddr_vm vsockAddress(std::uint32_t cid);
// An AF_UNIX address; ENAMETOOLONG when `path` does not fit sun_path.
Result<sockaddr_un> unixAddress(std::string_view path);

class Dialer {
public:
	virtual ~Dialer() = default;
	// A connected stream socket to the VM's guest daemon (O_CLOEXEC).
	virtual Result<UniqueFd> dial(const VmRecord &vm) = 0;
};

class SystemDialer final : public Dialer {
public:
	Result<UniqueFd> dial(const VmRecord &vm) override;
};

// Applies a receive and send timeout to a socket (0: none): a hostile or
// hung guest cannot stall a call past its deadline.
Status setSocketTimeout(int fd, std::chrono::milliseconds timeout);

} // namespace fr::client
