#!/usr/bin/env bash
# Builds the benchmark disk without mounting anything:
#   1 GiB GPT disk
#     part 1: ext4 (~900 MiB) with 10,000 small files in 100 directories
#             (small/d000..d099/f000..f099, 1-4 KiB each) and a 256 MiB
#             pseudo-random file big.bin
#     part 2: vfat (~100 MiB) with a few files
# Usage: bench/make-bench-disk.sh OUT.img
# Prints the sha256 of big.bin on stdout's last line.
set -euo pipefail
out=${1:?usage: make-bench-disk.sh OUT.img}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tree="$work/tree"
mkdir -p "$tree/small"
for d in $(seq -w 0 99); do
  mkdir "$tree/small/d0$d"
done
# 10,000 small files: content derived from the name, 1-4 KiB.
python3 - "$tree/small" <<'PY'
import os, sys, hashlib
root = sys.argv[1]
for d in range(100):
    for f in range(100):
        name = os.path.join(root, "d%03d" % d, "f%03d" % f)
        seed = hashlib.sha256(name.encode()).digest()
        size = 1024 + (seed[0] * 12)
        data = (seed * (size // len(seed) + 1))[:size]
        with open(name, "wb") as fh:
            fh.write(data)
PY
# 256 MiB of deterministic pseudo-random bytes (AES-CTR keystream).
# openssl dies of SIGPIPE when head has enough: that is expected.
(openssl enc -aes-128-ctr -nosalt -pass pass:file-restore-bench -pbkdf2 -in /dev/zero 2>/dev/null || true) \
  | head -c $((256 * 1024 * 1024)) > "$tree/big.bin"
[[ $(stat -c %s "$tree/big.bin") -eq $((256 * 1024 * 1024)) ]] || { echo "make-bench-disk: big.bin is short" >&2; exit 1; }
echo "hello from the benchmark disk" > "$tree/hello.txt"

# Partition layout (sectors of 512 bytes).
disk_mib=1024
ext4_start=2048
ext4_sectors=$((900 * 2048))
vfat_start=$((ext4_start + ext4_sectors))
vfat_sectors=$((100 * 2048))

truncate -s ${disk_mib}M "$out.tmp"
sgdisk -Z "$out.tmp" >/dev/null
sgdisk -n 1:${ext4_start}:+${ext4_sectors} -t 1:8300 -c 1:data \
          -n 2:${vfat_start}:+${vfat_sectors} -t 2:0700 -c 2:efi "$out.tmp" >/dev/null

truncate -s $((ext4_sectors * 512)) "$work/ext4.img"
mkfs.ext4 -q -F -L bench -E root_owner=0:0 -d "$tree" "$work/ext4.img"
dd if="$work/ext4.img" of="$out.tmp" bs=1M seek=$((ext4_start / 2048)) conv=notrunc,sparse status=none

truncate -s $((vfat_sectors * 512)) "$work/vfat.img"
mkfs.vfat -n BENCHFAT "$work/vfat.img" >/dev/null
mkdir -p "$work/fat"
for i in $(seq 1 20); do echo "fat file $i" > "$work/fat/file$i.txt"; done
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/vfat.img" "$work/fat"/* ::/
dd if="$work/vfat.img" of="$out.tmp" bs=1M seek=$((vfat_start / 2048)) conv=notrunc,sparse status=none

mv "$out.tmp" "$out"
sha256sum "$tree/big.bin" | cut -d' ' -f1
