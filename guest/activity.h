// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The idle timer. Requests touch it; a running list or extract holds it off
// (Hold); a status request with "keep timeout" only reads it. The main loop
// powers the VM off once expired() or after requestStop().

#include <atomic>
#include <cstdint>

#include "shared/clock.h"

namespace fr::guest {

class Activity {
public:
	explicit Activity(std::uint32_t timeoutS) noexcept : timeoutS_(timeoutS), last_(monotonicMs()) {}

	void touch() noexcept { last_ = monotonicMs(); }

	// Holds the timer off while alive; touches it at both ends.
	class Hold {
	public:
		explicit Hold(Activity &activity) noexcept : activity_(activity)
		{
			++activity_.active_;
			activity_.touch();
		}
		~Hold()
		{
			activity_.touch();
			--activity_.active_;
		}
		Hold(const Hold &) = delete;
		Hold &operator=(const Hold &) = delete;

	private:
		Activity &activity_;
	};

	std::uint32_t timeoutS() const noexcept { return timeoutS_; }
	std::uint32_t active() const noexcept { return active_; }

	std::uint64_t idleLeftMs() const noexcept
	{
		const std::uint64_t timeout = std::uint64_t{timeoutS_} * 1000;
		if (active_ > 0)
			return timeout;
		const std::int64_t idle = monotonicMs() - last_;
		return idle >= static_cast<std::int64_t>(timeout) ? 0 : timeout - static_cast<std::uint64_t>(idle);
	}
	bool expired() const noexcept { return idleLeftMs() == 0; }

	void requestStop() noexcept { stop_ = true; }
	bool stopRequested() const noexcept { return stop_; }

private:
	const std::uint32_t timeoutS_;
	std::atomic<std::int64_t> last_;
	std::atomic<std::uint32_t> active_{0};
	std::atomic<bool> stop_{false};
};

} // namespace fr::guest
