// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/listing.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "client/encoding.h"
#include "shared/display.h"

namespace fr::client {

nlohmann::json entryJson(const std::string &fullPath, const GuestEntry &entry)
{
	const bool isVirtual = entry.type == EntryType::Virtual;
	const bool isDir = entry.type == EntryType::Directory || isVirtual;
	nlohmann::json item = {
		{"filepath", base64Encode(fullPath)},
		{"text", escapeForDisplay(entry.name)},
		{"type", std::string(1, static_cast<char>(entry.type))},
		{"leaf", !isDir},
		// A virtual entry has a size only when it is a disk whose size is
		// known without a VM (a PBS archive, from its manifest).
		{"size", isVirtual && entry.size == 0 ? nlohmann::json(nullptr) : nlohmann::json(entry.size)},
		{"mtime", isVirtual ? nlohmann::json(nullptr) : nlohmann::json(entry.mtime)},
	};
	return item;
}

std::string modeText(std::uint32_t mode)
{
	std::string out = "rwxrwxrwx";
	for (int i = 0; i < 9; ++i)
		if ((mode & (0400U >> i)) == 0)
			out[static_cast<std::size_t>(i)] = '-';
	if ((mode & 04000U) != 0)
		out[2] = (mode & 0100U) != 0 ? 's' : 'S';
	if ((mode & 02000U) != 0)
		out[5] = (mode & 0010U) != 0 ? 's' : 'S';
	if ((mode & 01000U) != 0)
		out[8] = (mode & 0001U) != 0 ? 't' : 'T';
	return out;
}

std::string entryText(const GuestEntry &entry)
{
	char buf[96];
	if (entry.type == EntryType::Virtual) {
		const std::string size = entry.size != 0 ? std::to_string(entry.size) : "";
		std::snprintf(buf, sizeof(buf), "%c %9s %12s %16s ", static_cast<char>(entry.type), "",
			      size.c_str(), "");
	} else {
		const std::time_t when = static_cast<std::time_t>(entry.mtime);
		std::tm tm {};
		char date[32] = "?";
		if (::localtime_r(&when, &tm) != nullptr)
			std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M", &tm);
		std::snprintf(buf, sizeof(buf), "%c %s %12" PRIu64 " %16s ",
			      static_cast<char>(entry.type), modeText(entry.mode).c_str(), entry.size,
			      date);
	}
	std::string line = buf;
	line += escapeForDisplay(entry.name);
	if (entry.type == EntryType::Symlink && !entry.linkTarget.empty())
		line += " -> " + escapeForDisplay(entry.linkTarget);
	return line;
}

std::string durationText(std::uint64_t seconds)
{
	char buf[48];
	if (seconds >= 3600)
		std::snprintf(buf, sizeof(buf), "%" PRIu64 "h%02" PRIu64 "m", seconds / 3600,
			      seconds / 60 % 60);
	else if (seconds >= 60)
		std::snprintf(buf, sizeof(buf), "%" PRIu64 "m%02" PRIu64 "s", seconds / 60, seconds % 60);
	else
		std::snprintf(buf, sizeof(buf), "%" PRIu64 "s", seconds);
	return buf;
}

std::string dumpJson(const nlohmann::json &value, OutputFormat format)
{
	// Every string put into these documents is escaped for display or
	// base64, hence valid UTF-8; replace anyway rather than throw.
	const int indent = format == OutputFormat::JsonPretty ? 2 : -1;
	return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

} // namespace fr::client
