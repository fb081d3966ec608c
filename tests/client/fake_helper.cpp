// SPDX-License-Identifier: AGPL-3.0-or-later
// A stand-in for file-restore-helper (and the QEMU it starts) in the
// client's unit tests. It records how it was called and behaves as
// FAKE_HELPER_MODE says:
//   ok         start a fake QEMU, print {"pid":N,"cid":null|42}
//   denied     exit 3 with a policy message        limit   exit 4
//   broken     exit 1 with a message               garbage print junk, exit 0
//   hang       never finish                        leak    start the fake QEMU
//              with stdout still on our stdout pipe (QEMU inheriting it)
//   die        the fake QEMU exits at once         mute    the fake QEMU never
//              accepts a connection (a VM that does not boot)
//   stubborn   like mute, and ignores SIGTERM
//   hostile    $FAKE_HOSTILE_GUEST (hostile_guest.cpp) in QEMU's place
// "<self> -name guest=file-restore:NAME --mode M" runs the fake QEMU alone.
// FAKE_HELPER_LOG: a file to which one line is appended per call: the argv
// (fields separated by \x1f), then "|ticket=" and what fd 3 held, then
// "|log=" and whether fd 4 was a writable file, then "|nbd<N>=socket" for
// each "--image nbd:N" whose fd N is a socket.
// The fake QEMU runs as "<self> -name guest=file-restore:<NAME> --socket
// PATH", stdout/stderr on fd 4 (like the real helper), listens on the
// --socket path and greets every connection with the ticket it was given;
// after a channel hello (the client's channel broker, shared/channels.h),
// every channel.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "shared/channels.h"

namespace {

std::string arg(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; ++i)
		if (std::strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return {};
}

int runQemu(int argc, char **argv)
{
	const std::string socketPath = arg(argc, argv, "--socket");
	const std::string ticket = arg(argc, argv, "--ticket");
	const std::string mode = arg(argc, argv, "--mode");
	if (mode != "leak") {
		std::printf("fake qemu: booting %s\n", arg(argc, argv, "-name").c_str());
		std::fflush(stdout);
	}
	if (mode == "die")
		return 1;
	if (mode == "stubborn")
		::signal(SIGTERM, SIG_IGN);
	if (socketPath.empty() || mode == "mute" || mode == "stubborn") {
		for (;;)
			::pause();
	}
	const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
	sockaddr_un address{};
	address.sun_family = AF_UNIX;
	std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socketPath.c_str());
	::unlink(socketPath.c_str());
	if (::bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof(address)) != 0 ||
	    ::listen(listener, 8) != 0) {
		std::perror("fake qemu: bind");
		return 1;
	}
	::signal(SIGPIPE, SIG_IGN);
	for (;;) {
		const int conn = ::accept(listener, nullptr, nullptr);
		if (conn < 0)
			continue;
		(void)!::write(conn, ticket.data(), ticket.size());
		// One connection at a time, like QEMU's socket chardev: serve it
		// until the client hangs up. "stop" powers the fake VM off. A
		// channel hello (the client's channel broker) switches to
		// channels: each one greeted with the ticket, as a connection.
		char buf[4096];
		std::string got;
		ssize_t n;
		bool channels = false;
		std::map<std::uint32_t, std::string> streams;
		while ((n = ::read(conn, buf, sizeof(buf))) > 0) {
			got.append(buf, static_cast<std::size_t>(n));
			if (!channels) {
				const std::string magic(fr::chan::kHelloMagic.begin(), fr::chan::kHelloMagic.end());
				const std::size_t at = got.find(magic);
				if (at == std::string::npos || got.size() < at + fr::chan::kHelloSize) {
					if (got.find("stop") != std::string::npos) {
						std::printf("fake qemu: powering off\n");
						return 0;
					}
					continue;
				}
				std::uint64_t nonce = 0;
				std::memcpy(&nonce, got.data() + at + fr::chan::kMagicSize, 8);
				const fr::chan::HelloBytes ack = fr::chan::encodeAck(nonce);
				(void)!::write(conn, ack.data(), ack.size());
				got.erase(0, at + fr::chan::kHelloSize);
				channels = true;
			}
			while (got.size() >= fr::chan::kHeaderSize) {
				const auto *bytes = reinterpret_cast<const std::uint8_t *>(got.data());
				const fr::Result<fr::chan::Header> header = fr::chan::decodeHeader(
					std::span<const std::uint8_t, fr::chan::kHeaderSize>(bytes, fr::chan::kHeaderSize),
					fr::proto::Direction::ToGuest);
				if (!header) {
					std::printf("fake qemu: bad channel frame\n");
					return 1;
				}
				if (got.size() < fr::chan::kHeaderSize + header->length)
					break;
				std::vector<std::uint8_t> out;
				if (header->kind == fr::chan::Kind::Open) {
					fr::chan::encodeData(out, header->channel,
							     std::span(reinterpret_cast<const std::uint8_t *>(ticket.data()),
								       ticket.size()),
							     fr::proto::Direction::ToHost);
				} else if (header->kind == fr::chan::Kind::Data) {
					std::string &stream = streams[header->channel];
					stream.append(got, fr::chan::kHeaderSize, header->length);
					if (stream.find("stop") != std::string::npos) {
						std::printf("fake qemu: powering off\n");
						return 0;
					}
				} else {
					streams.erase(header->channel);
					fr::chan::encodeHeader(out, fr::chan::Kind::Close, header->channel, 0,
							       fr::proto::Direction::ToHost);
				}
				if (!out.empty())
					(void)!::write(conn, out.data(), out.size());
				got.erase(0, fr::chan::kHeaderSize + header->length);
			}
		}
		::close(conn);
	}
}

} // namespace

