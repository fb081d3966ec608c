// SPDX-License-Identifier: AGPL-3.0-or-later
// fr-boot-status: one timed restore-VM start, for bench/boot-to-status.sh.
//
//   fr-boot-status KERNEL INITRAMFS-WITH-TICKET TICKET-HEX MEMORY-MIB DISK [LIST-PATH]
//
// Starts QEMU with the argv the helper builds (TCG, serial transport,
// tests/guest/vm_util.h), connects, authenticates, asks for the status
// (keep-timeout) and prints "status_ms=<ms from QEMU's fork to the status
// answer>"; with LIST-PATH it then lists that path (mounting the
// filesystem) and prints "list_ms=". QEMU is then killed. Exit 0 only if
// every step worked.
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "shared/guest_session.h"
#include "shared/protocol.h"
#include "tests/guest/vm_util.h"

namespace {

double nowMs()
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 6 || argc > 7) {
		std::fprintf(stderr, "usage: %s KERNEL INITRAMFS TICKET-HEX MEMORY-MIB DISK [LIST-PATH]\n", argv[0]);
		return 2;
	}
	fr::Result<fr::proto::Key> ticket = fr::proto::ticketFromHex(argv[3], "ticket");
	if (!ticket) {
		std::fprintf(stderr, "%s\n", ticket.error().message().c_str());
		return 2;
	}
	fr::test::TempDir dir;
	fr::test::VmOptions options;
	options.kernel = argv[1];
	options.initramfs = argv[2];
	options.memoryMiB = static_cast<unsigned>(std::atoi(argv[4]));
	options.disks = {{argv[5]}};
	options.idleS = 60;
	options.socketPath = dir / "serial.sock";
	options.consoleLog = dir / "console.log";
	fr::test::Vm vm(options);
	const double start = nowMs();
	if (!vm.start())
		return 1;
	fr::Result<fr::GuestSession> session = vm.connect(*ticket, 30000);
	if (!session) {
		std::fprintf(stderr, "connect: %s\n%s", session.error().message().c_str(), vm.console().c_str());
		return 1;
	}
	fr::Result<fr::proto::StatusInfo> info = session->status(true);
	const double statusAt = nowMs();
	if (!info) {
		std::fprintf(stderr, "status: %s\n", info.error().message().c_str());
		return 1;
	}
	std::printf("status_ms=%.0f guest_uptime_ms=%llu\n", statusAt - start,
		    static_cast<unsigned long long>(info->uptimeMs));
	if (argc == 7) {
		std::size_t entries = 0;
		fr::Status listed = session->list(argv[6], [&](const fr::proto::Entry &) {
			++entries;
			return fr::Status{};
		});
		if (!listed) {
			std::fprintf(stderr, "list: %s\n", listed.error().message().c_str());
			return 1;
		}
		std::printf("list_ms=%.0f entries=%zu\n", nowMs() - start, entries);
	}
	return 0; // ~Vm kills QEMU
}
