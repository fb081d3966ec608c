#!/usr/bin/env bash
# Builds the restore VM's image: <outdir>/vmlinuz and <outdir>/initramfs.img.
#
#   build-image.sh OUTDIR DAEMON MKCPIO KERNEL CACHEDIR
#
# (meson passes its build directory guest/ as CACHEDIR: scripts/asan.sh
# reuses build/guest/linux-image-*.deb from there.)
#
# KERNEL: a Debian linux-image .deb, an extracted tree (holding boot/ and
# lib/modules/), or empty: then the current Debian 12 kernel
# (linux-image-amd64's dependency) is fetched with `apt-get download` into
# CACHEDIR once and reused from there.
#
# vmlinuz is the *uncompressed ELF vmlinux* taken out of Debian's
# XZ-compressed bzImage: the kernel has CONFIG_PVH=y, so QEMU boots the ELF
# directly, and TCG does not spend ~2.7 s decompressing the kernel.
#
# initramfs.img is an *uncompressed* newc cpio, reproducible (sorted
# entries, mtime 0, owner 0): /init (the daemon, stripped), C.UTF-8's
# LC_CTYPE, the kernel
# modules the daemon needs as plain .ko files under /lib/modules, their load
# order in /lib/modules/order ("<group> <file>", from modprobe
# --show-depends against the kernel tree), /dev/console, and the mount
# points. Same inputs, same bytes. Uncompressed because decompressing it
# cost ~0.6 s of a ~2 s boot under TCG (zstd, measured round-robin; see
# docs/benchmarks.md); what is big and not needed at boot (the filesystem
# modules) is zstd-compressed file by file instead, and it stays ~6 MB.
set -euo pipefail
export LC_ALL=C

outdir=$1 daemon=$2 mkcpio=$3 kernel=${4:-} cachedir=$5
die() { echo "build-image: $*" >&2; exit 1; }

# What each feature needs; the daemon loads a group with finit_module in the
# listed order (dependencies first). base + one transport at boot, a
# filesystem's group on its first mount.
declare -A groups=(
  [base]="virtio_mmio virtio_blk"
  [serial]="virtio_console"
  [vsock]="vmw_vsock_virtio_transport"
  [ext4]="ext4"
  [xfs]="xfs"
  [btrfs]="btrfs"
  [vfat]="vfat nls_cp437 nls_utf8"
  [exfat]="exfat nls_utf8"
  [isofs]="isofs nls_utf8"
  [udf]="udf"
  [f2fs]="f2fs"
  [hfsplus]="hfsplus nls_utf8"
  [hfs]="hfs nls_utf8"
  [jfs]="jfs nls_utf8"
  [nilfs2]="nilfs2"
  [reiserfs]="reiserfs"
  [squashfs]="squashfs"
  # The tools image (below) is a squashfs on a loop device.
  [tools]="loop squashfs"
  # The throwaway copy-on-write layer journals are replayed into: a
  # dm-snapshot over the read-only disk, its store a loop device on tmpfs.
  [cow]="loop dm_snapshot"
  [lvm]="dm_snapshot dm_mirror dm_thin_pool"
  [lvmraid]="dm_raid"
  [md]="linear raid0 raid1 raid10 raid456"
  # dm-crypt and what LUKS ciphers need; aesni_intel fails (ENODEV) on a
  # CPU without AES-NI (TCG's default model), which the loader tolerates.
  [luks]="aesni_intel xts essiv cbc algif_skcipher dm_crypt"
  [fuse]="fuse"
)
group_order=(base serial vsock ext4 xfs btrfs vfat exfat isofs udf f2fs hfsplus hfs jfs nilfs2 reiserfs squashfs
  tools cow lvm lvmraid md luks fuse)
