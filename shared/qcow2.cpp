// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/qcow2.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace fr {

namespace {

// Header fields (big-endian), offsets from docs/interop/qcow2.txt.
constexpr std::size_t kV2HeaderLength = 72;
constexpr std::size_t kV3MinHeaderLength = 104;
constexpr std::uint64_t kIncompatDirty = 1U << 0;
constexpr std::uint64_t kIncompatCorrupt = 1U << 1;
constexpr std::uint64_t kIncompatDataFile = 1U << 2;
constexpr std::uint64_t kIncompatCompression = 1U << 3;
constexpr std::uint64_t kIncompatExtendedL2 = 1U << 4;
constexpr std::uint64_t kIncompatKnown = kIncompatDirty | kIncompatCorrupt | kIncompatDataFile |
					 kIncompatCompression | kIncompatExtendedL2;
constexpr std::uint32_t kExtEnd = 0;
constexpr std::uint32_t kExtDataFile = 0x44415441;

std::uint64_t be(std::string_view bytes, std::size_t at, std::size_t width) noexcept
{
	std::uint64_t value = 0;
	for (std::size_t i = 0; i < width; ++i)
		value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
	return value;
}

Error refuse(int errnum, std::string_view what, const char *why) noexcept
{
	return Error::invalid(errnum, "qcow2", what, "%s", why);
}

} // namespace

Status checkQcow2Header(std::string_view area, std::string_view what) noexcept
{
	if (area.size() < kV2HeaderLength || area.substr(0, 4) != std::string_view("QFI\xfb", 4))
		return refuse(EINVAL, what, "not a qcow2 image (bad magic or too short)");
	const std::uint64_t version = be(area, 4, 4);
	if (version != 2 && version != 3)
		return refuse(EINVAL, what, "unsupported qcow2 version");
	const std::uint64_t clusterBits = be(area, 20, 4);
	if (clusterBits < 9 || clusterBits > 21)
		return refuse(EINVAL, what, "invalid cluster size");
	if (be(area, 8, 8) != 0 || be(area, 16, 4) != 0)
		return refuse(EPERM, what, "has a backing file (refused: it would be opened by name)");
	if (be(area, 32, 4) != 0)
		return refuse(EPERM, what, "is encrypted");
	std::size_t headerLength = kV2HeaderLength;
	if (version == 3) {
		if (area.size() < kV3MinHeaderLength)
			return refuse(EINVAL, what, "truncated qcow2 v3 header");
		const std::uint64_t incompatible = be(area, 72, 8);
		if ((incompatible & kIncompatDataFile) != 0)
			return refuse(EPERM, what, "uses an external data file (refused)");
		if ((incompatible & ~kIncompatKnown) != 0)
			return refuse(EPERM, what, "has unknown incompatible feature bits");
		headerLength = be(area, 100, 4);
		if (headerLength < kV3MinHeaderLength || headerLength % 8 != 0)
			return refuse(EINVAL, what, "invalid header length");
	}
	// Header extensions: type, length, data padded to 8 bytes, until the end
	// marker. They must end inside the first cluster and inside what we read.
	const std::uint64_t cluster = std::uint64_t{1} << clusterBits;
	std::uint64_t at = headerLength;
	for (;;) {
		if (at + 8 > area.size() || at + 8 > cluster)
			return refuse(EINVAL, what, "header extensions run past the first cluster");
		const std::uint64_t type = be(area, static_cast<std::size_t>(at), 4);
		const std::uint64_t length = be(area, static_cast<std::size_t>(at) + 4, 4);
		if (type == kExtEnd)
			return {};
		if (type == kExtDataFile)
			return refuse(EPERM, what, "names an external data file (refused)");
		at += 8 + ((length + 7) & ~std::uint64_t{7});
	}
}

Status checkQcow2File(int fd, std::string_view what) noexcept
{
	// A plain buffer would not fit the stack; an anonymous mapping allocates
	// nothing from the heap and is released at once.
	void *map = ::mmap(nullptr, kQcow2MaxHeaderArea, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return Error(errno, "mmap", what);
	char *buf = static_cast<char *>(map);
	std::size_t got = 0;
	Status status;
	while (got < kQcow2MaxHeaderArea) {
		const ssize_t n = ::pread(fd, buf + got, kQcow2MaxHeaderArea - got,
					  static_cast<off_t>(got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			status = Error(errno, "pread", what);
			break;
		}
		if (n == 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	if (status)
		status = checkQcow2Header(std::string_view(buf, got), what);
	::munmap(map, kQcow2MaxHeaderArea);
	return status;
}

} // namespace fr
