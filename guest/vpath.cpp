// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/vpath.h"

#include <cerrno>
#include <vector>

#include "shared/guest_abi.h"
#include "shared/protocol.h"

namespace fr::guest {

namespace {

// Plain decimal, no sign, no leading zero, value <= max.
bool parseNumber(std::string_view text, std::uint32_t max, std::uint32_t &value) noexcept
{
	if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0'))
		return false;
	std::uint64_t v = 0;
	for (char c : text) {
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + static_cast<std::uint64_t>(c - '0');
	}
	if (v > max)
		return false;
	value = static_cast<std::uint32_t>(v);
	return true;
}

Error notInTree(std::string_view path)
{
	return Error::invalid(ENOENT, "path", path.substr(0, 64), "no such entry in the VM's tree");
}

} // namespace

Result<VirtualPath> parseVirtualPath(std::string_view path)
{
	if (Status ok = proto::checkPath(path); !ok)
		return ok.error();
	std::vector<std::string_view> parts;
	for (std::size_t start = 1; start < path.size();) {
		std::size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		parts.push_back(path.substr(start, end - start));
		start = end + 1;
	}

	VirtualPath vp;
	if (parts.empty())
		return vp; // "/"
	vp.lastName = std::string(parts.back());

	const std::string_view diskPrefix = abi::kDiskDirPrefix;
	if (parts[0].substr(0, diskPrefix.size()) != diskPrefix ||
	    !parseNumber(parts[0].substr(diskPrefix.size()), kMaxDisks - 1, vp.disk))
		return notInTree(path);
	vp.kind = VirtualPath::Kind::Disk;
	if (parts.size() == 1)
		return vp;

	std::size_t restFrom;
	if (parts[1] == kBucketPart) {
		vp.bucket = Bucket::Part;
		vp.kind = VirtualPath::Kind::Partitions;
		if (parts.size() == 2)
			return vp;
		if (!parseNumber(parts[2], kMaxPartition, vp.partition) || vp.partition == 0)
			return notInTree(path);
		restFrom = 3;
	} else if (parts[1] == kBucketRaw) {
		vp.bucket = Bucket::Raw;
		restFrom = 2;
	} else {
		return notInTree(path);
	}
	vp.kind = VirtualPath::Kind::Volume;
	for (std::size_t i = restFrom; i < parts.size(); ++i) {
		if (!vp.rest.empty())
			vp.rest += '/';
		vp.rest.append(parts[i]);
	}
	return vp;
}

} // namespace fr::guest
