// SPDX-License-Identifier: AGPL-3.0-or-later
#include "client/listing.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <exception>

#include "client/encoding.h"
#include "client/output.h"
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
	};
	// As proxmox-file-restore's ArchiveEntry: a key that does not apply
	// is left out (never null). Sizes: files, archives and volumes (a
	// virtual entry without one has size 0); mtimes: whatever has one
	// (upstream gives them for files only; more is our addition).
	const bool hasSize = entry.type == EntryType::File || entry.volume || (isVirtual && entry.size > 0);
	if (hasSize)
		item["size"] = entry.size;
	if (!isVirtual && !entry.volume)
		item["mtime"] = entry.mtime;
	// Only when there is something to say: the shape stays
	// proxmox-file-restore's otherwise.
	if (!entry.reason.empty())
		item["reason"] = escapeForDisplay(entry.reason);
	if (!entry.warning.empty())
		item["warning"] = escapeForDisplay(entry.warning);
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
		(void)std::snprintf(buf, sizeof(buf), "%c %9s %12s %16s ", static_cast<char>(entry.type),
				    "", size.c_str(), "");
	} else {
		const std::time_t when = static_cast<std::time_t>(entry.mtime);
		std::tm tm {};
		char date[32] = "?";
		if (::localtime_r(&when, &tm) != nullptr)
			(void)std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M", &tm);
		(void)std::snprintf(buf, sizeof(buf), "%c %s %12" PRIu64 " %16s ",
			      static_cast<char>(entry.type), modeText(entry.mode).c_str(), entry.size,
			      date);
	}
	std::string line = buf;
	line += escapeForDisplay(entry.name);
	if (entry.type == EntryType::Symlink && !entry.linkTarget.empty())
		line += " -> " + escapeForDisplay(entry.linkTarget);
	if (!entry.reason.empty())
		line += "  [" + escapeForDisplay(entry.reason) + "]";
	return line;
}

std::string durationText(std::uint64_t seconds)
{
	char buf[48];
	if (seconds >= 3600)
		(void)std::snprintf(buf, sizeof(buf), "%" PRIu64 "h%02" PRIu64 "m", seconds / 3600,
			      seconds / 60 % 60);
	else if (seconds >= 60)
		(void)std::snprintf(buf, sizeof(buf), "%" PRIu64 "m%02" PRIu64 "s", seconds / 60, seconds % 60);
	else
		(void)std::snprintf(buf, sizeof(buf), "%" PRIu64 "s", seconds);
	return buf;
}

std::string dumpJson(const nlohmann::json &value, OutputFormat format)
{
	// Every string put into these documents is escaped for display or
	// base64, hence valid UTF-8; replace anyway rather than throw.
	const int indent = format == OutputFormat::JsonPretty ? 2 : -1;
	return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// --- ListingPrinter --------------------------------------------------------------

namespace {

// list: output goes out in writes of about this size.
constexpr std::size_t kListFlush = std::size_t{64} << 10;

} // namespace

ListingPrinter::ListingPrinter(OutputFormat format, std::string directory)
	: format_(format), directory_(std::move(directory))
{
}

Status ListingPrinter::add(const GuestEntry &entry) noexcept
{
	if (entry.name.empty() || entry.name.find('/') != std::string::npos || entry.name == "." ||
	    entry.name == "..")
		return Error::invalid(EPROTO, "list", escapeForDisplay(entry.name),
				      "the guest sent an invalid entry name");
	try {
		if (Status ok = append(entry); !ok)
			return ok;
	} catch (const std::exception &e) { // the JSON library's, or bad_alloc
		return Error::invalid(EIO, "list", "output", "%s", e.what());
	}
	return pending_.size() >= kListFlush ? flush() : Status{};
}

Status ListingPrinter::append(const GuestEntry &entry)
{
	++count_;
	if (format_ == OutputFormat::Text) {
		pending_ += entryText(entry);
		pending_ += '\n';
		return {};
	}
	std::string full = directory_;
	if (full != "/")
		full += '/';
	full += entry.name;
	std::string item = dumpJson(entryJson(full, entry), format_);
	item.pop_back(); // dumpJson's newline
	const bool pretty = format_ == OutputFormat::JsonPretty;
	if (pretty) {
		// As nlohmann's own indentation of an array's elements.
		std::string indented;
		for (char c : item) {
			indented += c;
			if (c == '\n')
				indented += "  ";
		}
		item = std::move(indented);
	}
	pending_ += count_ == 1 ? (pretty ? "[\n  " : "[") : (pretty ? ",\n  " : ",");
	pending_ += item;
	return {};
}

Status ListingPrinter::finish() noexcept
{
	if (format_ != OutputFormat::Text)
		pending_ += count_ == 0 ? "[]\n" : (format_ == OutputFormat::JsonPretty ? "\n]\n" : "]\n");
	return flush();
}

Status ListingPrinter::flush() noexcept
{
	if (pending_.empty())
		return {};
	started_ = true;
	Status written = writeStdout(pending_);
	pending_.clear();
	return written;
}

} // namespace fr::client
