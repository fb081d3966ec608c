// SPDX-License-Identifier: AGPL-3.0-or-later
// The daemon's path resolution (guest/vpath.h): arbitrary bytes as a request
// path. What it accepts must never be able to leave a filesystem by name:
// `rest` is relative, made of valid names only (no "", ".", ".."), and the
// parse is canonical (rebuilding the path gives the input, modulo one
// trailing '/'). Checked against independent slow definitions.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "guest/vpath.h"
#include "shared/protocol.h"

namespace {

bool slowValidName(std::string_view name)
{
	if (name.empty() || name.size() > 255 || name == "." || name == "..")
		return false;
	for (char c : name)
		if (c == '/' || c == '\0')
			return false;
	return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string_view input(reinterpret_cast<const char *>(data), size);
	const fr::Result<fr::guest::VirtualPath> vp = fr::guest::parseVirtualPath(input);
	const bool pathOk = static_cast<bool>(fr::proto::checkPath(input));
	if (!pathOk && vp)
		std::abort(); // accepted a path the protocol forbids
	if (!vp)
		return 0;

	std::string rebuilt = "/";
	using Kind = fr::guest::VirtualPath::Kind;
	if (vp->kind != Kind::Root) {
		if (vp->disk >= fr::guest::kMaxDisks)
			std::abort();
		rebuilt += "disk" + std::to_string(vp->disk);
	}
	if (vp->kind == Kind::Partitions)
		rebuilt += "/part";
	if (vp->kind == Kind::Volume) {
		if (vp->bucket == fr::guest::Bucket::Part) {
			if (vp->partition == 0 || vp->partition > fr::guest::kMaxPartition)
				std::abort();
			rebuilt += "/part/" + std::to_string(vp->partition);
		} else {
			rebuilt += "/raw";
		}
		// rest: relative, valid names joined by single '/'.
		if (!vp->rest.empty()) {
			std::size_t start = 0;
			for (;;) {
				const std::size_t slash = vp->rest.find('/', start);
				const std::string_view name = std::string_view(vp->rest).substr(
					start, slash == std::string::npos ? std::string::npos : slash - start);
				if (!slowValidName(name))
					std::abort();
				if (slash == std::string::npos)
					break;
				start = slash + 1;
			}
			rebuilt += "/" + vp->rest;
		}
	} else if (!vp->rest.empty()) {
		std::abort();
	}
	std::string canonical(input);
	if (canonical.size() > 1 && canonical.back() == '/')
		canonical.pop_back();
	if (rebuilt != canonical)
		std::abort();
	return 0;
}
