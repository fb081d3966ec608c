#!/usr/bin/env bash
# What the volume layers (issue 14) cost a plain disk at boot: boot to
# status, and status + the list of an ext4 root, with the image as built
# and with the same image less what issue 14 added to it (tools.sqfs: lvm,
# mdadm, cryptsetup, ntfs-3g; the dm, md, crypt, fuse, loop modules and the
# extra filesystems' modules). The daemon is the same in both: it reads
# none of that for a plain disk, so the difference is what the larger cpio
# costs the kernel to unpack.
#
#   bench/volume-layers-cost.sh [RUNS]      (default 10 per command)
#
# Results: bench/work/volume-layers/{with,without}.md, to be copied into
# docs/benchmarks.md. Needs what bench/boot-to-status.sh needs, and cpio.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
runs=${1:-10}
work=$PWD/bench/work/volume-layers
image=$(readlink -f "$build/guest/initramfs.img")
[[ -f $image ]] || { echo "volume-layers-cost: $image missing: ninja -C $build" >&2; exit 1; }
command -v cpio >/dev/null || { echo "volume-layers-cost: needs cpio" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/tree"
(cd "$work/tree" && cpio -id --quiet <"$image")
# The module groups a plain disk of the earlier image used (the rest came
# with issue 14; lib/modules/order lists "group module" lines).
keep='^(base|serial|vsock|ext4|xfs|btrfs|vfat|exfat|isofs|udf) '
rm -f "$work/tree/tools.sqfs"
for module in $(awk '{print $2}' "$work/tree/lib/modules/order" | sort -u); do
  grep -Eq "$keep$module\$" <(grep -E " $module\$" "$work/tree/lib/modules/order") ||
    rm -f "$work/tree/lib/modules/$module"
done
(cd "$work/tree" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$work/without.img"
echo "with the volume layers:    $(stat -c %s "$image") bytes"
echo "without (tools, modules):  $(stat -c %s "$work/without.img") bytes"
BUILD_DIR=$build bench/boot-to-status.sh "$runs"
cp bench/work/boot-to-status.md "$work/with.md"
BUILD_DIR=$build BASE_IMAGE=$work/without.img bench/boot-to-status.sh "$runs"
cp bench/work/boot-to-status.md "$work/without.md"
echo "== with"; cat "$work/with.md"
echo "== without"; cat "$work/without.md"
