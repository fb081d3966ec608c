// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Small value types every part of the client shares.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/helper_contract.h"

namespace fr::client {

using Clock = std::chrono::steady_clock;
// Every wait in the client (locks, the helper, the VM's boot, answers) is
// bounded by a deadline derived from --timeout.
using Deadline = Clock::time_point;

inline std::chrono::milliseconds remaining(Deadline deadline)
{
	const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
	return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

// Disk image formats QEMU is told explicitly (never probed) and the
// transports: the helper contract's (shared/helper_contract.h).
using contract::formatName;
using contract::ImageFormat;
using contract::parseFormatName;
using contract::parseTransportName;
using contract::Transport;
using contract::transportName;

// One disk image of a snapshot (or one --image). `name` is what users see as
// the first path component (the file name: bytes, never '/'), `path` the
// absolute path handed to the helper. The archive's position in the VM's
// list is its disk index: the guest shows it as "/disk<index>".
struct Archive {
	std::string name;
	ImageFormat format = ImageFormat::Raw;
	std::string path;
	// Why it cannot be served (a header that contradicts its name or names
	// another file, an unsupported format); empty when it can. An unusable
	// archive of a snapshot is listed with this reason and never handed
	// to the helper: the others are served without it.
	std::string unusable;

	bool operator==(const Archive &) const = default;
};

enum class TransportChoice { Auto, Serial, Vsock };

std::optional<TransportChoice> parseTransportChoice(std::string_view name) noexcept;

} // namespace fr::client
