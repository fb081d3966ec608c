// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// `file-restore mount`: a read-only FUSE (libfuse3) view of a directory in
// a backup, served by the restore VM (client/mount_fs.h has the logic).
// It runs as the user (fusermount3, setuid in Debian's fuse3, does the
// mounting), keeps the VM alive while mounted (a status request resets the
// guest's idle timer), and when the VM dies answers EIO to everything
// until unmounted (`file-restore umount` or `fusermount3 -u`).

#include <functional>
#include <string>
#include <vector>

#include "client/guest_path.h"
#include "client/vm_manager.h"
#include "shared/result.h"

namespace fr::client {

struct MountOptions {
	std::string mountpoint;
	bool foreground = false;  // else: into the background once mounted
	bool verbose = false;
	std::vector<std::string> fuseOptions; // -o, passed to libfuse
	int sessions = 3;         // connections to the VM (each a request slot)
	// Run on the VM before the target is looked at: the LUKS key given
	// (the volumes it opens may hold the target).
	std::function<Status(VmConnection &)> beforeLookup;
};

// Mounts `target` (a directory in the VM) at options.mountpoint and serves
// it until it is unmounted. In the background (the default) the calling
// process returns 0 once the mount is up and a daemon serves it. Errors
// before the mount is up: as Results (usage errors of kind Usage).
Result<int> runMount(VmManager &vms, const VmSpec &spec, const GuestTarget &target, Deadline deadline,
		     const MountOptions &options);

// fusermount3 -u MOUNTPOINT.
Status unmount(const std::string &mountpoint);

} // namespace fr::client
