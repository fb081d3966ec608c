#!/usr/bin/env bash
# Builds the test disks of the volume layers (LVM, LVM-thin, a VG on two
# disks, md raid1/raid5, LUKS1/LUKS2, LVM on LUKS, LUKS on LVM, NTFS,
# btrfs subvolumes, crash-consistent ext4/xfs/btrfs, hostile metadata) and
# prints the directory that holds them.
#
#   volume-disks.sh IMAGE_DIR CACHE_ROOT
#
# This machine's kernel has neither device-mapper nor md, and the tests
# never mount anything on the host: the layouts are made inside a VM, our
# own guest kernel booted under QEMU (TCG) with a builder initramfs: the
# image's modules and tools (IMAGE_DIR/initramfs.img: tools.sqfs holds
# lvm, mdadm, cryptsetup, ntfs-3g), mkntfs from the cached ntfs-3g package
# (IMAGE_DIR/debs), the host's mkfs.ext4 / mkfs.btrfs / btrfs / mkfs.xfs /
# xfs_io with their libraries, busybox-static for the shell, and the script
# below as /init. The guest writes the disks (they are plain files here).
#
# The result is cached in CACHE_ROOT/<sha256 of this script>/ (build/ and
# build-asan/ share it): the images depend on nothing else that matters.
# Exit 77 (with the reason on stderr) when a tool it needs is missing.
set -euo pipefail
export LC_ALL=C

image_dir=$(readlink -f "$1") cache_root=$(readlink -m "$2")
self=$(readlink -f "$0")
key=$(cat "$self" "$(dirname "$self")/volume-disks-guest.sh" | sha256sum | cut -c1-16)
out=$cache_root/$key
if [[ -f $out/done ]]; then
  echo "$out"
  exit 0
fi
skip() { echo "volume-disks: $*" >&2; exit 77; }
for tool in busybox cpio unsquashfs zstd mke2fs mkfs.btrfs btrfs mkfs.xfs xfs_io qemu-system-x86_64 python3 sgdisk; do
  command -v "$tool" >/dev/null || skip "needs $tool (scripts/install-deps.sh)"