# Loaded at boot: stored plain for finit_module. Everything else is loaded
# on first use and stored zstd-compressed (the daemon decompresses it), so
# the image stays small (guest/modules.h).
boot_groups=" base serial vsock "
# What LVM, md, LUKS and NTFS need in userspace: Debian's own tools, with
# their libraries, from these packages (fetched with `apt-get download`
# into CACHEDIR/debs once). They go into a zstd squashfs (tools.sqfs) that
# the daemon mounts on a loop device the first time a disk needs one of
# them: nothing of it is read at boot, and only the pages used are ever
# decompressed into RAM.
tool_packages=(
  libc6 libgcc-s1
  lvm2 dmsetup libdevmapper1.02.1 libdevmapper-event1.02.1 libaio1 libedit2 libbsd0 libmd0 libtinfo6
  libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 liblzma5 libzstd1 libselinux1 libpcre2-8-0
  libudev1 libblkid1
  mdadm
  cryptsetup-bin libcryptsetup12 libargon2-1 libjson-c5 libpopt0 libssl3 libuuid1
  ntfs-3g libntfs-3g89
)
# The programs the daemon runs (their libraries follow from DT_NEEDED).
tool_programs=(sbin/lvm sbin/dmsetup sbin/mdadm sbin/cryptsetup bin/ntfs-3g)
max_initramfs=$((24 * 1024 * 1024))

# apt-get as root cannot drop to _apt in a directory _apt cannot write.
sandbox=()
[[ $(id -u) -eq 0 ]] && sandbox=(-o APT::Sandbox::User=root)

