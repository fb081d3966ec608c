// SPDX-License-Identifier: AGPL-3.0-or-later
#include "helper/args.h"

#include <cerrno>
#include <cstring>
#include <string_view>

#include "shared/guest_abi.h"
#include "shared/policy.h"
#include "shared/validate.h"

namespace fr::helper {

namespace {

constexpr const char *kFormats[] = {"raw", "qcow2", "vmdk", "vdi", "vhdx"};

Error usage(const char *what, std::string_view value, const char *why)
{
	return Error::invalid(EINVAL, what, value.substr(0, 64), "%s", why);
}

Result<int> parseFd(std::string_view text, const char *what)
{
	Result<std::uint64_t> fd = parseDecimal(text, 0, kMaxFd, what);
	if (!fd)
		return fd.error();
	return static_cast<int>(*fd);
}

Result<ImageArg> parseImage(std::string_view text)
{
	const std::size_t colon = text.find(':');
	if (colon == std::string_view::npos)
		return usage("--image", text, "expected FORMAT:PATH");
	ImageArg image;
	const std::string_view format = text.substr(0, colon);
	for (const char *known : kFormats)
		if (format == known)
			image.format = known;
	if (image.format.empty())
		return usage("--image", text, "format must be raw, qcow2, vmdk, vdi or vhdx");
	const std::string_view path = text.substr(colon + 1);
	// Any byte but control characters: the path is only ever opened by the
	// helper, never written into QEMU's command line.
	if (Status ok = checkAbsolutePath(path, "--image"); !ok)
		return ok.error();
	image.path = std::string(path);
	return image;
}

} // namespace

Result<Args> parseArgs(int argc, const char *const *argv)
{
	Args args;
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

	bool seenName = false, seenTransport = false, seenCid = false, seenSocket = false;
	bool seenMemory = false, seenTimeout = false, seenTicket = false, seenLog = false;
	for (int i = 2; i < argc; i += 2) {
		const std::string_view option = argv[i];
		if (i + 1 >= argc)
			return usage("usage", option, "option without a value");
		const std::string_view value = argv[i + 1];
		// Each option at most once (except --image): a second value could
		// otherwise override the first one that a caller's check looked at.
		auto once = [&option](bool &seen) -> Status {
			if (seen)
				return usage("usage", option, "option given twice");
			seen = true;
			return {};
		};
		Status ok;
		if (option == "--name") {
			if ((ok = once(seenName)) && (ok = checkVmName(value, "--name")))
				args.name = std::string(value);
		} else if (option == "--transport") {
			if ((ok = once(seenTransport))) {
				if (value == "vsock")
					args.transport = Transport::Vsock;
				else if (value == "serial")
					args.transport = Transport::Serial;
				else
					ok = usage("--transport", value, "must be vsock or serial");
			}
		} else if (option == "--cid") {
			if ((ok = once(seenCid))) {
				Result<std::uint64_t> cid = parseDecimal(value, abi::kMinCid, 0xfffffffeU, "--cid");
				if (cid)
					args.cid = static_cast<std::uint32_t>(*cid);
				else
					ok = cid.error();
			}
		} else if (option == "--socket") {
			if ((ok = once(seenSocket)) &&
			    (ok = checkAbsolutePath(value, kSafePathChars, "--socket"))) {
				if (value.size() > kMaxSocketPath)
					ok = Error::invalid(ENAMETOOLONG, "--socket", value.substr(0, 64),
							    "longer than %zu bytes", kMaxSocketPath);
				else
					args.socketPath = std::string(value);
			}
		} else if (option == "--memory") {
			if ((ok = once(seenMemory))) {
				Result<std::uint64_t> mib = parseDecimal(value, kMinMemoryMiB, kMaxMemoryMiBHard,
									 "--memory");
				if (mib)
					args.memoryMiB = static_cast<std::uint32_t>(*mib);
				else
					ok = mib.error();
			}
		} else if (option == "--timeout") {
			if ((ok = once(seenTimeout))) {
				Result<std::uint64_t> s = parseDecimal(value, 1, kMaxTimeoutHard, "--timeout");
				if (s)
					args.timeout = static_cast<std::uint32_t>(*s);
				else
					ok = s.error();
			}
		} else if (option == "--ticket-fd") {
			if ((ok = once(seenTicket))) {
				Result<int> fd = parseFd(value, "--ticket-fd");
				if (fd)
					args.ticketFd = *fd;
				else
					ok = fd.error();
			}
		} else if (option == "--log-fd") {
			if ((ok = once(seenLog))) {
				Result<int> fd = parseFd(value, "--log-fd");
				if (fd)
					args.logFd = *fd;
				else
					ok = fd.error();
			}
		} else if (option == "--image") {
			if (args.images.size() == kMaxImages) {
				ok = Error::invalid(E2BIG, "--image", "", "more than %zu images", kMaxImages);
			} else {
				Result<ImageArg> image = parseImage(value);
				if (image)
					args.images.push_back(*image);
				else
					ok = image.error();
			}
		} else {
			ok = usage("usage", option, "unknown option");
		}
		if (!ok)
			return ok.error();
	}

	if (!seenName)
		return usage("--name", "", "missing");
	if (!seenTransport)
		return usage("--transport", "", "missing");
	if (!seenTicket)
		return usage("--ticket-fd", "", "missing");
	if (args.images.empty())
		return usage("--image", "", "missing");
	if (args.transport == Transport::Serial && !seenSocket)
		return usage("--socket", "", "required for --transport serial");
	if (args.transport == Transport::Vsock && seenSocket)
		return usage("--socket", args.socketPath, "only for --transport serial");
	if (args.transport == Transport::Serial && seenCid)
		return usage("--cid", "", "only for --transport vsock");
	// stdout carries the JSON line and stderr the error line; the ticket may
	// come on stdin (0) but the console must not go to stdout.
	if (args.ticketFd == 1 || args.ticketFd == 2)
		return usage("--ticket-fd", std::to_string(args.ticketFd), "must not be stdout or stderr");
	if (args.logFd == 0 || args.logFd == 1)
		return usage("--log-fd", std::to_string(args.logFd), "must not be stdin or stdout");
	if (seenLog && args.logFd == args.ticketFd)
		return usage("--log-fd", std::to_string(args.logFd), "same fd as --ticket-fd");
	return args;
}

} // namespace fr::helper
