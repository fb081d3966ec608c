// SPDX-License-Identifier: AGPL-3.0-or-later
#include "shared/helper_contract.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "shared/guest_abi.h"
#include "shared/policy.h"
#include "shared/unique_fd.h"
#include "shared/validate.h"

namespace fr::contract {

namespace {

constexpr const char *kFormatNames[] = {"raw", "qcow2", "vmdk", "vdi", "vhdx", "nbd"};

Error usage(const char *what, std::string_view value, const char *why)
{
	return Error::invalid(EINVAL, what, value.substr(0, 64), "%s", why);
}

Result<std::uint32_t> number(std::string_view text, std::uint64_t min, std::uint64_t max,
			     const char *what)
{
	Result<std::uint64_t> n = parseDecimal(text, min, max, what);
	if (!n)
		return n.error();
	return static_cast<std::uint32_t>(*n);
}

Status parseImage(StartRequest &r, std::string_view text)
{
	if (r.images.size() == kMaxImages)
		return Error::invalid(E2BIG, "--image", "", "more than %zu images", kMaxImages);
	const std::size_t colon = text.find(':');
	if (colon == std::string_view::npos)
		return usage("--image", text, "expected FORMAT:PATH or nbd:FD");
	const std::optional<ImageFormat> format = parseFormatName(text.substr(0, colon));
	if (!format)
		return usage("--image", text, "format must be raw, qcow2, vmdk, vdi, vhdx or nbd");
	ImageArg image;
	image.format = *format;
	const std::string_view rest = text.substr(colon + 1);
	if (*format == ImageFormat::Nbd) {
		Result<std::uint32_t> fd = number(rest, 3, kMaxFd, "--image");
		if (!fd)
			return fd.error();
		image.fd = static_cast<int>(*fd);
	} else {
		// Any byte but control characters: the path is only ever opened
		// by the helper, never written into QEMU's command line.
		if (Status ok = checkAbsolutePath(rest, "--image"); !ok)
			return ok;
		image.path = std::string(rest);
	}
	r.images.push_back(std::move(image));
	return {};
}

void put(std::vector<std::string> &argv, const char *flag, std::string value)
{
	argv.emplace_back(flag);
	argv.push_back(std::move(value));
}

// The option table: each row parses its value into a StartRequest and
// formats it back. parseHelperArgs() enforces "at most once" (except
// repeatable rows) and the cross-option rules below the table.
struct OptionSpec {
	const char *flag;
	bool repeatable;
	Status (*parse)(StartRequest &, std::string_view);
	void (*format)(const StartRequest &, std::vector<std::string> &);
};

constexpr OptionSpec kOptions[] = {
	{"--name", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 if (Status ok = checkVmName(v, "--name"); !ok)
			 return ok;
		 r.name = std::string(v);
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) { put(a, "--name", r.name); }},
	{"--transport", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 const std::optional<Transport> t = parseTransportName(v);
		 if (!t)
			 return usage("--transport", v, "must be vsock or serial");
		 r.transport = *t;
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 put(a, "--transport", transportName(r.transport));
	 }},
	{"--cid", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> cid = number(v, abi::kMinCid, 0xfffffffeU, "--cid");
		 if (!cid)
			 return cid.error();
		 r.cid = *cid;
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (r.cid)
			 put(a, "--cid", std::to_string(*r.cid));
	 }},
	{"--socket", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 if (Status ok = checkAbsolutePath(v, kSafePathChars, "--socket"); !ok)
			 return ok;
		 if (v.size() > kMaxSocketPath)
			 return Error::invalid(ENAMETOOLONG, "--socket", v.substr(0, 64),
					       "longer than %zu bytes", kMaxSocketPath);
		 r.socketPath = std::string(v);
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (!r.socketPath.empty())
			 put(a, "--socket", r.socketPath);
	 }},
	{"--memory", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> mib = number(v, kMinMemoryMiB, kMaxMemoryMiBHard, "--memory");
		 if (!mib)
			 return mib.error();
		 r.memoryMiB = *mib;
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (r.memoryMiB)
			 put(a, "--memory", std::to_string(*r.memoryMiB));
	 }},
	{"--timeout", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> s = number(v, 1, kMaxTimeoutHard, "--timeout");
		 if (!s)
			 return s.error();
		 r.timeout = *s;
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (r.timeout)
			 put(a, "--timeout", std::to_string(*r.timeout));
	 }},
	{"--tsc-khz", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> khz = number(v, kMinTscKhz, kMaxTscKhz, "--tsc-khz");
		 if (!khz)
			 return khz.error();
		 r.tscKhz = *khz;
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (r.tscKhz)
			 put(a, "--tsc-khz", std::to_string(*r.tscKhz));
	 }},
	{"--ticket-fd", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> fd = number(v, 0, kMaxFd, "--ticket-fd");
		 if (!fd)
			 return fd.error();
		 r.ticketFd = static_cast<int>(*fd);
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 put(a, "--ticket-fd", std::to_string(r.ticketFd));
	 }},
	{"--log-fd", false,
	 [](StartRequest &r, std::string_view v) -> Status {
		 Result<std::uint32_t> fd = number(v, 0, kMaxFd, "--log-fd");
		 if (!fd)
			 return fd.error();
		 r.logFd = static_cast<int>(*fd);
		 return {};
	 },
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 if (r.logFd >= 0)
			 put(a, "--log-fd", std::to_string(r.logFd));
	 }},
	{"--image", true, parseImage,
	 [](const StartRequest &r, std::vector<std::string> &a) {
		 for (const ImageArg &image : r.images)
			 put(a, "--image", std::string(formatName(image.format)) + ":" +
						   (image.format == ImageFormat::Nbd ? std::to_string(image.fd)
										     : image.path));
	 }},
};
constexpr std::size_t kOptionCount = sizeof(kOptions) / sizeof(kOptions[0]);

