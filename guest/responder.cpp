// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/responder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>


namespace fr::guest {

namespace {

// Frames are collected and written in batches of about this size.
constexpr std::size_t kFlushSize = std::size_t{64} * 1024;
// Reads of file contents where they cannot be spliced.
constexpr std::size_t kFileReadSize = std::size_t{256} * 1024;
// The splice pipe: room for one Data frame of kDataChunkSize (one slot per
// page) and its header.
constexpr std::size_t kPageSize = 4096;
constexpr std::size_t kSplicePipeSize = std::size_t{1} << 20;

} // namespace

// --- Responder -------------------------------------------------------------

void Responder::reset(bool flowControlled) noexcept
{
	flowControlled_ = flowControlled;
	out_.clear();
	entries_ = 0;
	bytes_ = 0;
	broken_ = false;
}

Status Responder::flush()
{
	if (broken_)
		return abandoned();
	if (out_.empty())
		return {};
	if (flow_ != nullptr && flowControlled_) {
		if (Status ok = flow_->admit(out_.size()); !ok) {
			broken_ = true;
			out_.clear();
			return ok;
		}
	}
	Status ok = stream_.write(out_, -1);
	if (ok && flow_ != nullptr && flowControlled_)
		flow_->written(out_.size());
	out_.clear();
	if (!ok)
		broken_ = true;
	return ok;
}

Status Responder::maybeFlush()
{
	return out_.size() >= kFlushSize ? flush() : Status{};
}

Error Responder::abandoned() noexcept
{
	return Error(EPIPE, "write", "response abandoned");
}

Status Responder::raw(std::span<const std::uint8_t> bytes)
{
	if (broken_)
		return abandoned();
	out_.insert(out_.end(), bytes.begin(), bytes.end());
	return maybeFlush();
}

Status Responder::entry(const proto::Entry &entry)
{
	if (broken_)
		return abandoned();
	proto::encode(out_, entry);
	++entries_;
	return maybeFlush();
}

Status Responder::data(std::span<const std::uint8_t> bytes)
{
	while (!bytes.empty()) {
		if (broken_)
			return abandoned();
		const std::size_t n = bytes.size() < proto::kDataChunkSize ? bytes.size()
									  : proto::kDataChunkSize;
		proto::encodeDataHeader(out_, n);
		out_.insert(out_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
		bytes_ += n;
		bytes = bytes.subspan(n);
		if (Status ok = maybeFlush(); !ok)
			return ok;
	}
	return {};
}

Result<std::size_t> readSome(int fd, std::span<std::uint8_t> buf, std::string_view what)
{
	for (;;) {
		const ssize_t n = ::read(fd, buf.data(), buf.size());
		if (n >= 0)
			return static_cast<std::size_t>(n);
		if (errno != EINTR)
			return Error(errno, "read", what.substr(0, 200));
	}
}

Status Responder::file(int fd, std::string_view what)
{
	if (broken_)
		return abandoned();
	struct stat st {};
	if (::fstat(fd, &st) != 0)
		return Error(errno, "fstat", what.substr(0, 200));
	const off_t at = ::lseek(fd, 0, SEEK_CUR);
	if (pipeSink_ != nullptr && S_ISREG(st.st_mode) && at >= 0 && st.st_size > at) {
		if (Status ok = spliceFile(fd, static_cast<std::uint64_t>(st.st_size - at), what); !ok)
			return ok;
	}
	// Without splice, and whatever follows the size seen at the start (a
	// file that grew: End counts what was actually sent).
	return copyFile(fd, what);
}

Status Responder::copyFile(int fd, std::string_view what)
{
	std::vector<std::uint8_t> buf(kFileReadSize);
	for (;;) {
		Result<std::size_t> n = readSome(fd, buf, what);
		if (!n)
			return n.error();
		if (*n == 0)
			return {};
		if (Status ok = data(std::span(buf.data(), *n)); !ok)
			return ok;
	}
}

Status Responder::preparePipe()
{
	if (pipeRead_.isValid())
		return {};
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		return Error(errno, "pipe2", "splice pipe");
	pipeRead_ = UniqueFd(fds[0]);
	pipeWrite_ = UniqueFd(fds[1]);
	// One frame (header + data) must fit the pipe: each page of file data
	// takes one pipe slot, the header one more, and data that does not
	// start on a page boundary one more.
	(void)::fcntl(pipeWrite_.get(), F_SETPIPE_SZ, static_cast<int>(kSplicePipeSize));
	const int capacity = ::fcntl(pipeWrite_.get(), F_GETPIPE_SZ);
	if (capacity < 0)
		return Error(errno, "fcntl(F_GETPIPE_SZ)", "splice pipe");
	const std::size_t room = static_cast<std::size_t>(capacity) - 2 * kPageSize;
	spliceFrame_ = room < proto::kDataChunkSize ? room : proto::kDataChunkSize;
	return {};
}

Status Responder::toPipe(const std::uint8_t *bytes, std::size_t n)
{
	while (n > 0) {
		const ssize_t w = ::write(pipeWrite_.get(), bytes, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return Error(errno, "write", "splice pipe");
		bytes += w;
		n -= static_cast<std::size_t>(w);
	}
	return {};
}

Status Responder::fillFrame(int fd, std::size_t n, std::string_view what)
{
	std::size_t got = 0;
	Status failure;
	while (got < n) {
		if (fileSplice_) {
			const ssize_t r = ::splice(fd, nullptr, pipeWrite_.get(), nullptr, n - got, SPLICE_F_MOVE);
			if (r > 0) {
				got += static_cast<std::size_t>(r);
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EINVAL) {
				fileSplice_ = false; // a filesystem without splice_read
				continue;
			}
			if (r < 0) {
				failure = Error(errno, "read", what.substr(0, 200));
				break;
			}
		} else {
			std::uint8_t buf[16384];
			Result<std::size_t> r =
				readSome(fd, std::span(buf, n - got < sizeof(buf) ? n - got : sizeof(buf)), what);
			if (!r) {
				failure = r.error();
				break;
			}
			if (*r > 0) {
				if (Status ok = toPipe(buf, *r); !ok)
					return ok;
				got += *r;
				continue;
			}
		}
		failure = Error::invalid(EIO, "read", what.substr(0, 200), "file shorter than its size");
		break;
	}
	// The frame's length is already in the pipe: complete it.
	static const std::uint8_t zeros[4096] = {};
	while (got < n) {
		const std::size_t want = n - got < sizeof(zeros) ? n - got : sizeof(zeros);
		if (Status ok = toPipe(zeros, want); !ok)
			return ok;
		got += want;
	}
	return failure;
}

Status Responder::spliceFile(int fd, std::uint64_t size, std::string_view what)
{
	// What is queued (the Entry) goes first.
	if (Status ok = flush(); !ok)
		return ok;
	if (Status ok = preparePipe(); !ok)
		return ok;
	std::uint64_t left = size;
	while (left > 0) {
		const std::size_t n = left < spliceFrame_ ? static_cast<std::size_t>(left) : spliceFrame_;
		const std::size_t frame = proto::kFrameHeaderSize + n;
		if (flow_ != nullptr && flowControlled_) {
			if (Status ok = flow_->admit(frame); !ok) {
				broken_ = true;
				return ok;
			}
		}
		std::vector<std::uint8_t> header;
		proto::encodeDataHeader(header, n);
		if (Status ok = toPipe(header.data(), header.size()); !ok)
			return ok;
		const Status filled = fillFrame(fd, n, what);
		Status sent = pipeSink_->fromPipe(pipeRead_.get(), frame, -1);
		if (!sent) {
			broken_ = true;
			// Whatever is left in the pipe belongs to no frame now.
			pipeRead_.reset();
			pipeWrite_.reset();
			return sent;
		}
		if (flow_ != nullptr && flowControlled_)
			flow_->written(frame);
		if (!filled)
			return filled; // the frame was completed with zeros
		bytes_ += n;
		left -= n;
	}
	return {};
}

} // namespace fr::guest
