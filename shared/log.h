// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include "shared/result.h"

namespace fr {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3 };

// Process-wide log settings. Call them once at start-up, before any thread.
// `identity` must outlive every later log call (a string literal or argv[0]
// copy kept by the caller); it prefixes each line as "identity: ".
void setLogIdentity(const char *identity) noexcept;
// The fd log lines go to (default 2). The caller keeps owning it.
void setLogFd(int fd) noexcept;
// Lines below this level are dropped (default Info).
void setLogLevel(LogLevel level) noexcept;
LogLevel logLevel() noexcept;

// Formats one line into a stack buffer (truncated at 1 KiB) and writes it
// with a single write(2): no allocation, safe between fork() and exec() and
// in the guest's PID 1. A newline is appended. Errors writing are ignored.
void logf(LogLevel level, const char *fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

// Logs "call(object): reason" at the given level.
void logError(const Error &error, LogLevel level = LogLevel::Error) noexcept;

} // namespace fr
