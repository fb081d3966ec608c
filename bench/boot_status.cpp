// SPDX-License-Identifier: AGPL-3.0-or-later
// fr-boot-status: one timed restore-VM start, for bench/boot-to-status.sh.
//
//   fr-boot-status KERNEL INITRAMFS-WITH-TICKET TICKET-HEX MEMORY-MIB DISK
//                  [LIST-PATH [EXTRACT-PATH [TIMES]]]
//
// Starts QEMU with the argv the helper builds (TCG, serial transport,
// tests/guest/vm_util.h), connects, authenticates, asks for the status
// (keep-timeout) and prints "status_ms=<ms from QEMU's fork to the status
// answer>"; with LIST-PATH it then lists that path (mounting the
// filesystem) and prints "list_ms="; with EXTRACT-PATH it extracts that
// file raw TIMES times (default 1), each on a new connection, and prints
// for each the wall time and the CPU time QEMU used meanwhile (the guest's
// work, less exposed to other load on the machine than wall time). Last
// line: QEMU's peak RSS. QEMU is then killed. Exit 0 only if every step
// worked.
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "shared/clock.h"
#include "shared/guest_session.h"
#include "shared/protocol.h"
#include "tests/guest/vm_util.h"

namespace {

double nowMs()
{
	return static_cast<double>(fr::monotonicMs());
}

// utime + stime of `pid`, in ms.
double cpuMs(pid_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
	std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	const std::size_t close = text.rfind(')');
	if (close == std::string::npos)
		return 0;
	std::istringstream fields(text.substr(close + 2));
	std::string field;
	unsigned long long utime = 0, stime = 0;
	for (int i = 3; fields >> field; ++i) {
		if (i == 14)
			utime = std::stoull(field);
		if (i == 15) {
			stime = std::stoull(field);
			break;
		}
	}
	return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string statusField(pid_t pid, const std::string &key)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(key + ":", 0) == 0) {
			const std::size_t at = line.find_first_not_of(" \t", key.size() + 1);
			return at == std::string::npos ? std::string() : line.substr(at);
		}
	return {};
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 6 || argc > 9) {
		std::fprintf(stderr,
			     "usage: %s KERNEL INITRAMFS TICKET-HEX MEMORY-MIB DISK [LIST-PATH [EXTRACT-PATH [TIMES]]]\n",
			     argv[0]);
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
	if (argc >= 7) {
		std::size_t entries = 0;
		fr::Status listed = session->list(argv[6], [&](const fr::proto::Entry &) noexcept {
			++entries;
			return fr::Status{};
		});
		if (!listed) {
			std::fprintf(stderr, "list: %s\n", listed.error().message().c_str());
			return 1;
		}
		std::printf("list_ms=%.0f entries=%zu\n", nowMs() - start, entries);
	}
	const int times = argc >= 9 ? std::atoi(argv[8]) : 1;
	for (int i = 0; argc >= 8 && i < times; ++i) {
		// A new connection each time, as the client makes; QEMU's serial
		// socket takes one host at a time, so the old one goes first.
		session = fr::Error(ENOTCONN, "session", "closed");
		session = vm.connect(*ticket, 30000);
		if (!session) {
			std::fprintf(stderr, "connect: %s\n", session.error().message().c_str());
			return 1;
		}
		const double cpu0 = cpuMs(vm.pid());
		const double t0 = nowMs();
		std::uint64_t bytes = 0;
		fr::Status extracted = session->extract(
			argv[7], fr::proto::ExtractFormat::Raw, fr::proto::Compression::None,
			[](const fr::proto::Entry &) noexcept { return fr::Status{}; },
			[&](std::span<const std::uint8_t> chunk) noexcept {
				bytes += chunk.size();
				return fr::Status{};
			});
		if (!extracted) {
			std::fprintf(stderr, "extract: %s\n", extracted.error().message().c_str());
			return 1;
		}
		const double wall = nowMs() - t0;
		std::printf("extract_ms=%.0f qemu_cpu_ms=%.0f bytes=%llu mb_per_s=%.1f\n", wall,
			    cpuMs(vm.pid()) - cpu0, static_cast<unsigned long long>(bytes),
			    static_cast<double>(bytes) / 1e3 / wall);
	}
	std::printf("qemu_hwm=\"%s\" qemu_rss=\"%s\"\n", statusField(vm.pid(), "VmHWM").c_str(),
		    statusField(vm.pid(), "VmRSS").c_str());
	// The daemon's own timings (guest clock): boot, module groups, mounts.
	std::istringstream console(vm.console());
	for (std::string line; std::getline(console, line);)
		if (line.find(" ms") != std::string::npos && line.find("file-restore-daemon: ") == 0)
			std::printf("guest: %s\n", line.substr(21).c_str());
	return 0; // ~Vm kills QEMU
}
