#!/usr/bin/env bash
# Installs every Debian 12 package file-restore needs to build, test and
# benchmark. Idempotent; needs root (or sudo). Nothing is installed by hand.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also libguestfs-tools for bench/
set -euo pipefail

packages=(
  # build
  meson ninja-build g++ pkg-config clang lld libclang-rt-14-dev
  libseccomp-dev libcap-ng-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
  libarchive-dev libblkid-dev libsodium-dev libzstd-dev zlib1g-dev
  # file-restore mount: libfuse3 (fusermount3 is setuid in fuse3)
  libfuse3-dev fuse3
  nettle-dev liblzma-dev libbz2-dev liblz4-dev libacl1-dev libxml2-dev
  # PBS datastores (issue 13): OpenSSL for the chunk crypto, nbdkit (and its
  # plugin header) for the NBD server
  libssl-dev nbdkit nbdkit-plugin-dev
  # guest image: kernel download/extraction, module ordering, initramfs
  apt-utils dpkg-dev cpio xz-utils zstd kmod binutils squashfs-tools
  # VM runtime
  qemu-system-x86 qemu-utils
  # test disk images, built without mounting anything
  e2fsprogs dosfstools mtools xfsprogs btrfs-progs gdisk fdisk util-linux
  # the builder VM of the LVM/md/LUKS/NTFS test disks (tests/guest/volume-disks.sh)
  busybox-static exfatprogs udftools genisoimage
  # test and analysis tools
  systemd hyperfine clang-tidy cppcheck procps psmisc
  # the mount test (rsync --dry-run over a mounted tree)
  rsync
  # shell completion checks
  bash-completion zsh
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libguestfs-tools linux-image-amd64)
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
