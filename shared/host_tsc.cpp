// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/host_tsc.h"

#include <time.h>

#include <cstdio>
#include <string_view>

#include "shared/validate.h"

namespace fr {

std::optional<std::uint64_t> hostTscKhz()
{
	static const std::optional<std::uint64_t> khz = measureHostTscKhz();
	return khz;
}

std::optional<std::uint64_t> measureHostTscKhz()
{
#if defined(__x86_64__)
	if (FILE *f = std::fopen("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "re")) {
		char text[32] = {};
		const std::size_t n = std::fread(text, 1, sizeof(text) - 1, f);
		(void)std::fclose(f);
		std::string_view digits(text, n);
		while (!digits.empty() && digits.back() == '\n')
			digits.remove_suffix(1);
		const Result<std::uint64_t> khz = parseDecimal(digits, 100001, UINT64_MAX, "tsc_freq_khz");
		if (khz)
			return *khz;
	}
	const auto rdtsc = []() -> std::uint64_t {
		unsigned lo, hi;
		asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
		return (std::uint64_t{hi} << 32) | lo;
	};
	const auto nanos = []() -> std::uint64_t {
		timespec ts{};
		::clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
		return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
		       static_cast<std::uint64_t>(ts.tv_nsec);
	};
	// Bracket each clock read between two TSC reads and keep the tightest
	// of a few tries at both ends: a preemption inflates one sample only.
	const auto sample = [&](std::uint64_t &tsc, std::uint64_t &ns) {
		std::uint64_t best = UINT64_MAX;
		for (int i = 0; i < 5; ++i) {
			const std::uint64_t before = rdtsc();
			const std::uint64_t t = nanos();
			const std::uint64_t after = rdtsc();
			if (after - before < best) {
				best = after - before;
				tsc = before + (after - before) / 2;
				ns = t;
			}
		}
	};
	std::uint64_t tsc0 = 0, ns0 = 0, tsc1 = 0, ns1 = 0;
	sample(tsc0, ns0);
	const timespec wait{0, 20L * 1000 * 1000};
	::nanosleep(&wait, nullptr);
	sample(tsc1, ns1);
	if (ns1 <= ns0 || tsc1 <= tsc0)
		return std::nullopt;
	const std::uint64_t khz = (tsc1 - tsc0) * 1000000ULL / (ns1 - ns0);
	// Implausible results (a TSC that stops or jumps) are better left to
	// the guest's own calibration.
	if (khz < 100000 || khz > 10000000)
		return std::nullopt;
	return khz;
#else
	return std::nullopt;
#endif
}

} // namespace fr