// Rules between options, checked once all are parsed.
Status checkCombination(const StartRequest &r, const bool seen[kOptionCount])
{
	for (const char *required : {"--name", "--transport", "--ticket-fd", "--image"})
		for (std::size_t i = 0; i < kOptionCount; ++i)
			if (std::strcmp(kOptions[i].flag, required) == 0 && !seen[i])
				return usage(required, "", "missing");
	const bool serial = r.transport == Transport::Serial;
	if (serial && r.socketPath.empty())
		return usage("--socket", "", "required for --transport serial");
	if (!serial && !r.socketPath.empty())
		return usage("--socket", r.socketPath, "only for --transport serial");
	if (serial && r.cid)
		return usage("--cid", "", "only for --transport vsock");
	// stdout carries the JSON line and stderr the error line; the ticket may
	// come on stdin (0) but the console must not go to stdout.
	if (r.ticketFd == 1 || r.ticketFd == 2)
		return usage("--ticket-fd", std::to_string(r.ticketFd), "must not be stdout or stderr");
	if (r.logFd == 0 || r.logFd == 1)
		return usage("--log-fd", std::to_string(r.logFd), "must not be stdin or stdout");
	if (r.logFd >= 0 && r.logFd == r.ticketFd)
		return usage("--log-fd", std::to_string(r.logFd), "same fd as --ticket-fd");
	for (std::size_t i = 0; i < r.images.size(); ++i) {
		const int fd = r.images[i].fd;
		if (fd < 0)
			continue;
		bool clash = fd == r.ticketFd || fd == r.logFd;
		for (std::size_t j = 0; j < i; ++j)
			clash = clash || r.images[j].fd == fd;
		if (clash)
			return usage("--image", "nbd:" + std::to_string(fd), "fd already named");
	}
	return {};
}

} // namespace

HelperExit imageOpenExit(int errnum) noexcept
{
	for (int failed : {ENOENT, EMFILE, ENFILE, ENOMEM, EIO, ETIMEDOUT})
		if (errnum == failed)
			return HelperExit::Failed;
	return HelperExit::Denied;
}

const char *helperExitAdvice(int exitCode) noexcept
{
	switch (static_cast<HelperExit>(exitCode)) {
	case HelperExit::Usage:
		return "the helper refused its arguments (a bug in file-restore: please report it)";
	case HelperExit::Denied:
		return "refused by the helper's policy (ask the administrator; see docs/helper-policy.md)";
	case HelperExit::Limit:
		return "a limit of the helper's policy was reached (stop a VM with 'file-restore stop', "
		       "or ask the administrator; see docs/helper-policy.md)";
	default:
		return "the helper failed";
	}
}

const char *transportName(Transport transport) noexcept
{
	return transport == Transport::Vsock ? "vsock" : "serial";
}

std::optional<Transport> parseTransportName(std::string_view name) noexcept
{
	if (name == "serial")
		return Transport::Serial;
	if (name == "vsock")
		return Transport::Vsock;
	return std::nullopt;
}

const char *formatName(ImageFormat format) noexcept
{
	return kFormatNames[static_cast<int>(format)];
}

std::optional<ImageFormat> parseFormatName(std::string_view name) noexcept
{
	for (std::size_t i = 0; i < sizeof(kFormatNames) / sizeof(kFormatNames[0]); ++i)
		if (name == kFormatNames[i])
			return static_cast<ImageFormat>(i);
	return std::nullopt;
}

std::vector<std::string> formatStartArgs(const std::string &helperPath, const StartRequest &request)
{
	std::vector<std::string> argv = {helperPath, "start"};
	for (const OptionSpec &option : kOptions)
		option.format(request, argv);
	return argv;
}

