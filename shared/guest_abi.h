// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The fixed contract between the helper (which builds the VM), the guest
// daemon (which runs in it) and the client (which talks to it). Changing a
// value here changes all three at once; docs/protocol.md and
// helper/README.md describe them.

#include <cstddef>
#include <cstdint>

namespace fr::abi {

// Per-VM ticket: 32 random bytes, handed to the helper as 64 lowercase hex
// digits on a pipe, placed into the VM's initramfs at kTicketPath (mode 0400),
// read and unlinked by the daemon.
inline constexpr std::size_t kTicketBytes = 32;
inline constexpr std::size_t kTicketHexLength = 2 * kTicketBytes;
inline constexpr const char *kTicketPath = "/ticket";

// The daemon listens on this AF_VSOCK port (vsock transport).
inline constexpr std::uint32_t kVsockPort = 807;
// CIDs below this are never used (0-2 are reserved, low ones are commonly
// hand-assigned).
inline constexpr std::uint32_t kMinCid = 10;

// virtio-serial transport: the port's name as the guest sees it
// (/dev/virtio-ports/<name>).
inline constexpr const char *kSerialPortName = "org.file-restore.0";

// Disks: virtio-blk serials hold at most 20 bytes, so the helper names the
// N-th --image "frdisk<N>" (N from 0, in argv order) and the daemon exposes
// it as the top-level directory "disk<N>". The client maps archive names to
// disk indices.
inline constexpr const char *kDiskSerialPrefix = "frdisk";
inline constexpr const char *kDiskDirPrefix = "disk";

// Kernel command-line arguments every restore VM boots with, before the
// daemon's own (fr.idle=, fr.transport=) and, under TCG, tsc_early_khz=<host
// TSC kHz> (microvm hangs in ~1 of 8 TCG boots calibrating the TSC without
// it). console=ttyS0 + quiet: the serial console carries the daemon's log,
// not the kernel's chatter; panic=-1: a guest kernel panic reboots at once,
// which QEMU's -no-reboot turns into an exit; cryptomgr.notests: skips the
// boot-time crypto self-tests (~0.4 s under TCG), the VM's crypto is the
// daemon's libsodium; pci=off: microvm has no PCI bus, probing it only
// costs time; mitigations=off: the guest's only user space is the daemon,
// so side-channel mitigations inside the guest protect nothing (the host's
// own protect the host), while under TCG page-table isolation makes every
// guest syscall flush the emulated TLB.
inline constexpr const char *kKernelBootArgs =
	"console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off";

// Kernel command-line parameters the helper sets for the daemon.
inline constexpr const char *kCmdlineIdleTimeout = "fr.idle";   // seconds, decimal
inline constexpr const char *kCmdlineTransport = "fr.transport"; // "vsock" or "serial"
// Not set by the helper: "no" makes the daemon mount a filesystem whose
// journal needs replaying without the replay (as when the throwaway layer
// fails), for the tests of that path. Default "yes".
inline constexpr const char *kCmdlineReplay = "fr.replay";

// QEMU runs with "-name guest=<kQemuNamePrefix><VM name>": the client proves a
// pid is still its QEMU by this marker in /proc/<pid>/cmdline (plus the
// process start time), never by pid alone.
inline constexpr const char *kQemuNamePrefix = "file-restore:";

} // namespace fr::abi
