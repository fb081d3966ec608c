// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Small helpers for the client's unit tests.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "client/safe_writer.h"

namespace fr::client::test {

// A private temporary directory, removed with everything in it.
class TempDir {
public:
	TempDir()
	{
		char tmpl[] = "/tmp/fr-client-test-XXXXXX";
		const char *made = ::mkdtemp(tmpl);
		EXPECT_NE(made, nullptr);
		path_ = made != nullptr ? made : "/nonexistent";
	}
	~TempDir()
	{
		const std::size_t slash = path_.rfind('/');
		const int parent = ::open(path_.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY);
		(void)removeTree(parent, path_.substr(slash + 1));
		::close(parent);
	}
	const std::string &path() const { return path_; }
	std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

inline void writeFile(const std::string &path, const std::string &content, mode_t mode = 0644)
{
	const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ASSERT_GE(fd, 0) << path;
	ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
	::close(fd);
}

inline std::string readFile(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline bool exists(const std::string &path)
{
	struct stat st {};
	return ::lstat(path.c_str(), &st) == 0;
}

inline mode_t modeOf(const std::string &path)
{
	struct stat st {};
	EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
	return st.st_mode;
}

} // namespace fr::client::test
