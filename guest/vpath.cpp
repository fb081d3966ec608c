// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/vpath.h"

#include <cerrno>

#include "shared/protocol.h"

namespace fr::guest {

bool parseVirtualNumber(std::string_view text, std::uint32_t max, std::uint32_t &value) noexcept
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

Result<VirtualPath> splitVirtualPath(std::string_view path)
{
	if (Status ok = proto::checkPath(path); !ok)
		return ok.error();
	VirtualPath vp;
	for (std::size_t start = 1; start < path.size();) {
		std::size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		vp.components.push_back(path.substr(start, end - start));
		start = end + 1;
	}
	if (!vp.components.empty())
		vp.lastName = std::string(vp.components.back());
	return vp;
}

std::string joinComponents(const std::vector<std::string_view> &components, std::size_t from)
{
	std::string out;
	for (std::size_t i = from; i < components.size(); ++i) {
		if (!out.empty())
			out += '/';
		out.append(components[i]);
	}
	return out;
}

} // namespace fr::guest
