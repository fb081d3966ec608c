// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include "shared/guest_session.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// The daemon's end of a transport: a vsock connection or the virtio-serial
// port. Owns the fd (switched to O_NONBLOCK).
//
// Writes wait with poll(POLLOUT) and fail with EPIPE on POLLHUP/POLLERR:
// the host disconnected. On the serial port this matters most:
// virtio_console's write() blocks, with no error, until a host reconnects,
// and QEMU drops what the guest writes meanwhile. (Input arriving
// mid-response is handled by the protocol's flow control, Connection::admit.)
//
// Serial reads: while no host is connected, virtio_console reports
// POLLIN|POLLHUP continuously and read() returns 0. The first such read ends
// the conversation (returns 0); later ones sleep-poll every 20 ms until a host
// connects instead of spinning.
class GuestStream final : public ByteStream {
public:
	GuestStream(UniqueFd fd, bool serial);
	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override;
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override;

private:
	UniqueFd fd_;
	bool serial_;
	bool hangupReported_ = false;
};

} // namespace fr::guest
