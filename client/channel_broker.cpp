// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/channel_broker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <span>
#include <thread>
#include <vector>

#include "client/transport.h"
#include "client/types.h"
#include "shared/channels.h"
#include "shared/display.h"
#include "shared/protocol.h"

namespace fr::client {

namespace {

// Bytes waiting for a client that does not read: an honest guest has at
// most its flow-control window (8 MiB) in flight per channel.
constexpr std::size_t kClientBacklogMax = std::size_t{24} << 20;
// Bytes waiting for the guest before clients are no longer read.
constexpr std::size_t kGuestBacklogMax = std::size_t{1} << 20;
// Clients at once: the guest serves kMaxChannels; more wait in the
// listen backlog (the client side bounds its own requests).
constexpr std::size_t kMaxClients = chan::kMaxChannels;
constexpr std::size_t kReadSize = std::size_t{256} << 10;

void setNonBlocking(int fd)
{
	const int flags = ::fcntl(fd, F_GETFL);
	if (flags >= 0)
		::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

class Broker {
public:
	Broker(UniqueFd guest, UniqueFd listener) : guest_(std::move(guest)), listener_(std::move(listener))
	{
		setNonBlocking(guest_.get());
		setNonBlocking(listener_.get());
	}

	int run();

private:
	struct Client {
		UniqueFd fd;
		std::vector<std::uint8_t> out; // for the client
		std::size_t outPos = 0;
		bool guestClosed = false;      // the guest's Close arrived
	};

	// false: the guest broke the channel protocol.
	bool parse();
	void acceptClient();
	// Each polled client: what it sent to the guest, what it may take back.
	void serveClients(const std::vector<std::uint32_t> &ids, std::span<const pollfd> polled);
	void readClient(std::uint32_t id, Client &client);
	bool writeClient(Client &client);
	void dropClient(std::uint32_t id, bool tellGuest);
	std::size_t guestBacklog() const { return toGuest_.size() - toGuestPos_; }

	UniqueFd guest_;
	UniqueFd listener_;
	std::vector<std::uint8_t> toGuest_;
	std::size_t toGuestPos_ = 0;
	std::vector<std::uint8_t> fromGuest_;
	std::uint64_t nonce_ = chan::randomNonce();
	bool synced_ = false;
	std::map<std::uint32_t, Client> clients_;
	std::uint32_t next_ = 1;
};

void Broker::acceptClient()
{
	const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	const std::uint32_t id = next_++;
	clients_[id].fd = UniqueFd(fd);
	chan::encodeHeader(toGuest_, chan::Kind::Open, id, 0, proto::Direction::ToGuest);
}

void Broker::dropClient(std::uint32_t id, bool tellGuest)
{
	clients_.erase(id);
	if (tellGuest)
		chan::encodeHeader(toGuest_, chan::Kind::Close, id, 0, proto::Direction::ToGuest);
}

void Broker::readClient(std::uint32_t id, Client &client)
{
	std::uint8_t buf[chan::kToGuestMax * 4];
	const ssize_t n = ::read(client.fd.get(), buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		dropClient(id, !client.guestClosed);
		return;
	}
	for (std::size_t at = 0; at < static_cast<std::size_t>(n); at += chan::kToGuestMax) {
		const std::size_t len = std::min(chan::kToGuestMax, static_cast<std::size_t>(n) - at);
		chan::encodeData(toGuest_, id, std::span<const std::uint8_t>(buf + at, len), proto::Direction::ToGuest);
	}
}

bool Broker::writeClient(Client &client)
{
	while (client.outPos < client.out.size()) {
		const ssize_t n = ::send(client.fd.get(), client.out.data() + client.outPos,
					 client.out.size() - client.outPos, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		client.outPos += static_cast<std::size_t>(n);
	}
	client.out.clear();
	client.outPos = 0;
	return true;
}

bool Broker::parse()
{
	std::size_t at = 0;
	if (!synced_) {
		// Everything before the ack of our hello is an earlier session's.
		for (;;) {
			const std::span<const std::uint8_t> rest(fromGuest_.data() + at, fromGuest_.size() - at);
			const std::size_t found = proto::scanForMagic(rest, chan::kAckMagic);
			at += found;
			if (fromGuest_.size() - at < chan::kHelloSize)
				break;
			const std::optional<std::uint64_t> nonce = chan::decodeHello(
				std::span<const std::uint8_t, chan::kHelloSize>(fromGuest_.data() + at, chan::kHelloSize),
				chan::kAckMagic);
			if (nonce && *nonce == nonce_) {
				at += chan::kHelloSize;
				synced_ = true;
				break;
			}
			at += 1; // a stale ack
		}
	}
	while (synced_ && fromGuest_.size() - at >= chan::kHeaderSize) {
		const Result<chan::Header> header = chan::decodeHeader(
			std::span<const std::uint8_t, chan::kHeaderSize>(fromGuest_.data() + at, chan::kHeaderSize),
			proto::Direction::ToHost);
		if (!header)
			return false;
		if (fromGuest_.size() - at < chan::kHeaderSize + header->length)
			break;
		const std::uint8_t *payload = fromGuest_.data() + at + chan::kHeaderSize;
		auto it = clients_.find(header->channel);
		if (header->kind == chan::Kind::Data && it != clients_.end() && !it->second.guestClosed) {
			Client &client = it->second;
			client.out.insert(client.out.end(), payload, payload + header->length);
			if (client.out.size() - client.outPos > kClientBacklogMax)
				dropClient(header->channel, true); // not reading, or a flooding guest
		} else if (header->kind == chan::Kind::Close && it != clients_.end()) {
			it->second.guestClosed = true;
			if (it->second.out.size() == it->second.outPos)
				dropClient(header->channel, false);
		}
		at += chan::kHeaderSize + header->length;
	}
	fromGuest_.erase(fromGuest_.begin(), fromGuest_.begin() + static_cast<std::ptrdiff_t>(at));
	return true;
}

void Broker::serveClients(const std::vector<std::uint32_t> &ids, std::span<const pollfd> polled)
{
	for (std::size_t i = 0; i < ids.size(); ++i) {
		auto it = clients_.find(ids[i]);
		if (it == clients_.end())
			continue; // dropped meanwhile
		const short revents = polled[i].revents;
		if (revents & POLLOUT) {
			if (!writeClient(it->second)) {
				dropClient(ids[i], !it->second.guestClosed);
				continue;
			}
			if (it->second.guestClosed && it->second.out.empty()) {
				dropClient(ids[i], false);
				continue;
			}
		}
		if (revents & (POLLIN | POLLHUP | POLLERR))
			readClient(ids[i], it->second);
	}
}

int Broker::run()
{
	// The sync padding completes whatever an earlier host left half-sent
	// in the guest's reader; then the hello (shared/channels.h).
	toGuest_.assign(proto::kSyncPaddingSize, 0);
	const chan::HelloBytes hello = chan::encodeHello(nonce_);
	toGuest_.insert(toGuest_.end(), hello.begin(), hello.end());
	std::vector<std::uint8_t> buf(kReadSize);
	for (;;) {
		std::vector<pollfd> fds;
		std::vector<std::uint32_t> ids;
		fds.push_back({guest_.get(), static_cast<short>(POLLIN | (guestBacklog() > 0 ? POLLOUT : 0)), 0});
		const bool acceptMore = clients_.size() < kMaxClients && guestBacklog() < kGuestBacklogMax;
		fds.push_back({acceptMore ? listener_.get() : -1, POLLIN, 0});
		for (auto &[id, client] : clients_) {
			short events = 0;
			if (!client.guestClosed && guestBacklog() < kGuestBacklogMax)
				events |= POLLIN;
			if (client.out.size() > client.outPos)
				events |= POLLOUT;
			fds.push_back({client.fd.get(), events, 0});
			ids.push_back(id);
		}
		if (::poll(fds.data(), fds.size(), -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			const ssize_t n = ::read(guest_.get(), buf.data(), buf.size());
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				return 0; // the VM is gone
			if (n > 0) {
				fromGuest_.insert(fromGuest_.end(), buf.begin(), buf.begin() + n);
				if (!parse())
					return 1;
			}
		}
		if ((fds[0].revents & POLLOUT) && guestBacklog() > 0) {
			const ssize_t n = ::send(guest_.get(), toGuest_.data() + toGuestPos_, guestBacklog(), MSG_NOSIGNAL);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return 0;
			if (n > 0)
				toGuestPos_ += static_cast<std::size_t>(n);
			if (toGuestPos_ == toGuest_.size()) {
				toGuest_.clear();
				toGuestPos_ = 0;
			}
		}
		serveClients(ids, std::span(fds).subspan(2));
		if (fds[1].revents & POLLIN)
			acceptClient();
	}
}

Result<UniqueFd> connectUnix(const std::string &path)
{
	Result<sockaddr_un> address = unixAddress(path);
	if (!address)
		return address.error();
	UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd.isValid())
		return Error(errno, "socket", escapeForDisplay(path));
	if (::connect(fd.get(), reinterpret_cast<const sockaddr *>(&*address), sizeof(*address)) != 0)
		return Error(errno, "connect", escapeForDisplay(path));
	return fd;
}

[[noreturn]] void brokerProcess(int listener, int qemuPidfd, const std::string &qemuSocket,
				const std::string &brokerSocket, std::chrono::milliseconds connectTimeout)
{
	// A daemon of its own: no terminal, no signal handlers of the
	// client's, nothing inherited but its sockets.
	::setsid();
	::prctl(PR_SET_NAME, "fr-channels", 0, 0, 0);
	::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
		(void)::signal(sig, SIG_DFL);
	(void)::signal(SIGPIPE, SIG_IGN);
	sigset_t none;
	sigemptyset(&none);
	::sigprocmask(SIG_SETMASK, &none, nullptr);
	// The listener becomes fd 3, QEMU's pidfd (if any) fd 4.
	const int pidfd = qemuPidfd >= 0 ? ::fcntl(qemuPidfd, F_DUPFD_CLOEXEC, 10) : -1;
	if (listener != 3 && ::dup2(listener, 3) != 3)
		_exit(1);
	if (pidfd >= 0 && ::dup2(pidfd, 4) != 4)
		_exit(1);
	const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3; ++fd)
		if (null >= 0)
			::dup2(null, fd);
	::syscall(SYS_close_range, pidfd >= 0 ? 5U : 4U, ~0U, 0U);
	::fcntl(3, F_SETFD, FD_CLOEXEC);

	// Until QEMU listens; given up when QEMU exits first (its pidfd turns
	// readable): the clients queued on the listener then see it close at
	// once instead of waiting out the timeout.
	const auto deadline = Clock::now() + connectTimeout;
	Result<UniqueFd> guest = connectUnix(qemuSocket);
	while (!guest && Clock::now() < deadline) {
		pollfd exited{pidfd >= 0 ? 4 : -1, POLLIN, 0};
		if (::poll(&exited, 1, 20) > 0)
			break;
		guest = connectUnix(qemuSocket);
	}
	int rc = 1;
	if (guest)
		rc = runChannelBroker(std::move(*guest), UniqueFd(3));
	::unlink(brokerSocket.c_str());
	_exit(rc);
}

} // namespace

std::string channelSocketPath(const std::string &qemuSocketPath)
{
	std::string path = qemuSocketPath;
	if (path.ends_with(".sock"))
		path.resize(path.size() - 5);
	return path + ".chan";
}

int runChannelBroker(UniqueFd guest, UniqueFd listener)
{
	return Broker(std::move(guest), std::move(listener)).run();
}

Status startChannelBroker(const std::string &qemuSocket, const std::string &brokerSocket,
			  std::chrono::milliseconds connectTimeout, int qemuPidfd)
{
	Result<sockaddr_un> address = unixAddress(brokerSocket);
	if (!address)
		return address.error();
	// A socket left by a broker that was killed: only a socket is removed.
	struct stat st {};
	if (::lstat(brokerSocket.c_str(), &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return Error::invalid(EEXIST, "channel broker", escapeForDisplay(brokerSocket),
					      "exists and is not a socket");
		::unlink(brokerSocket.c_str());
	}
	UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!listener.isValid())
		return Error(errno, "socket", "channel broker");
	const mode_t old = ::umask(077);
	const int bound = ::bind(listener.get(), reinterpret_cast<const sockaddr *>(&*address), sizeof(*address));
	const int bindErrno = errno;
	::umask(old);
	if (bound != 0)
		return Error(bindErrno, "bind", escapeForDisplay(brokerSocket));
	if (::listen(listener.get(), 64) != 0)
		return Error(errno, "listen", escapeForDisplay(brokerSocket));
	// Double fork: the broker is nobody's child to reap; the intermediate
	// child is reaped here at once.
	const pid_t child = ::fork();
	if (child < 0)
		return Error(errno, "fork", "channel broker");
	if (child == 0) {
		if (::fork() == 0)
			brokerProcess(listener.get(), qemuPidfd, qemuSocket, brokerSocket, connectTimeout);
		_exit(0);
	}
	int status = 0;
	while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
	}
	return {};
}

} // namespace fr::client
