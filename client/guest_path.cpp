// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/guest_path.h"

#include <cerrno>
#include <cctype>

#include "shared/display.h"
#include "shared/guest_abi.h"

namespace fr::client {

Result<std::vector<std::string>> splitUserPath(std::string_view path)
{
	if (path.size() > kUserPathMax)
		return Error::invalid(ENAMETOOLONG, "path", escapeForDisplay(path.substr(0, 64)),
				      "longer than %zu bytes", kUserPathMax);
	if (path.find('\0') != std::string_view::npos)
		return Error::invalid(EINVAL, "path", escapeForDisplay(path), "holds a NUL byte");
	std::vector<std::string> components;
	std::size_t start = 0;
	while (start <= path.size()) {
		std::size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		const std::string_view component = path.substr(start, end - start);
		start = end + 1;
		if (component.empty() || component == ".")
			continue;
		// Refused rather than resolved: the guest refuses it too, and
		// silently climbing out of an archive would address another one.
		if (component == "..")
			return Error::invalid(EINVAL, "path", escapeForDisplay(path),
					      "'..' is not allowed");
		if (component.size() > kNameMax)
			return Error::invalid(ENAMETOOLONG, "path", escapeForDisplay(path.substr(0, 64)),
					      "a component is longer than %zu bytes", kNameMax);
		components.emplace_back(component);
	}
	return components;
}

std::string joinPath(const std::vector<std::string> &components)
{
	std::string out;
	for (const std::string &component : components) {
		out += '/';
		out += component;
	}
	return out.empty() ? std::string("/") : out;
}

bool isVolumeTree(std::string_view name) noexcept
{
	for (std::string_view tree : kVolumeTrees)
		if (name == tree)
			return true;
	return false;
}

std::string guestDiskPath(std::size_t index)
{
	return std::string("/") + abi::kDiskDirPrefix + std::to_string(index);
}

std::string toUserTerms(std::string_view text, const GuestTarget &target)
{
	if (target.isRoot || target.isVolumeTree)
		return std::string(text);
	const std::string disk = guestDiskPath(target.disk);
	const std::string archive = escapeForDisplay(target.userPath.substr(0, target.userPath.find('/', 1)));
	const auto partOfName = [](char c) {
		return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '/' || c == '.' || c == '-' || c == '_';
	};
	std::string out;
	std::size_t from = 0;
	for (std::size_t at = text.find(disk); at != std::string_view::npos; at = text.find(disk, at + 1)) {
		const std::size_t end = at + disk.size();
		// "/disk1" is no part of "/disk12" or "/dev/disk1".
		if ((at > 0 && partOfName(text[at - 1])) ||
		    (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])) != 0))
			continue;
		out.append(text.substr(from, at - from));
		out += archive;
		from = end;
	}
	out.append(text.substr(from));
	return out;
}

Result<GuestTarget> mapToGuest(const std::vector<Archive> &archives, std::string_view userPath)
{
	Result<std::vector<std::string>> split = splitUserPath(userPath);
	if (!split)
		return split.error();
	const std::vector<std::string> &components = *split;
	GuestTarget target;
	target.userPath = joinPath(components);
	if (components.empty()) {
		target.isRoot = true;
		target.guestPath = "/";
		return target;
	}
	std::size_t index = archives.size();
	for (std::size_t i = 0; i < archives.size(); ++i)
		if (archives[i].name == components.front()) {
			index = i;
			break;
		}
	if (index == archives.size() && isVolumeTree(components.front())) {
		// The guest names these the same: "/lvm/<vg>/<lv>/...".
		target.isVolumeTree = true;
		target.guestPath = target.userPath;
		target.baseName = components.back();
		return target;
	}
	if (index == archives.size())
		return Error::invalid(ENOENT, "path", escapeForDisplay(target.userPath),
				      "no archive named '%s' here (see the listing of '/')",
				      escapeForDisplay(components.front()).substr(0, 120).c_str());
	target.disk = index;
	target.guestPath = guestDiskPath(index);
	for (std::size_t i = 1; i < components.size(); ++i) {
		target.guestPath += '/';
		target.guestPath += components[i];
	}
	target.baseName = components.back();
	return target;
}

} // namespace fr::client
