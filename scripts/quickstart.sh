#!/usr/bin/env bash
# The README's first command: install what is needed, build everything into
# build/, then run the main job: make a sample backup (a GPT disk image with
# an ext4 partition, built with mkfs.ext4 -d and dd, nothing mounted) and
# restore a file from it through the real path: the client, the setuid
# helper, QEMU and the daemon in the VM. Prints each step and command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

work=$PWD/build/quickstart
client=$PWD/build/client/file-restore
snap=vm/100/2026-11-25T10:00:00Z
disk=drive-scsi0.img

say() { printf '\n== %s\n' "$*"; }
show() {
  printf '$'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

# Leftovers of an earlier run: its VM first, then its files.
if [[ -d "$work/run" ]]; then
  XDG_RUNTIME_DIR=$work/run FILE_RESTORE_HELPER=/nonexistent "$client" stop --all >/dev/null 2>&1 || true
fi
rm -rf "$work"
mkdir -p "$work"

say "file-restore built in build/"
"$client" --version
build/helper/file-restore-helper --version
ls -l build/guest/vmlinuz build/guest/initramfs.img

say "1. a sample backup: snapshot $snap with one disk image, built without mounting anything"
mkdir -p "$work/src/etc" "$work/src/home/alice"
echo "quickstart-$(date -u +%Y%m%dT%H%M%SZ)" >"$work/src/etc/hostname"
printf 'Dear Alice,\nthis file came back from a backup.\n' >"$work/src/home/alice/letter.txt"
show mkfs.ext4 -q -F -L root -d "$work/src" "$work/root.ext4" 32M
mkdir -p "$work/repo/$snap"
image=$work/repo/$snap/$disk
show truncate -s 40M "$image"
printf '$ sfdisk %s <<< "label: gpt; start=2048, size=65536"\n' "$image"
printf 'label: gpt\nstart=2048, size=65536, name=root\n' | sfdisk -q "$image"
show dd if="$work/root.ext4" of="$image" bs=1M seek=1 conv=notrunc status=none

say "2. the setuid helper"
if [[ $(id -u) -eq 0 ]]; then
  # Root needs no setuid bit; the helper runs QEMU as its policy's
  # unprivileged user (nobody by default), never as root.
  helper=$PWD/build/helper/file-restore-helper
  echo "running as root: using $helper as built (QEMU will run as an unprivileged user)"
else
  helper=$work/bin/file-restore-helper
  echo "installing the helper setuid root, as 'meson install' does (sudo):"
  show sudo install -D -o root -g root -m 4755 build/helper/file-restore-helper "$helper"
  # Without a policy file only root may use the helper (docs/helper-policy.md).
  policy=$(meson introspect build --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "helper_config"))')
  if ! sudo test -e "$policy"; then
    echo "no helper policy at $policy yet: installing one that allows you ($(id -un)):"
    printf '# installed by scripts/quickstart.sh (docs/helper-policy.md)\nallow user %s\n' "$(id -un)" >"$work/helper.conf"
    show sudo install -D -o root -g root -m 0644 "$work/helper.conf" "$policy"
  fi
fi

say "3. restore a file through the VM"
export FILE_RESTORE_HELPER=$helper
export FILE_RESTORE_REPOSITORY=$work/repo
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
echo "FILE_RESTORE_REPOSITORY=$FILE_RESTORE_REPOSITORY"
show "$client" list "$snap" /
start=$SECONDS
show "$client" -v list "$snap" /$disk/part
echo "(the first call booted the VM: $((SECONDS - start)) s)"
show "$client" list "$snap" /$disk/part/1/home/alice
show "$client" extract "$snap" /$disk/part/1/home/alice/letter.txt "$work/restored"
show cat "$work/restored/letter.txt"
if cmp -s "$work/src/home/alice/letter.txt" "$work/restored/letter.txt"; then
  echo "restored file is identical to the one put into the image"
else
  echo "restored file differs from the original" >&2
  exit 1
fi
show "$client" status
show "$client" stop --all

say "done: $work holds the sample backup ($image) and what was restored"
