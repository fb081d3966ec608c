// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Small helpers for the PBS tests.

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "client/pbs/crypto.h"

namespace fr::pbs::test {

// A private temporary directory, removed with everything in it.
class TempDir {
public:
	TempDir()
	{
		char tmpl[] = "/tmp/fr-pbs-test-XXXXXX";
		const char *made = ::mkdtemp(tmpl);
		EXPECT_NE(made, nullptr);
		path_ = made != nullptr ? made : "/nonexistent";
	}
	~TempDir()
	{
		::nftw(
			path_.c_str(),
			[](const char *p, const struct stat *, int, struct FTW *) { return ::remove(p); },
			16, FTW_DEPTH | FTW_PHYS);
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	const std::string &path() const { return path_; }
	std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

// Deterministic, partly compressible test data: `size` bytes, seeded.
inline Bytes patternBytes(std::size_t size, std::uint32_t seed)
{
	Bytes out(size);
	std::uint32_t x = seed * 2654435761u + 1;
	for (std::size_t i = 0; i < size; ++i) {
		if ((i / 4096) % 3 == 0) {
			out[i] = static_cast<std::uint8_t>(i * 7 + seed); // compressible runs
		} else {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			out[i] = static_cast<std::uint8_t>(x);
		}
	}
	return out;
}

} // namespace fr::pbs::test
