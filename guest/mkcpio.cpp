// SPDX-License-Identifier: AGPL-3.0-or-later
// Build-time tool: writes a reproducible newc cpio archive (shared/cpio.h) to
// stdout from a list on stdin, one entry a line:
//   dir <path> <mode>
//   file <path> <mode> <source file>
//   nod <path> <mode> c <major> <minor>
//   slink <path> <mode> <target>
// Paths are relative; modes octal. A device node needs no privilege here,
// unlike with cpio(1) over a staging directory.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "shared/cpio.h"

namespace {

// One line of the list: "<kind> <path> <mode> [...]". Returns 0, or the
// exit code after a message on stderr.
int parseLine(const std::string &line, int number, fr::CpioEntry &entry)
{
	std::istringstream in(line);
	std::string kind, path, mode;
	in >> kind >> path >> mode;
	entry.path = path;
	char *end = nullptr;
	entry.mode = static_cast<std::uint32_t>(std::strtoul(mode.c_str(), &end, 8));
	if (path.empty() || path[0] == '/' || mode.empty() || *end != '\0') {
		(void)std::fprintf(stderr, "mkcpio: line %d: bad path or mode\n", number);
		return 2;
	}
	if (kind == "dir") {
		entry.type = fr::CpioEntry::Type::Directory;
	} else if (kind == "file") {
		std::string source;
		in >> source;
		std::ifstream file(source, std::ios::binary);
		if (!file) {
			(void)std::fprintf(stderr, "mkcpio: line %d: cannot read %s\n", number, source.c_str());
			return 1;
		}
		entry.data.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
	} else if (kind == "slink") {
		in >> entry.data;
		if (entry.data.empty()) {
			(void)std::fprintf(stderr, "mkcpio: line %d: a symlink needs a target\n", number);
			return 2;
		}
		entry.type = fr::CpioEntry::Type::Symlink;
	} else if (kind == "nod") {
		std::string c;
		in >> c >> entry.rdevMajor >> entry.rdevMinor;
		if (c != "c" || !in) {
			(void)std::fprintf(stderr, "mkcpio: line %d: only 'c <major> <minor>' nodes\n", number);
			return 2;
		}
		entry.type = fr::CpioEntry::Type::CharDevice;
	} else {
		(void)std::fprintf(stderr, "mkcpio: line %d: unknown kind %s\n", number, kind.c_str());
		return 2;
	}
	return 0;
}

} // namespace

int main()
{
	std::vector<fr::CpioEntry> entries;
	std::string line;
	int number = 0;
	while (std::getline(std::cin, line)) {
		++number;
		if (line.empty())
			continue;
		fr::CpioEntry entry;
		if (const int failed = parseLine(line, number, entry); failed != 0)
			return failed;
		entries.push_back(std::move(entry));
	}
	const std::vector<std::uint8_t> archive = fr::writeNewc(std::move(entries));
	std::size_t done = 0;
	while (done < archive.size()) {
		const ssize_t n = ::write(1, archive.data() + done, archive.size() - done);
		if (n <= 0) {
			std::perror("mkcpio: write");
			return 1;
		}
		done += static_cast<std::size_t>(n);
	}
	return 0;
}
