// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/extract_names.h"

#include <cerrno>
#include <charconv>

#include "shared/display.h"

namespace fr::client {

Result<std::vector<std::string>> memberComponents(std::string_view name)
{
	const std::string shown = escapeForDisplay(name.substr(0, 128));
	if (name.empty())
		return Error::invalid(EINVAL, "archive member", "", "empty name");
	if (name.size() > kMemberPathMax)
		return Error::invalid(ENAMETOOLONG, "archive member", shown, "longer than %zu bytes",
				      kMemberPathMax);
	if (name.find('\0') != std::string_view::npos)
		return Error::invalid(EINVAL, "archive member", shown, "holds a NUL byte");
	if (name.front() == '/')
		return Error::invalid(EINVAL, "archive member", shown, "absolute name");
	std::vector<std::string> components;
	std::size_t start = 0;
	while (start <= name.size()) {
		std::size_t end = name.find('/', start);
		if (end == std::string_view::npos)
			end = name.size();
		const std::string_view component = name.substr(start, end - start);
		start = end + 1;
		if (component.empty() || component == ".")
			continue;
		if (component == "..")
			return Error::invalid(EINVAL, "archive member", shown, "'..' component");
		if (component.size() > kMemberNameMax)
			return Error::invalid(ENAMETOOLONG, "archive member", shown,
					      "a component is longer than %zu bytes", kMemberNameMax);
		components.emplace_back(component);
	}
	return components;
}

Status checkSymlinkTarget(std::string_view target)
{
	if (target.empty() || target.size() >= kMemberPathMax)
		return Error::invalid(EINVAL, "symlink target", escapeForDisplay(target.substr(0, 128)),
				      "empty or longer than %zu bytes", kMemberPathMax - 1);
	if (target.find('\0') != std::string_view::npos)
		return Error::invalid(EINVAL, "symlink target", escapeForDisplay(target.substr(0, 128)),
				      "holds a NUL byte");
	return {};
}

bool parseStagingName(std::string_view name, StagingOwner &owner)
{
	if (name.substr(0, kStagingPrefix.size()) != kStagingPrefix)
		return false;
	std::string_view rest = name.substr(kStagingPrefix.size());
	const char *p = rest.data();
	const char *end = rest.data() + rest.size();
	auto [afterPid, ec1] = std::from_chars(p, end, owner.pid);
	if (ec1 != std::errc() || afterPid == end || *afterPid != '-' || owner.pid < 1)
		return false;
	auto [afterStart, ec2] = std::from_chars(afterPid + 1, end, owner.startTime);
	if (ec2 != std::errc() || afterStart == end || *afterStart != '-')
		return false;
	return afterStart + 1 != end;
}

} // namespace fr::client
