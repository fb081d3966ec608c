// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A LUKS key or passphrase the user gives the client for the guest's locked
// volumes (--luks-key-file FILE, --luks-passphrase-fd N). It is read from a
// file or a file descriptor, never from the command line or the
// environment; it travels to the guest only over the authenticated channel
// (the protocol's Unlock request) and is wiped from memory when the LuksKey
// is destroyed. It is never logged.

#include <string>
#include <string_view>

#include "shared/result.h"

namespace fr::client {

class LuksKey {
public:
	LuksKey() = default;
	LuksKey(LuksKey &&other) noexcept;
	LuksKey &operator=(LuksKey &&other) noexcept;
	LuksKey(const LuksKey &) = delete;
	LuksKey &operator=(const LuksKey &) = delete;
	~LuksKey();

	std::string_view bytes() const noexcept { return bytes_; }

private:
	friend Result<LuksKey> readLuksKeyFile(const std::string &path);
	friend Result<LuksKey> readLuksPassphrase(int fd);
	std::string bytes_;
};

// Every byte of the file (as cryptsetup --key-file reads one): 1 to 4096
// bytes (the protocol's limit). EINVAL for an empty or larger file; the
// open's or read's errno otherwise.
Result<LuksKey> readLuksKeyFile(const std::string &path);

// A passphrase from an open file descriptor (a pipe, a file): its bytes up
// to the first newline or the end, as cryptsetup reads a passphrase that is
// not from a terminal; 1 to 4096 bytes. fd is not closed. EBADF for a
// descriptor that is not open (or is stdout or stderr).
Result<LuksKey> readLuksPassphrase(int fd);

} // namespace fr::client
