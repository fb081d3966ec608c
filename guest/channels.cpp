// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/channels.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "shared/log.h"

namespace fr::guest {

namespace {

// Port reads: the buffer grows by this much at a time.
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;

// One channel's stream, as its Connection sees it: reads come from the
// demultiplexer through a socketpair, writes go to the port as channel
// frames.
class ChannelStream final : public ByteStream, public PipeSink {
public:
	ChannelStream(UniqueFd fd, ChannelPort &port, std::uint64_t generation, std::uint32_t channel)
		: in_(std::move(fd)), port_(port), generation_(generation), channel_(channel)
	{
	}

	Result<std::size_t> read(std::span<std::uint8_t> buf, int timeoutMs) override
	{
		return in_.read(buf, timeoutMs);
	}
	Status write(std::span<const std::uint8_t> buf, int timeoutMs) override
	{
		return port_.data(generation_, channel_, buf, timeoutMs);
	}
	Status fromPipe(int pipeFd, std::size_t n, int timeoutMs) override
	{
		return port_.dataFromPipe(generation_, channel_, pipeFd, n, timeoutMs);
	}

private:
	FdStream in_;
	ChannelPort &port_;
	std::uint64_t generation_;
	std::uint32_t channel_;
};

bool startsWith(const std::vector<std::uint8_t> &input, const std::array<std::uint8_t, chan::kMagicSize> &magic)
{
	return input.size() >= magic.size() && std::memcmp(input.data(), magic.data(), magic.size()) == 0;
}

Error sessionEnded()
{
	return Error(EPIPE, "write", "channel session ended");
}

} // namespace

// --- ChannelPort --------------------------------------------------------------

Status ChannelPort::data(std::uint64_t generation, std::uint32_t channel, std::span<const std::uint8_t> bytes,
			 int timeoutMs)
{
	while (!bytes.empty()) {
		const std::size_t n = std::min(bytes.size(), chan::kToHostMax);
		std::vector<std::uint8_t> frame;
		frame.reserve(chan::kHeaderSize + n);
		chan::encodeData(frame, channel, bytes.first(n), proto::Direction::ToHost);
		{
			std::lock_guard lock(mutex_);
			if (generation != generation_)
				return sessionEnded();
			if (Status ok = port_.write(frame, timeoutMs); !ok)
				return ok;
		}
		bytes = bytes.subspan(n);
	}
	return {};
}

Status ChannelPort::dataFromPipe(std::uint64_t generation, std::uint32_t channel, int pipeFd, std::size_t n,
				 int timeoutMs)
{
	if (portPipe_ == nullptr || n == 0 || n > chan::kToHostMax)
		return Error::invalid(EINVAL, "splice", "channel", "%zu bytes cannot be spliced", n);
	std::vector<std::uint8_t> header;
	chan::encodeHeader(header, chan::Kind::Data, channel, static_cast<std::uint32_t>(n), proto::Direction::ToHost);
	std::lock_guard lock(mutex_);
	if (generation != generation_)
		return sessionEnded();
	if (Status ok = port_.write(header, timeoutMs); !ok)
		return ok;
	// The header is out: the frame must be completed whatever happens, or
	// the host reads the next frame's bytes as this one's payload. A
	// failed splice leaves the port broken anyway (the host is gone).
	return portPipe_->fromPipe(pipeFd, n, timeoutMs);
}

void ChannelPort::close(std::uint64_t generation, std::uint32_t channel)
{
	std::vector<std::uint8_t> frame;
	chan::encodeHeader(frame, chan::Kind::Close, channel, 0, proto::Direction::ToHost);
	std::lock_guard lock(mutex_);
	if (generation == generation_)
		(void)port_.write(frame, 5000);
}

Status ChannelPort::newSession(std::uint64_t nonce)
{
	const chan::HelloBytes ack = chan::encodeAck(nonce);
	std::lock_guard lock(mutex_);
	++generation_;
	return port_.write(ack, 5000);
}

// --- ChannelServer --------------------------------------------------------------

ChannelServer::ChannelServer(ByteStream &port, PipeSink *portPipe, const proto::Key &key, RequestHandler &handler,
			     int preAuthTimeoutMs)
	: port_(port), writer_(port, portPipe), key_(key), handler_(handler), preAuthTimeoutMs_(preAuthTimeoutMs)
{
}

ChannelServer::~ChannelServer()
{
	closeAll();
	// The channel threads use this object: wait for them (they end once
	// their socketpair closed, or their write to the port failed).
	for (int i = 0; i < 1000 && threads_ > 0; ++i)
		::usleep(10000);
}

bool ChannelServer::fill(std::vector<std::uint8_t> &input, std::size_t want)
{
	while (input.size() < want) {
		const std::size_t at = input.size();
		input.resize(at + kReadChunk);
		Result<std::size_t> n = port_.read(std::span(input.data() + at, kReadChunk), -1);
		input.resize(at + (n ? *n : 0));
		if (!n || *n == 0)
			return false;
	}
	return true;
}

void ChannelServer::closeAll()
{
	for (auto &[channel, fd] : channels_)
		::shutdown(fd.get(), SHUT_RDWR);
	channels_.clear();
}

void ChannelServer::openChannel(std::uint32_t channel)
{
	const std::uint64_t generation = writer_.generation();
	// Numbers only grow within a session: an old number is a host bug or
	// an attack on another channel's state.
	if (channel <= lastOpened_ || threads_ >= static_cast<int>(chan::kMaxChannels)) {
		logf(LogLevel::Warning, "channel %u refused (%d open)", static_cast<unsigned>(channel), threads_.load());
		writer_.close(generation, channel);
		return;
	}
	lastOpened_ = channel;
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		logf(LogLevel::Warning, "channel %u: socketpair failed (errno %d)", static_cast<unsigned>(channel), errno);
		writer_.close(generation, channel);
		return;
	}
	channels_.emplace(channel, UniqueFd(sv[0]));
	++threads_;
	std::thread([this, generation, channel](UniqueFd end) {
		ChannelStream stream(std::move(end), writer_, generation, channel);
		ConnectionOptions options;
		options.preAuthTimeoutMs = preAuthTimeoutMs_;
		options.closeOnAuthFailure = true;
		options.pipeSink = writer_.splices() ? &stream : nullptr;
		Connection(stream, key_, handler_, options).run();
		writer_.close(generation, channel);
		--threads_;
	}, UniqueFd(sv[1])).detach();
}

