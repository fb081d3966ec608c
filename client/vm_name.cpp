// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/vm_name.h"

#include "client/encoding.h"
#include "shared/unit_name.h"
#include "shared/validate.h"

namespace fr::client {

namespace {

constexpr std::size_t kHashDigits = 32;

} // namespace

std::string shortenVmName(std::string escaped)
{
	if (escaped.size() <= kVmNameMax)
		return escaped;
	const std::string hash = sha256Hex(escaped).substr(0, kHashDigits);
	std::size_t keep = kVmNameMax - 1 - kHashDigits;
	// An escape is "\xhh" (4 bytes): if one starts in the last three kept
	// bytes, cut before it.
	for (std::size_t back = 1; back <= 3 && back <= keep; ++back)
		if (escaped[keep - back] == '\\') {
			keep -= back;
			break;
		}
	escaped.resize(keep);
	escaped += '_';
	escaped += hash;
	return escaped;
}

std::string snapshotVmName(std::string_view repository, std::string_view snapshot)
{
	std::string text = "qemu_";
	text += repository;
	text += '/';
	text += snapshot;
	return shortenVmName(escapeUnitName(text));
}

std::string imageVmName(const std::vector<std::string> &canonicalPaths)
{
	std::string text = "qemu_image/";
	for (std::size_t i = 0; i < canonicalPaths.size(); ++i) {
		if (i > 0)
			text += "//";
		std::string_view path = canonicalPaths[i];
		while (!path.empty() && path.front() == '/')
			path.remove_prefix(1);
		text += path;
	}
	return shortenVmName(escapeUnitName(text));
}

std::string vmFileStem(std::string_view vmName)
{
	return "vm-" + sha256Hex(vmName).substr(0, 16);
}

} // namespace fr::client
