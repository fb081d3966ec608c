// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The channel broker of a serial VM (shared/channels.h): QEMU's socket
// chardev takes one connection at a time, so one process of ours holds it
// and lets every file-restore call of this user talk to the VM at once,
// each on a channel of its own. The broker forwards bytes and nothing
// else: each channel carries a whole authenticated guest session between
// the calling client and the daemon (the broker never sees the ticket).
//
// It listens on a unix socket next to QEMU's, "<stem>-<random>.chan" in
// the runtime directory (0700), started by the call that starts (or
// repairs) the VM while holding the VM's exclusive lock, and exits when
// QEMU's socket closes: when the VM is gone.
//
// What the guest sends is hostile: channel headers are checked before a
// payload is read, and what waits for a client that does not read is
// capped (the guest's flow control keeps an honest guest far below it).

#include <chrono>
#include <cstdint>
#include <string>

#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::client {

// The broker's socket for QEMU's socket path ("...sock" -> "...chan").
std::string channelSocketPath(const std::string &qemuSocketPath);

// Starts a broker (a daemon process: double fork, setsid, stdio on
// /dev/null, nothing inherited but its sockets) that connects to
// `qemuSocket`, retrying for up to `connectTimeout` (QEMU may still be
// setting up) or until QEMU exits (`qemuPidfd`, a pidfd of QEMU, when not
// -1), and serves `brokerSocket`. Returns once `brokerSocket` accepts
// connections. A stale socket file there is replaced; only a socket is
// ever removed.
Status startChannelBroker(const std::string &qemuSocket, const std::string &brokerSocket,
			  std::chrono::milliseconds connectTimeout, int qemuPidfd = -1);

// The broker's loop on a connected guest socket and a listening socket
// (both non-blocking afterwards): returns when the guest side closes (0) or
// breaks the channel protocol (1). Tests run it on a thread.
int runChannelBroker(UniqueFd guest, UniqueFd listener);

} // namespace fr::client
