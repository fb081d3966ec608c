// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// How the daemon writes a response (docs/protocol.md): its frames, batched,
// under the protocol's flow control, with file contents spliced where the
// stream takes it. The request handlers (guest/tree.h, guest/extract.h)
// write through a Responder; guest/server.h owns one per connection.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "guest/stream.h"
#include "shared/byte_stream.h"
#include "shared/protocol.h"
#include "shared/result.h"
#include "shared/unique_fd.h"

namespace fr::guest {

// read(2) of up to buf.size() bytes, retried on EINTR: the count (0 at the
// end of the file). `what` names the file in errors. (For the responder's
// file contents and the handler's extracts alike.)
Result<std::size_t> readSome(int fd, std::span<std::uint8_t> buf, std::string_view what);

// Admits response bytes into the stream under the protocol's flow control
// (docs/protocol.md, "Flow control"); Connection implements it.
class FlowControl {
public:
	virtual ~FlowControl() = default;
	// Returns once `bytes` more may be written: waits for the host's Acks
	// while more than kAckWindow would be unacknowledged. Fails (the
	// response must be abandoned) when the host sends anything but an Ack,
	// or goes away.
	virtual Status admit(std::size_t bytes) = 0;
	virtual void written(std::size_t bytes) = 0;
};

// Writes one response's frames. Counts what the End trailer must carry.
// After a failed write the responder is broken(): the conversation is over
// and no trailer may follow.
class Responder {
public:
	// pipeSink: the same stream, where it can take spliced bytes (file
	// contents then never pass through the daemon's memory).
	explicit Responder(ByteStream &stream, FlowControl *flow = nullptr, PipeSink *pipeSink = nullptr)
		: stream_(stream), flow_(flow), pipeSink_(pipeSink)
	{
	}

	Status entry(const proto::Entry &entry);
	// Sends `bytes` as Data frames of at most kDataChunkSize.
	Status data(std::span<const std::uint8_t> bytes);
	// Sends the regular file `fd` from its current offset to its end as
	// Data frames: spliced file -> pipe -> stream where the stream is a
	// PipeSink (no copy in the guest), read and written otherwise. `what`
	// names the file in errors. A read error or a file that ends before
	// its size at the start ends the frame in progress with zeros and
	// returns the error (the caller's Failure trailer tells the host to
	// discard the data).
	Status file(int fd, std::string_view what);
	Status flush();

	std::uint64_t entries() const noexcept { return entries_; }
	std::uint64_t bytes() const noexcept { return bytes_; }
	bool broken() const noexcept { return broken_; }

	// Any other message (trailers, status) through the same buffer.
	template <typename Message>
	Status message(const Message &message)
	{
		if (broken_)
			return abandoned();
		proto::encode(out_, message);
		return maybeFlush();
	}
	// The hellos (not frames) through the same buffer.
	Status raw(std::span<const std::uint8_t> bytes);
	// reset() starts a new message without flow control (hellos, AuthOk:
	// the host may already be sending its next message); a request's
	// response is written under flow control.
	void reset(bool flowControlled = false) noexcept;

private:
	static Error abandoned() noexcept;
	Status maybeFlush();
	Status copyFile(int fd, std::string_view what);
	Status spliceFile(int fd, std::uint64_t size, std::string_view what);
	// Moves one frame's data from the file into the pipe: exactly n bytes
	// (completed with zeros after an error, which is returned).
	Status fillFrame(int fd, std::size_t n, std::string_view what);
	// Writes all n bytes into the splice pipe.
	Status toPipe(const std::uint8_t *bytes, std::size_t n);
	Status preparePipe();

	ByteStream &stream_;
	FlowControl *flow_;
	PipeSink *pipeSink_;
	UniqueFd pipeRead_;
	UniqueFd pipeWrite_;
	std::size_t spliceFrame_ = 0; // data bytes per spliced frame
	bool fileSplice_ = true;      // splice(file -> pipe) works
	bool flowControlled_ = false;
	std::vector<std::uint8_t> out_;
	std::uint64_t entries_ = 0;
	std::uint64_t bytes_ = 0;
	bool broken_ = false;
};

} // namespace fr::guest
