// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The helper's one line of success output, {"pid":N,"cid":M}. The helper is
// trusted more than the guest, but its output still decides which process
// the client will later signal: it is parsed strictly.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "client/types.h"
#include "shared/result.h"

namespace fr::client {

inline constexpr std::size_t kHelperOutputMax = 256;
// The kernel's PID_MAX_LIMIT (4 << 20).
inline constexpr std::int64_t kPidMax = 4194304;

struct HelperOutput {
	pid_t pid = 0;
	std::optional<std::uint32_t> cid;
};

// Exactly one line: a JSON object with exactly the keys "pid" (an integer
// 2..kPidMax) and "cid" (null for the serial transport, an integer from
// abi::kMinCid to 0xfffffffe for vsock), each once, followed by one '\n'
// (and nothing else). EPROTO naming what was wrong otherwise.
Result<HelperOutput> parseHelperOutput(std::string_view text, Transport transport);

} // namespace fr::client
