// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The clocks of the C-style code (guest daemon, protocol, helper):
// milliseconds of CLOCK_MONOTONIC for deadlines and durations, of
// CLOCK_BOOTTIME for uptimes. Never fail, never allocate (usable between
// fork and exec).

#include <time.h>

#include <cstdint>

namespace fr {

inline std::int64_t monotonicMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Milliseconds since the kernel booted (CLOCK_BOOTTIME): the guest's
// uptime.
inline std::int64_t bootTimeMs() noexcept
{
	timespec ts{};
	::clock_gettime(CLOCK_BOOTTIME, &ts);
	return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// What is left of a wait of timeoutMs that started so as to end at
// `deadline` (a monotonicMs() value): -1 (no limit) when timeoutMs < 0,
// else 0.. the milliseconds left, for poll().
inline int msLeft(std::int64_t deadline, int timeoutMs) noexcept
{
	if (timeoutMs < 0)
		return -1;
	const std::int64_t left = deadline - monotonicMs();
	return left > 0 ? static_cast<int>(left) : 0;
}

} // namespace fr