int main(int argc, char **argv)
{
	if (argc > 2 && std::strcmp(argv[1], "-name") == 0)
		return runQemu(argc, argv);

	const char *modeEnv = std::getenv("FAKE_HELPER_MODE");
	const std::string mode = modeEnv != nullptr ? modeEnv : "ok";
	std::string ticket;
	char buf[256];
	ssize_t n;
	while ((n = ::read(3, buf, sizeof(buf))) > 0)
		ticket.append(buf, static_cast<std::size_t>(n));
	struct stat st {};
	const int logFlags = ::fcntl(4, F_GETFL);
	const bool logOk = ::fstat(4, &st) == 0 && S_ISREG(st.st_mode) && logFlags >= 0 &&
			   (logFlags & O_ACCMODE) != O_RDONLY;
	if (const char *logPath = std::getenv("FAKE_HELPER_LOG")) {
		std::string line;
		for (int i = 0; i < argc; ++i)
			line += std::string(i ? "\x1f" : "") + argv[i];
		line += "|ticket=" + ticket + "|log=" + (logOk ? "ok" : "bad");
		// "--image nbd:N": whether fd N is a socket (a PBS datastore's NBD
		// server), as the real helper checks.
		for (int i = 1; i + 1 < argc; ++i)
			if (std::strcmp(argv[i], "--image") == 0 &&
			    std::strncmp(argv[i + 1], "nbd:", 4) == 0) {
				const int fd = std::atoi(argv[i + 1] + 4);
				struct stat sst {};
				const bool socket = ::fstat(fd, &sst) == 0 && S_ISSOCK(sst.st_mode);
				line += "|nbd" + std::to_string(fd) + "=" + (socket ? "socket" : "bad");
			}
		line += "\n";
		const int fd = ::open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		(void)!::write(fd, line.data(), line.size());
		::close(fd);
	}
	if (mode == "denied") {
		std::fputs("file-restore-helper: policy(/etc/file-restore/helper.conf): user not allowed\n",
			   stderr);
		return 3;
	}
	if (mode == "limit") {
		std::fputs("file-restore-helper: vms(3): per-user VM limit reached\n", stderr);
		return 4;
	}
	if (mode == "broken") {
		std::fputs("file-restore-helper: exec(/usr/bin/qemu-system-x86_64): No such file\n", stderr);
		return 1;
	}
	if (mode == "garbage") {
		std::puts("{\"pid\":1,\"cid\":null}");
		return 0;
	}
	if (mode == "hang") {
		for (;;)
			::pause();
	}
	const std::string name = arg(argc, argv, "--name");
	const std::string socketPath = arg(argc, argv, "--socket");
	const std::string transport = arg(argc, argv, "--transport");
	// Like the real helper: answer only once QEMU was exec'd (a CLOEXEC
	// pipe closes at the exec).
	int execPipe[2];
	if (::pipe2(execPipe, O_CLOEXEC) != 0)
		return 1;
	const pid_t child = ::fork();
	if (child == 0) {
		::close(execPipe[0]);
		if (execPipe[1] < 64)
			::dup3(execPipe[1], 63, O_CLOEXEC);
		::setsid();
		if (mode != "leak") {
			::dup2(4, 1);
			::dup2(4, 2);
		}
		for (int fd = 3; fd < 63; ++fd)
			::close(fd);
		const std::string marker = "guest=file-restore:" + name;
		// "hostile": a guest that speaks the real protocol with hostile
		// answers (hostile_guest.cpp) stands in for QEMU.
		const char *hostile = std::getenv("FAKE_HOSTILE_GUEST");
		const std::string binary = mode == "hostile" && hostile != nullptr ? hostile : "/proc/self/exe";
		std::vector<const char *> qemuArgv = {binary.c_str(), "-name", marker.c_str(),
						       "--socket", socketPath.c_str(), "--ticket",
						       ticket.c_str(), "--mode", mode.c_str(), nullptr};
		::execv(binary.c_str(), const_cast<char **>(qemuArgv.data()));
		_exit(127);
	}
	::close(execPipe[1]);
	char c;
	while (::read(execPipe[0], &c, 1) < 0 && errno == EINTR) {
	}
	// (The fake QEMU binds its socket right after; the client retries until
	// it can connect.)
	std::printf("{\"pid\":%d,\"cid\":%s}\n", child, transport == "vsock" ? "42" : "null");
	return 0;
}
