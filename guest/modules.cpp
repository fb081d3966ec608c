// SPDX-License-Identifier: AGPL-3.0-or-later
#include "guest/modules.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <zstd.h>

#include <cerrno>

#include "guest/activity.h"
#include "shared/fd_io.h"
#include "shared/log.h"
#include "shared/unique_fd.h"
#include "shared/validate.h"

namespace fr::guest {

namespace {

constexpr CharSet kModuleChars{true, "_.-"};

bool endsWith(std::string_view s, std::string_view suffix)
{
	return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string normalise(std::string_view name)
{
	std::string out(name);
	for (char &c : out)
		if (c == '-')
			c = '_';
	return out;
}

} // namespace

Result<std::vector<ModuleLine>> parseModuleManifest(std::string_view text)
{
	std::vector<ModuleLine> lines;
	std::size_t number = 0;
	while (!text.empty()) {
		++number;
		const std::size_t nl = text.find('\n');
		const std::string_view line = text.substr(0, nl);
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
		if (line.empty())
			continue;
		const std::size_t space = line.find(' ');
		if (space == std::string_view::npos)
			return Error::invalid(EINVAL, "module manifest", line.substr(0, 64),
					      "line %zu: expected '<group> <file>'", number);
		const std::string_view group = line.substr(0, space);
		const std::string_view file = line.substr(space + 1);
		if (!checkChars(group, kModuleChars, 64, "group") || !checkChars(file, kModuleChars, 128, "file") ||
		    !(endsWith(file, ".ko") || endsWith(file, ".ko.zst")))
			return Error::invalid(EINVAL, "module manifest", line.substr(0, 64),
					      "line %zu: bad group or file name", number);
		lines.push_back(ModuleLine{std::string(group), std::string(file)});
	}
	return lines;
}

namespace {

// A .ko.zst read and decompressed in memory (no CONFIG_MODULE_DECOMPRESS in
// Debian's kernel, so finit_module cannot take it).
Result<std::vector<std::uint8_t>> readCompressedModule(int fd, const std::string &path)
{
	const Result<std::string> read = readAll(fd, std::size_t{64} << 20, path);
	if (!read)
		return read.error();
	const std::string &packed = *read;
	const unsigned long long size = ZSTD_getFrameContentSize(packed.data(), packed.size());
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (256ULL << 20))
		return Error::invalid(EINVAL, "zstd", path, "no usable content size in the frame");
	std::vector<std::uint8_t> plain(static_cast<std::size_t>(size));
	const std::size_t got = ZSTD_decompress(plain.data(), plain.size(), packed.data(), packed.size());
	if (ZSTD_isError(got) || got != plain.size())
		return Error::invalid(EINVAL, "zstd", path, "%s",
				      ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
	return plain;
}

} // namespace

std::string moduleNameOf(std::string_view file)
{
	if (endsWith(file, ".ko.zst"))
		file.remove_suffix(7);
	else if (endsWith(file, ".ko"))
		file.remove_suffix(3);
	return normalise(file);
}

std::string moduleParams(std::string_view cmdline, std::string_view module)
{
	const std::string wanted = normalise(module) + ".";
	std::string params;
	std::size_t i = 0;
	while (i < cmdline.size()) {
		while (i < cmdline.size() && (cmdline[i] == ' ' || cmdline[i] == '\n' || cmdline[i] == '\t'))
			++i;
		const std::size_t start = i;
		bool quoted = false;
		while (i < cmdline.size() && (quoted || (cmdline[i] != ' ' && cmdline[i] != '\n' && cmdline[i] != '\t'))) {
			if (cmdline[i] == '"')
				quoted = !quoted;
			++i;
		}
		const std::string_view token = cmdline.substr(start, i - start);
		if (token.size() <= wanted.size())
			continue;
		const std::size_t dot = token.find('.');
		if (dot == std::string_view::npos || normalise(token.substr(0, dot + 1)) != wanted)
			continue;
		if (!params.empty())
			params += ' ';
		params.append(token.substr(dot + 1));
	}
	return params;
}

Status ModuleLoader::init()
{
	const Result<std::string> text = readFile(dir_ + "/order", std::size_t{1} << 20);
	if (!text)
		return text.error().errnum() == ENOENT ? Status{} : Status(text.error());
	Result<std::vector<ModuleLine>> lines = parseModuleManifest(*text);
	if (!lines)
		return lines.error();
	lines_ = std::move(*lines);
	return {};
}

Status ModuleLoader::loadFile(const std::string &file)
{
	const std::string name = moduleNameOf(file);
	if (loaded_.count(name) != 0)
		return {};
	const std::string path = dir_ + "/" + file;
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd.isValid())
		return Error(errno, "open", path);
	const std::string params = moduleParams(cmdline_, name);
	if (endsWith(file, ".ko.zst")) {
		Result<std::vector<std::uint8_t>> image = readCompressedModule(fd.get(), path);
		if (!image)
			return image.error();
		for (;;) {
			if (::syscall(SYS_init_module, image->data(), image->size(), params.c_str()) == 0 ||
			    errno == EEXIST)
				break;
			if (errno == EINTR)
				continue;
			return Error(errno, "init_module", file);
		}
		loaded_.insert(name);
		return {};
	}
	for (;;) {
		if (::syscall(SYS_finit_module, fd.get(), params.c_str(), 0) == 0 || errno == EEXIST)
			break;
		if (errno == EINTR)
			continue;
		return Error(errno, "finit_module", file);
	}
	loaded_.insert(name);
	return {};
}

Status ModuleLoader::loadGroup(std::string_view group)
{
	std::lock_guard lock(mutex_);
	const std::string key(group);
	if (groupsDone_.count(key) != 0)
		return {};
	const std::int64_t start = monotonicMs();
	std::vector<const ModuleLine *> members;
	for (const ModuleLine &line : lines_)
		if (line.group == group)
			members.push_back(&line);
	for (std::size_t i = 0; i < members.size(); ++i) {
		Status ok = loadFile(members[i]->file);
		if (ok)
			continue;
		// An optional helper (crc32c-intel without SSE4.2 under TCG is
		// ENODEV) may fail; the module the group exists for may not.
		if (i + 1 == members.size())
			return ok.error();
		logError(ok.error(), LogLevel::Info);
	}
	groupsDone_.insert(key);
	if (!members.empty())
		logf(LogLevel::Info, "modules %s: %zu loaded in %lld ms", key.c_str(), members.size(),
		     static_cast<long long>(monotonicMs() - start));
	return {};
}

} // namespace fr::guest
