// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Kernel modules from the initramfs, loaded in the order the image builder
// computed (modprobe --show-depends at build time): there is no modprobe in
// the VM.
//
// The manifest (<dir>/order, written by guest/build-image.sh) has one line per
// module load: "<group> <file>", e.g. "ext4 jbd2.ko.zst". A group is what one
// feature needs (base, serial, vsock, ext4, xfs, ...), in load order; a module
// shared by several groups appears in each and is loaded once.
//
// Plain .ko files (the boot-time groups) go to finit_module. The filesystem
// modules, loaded only when a filesystem of their type is mounted, are
// stored as .ko.zst and decompressed here (init_module): the initramfs,
// which is not compressed as a whole (guest/build-image.sh), stays ~6 MB
// instead of ~21 MB, and so does the share of the guest's RAM it holds.
//
// Module parameters: the kernel applies "<module>.<param>=<value>" from its
// command line only to built-in code; for a module it is modprobe's job, so
// the loader passes them itself (QEMU's microvm, for one, appends
// virtio_mmio.device=... when ACPI is off).

#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace fr::guest {

struct ModuleLine {
	std::string group;
	std::string file;
};

// Parses the manifest text. Lines: group and file name separated by one
// space; names from [A-Za-z0-9_.-]; files end in ".ko". EINVAL naming the line.
Result<std::vector<ModuleLine>> parseModuleManifest(std::string_view text);

// "crc32c-intel.ko" -> "crc32c_intel" (the kernel's module name).
std::string moduleNameOf(std::string_view file);

// The parameters for `module` on a kernel command line: every
// "<module>.<param>[=<value>]" token, '-' and '_' equivalent in the module
// name, joined by spaces. Quoted values ("a b") are kept whole.
std::string moduleParams(std::string_view cmdline, std::string_view module);

class ModuleLoader {
public:
	ModuleLoader(std::string dir, std::string cmdline) : dir_(std::move(dir)), cmdline_(std::move(cmdline)) {}

	// Reads the manifest. Without one (a test image), every group is empty.
	Status init();
	// Loads a group's modules. A module that fails to load is logged; the
	// group fails only when its last module (the one it is for) fails.
	// Thread-safe; loading a group twice is cheap.
	Status loadGroup(std::string_view group);

private:
	Status loadFile(const std::string &file);

	std::mutex mutex_;
	std::string dir_;
	std::string cmdline_;
	std::vector<ModuleLine> lines_;
	std::set<std::string> loaded_;
	std::set<std::string> groupsDone_;
};

} // namespace fr::guest