done
[[ -f $image_dir/initramfs.img && -f $image_dir/vmlinuz ]] || skip "needs the VM image in $image_dir (ninja -C build)"
ntfsdeb=$(find "$image_dir/debs" -maxdepth 1 -name 'ntfs-3g_*.deb' 2>/dev/null | sort -V | tail -n 1)
[[ -n $ntfsdeb ]] || skip "needs $image_dir/debs/ntfs-3g_*.deb (the image build fetches it)"

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the builder initramfs -------------------------------------------------
root=$work/root
mkdir -p "$root"
(cd "$root" && cpio -id --quiet <"$image_dir/initramfs.img")
rm -f "$root/init"
for f in "$root"/lib/modules/*.zst; do
  zstd -q -d --rm "$f"
done
sed -i 's/\.zst$//' "$root/lib/modules/order"
unsquashfs -q -n -f -d "$root/tools" "$root/tools.sqfs" >/dev/null
rm -f "$root/tools.sqfs"
dpkg-deb --fsys-tarfile "$ntfsdeb" | tar -x -O ./sbin/mkntfs >"$root/tools/bin/mkntfs"
chmod 755 "$root/tools/bin/mkntfs"
mkdir -p "$root/bin"
cp "$(command -v busybox)" "$root/bin/busybox"
# Host programs and the libraries they need that the tools lack.
# mkfs.exfat and mkudffs are optional (their cases are skipped without them).
for prog in mke2fs mkfs.btrfs btrfs mkfs.xfs xfs_io sgdisk mkfs.exfat mkudffs; do
  path=$(command -v "$prog") || continue
  cp -L "$path" "$root/tools/bin/$prog"
  while read -r lib; do
    name=${lib##*/}
    [[ -e $root/tools/lib/$name ]] || cp -L "$lib" "$root/tools/lib/$name"
  done < <(ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
done
ln -sf mke2fs "$root/tools/bin/mkfs.ext4"
cp "$(dirname "$self")/volume-disks-guest.sh" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/builder.img"

# --- the disks (sparse files the builder VM writes) ------------------------
disks=(lvm:48 span-a:12 span-b:12 md-a:24 md-b:24 md-c:24 luks:64 ntfs:16 btrfs:112 ext4-dirty:16
  xfs-dirty:300 btrfs-log:112 lvm-bad:8 md-1000:8 luks-kdf:8 ntfs-bad:8 exfat:8 udf:8)
args=()
i=0
for spec in "${disks[@]}"; do
  name=${spec%%:*} size=${spec##*:}
  truncate -s "${size}M" "$work/$name.img"
  args+=(-blockdev "driver=file,node-name=f$i,filename=$work/$name.img"
    -blockdev "driver=raw,node-name=d$i,file=f$i"
    -device "virtio-blk-device,drive=d$i,serial=$name")
  i=$((i + 1))
done
khz=$(awk -F': ' '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
cmdline="console=ttyS0 quiet panic=-1 cryptomgr.notests pci=off mitigations=off"
[[ -n $khz && $khz != 0 ]] && cmdline+=" tsc_early_khz=$khz"
start=$(date +%s)
timeout 1200 qemu-system-x86_64 -machine microvm -nodefaults -no-user-config -nic none -display none \
  -monitor none -no-reboot -accel tcg -m 768 -kernel "$image_dir/vmlinuz" -initrd "$work/builder.img" \
  -append "$cmdline" -serial "file:$work/console.log" "${args[@]}" </dev/null >"$work/qemu.log" 2>&1 || true
if ! grep -q '^BUILD-OK' "$work/console.log"; then
  cp "$work/console.log" "$cache_root/failed-console.log"
  echo "volume-disks: the builder VM failed; its console (all of it: $cache_root/failed-console.log):" >&2
  tail -n 60 "$work/console.log" >&2
  cat "$work/qemu.log" >&2
  exit 1
fi
echo "volume-disks: builder VM took $(($(date +%s) - start)) s" >&2

# --- hostile metadata, patched here (the builder made valid ones) ----------
python3 - "$work" <<'PY'
import hashlib, json, struct, sys
work = sys.argv[1]

def patch(name, fn):
    path = f"{work}/{name}.img"
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        fn(data)
        f.seek(0)
        f.write(data)

# LVM: the metadata text of VG "vgbad" garbled (its checksum no longer
# matches): the label says LVM2_member, the VG cannot be read.
def lvm_bad(d):
    # Every copy in the metadata area's ring buffer.
    at = d.find(b"vgbad {")
    assert at > 0, "no vgbad metadata"
    while at >= 0:
        for i in range(at, at + 64):
            d[i] ^= 0x5A
        at = d.find(b"vgbad {", at + 64)
patch("lvm-bad", lvm_bad)

# md: a v1.2 superblock (4 KiB into the member) claiming 1000 raid disks,
# with a valid checksum so that only the count is absurd.
def md_1000(d):
    sb = 4096
    magic, = struct.unpack_from("<I", d, sb)
    assert magic == 0xA92B4EFC, "no md v1.2 superblock"
    struct.pack_into("<I", d, sb + 92, 1000)       # raid_disks
    max_dev, = struct.unpack_from("<I", d, sb + 220)
    struct.pack_into("<I", d, sb + 216, 0)         # sb_csum
    size = 256 + 2 * max_dev
    csum = sum(struct.unpack_from("<%dI" % (size // 4), d, sb))
    if size % 4:
        csum += struct.unpack_from("<H", d, sb + size - 2)[0]
    csum = (csum & 0xFFFFFFFF) + (csum >> 32)
    struct.pack_into("<I", d, sb + 216, csum & 0xFFFFFFFF)
patch("md-1000", md_1000)

# LUKS1: every key slot's PBKDF2 iteration count set to 2^32-1 (hours of
# work): opening must give up within the daemon's time bound.
def luks_kdf(d):
    assert d[:6] == b"LUKS\xba\xbe"
    for slot in range(8):
        at = 208 + 48 * slot
        if struct.unpack_from(">I", d, at)[0] == 0x00AC71F3:  # active
            struct.pack_into(">I", d, at + 4, 0xFFFFFFFF)
patch("luks-kdf", luks_kdf)

# NTFS: the boot sector and $MFT intact (blkid still says ntfs), the
# $MFTMirr's first record garbled after its "FILE" magic: ntfs-3g finds
# that it does not match $MFT and refuses the volume.
def ntfs_bad(d):
    assert d[3:11] == b"NTFS    "
    bps, = struct.unpack_from("<H", d, 11)
    spc = d[13]
    mirr_lcn, = struct.unpack_from("<q", d, 56)
    at = mirr_lcn * bps * spc
    assert d[at:at + 4] == b"FILE", "no $MFTMirr where the boot sector says"
    for i in range(at + 0x38, at + 0x100):
        d[i] ^= 0xA5
patch("ntfs-bad", ntfs_bad)
PY

# A hybrid ISO (iso9660 on the whole disk, and an MBR whose partition 1
# starts at sector 0 and covers it, as isohybrid writes): made here, no VM
# needed. Optional: without genisoimage its case is skipped.
if command -v genisoimage >/dev/null; then
  mkdir -p "$work/iso/docs"
  echo "iso-host" >"$work/iso/hostname.txt"
  seq 1 20000 >"$work/iso/docs/numbers"
  genisoimage -quiet -V HYBRID -J -R -o "$work/hybrid.img" "$work/iso"
  python3 - "$work/hybrid.img" <<'PY'
import os, struct, sys
path = sys.argv[1]
sectors = os.path.getsize(path) // 512
with open(path, "r+b") as f:
    mbr = bytearray(f.read(512))
    entry = struct.pack("<BBBBBBBBII", 0x80, 0, 1, 0, 0x17, 0xFE, 0xFF, 0xFF, 0, sectors)
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    f.seek(0)
    f.write(mbr)
PY
  disks+=(hybrid:0)
fi

mkdir -p "$out.tmp"
for spec in "${disks[@]}"; do
  name=${spec%%:*}
  mv "$work/$name.img" "$out.tmp/"
done
cp "$work/console.log" "$out.tmp/builder-console.log"
grep '^EXPECT ' "$work/console.log" | sed 's/\r$//' >"$out.tmp/expect.txt" || true
touch "$out.tmp/done"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
