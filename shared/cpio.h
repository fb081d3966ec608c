// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A minimal, reproducible writer of the kernel's initramfs format (cpio
// "newc", Documentation/driver-api/early-userspace/buffer-format.rst):
// entries sorted by path, mtime 0, uid/gid 0, inode numbers from 1 in
// order, device numbers 0. Used by the image builder (mkcpio) and by tests
// to append a ticket archive like the helper does.

#include <cstdint>
#include <string>
#include <vector>

namespace fr {

struct CpioEntry {
	enum class Type { Directory, File, CharDevice, Symlink };
	Type type = Type::File;
	std::string path;   // relative, no leading '/', e.g. "lib/modules/ext4.ko"
	std::uint32_t mode = 0644; // permission bits
	std::string data;   // File: the content; Symlink: the target
	std::uint32_t rdevMajor = 0, rdevMinor = 0; // CharDevice only
};

// The archive (ending with the TRAILER!!! entry), padded to 4 bytes.
std::vector<std::uint8_t> writeNewc(std::vector<CpioEntry> entries);

} // namespace fr