bool ChannelServer::startSession(std::vector<std::uint8_t> &input)
{
	if (!fill(input, chan::kHelloSize))
		return false;
	const std::optional<std::uint64_t> nonce =
		chan::decodeHello(std::span(input).first<chan::kHelloSize>(), chan::kHelloMagic);
	input.erase(input.begin(), input.begin() + chan::kHelloSize);
	closeAll();
	lastOpened_ = 0;
	return static_cast<bool>(writer_.newSession(nonce.value_or(0)));
}

bool ChannelServer::skipToHello(std::vector<std::uint8_t> &input)
{
	// Drop what cannot start a hello, keep a partial one.
	std::size_t at = std::min(proto::scanForMagic(input, proto::kClientHelloMagic),
				  proto::scanForMagic(input, chan::kHelloMagic));
	if (at == 0)
		at = 1; // the head is no hello (checked by the caller): skip it
	input.erase(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(std::min(at, input.size())));
	return !input.empty() || fill(input, 1);
}

void ChannelServer::dispatch(const chan::Header &header, std::span<const std::uint8_t> payload)
{
	switch (header.kind) {
	case chan::Kind::Open:
		openChannel(header.channel);
		break;
	case chan::Kind::Data:
		if (auto it = channels_.find(header.channel); it != channels_.end()) {
			// The Connection reads requests and acknowledgements, a
			// few bytes at a time: a channel whose buffer is full is
			// not reading, and is dropped rather than waited for.
			const ssize_t n = ::send(it->second.get(), payload.data(), payload.size(),
						 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n != static_cast<ssize_t>(payload.size())) {
				::shutdown(it->second.get(), SHUT_RDWR);
				channels_.erase(it);
			}
		}
		break;
	case chan::Kind::Close:
		if (auto it = channels_.find(header.channel); it != channels_.end()) {
			::shutdown(it->second.get(), SHUT_RDWR);
			channels_.erase(it);
		}
		break;
	}
}

ChannelServer::Outcome ChannelServer::run(std::vector<std::uint8_t> &input)
{
	bool scanning = false; // out of step: looking for a hello
	for (;;) {
		// A hello of either kind at the head of the input.
		if (input.size() < chan::kMagicSize && !fill(input, chan::kMagicSize)) {
			closeAll();
			return Outcome::HostGone;
		}
		if (startsWith(input, proto::kClientHelloMagic)) {
			closeAll();
			return Outcome::ClientHello;
		}
		if (startsWith(input, chan::kHelloMagic)) {
			if (!startSession(input)) {
				closeAll();
				return Outcome::HostGone;
			}
			scanning = false;
			continue;
		}
		if (scanning) {
			if (!skipToHello(input)) {
				closeAll();
				return Outcome::HostGone;
			}
			continue;
		}
		if (!fill(input, chan::kHeaderSize)) {
			closeAll();
			return Outcome::HostGone;
		}
		const Result<chan::Header> header =
			chan::decodeHeader(std::span(input).first<chan::kHeaderSize>(), proto::Direction::ToGuest);
		if (!header) {
			// The sync padding of a new host, or garbage: every channel
			// ends, and the next hello starts over.
			if (input[0] != 0)
				logError(header.error(), LogLevel::Warning);
			closeAll();
			scanning = true;
			continue;
		}
		if (!fill(input, chan::kHeaderSize + header->length)) {
			closeAll();
			return Outcome::HostGone;
		}
		const std::span<const std::uint8_t> payload(input.data() + chan::kHeaderSize, header->length);
		dispatch(*header, payload);
		input.erase(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(chan::kHeaderSize + header->length));
	}
}

void serveSerialPort(ByteStream &port, PipeSink *portPipe, const proto::Key &key, RequestHandler &handler,
		     int preAuthTimeoutMs, const std::atomic<bool> *stop)
{
	// One Connection for the port's lifetime: bytes a new host sent while
	// an old response was being abandoned stay buffered for its run().
	ConnectionOptions options;
	options.pipeSink = portPipe;
	options.acceptChannels = true;
	Connection connection(port, key, handler, options);
	// A host that asks for channels (the client's broker: several
	// requests at once) gets them until it goes away or a host without
	// channels says hello.
	ChannelServer channels(port, portPipe, key, handler, preAuthTimeoutMs);
	while (stop == nullptr || !*stop) {
		const Connection::Outcome outcome = connection.run();
		if (outcome == Connection::Outcome::Stopped)
			return;
		if (outcome == Connection::Outcome::Channels) {
			std::vector<std::uint8_t> input = connection.takeBuffered();
			logf(LogLevel::Info, "serial port: channels");
			(void)channels.run(input);
			connection.prime(input);
			continue;
		}
		if (outcome == Connection::Outcome::StreamEnded)
			::usleep(1000); // never spin if the port keeps failing
	}
}

} // namespace fr::guest
