// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The daemon's side of the serial transport's channels (shared/channels.h,
// docs/protocol.md "Channels"): after a host's channel hello, every channel
// it opens gets an ordinary guest-protocol Connection on a thread of its
// own, as a vsock connection does, so a listing is answered while an
// extract streams on another channel.
//
// Threads: run() reads the port (the thread that owns it: the serial port's
// SIGIO goes there) and hands each channel's bytes to its Connection
// through a socketpair; the Connections write their frames to the port
// themselves, one channel frame at a time under a mutex, spliced file data
// included. A new channel hello (another broker) or a client hello (a host
// without channels) ends every channel; a generation number keeps the
// Connections of an earlier channel session from writing after that.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include "guest/server.h"
#include "guest/stream.h"
#include "shared/byte_stream.h"
#include "shared/channels.h"
#include "shared/protocol.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// The port's write side, shared by the channels' Connections.
class ChannelPort {
public:
	ChannelPort(ByteStream &port, PipeSink *portPipe) : port_(port), portPipe_(portPipe) {}

	// One Data frame (or several, for more than the cap) of `channel`,
	// unless the channel session `generation` has ended (EPIPE).
	Status data(std::uint64_t generation, std::uint32_t channel, std::span<const std::uint8_t> bytes,
		    int timeoutMs);
	// One Data frame of n bytes taken from a pipe (n <= kToHostMax).
	Status dataFromPipe(std::uint64_t generation, std::uint32_t channel, int pipeFd, std::size_t n,
			    int timeoutMs);
	// Close, if the session is still current.
	void close(std::uint64_t generation, std::uint32_t channel);
	// Ends the current channel session and answers a hello: nothing of
	// the old session is written after the ack.
	Status newSession(std::uint64_t nonce);
	std::uint64_t generation() const noexcept { return generation_; }
	bool splices() const noexcept { return portPipe_ != nullptr; }

private:
	ByteStream &port_;
	PipeSink *portPipe_;
	std::mutex mutex_;
	std::atomic<std::uint64_t> generation_{0};
};

class ChannelServer {
public:
	// `port`: the serial port (PipeSink where it takes spliced data).
	// The server outlives every run() and every channel thread (the
	// daemon's serial loop owns it for the VM's life).
	ChannelServer(ByteStream &port, PipeSink *portPipe, const proto::Key &key, RequestHandler &handler,
		      int preAuthTimeoutMs = 10000);
	~ChannelServer();

	enum class Outcome {
		HostGone,    // the port says the host disconnected
		ClientHello, // a host without channels: `input` starts with its hello
	};
	// Serves channel sessions, starting with the channel hello at the
	// head of `input` (bytes already read from the port). On return,
	// `input` holds what was read and not handled.
	Outcome run(std::vector<std::uint8_t> &input);

	// Channel threads still running (tests).
	int activeChannels() const noexcept { return threads_; }

private:
	// Reads more of the port into input; false when the host went away.
	bool fill(std::vector<std::uint8_t> &input, std::size_t want);
	void openChannel(std::uint32_t channel);
	// One frame of the channel protocol: Open, Data or Close.
	void dispatch(const chan::Header &header, std::span<const std::uint8_t> payload);
	// A channel hello at the head of input: every channel of the old
	// session ends, the new one is acknowledged. False when the host went
	// away.
	bool startSession(std::vector<std::uint8_t> &input);
	// Out of step: drops what cannot start a hello; false when the host
	// went away.
	bool skipToHello(std::vector<std::uint8_t> &input);
	void closeAll();

	ByteStream &port_;
	ChannelPort writer_;
	const proto::Key &key_;
	RequestHandler &handler_;
	int preAuthTimeoutMs_;
	std::map<std::uint32_t, UniqueFd> channels_; // the demultiplexer's ends
	std::uint32_t lastOpened_ = 0;
	std::atomic<int> threads_{0};
};

// The serial port's conversations, one after another for the VM's life:
// hosts without channels one at a time (guest/server.h), a channel broker
// with all its channels (ChannelServer). Returns after a Stop, or when
// `stop` is set (tests; checked between conversations).
void serveSerialPort(ByteStream &port, PipeSink *portPipe, const proto::Key &key, RequestHandler &handler,
		     int preAuthTimeoutMs, const std::atomic<bool> *stop = nullptr);

} // namespace fr::guest
