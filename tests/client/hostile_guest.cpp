// SPDX-License-Identifier: AGPL-3.0-or-later
// fr-test-hostile-guest: a guest taken over by a crafted disk image, for the
// client's whole-chain test (hostile_guest_test.cpp). The fake helper starts
// it in QEMU's place (FAKE_HELPER_MODE=hostile):
//
//   fr-test-hostile-guest -name guest=file-restore:NAME --socket PATH --ticket HEX
//
// It listens on the serial socket and speaks the real protocol (the daemon's
// own Connection, so the handshake is genuine), then answers each request
// with what the path asks for:
//
//   list .../names-slash      an Entry named "a/b" (raw frame: no encoder writes it)
//   list .../names-dotdot     an Entry named ".."
//   list .../names-escape     names with ESC, BEL and a newline (valid on the wire)
//   list .../oversize         a frame header announcing 2 GiB
//   extract .../traversal     a tar whose member is "../escaped"
//   extract .../absolute      a tar whose member is /tmp/fr-hostile-<N>/owned
//   extract .../symlink-escape  "link" -> the directory named by its last
//                             component's target, then "link/pwned"
//   extract .../specials      a char device, a FIFO, a setuid file and an
//                             ordinary file
//   extract .../hardlink      a hardlink to /etc/shadow
//   extract .../short         a tar cut off in the middle, with End claiming all
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "guest/server.h"
#include "shared/byte_stream.h"
#include "shared/protocol.h"
#include "tar_builder.h"

namespace {

using namespace fr;
using fr::client::test::buildTar;
using fr::client::test::Member;

std::string arg(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; ++i)
		if (std::strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return {};
}

bool endsWith(std::string_view text, std::string_view tail)
{
	return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

// A frame written by hand, bypassing the encoder's checks, as a
// compromised guest kernel would.
void rawFrame(int fd, proto::FrameType type, const std::string &body, std::uint32_t length)
{
	std::string frame(8, '\0');
	for (int i = 0; i < 4; ++i)
		frame[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
	frame[4] = static_cast<char>(type);
	frame += body;
	(void)!::write(fd, frame.data(), frame.size());
}

std::string rawEntry(const std::string &name)
{
	std::string body(36, '\0');
	body[0] = 1; // file
	body[2] = static_cast<char>(name.size() & 0xff);
	body[3] = static_cast<char>(name.size() >> 8);
	body[8] = static_cast<char>(0644 & 0xff);
	body[9] = static_cast<char>(0644 >> 8);
	return body + name;
}

class Hostile final : public guest::RequestHandler {
public:
	explicit Hostile(int fd) : fd_(fd) {}

	proto::StatusInfo status(bool) override { return {}; }
	// Powers the whole "VM" off, as the daemon does after Stop.
	void stop() override
	{
		::kill(::getppid(), SIGKILL);
		::_exit(0);
	}

	Status list(std::string_view path, guest::Responder &out) override
	{
		if (endsWith(path, "/names-slash") || endsWith(path, "/names-dotdot") ||
		    endsWith(path, "/oversize")) {
			(void)out.flush();
			if (endsWith(path, "/oversize")) {
				rawFrame(fd_, proto::FrameType::Entry, "", 0x7ffffff0U);
			} else {
				const std::string body = rawEntry(endsWith(path, "/names-slash") ? "a/b" : "..");
				rawFrame(fd_, proto::FrameType::Entry, body, static_cast<std::uint32_t>(body.size()));
			}
			// Then play dead: the host must give up on its own.
			::sleep(3600);
		}
		for (const char *name : {"evil\x1b[2J\x07", "two\nlines", "plain"}) {
			proto::Entry e;
			e.name = name;
			e.mode = 0644;
			if (Status ok = out.entry(e); !ok)
				return ok;
		}
		return {};
	}

	Status extract(const proto::ExtractRequest &request, guest::Responder &out) override
	{
		const std::string &path = request.path;
		proto::Entry object;
		object.type = proto::EntryType::Directory;
		object.mode = 0755;
		object.name = path.substr(path.rfind('/') + 1);
		std::vector<Member> members;
		bool truncate = false;
		if (endsWith(path, "/traversal")) {
			members = {{.name = "fine", .content = "ok"}, {.name = "../escaped", .content = "owned"}};
		} else if (endsWith(path, "/absolute")) {
			members = {{.name = "/tmp/fr-hostile-absolute/owned", .content = "owned"}};
		} else if (endsWith(path, "/symlink-escape")) {
			const char *outside = std::getenv("FR_HOSTILE_OUTSIDE");
			members = {{.name = "link", .type = AE_IFLNK, .link = outside ? outside : "/tmp"},
				   {.name = "link/pwned", .content = "owned"}};
		} else if (endsWith(path, "/specials")) {
			members = {{.name = "null", .type = AE_IFCHR, .perm = 0666},
				   {.name = "fifo", .type = AE_IFIFO, .perm = 0666},
				   {.name = "suid", .content = "#!/bin/sh\n", .perm = 04755},
				   {.name = "plain", .content = "plain\n", .perm = 0640}};
		} else if (endsWith(path, "/hardlink")) {
			members = {{.name = "shadow", .hardlink = "/etc/shadow"}};
		} else if (endsWith(path, "/short")) {
			members = {{.name = "big", .content = std::string(100000, 'x')}};
			truncate = true;
		}
		std::string tar = buildTar(members);
		if (truncate)
			tar.resize(tar.size() / 2);
		if (Status ok = out.entry(object); !ok)
			return ok;
		return out.data({reinterpret_cast<const std::uint8_t *>(tar.data()), tar.size()});
	}

private:
	int fd_;
};

} // namespace

int main(int argc, char **argv)
{
	const std::string socketPath = arg(argc, argv, "--socket");
	Result<proto::Key> key = proto::ticketFromHex(arg(argc, argv, "--ticket"), "--ticket");
	if (!key || socketPath.empty() || !proto::initCrypto())
		return 2;
	const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
	sockaddr_un address{};
	address.sun_family = AF_UNIX;
	std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socketPath.c_str());
	::unlink(socketPath.c_str());
	if (::bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof(address)) != 0 ||
	    ::listen(listener, 8) != 0)
		return 1;
	::signal(SIGPIPE, SIG_IGN);
	::signal(SIGCHLD, SIG_IGN); // children reaped by the kernel
	std::printf("hostile guest: up\n");
	std::fflush(stdout);
	for (;;) {
		const int conn = ::accept(listener, nullptr, nullptr);
		if (conn < 0)
			continue;
		// One host at a time, like QEMU's socket chardev; a child per
		// connection so that playing dead does not block the next host.
		if (::fork() != 0) {
			::close(conn);
			continue;
		}
		::close(listener);
		::prctl(PR_SET_PDEATHSIG, SIGKILL); // stopped with its "QEMU"
		FdStream stream{UniqueFd(conn)};
		Hostile handler(conn);
		guest::ConnectionOptions options;
		guest::Connection connection(stream, *key, handler, options);
		connection.run();
		::_exit(0);
	}
}
