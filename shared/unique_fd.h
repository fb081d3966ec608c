// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include <unistd.h>

#include <utility>

namespace fr {

// Owns one file descriptor and closes it when it goes out of scope.
// Move-only: pass a UniqueFd by value to hand its ownership over.
// Open everything O_CLOEXEC; this class does not add the flag for you.
class UniqueFd {
public:
	UniqueFd() noexcept = default;
	explicit UniqueFd(int fd) noexcept : fd_(fd) {}
	UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		reset(other.release());
		return *this;
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	~UniqueFd() { reset(); }

	// Gives up ownership without closing; the caller now owns the fd.
	[[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

	// Closes the owned fd (if any) and takes ownership of `fd`.
	// close() errors are ignored: on Linux the fd is gone even on EINTR,
	// and retrying could close an fd another thread just opened.
	void reset(int fd = -1) noexcept
	{
		const int old = std::exchange(fd_, fd);
		if (old >= 0 && old != fd)
			::close(old);
	}

	int get() const noexcept { return fd_; }
	bool isValid() const noexcept { return fd_ >= 0; }

private:
	int fd_ = -1;
};

} // namespace fr