Result<HelperArgs> parseHelperArgs(int argc, const char *const *argv)
{
	HelperArgs args;
	if (argc > kMaxArgc)
		return Error::invalid(E2BIG, "arguments", "", "more than %d arguments", kMaxArgc);
	for (int i = 1; i < argc; ++i)
		if (std::strlen(argv[i]) > kMaxArgLength)
			return Error::invalid(E2BIG, "arguments", std::string_view(argv[i]).substr(0, 64),
					      "argument longer than %zu bytes", kMaxArgLength);
	if (argc == 2 && std::string_view(argv[1]) == "--version") {
		args.version = true;
		return args;
	}
	if (argc < 2 || std::string_view(argv[1]) != "start")
		return usage("usage", argc < 2 ? "" : argv[1],
			     "file-restore-helper start --name NAME --transport vsock|serial ... | --version");
	bool seen[kOptionCount] = {};
	for (int i = 2; i < argc; i += 2) {
		const std::string_view flag = argv[i];
		if (i + 1 >= argc)
			return usage("usage", flag, "option without a value");
		std::size_t row = 0;
		while (row < kOptionCount && flag != kOptions[row].flag)
			++row;
		if (row == kOptionCount)
			return usage("usage", flag, "unknown option");
		// At most once: a second value could otherwise override the first
		// one that a caller's check looked at.
		if (seen[row] && !kOptions[row].repeatable)
			return usage("usage", flag, "option given twice");
		seen[row] = true;
		if (Status ok = kOptions[row].parse(args.start, argv[i + 1]); !ok)
			return ok.error();
	}
	if (Status ok = checkCombination(args.start, seen); !ok)
		return ok.error();
	return args;
}

std::string startLine(pid_t pid, std::optional<std::uint32_t> cid)
{
	return "{\"pid\":" + std::to_string(pid) + ",\"cid\":" + (cid ? std::to_string(*cid) : "null") + "}\n";
}

std::string qemuNameArgument(std::string_view vmName)
{
	std::string arg = "guest=";
	arg += abi::kQemuNamePrefix;
	arg += vmName;
	return arg;
}

std::optional<std::string_view> markedVmName(std::string_view cmdline) noexcept
{
	const std::string_view prefix = "guest=";
	const std::string_view mark = abi::kQemuNamePrefix;
	bool afterName = false;
	std::size_t start = 0;
	while (start < cmdline.size()) {
		std::size_t end = cmdline.find('\0', start);
		if (end == std::string_view::npos)
			end = cmdline.size();
		const std::string_view arg = cmdline.substr(start, end - start);
		if (afterName && arg.substr(0, prefix.size()) == prefix &&
		    arg.substr(prefix.size(), mark.size()) == mark) {
			const std::string_view name = arg.substr(prefix.size() + mark.size());
			return name.substr(0, name.find(','));
		}
		afterName = arg == "-name";
		start = end + 1;
	}
	return std::nullopt;
}

std::vector<MarkedQemu> findMarkedQemus()
{
	std::vector<MarkedQemu> found;
	DIR *proc = ::opendir("/proc");
	while (const dirent *entry = proc != nullptr ? ::readdir(proc) : nullptr) {
		if (!CharSet(false, "0123456789").containsAll(entry->d_name))
			continue;
		const std::string dir = std::string("/proc/") + entry->d_name;
		char buf[8192];
		UniqueFd cmdline(::open((dir + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC));
		const ssize_t n = cmdline.isValid() ? ::read(cmdline.get(), buf, sizeof(buf)) : -1;
		const std::string_view args(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
		const std::optional<std::string_view> vm = markedVmName(args);
		// The real uid, from status ("Uid:\treal\teffective...").
		UniqueFd status(::open((dir + "/status").c_str(), O_RDONLY | O_CLOEXEC));
		const ssize_t m = vm && status.isValid() ? ::read(status.get(), buf + n, sizeof(buf) - n - 1) : -1;
		if (m <= 0)
			continue;
		buf[n + m] = '\0';
		const char *uid = std::strstr(buf + n, "\nUid:\t");
		if (uid != nullptr)
			found.push_back({static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10)),
					 static_cast<uid_t>(std::strtoul(uid + 6, nullptr, 10)),
					 std::string(args.substr(0, args.find('\0'))), std::string(*vm)});
	}
	if (proc != nullptr)
		::closedir(proc);
	return found;
}

std::uint32_t countMarkedQemus(uid_t uid, std::string_view qemuBinary)
{
	std::uint32_t count = 0;
	for (const MarkedQemu &qemu : findMarkedQemus())
		if (qemu.realUid == uid && qemu.argv0 == qemuBinary)
			++count;
	return count;
}

} // namespace fr::contract