mkdir -p "$outdir"
work=$(mktemp -d "$outdir/.image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- 1. the kernel -------------------------------------------------------
tree=
if [[ -z $kernel ]]; then
  mkdir -p "$cachedir"
  deb=$(find "$cachedir" -maxdepth 1 -name 'linux-image-*-amd64_*.deb' | sort -V | tail -n 1)
  if [[ -z $deb ]]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [[ -n $pkg ]] || die "cannot resolve linux-image-amd64 (apt-get update?); or set -Dguest_kernel=<.deb or tree>"
    echo "build-image: downloading $pkg into $cachedir" >&2
    (cd "$cachedir" && apt-get "${sandbox[@]}" -q download "$pkg" >&2) ||
      die "apt-get download $pkg failed; set -Dguest_kernel=<.deb or tree> to build offline"
    deb=$(find "$cachedir" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
    [[ -n $deb ]] || die "apt-get download $pkg left no .deb"
  fi
elif [[ -d $kernel ]]; then
  tree=$kernel
elif [[ -f $kernel ]]; then
  deb=$kernel
else
  die "guest_kernel '$kernel' is neither a .deb nor a directory"
fi

if [[ -z $tree ]]; then
  tree=$work/tree
  mkdir -p "$tree"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tree" --wildcards './boot/vmlinuz-*' './lib/modules/*' ||
    die "cannot unpack $deb"
fi
mapfile -t kvers < <(find "$tree/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
[[ ${#kvers[@]} -eq 1 ]] || die "expected exactly one kernel version under $tree/lib/modules, found ${#kvers[@]}"
kver=${kvers[0]}
bzimage=$tree/boot/vmlinuz-$kver
[[ -f $bzimage ]] || die "no $bzimage"

# --- 2. vmlinux out of the bzImage -----------------------------------------
# The payload is an XZ stream somewhere after the setup code (the approach of
# the kernel's scripts/extract-vmlinux): try each XZ magic until an ELF
# comes out.
vmlinux=$work/vmlinux
found=
while IFS=: read -r offset _; do
  tail -c "+$((offset + 1))" "$bzimage" | xz -dc --single-stream >"$vmlinux" 2>/dev/null || true
  if [[ $(head -c 4 "$vmlinux" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
    found=1
    break
  fi
done < <(grep -abo $'\xfd7zXZ\x00' "$bzimage" || true)
[[ -n $found ]] || die "no XZ-compressed ELF kernel in $bzimage (a non-Debian or non-XZ kernel?)"

# The ELF's PT_LOAD segments end in zeros (.bss, .brk, .init.scratch:
# 23 MB of the 66 MB). QEMU's loader maps the file and copies FileSiz bytes
# of each segment into guest RAM, zero-filling up to MemSiz: with those
# zeros counted as file data, every boot reads them and QEMU's resident set
# keeps 23 MB of file pages it never needs again. Trailing zeros are
# therefore declared as MemSiz only (the guest sees the same bytes).
python3 - "$vmlinux" <<'PY' || die "cannot trim the kernel's PT_LOAD segments"
import struct, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    data = bytearray(f.read())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit("not a little-endian ELF64")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        p_type, _, p_offset, _, _, p_filesz, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", data, at)
        if p_type != 1 or p_filesz > p_memsz:  # PT_LOAD only
            continue
        used = len(bytes(data[p_offset:p_offset + p_filesz]).rstrip(b"\0"))
        used = (used + 4095) // 4096 * 4096
        if used < p_filesz:
            struct.pack_into("<Q", data, at + 32, used)
    f.seek(0)
    f.write(data)
PY

# --- 3. modules in load order ------------------------------------------------
moddir=$tree/lib/modules/$kver
if [[ ! -f $moddir/modules.dep || $tree != "$work/tree" ]]; then
  if [[ $tree != "$work/tree" ]]; then
    # Never write into the caller's tree: depmod a private copy.
    mkdir -p "$work/tree/lib/modules"
    cp -a "$moddir" "$work/tree/lib/modules/"
    tree=$work/tree
    moddir=$tree/lib/modules/$kver
  fi
  depmod -b "$tree" "$kver"
fi

staging=$work/staging
mkdir -p "$staging/lib/modules"
order=$staging/lib/modules/order
: >"$order"
declare -A sources=()
declare -A plain=()
for group in "${group_order[@]}"; do
  declare -A seen=()
  for root in ${groups[$group]}; do
    deps=$(modprobe -d "$tree" -S "$kver" --show-depends "$root") ||
      die "modprobe --show-depends $root failed for $kver"
    while read -r verb path _; do
      [[ $verb == insmod ]] || continue # "builtin x": nothing to load
      file=${path##*/}
      [[ $file == *.ko ]] || die "$path: compressed modules are not supported"
      if [[ -n ${sources[$file]:-} && ${sources[$file]} != "$path" ]]; then
        die "two modules named $file: ${sources[$file]} and $path"
      fi
      sources[$file]=$path
      [[ -n ${seen[$file]:-} ]] && continue
      seen[$file]=1
      if [[ $boot_groups == *" $group "* ]]; then
        plain[$file]=1
      fi
      echo "$group $file" >>"$order"
    done <<<"$deps"
  done
  unset seen
done
# A module needed at boot stays plain everywhere; the others become .ko.zst.
mkdir -p "$work/zst"
: >"$order.final"
while read -r group file; do
  if [[ -n ${plain[$file]:-} ]]; then
    echo "$group $file" >>"$order.final"
  else
    echo "$group $file.zst" >>"$order.final"
  fi
done <"$order"
mv "$order.final" "$order"
# Debian signs its modules; the guest kernel (CONFIG_MODULE_SIG, not
# enforced) then hashes every module it loads and checks the signature,
# which under TCG cost ~0.1 s of the first ext4 mount. The modules come from
# the initramfs the guest kernel trusts anyway (it is the kernel's own
# image), so the signature protects nothing there: it is cut off
# ("~Module signature appended~", struct module_signature, then the
# PKCS#7 blob of sig_len bytes, from the end), and the guest kernel loads the
# module as unsigned (it taints itself, which nothing in the VM looks at).
unsign() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
marker = b"~Module signature appended~\n"
if data.endswith(marker):
    sig_len, = struct.unpack_from(">I", data, len(data) - len(marker) - 4)
    data = data[:len(data) - len(marker) - 12 - sig_len]
open(sys.argv[2], "wb").write(data)
PY
}
mkdir -p "$work/ko"
for file in "${!sources[@]}"; do
  unsign "${sources[$file]}" "$work/ko/$file" || die "cannot strip the signature of $file"
  sources[$file]=$work/ko/$file
  if [[ -z ${plain[$file]:-} ]]; then
    zstd -q -19 --single-thread -c "${sources[$file]}" >"$work/zst/$file.zst"
  fi
done

# --- 4. the tools (LVM, md, LUKS, NTFS) -------------------------------------
debdir=$cachedir/debs
mkdir -p "$debdir"
missing=()
for p in "${tool_packages[@]}"; do
  compgen -G "$debdir/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build-image: downloading ${missing[*]} into $debdir" >&2
  (cd "$debdir" && apt-get "${sandbox[@]}" -q download "${missing[@]}" >&2) ||
    die "apt-get download of the guest tools failed (apt-get update?); or copy their .debs into $debdir"
fi
troot=$work/tools-root
mkdir -p "$troot"
for p in "${tool_packages[@]}"; do
  deb=$(find "$debdir" -maxdepth 1 -name "${p}_*.deb" | sort -V | tail -n 1)
  [[ -n $deb ]] || die "no ${p}_*.deb in $debdir"
  dpkg-deb -x "$deb" "$troot" || die "cannot unpack $deb"
done
# The libraries the programs need, transitively (DT_NEEDED), all from the
# unpacked packages: a soname none of them holds fails the build, naming it.
declare -A libs=()
queue=("${tool_programs[@]}" lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)
while ((${#queue[@]})); do
  f=${queue[0]}
  queue=("${queue[@]:1}")
  [[ -f $troot/$f ]] || die "the tool packages hold no $f"
  while read -r soname; do
    [[ -n ${libs[$soname]:-} ]] && continue
    found=
    for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
      if [[ -e $troot/$d/$soname ]]; then found=$d/$soname; break; fi
    done
    [[ -n $found ]] || die "$f needs $soname, which none of the tool packages holds (add its package to tool_packages)"
    libs[$soname]=$found
    queue+=("$found")
  done < <(readelf -d "$troot/$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
ttree=$work/tools
mkdir -p "$ttree/bin" "$ttree/lib"
for prog in "${tool_programs[@]}"; do
  cp "$troot/$prog" "$ttree/bin/"
done
for soname in "${!libs[@]}" ld-linux-x86-64.so.2; do
  cp -L "$troot/${libs[$soname]:-lib/x86_64-linux-gnu/$soname}" "$ttree/lib/$soname"
done
# Reproducible: fixed times, root-owned, no xattrs; zstd for TCG's sake (xz
# decompresses several times slower).
find "$ttree" -exec touch -h -d @0 {} +
mksquashfs "$ttree" "$work/tools.sqfs" -comp zstd -Xcompression-level 19 -noappend -all-root -no-xattrs \
  -no-progress -quiet -mkfs-time 0 -all-time 0 >&2 || die "mksquashfs failed (squashfs-tools installed?)"

# --- 5. the initramfs --------------------------------------------------------
strip --strip-all -o "$work/init" "$daemon"
locale=/usr/lib/locale/C.utf8/LC_CTYPE
[[ -f $locale ]] || die "no $locale (Debian's libc-bin ships it)"
spec=$work/spec
{
  echo "file init 0755 $work/init"
  for d in dev proc sys run lib lib/modules; do echo "dir $d 0755"; done
  echo "nod dev/console 0600 c 5 1"
  # The tools image and where the daemon mounts it; their programs' ELF
  # interpreter, /lib64/ld-linux-x86-64.so.2, is found through the link.
  echo "file tools.sqfs 0444 $work/tools.sqfs"
  echo "dir tools 0755"
  echo "slink lib64 0777 tools/lib"
  echo "file lib/modules/order 0644 $order"
  # The daemon's LC_CTYPE (C.UTF-8), for libarchive's name handling; the
  # same glibc as the statically linked daemon.
  for d in usr usr/lib usr/lib/locale usr/lib/locale/C.utf8; do echo "dir $d 0755"; done
  echo "file usr/lib/locale/C.utf8/LC_CTYPE 0644 $locale"
  for file in "${!sources[@]}"; do
    if [[ -n ${plain[$file]:-} ]]; then
      echo "file lib/modules/$file 0644 ${sources[$file]}"
    else
      echo "file lib/modules/$file.zst 0644 $work/zst/$file.zst"
    fi
  done
} >"$spec"
"$mkcpio" <"$spec" >"$work/initramfs.cpio"
mv "$work/initramfs.cpio" "$work/initramfs.img"
size=$(stat -c %s "$work/initramfs.img")
((size < max_initramfs)) || die "initramfs.img is $size bytes, over the 24 MiB budget"

mv -f "$vmlinux" "$outdir/vmlinuz"
mv -f "$work/initramfs.img" "$outdir/initramfs.img"
echo "build-image: kernel $kver, $(wc -l <"$order") module loads, tools $(stat -c %s "$work/tools.sqfs") bytes, initramfs $size bytes" >&2
