// SPDX-License-Identifier: AGPL-3.0-or-later
// The helper's argument grammar: the input is argv (NUL-separated, argv[0]
// implied). Whatever it accepts must be free of QEMU option syntax where it
// reaches QEMU's command line, and within the grammar's bounds. (Image paths
// never reach it at all: buildQemuCommand() does not even take them.) And
// what parses, formats back to the same request (the contract is one
// grammar for both sides).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "shared/qemu_command.h"
#include "shared/helper_contract.h"
#include "shared/guest_abi.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	const std::string input(reinterpret_cast<const char *>(data), size);
	std::vector<std::string> words;
	std::size_t start = 0;
	while (start <= input.size() && words.size() < 400) {
		std::size_t end = input.find('\0', start);
		if (end == std::string::npos)
			end = input.size();
		words.push_back(input.substr(start, end - start));
		start = end + 1;
	}
	std::vector<const char *> argv = {"file-restore-helper"};
	for (const std::string &w : words)
		argv.push_back(w.c_str());
	const fr::Result<fr::contract::HelperArgs> parsed =
		fr::contract::parseHelperArgs(static_cast<int>(argv.size()), argv.data());
	if (!parsed || parsed->version)
		return 0;
	const fr::contract::StartRequest *args = &parsed->start;
	if (argv.size() > static_cast<std::size_t>(fr::contract::kMaxArgc) || args->images.empty() ||
	    args->images.size() > fr::contract::kMaxImages)
		std::abort();
	for (char c : args->name + args->socketPath)
		if (c == ',' || c == '=' || c == ' ' || static_cast<unsigned char>(c) < 0x20)
			std::abort();
	if (args->cid && *args->cid < fr::abi::kMinCid)
		std::abort();
	if ((args->transport == fr::contract::Transport::Serial) == args->socketPath.empty())
		std::abort();
	// Formatted back and parsed again: the same request.
	const std::vector<std::string> again = fr::contract::formatStartArgs("h", *args);
	std::vector<const char *> againArgv;
	for (const std::string &w : again)
		againArgv.push_back(w.c_str());
	const fr::Result<fr::contract::HelperArgs> reparsed =
		fr::contract::parseHelperArgs(static_cast<int>(againArgv.size()), againArgv.data());
	if (!reparsed || !(reparsed->start == *args))
		std::abort();
	// The command line built from it: QEMU option values that carry caller
	// strings hold nothing but the checked name.
	fr::QemuConfig config;
	config.qemuBinary = "/usr/bin/qemu-system-x86_64";
	config.name = args->name;
	config.transport = args->transport;
	config.kernelCmdline = fr::buildKernelCmdline(args->timeout.value_or(600), args->transport, 1);
	fr::QemuFds fds{0, 1, 3, 4, 5, {}};
	for (const fr::contract::ImageArg &image : args->images) {
		config.formats.push_back(image.format);
		fds.images.push_back(image.fd >= 0 ? image.fd : 9);
	}
	// The caller's name must not add a single separator to any option.
	fr::QemuConfig plain = config;
	plain.name = "x";
	const std::vector<std::string> built = fr::buildQemuCommand(config, fds).argv;
	const std::vector<std::string> reference = fr::buildQemuCommand(plain, fds).argv;
	if (built.size() != reference.size())
		std::abort();
	for (std::size_t i = 0; i < built.size(); ++i)
		for (char sep : {',', '='})
			if (std::count(built[i].begin(), built[i].end(), sep) !=
			    std::count(reference[i].begin(), reference[i].end(), sep))
				std::abort();
	return 0;
}
