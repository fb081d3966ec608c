// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// systemd unit-name escaping, byte-compatible with `systemd-escape` and
// `systemd-escape --unescape` (systemd 252, without --path/--template).
// VM names are escapeUnitName("qemu_<repository>/<snapshot>").

#include <optional>
#include <string>
#include <string_view>

namespace fr {

// '/' becomes '-'; [A-Za-z0-9:_.] stay, except a leading '.'; every other
// byte (including '-', '\' and non-UTF-8 bytes) becomes "\xhh" (lowercase).
// Any byte string is accepted (embedded NULs too, escaped as \x00).
std::string escapeUnitName(std::string_view text);

// The inverse: '-' becomes '/', "\xHH" (either case) becomes the byte, every
// other byte stays. nullopt when a '\' is not followed by 'x' and two hex
// digits (what systemd-escape refuses with "Invalid argument").
std::optional<std::string> unescapeUnitName(std::string_view name);

} // namespace fr
