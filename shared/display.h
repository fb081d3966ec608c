// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include <string>
#include <string_view>

namespace fr {

// Makes hostile bytes (names and texts from a guest) safe to print on a
// terminal: printable ASCII and well-formed UTF-8 stay; backslash becomes
// "\\"; control characters (C0, DEL, C1), bidirectional overrides and
// isolates become "\u{XXXX}"; bytes that are not well-formed UTF-8 (overlong
// forms, surrogates, > U+10FFFF, truncated sequences) become "\xhh".
// Common controls use their C escape: \n \t \r.
std::string escapeForDisplay(std::string_view bytes);

} // namespace fr
