#!/usr/bin/env bash
# Boot-to-status benchmark of the restore VM (issue 4's targets: status
# answered within 2.5 s of QEMU's start under TCG, initramfs < 8 MiB,
# 128 MiB guest RAM enough for one disk). Results go to docs/benchmarks.md.
#
#   bench/boot-to-status.sh [RUNS]
#
# BASE_IMAGE=FILE boots another initramfs with the build's kernel (bench/
# volume-layers-cost.sh: the image without the volume layers' tools).
#
# Needs a build (ninja -C build; BUILD_DIR overrides) and hyperfine
# (scripts/install-deps.sh). Each run starts QEMU exactly as the helper
# does (microvm, TCG, serial transport, one read-only virtio disk), waits
# for the daemon's status answer (fr-boot-status prints the time from
# QEMU's fork to the answer), then kills QEMU. The "+ list" variant also
# lists the disk's root, which loads the ext4 modules and mounts it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
runs=${1:-10}
tool=$build/bench/fr-boot-status
kernel=$build/guest/vmlinuz
base=${BASE_IMAGE:-$build/guest/initramfs.img}
for f in "$tool" "$kernel" "$base" "$build/guest/mkcpio"; do
  [[ -e $f ]] || { echo "boot-to-status: $f missing: ninja -C $build" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "boot-to-status: needs hyperfine" >&2; exit 1; }

work=bench/work
mkdir -p "$work/root/etc"
echo bench-host >"$work/root/etc/hostname"
rm -f "$work/disk.img"
truncate -s 64M "$work/disk.img"
mkfs.ext4 -q -F -d "$work/root" "$work/disk.img"

# The initramfs the helper builds: base image, zero padding to 4 bytes, an
# uncompressed newc cpio holding /ticket.
ticket=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$ticket" >"$work/ticket"
echo "file ticket 0400 $work/ticket" | "$build/guest/mkcpio" >"$work/ticket.cpio"
cp "$base" "$work/initramfs.img"
pad=$(( (4 - $(stat -c %s "$work/initramfs.img") % 4) % 4 ))
head -c "$pad" /dev/zero >>"$work/initramfs.img"
cat "$work/ticket.cpio" >>"$work/initramfs.img"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(qemu-system-x86_64 --version | head -1)"
echo "kernel: $(stat -c %s "$kernel") bytes (uncompressed ELF vmlinux), initramfs: $(stat -c %s "$base") bytes"
echo "one run: $("$tool" "$kernel" "$work/initramfs.img" "$ticket" 128 "$work/disk.img" /disk0/raw | tr '\n' ' ')"

# The helper's kernel command line (helper/qemu_command.cpp) as of this
# writing, for comparison with shared/guest_abi.h's kKernelBootArgs.
helper_args="console=ttyS0 quiet panic=-1 8250.nr_uarts=1 tsc=reliable no_timer_check"
run="$tool $kernel $work/initramfs.img $ticket"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$work/boot-to-status.md" \
  -n "status, 128 MiB" "$run 128 $work/disk.img" \
  -n "status + list of an ext4 root, 128 MiB" "$run 128 $work/disk.img /disk0/raw" \
  -n "status, 256 MiB" "$run 256 $work/disk.img" \
  -n "status, 128 MiB, helper's command line" "FR_KERNEL_BASE_ARGS='$helper_args' $run 128 $work/disk.img"
cat "$work/boot-to-status.md"
