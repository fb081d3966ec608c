// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// VM names: what the state map, `status`, `stop` and QEMU's "-name" marker
// call a VM. Always valid per fr::checkVmName (systemd-escaped, <= 255 bytes).

#include <string>
#include <string_view>
#include <vector>

namespace fr::client {

// fr::escapeUnitName("qemu_" + repository + "/" + snapshot), shortened by
// shortenVmName when longer than fr::kVmNameMax. `repository` is the
// canonical absolute path of the repository, `snapshot` the normalised
// relative snapshot path (no leading, trailing or doubled '/').
std::string snapshotVmName(std::string_view repository, std::string_view snapshot);

// Ad-hoc images (--image): fr::escapeUnitName("qemu_image/" + p1 + "//" +
// p2 ...) where each p is a canonical absolute path without its leading '/'
// (canonical paths never hold "//", so the join is unambiguous), shortened
// like snapshot names. E.g. /srv/a.img -> "qemu_image-srv-a.img".
std::string imageVmName(const std::vector<std::string> &canonicalPaths);

// Names longer than fr::kVmNameMax keep their first bytes (never cutting a
// "\xhh" escape in half) and end in '_' plus the first 32 hex digits of the
// SHA-256 of the full escaped name: deterministic, still unique in practice,
// still within the VM-name character set. Shorter names are returned as is.
std::string shortenVmName(std::string escaped);

// The stem of the per-VM files in the runtime directory ("<stem>.lock",
// ".sock", ".log"): "vm-" + 16 hex digits of SHA-256(name). A VM name may be
// 255 bytes and hold '\', and a unix socket path must fit 108 bytes.
std::string vmFileStem(std::string_view vmName);

} // namespace fr::client
