#!/usr/bin/env bash
# Cold list of an LVM root against a plain filesystem (issue 14): what the
# volume layer (tools image mounted, LVM scanned and activated read-only)
# adds to a first call.
#
#   bench/lvm-list.sh [RUNS]          (default 10 timed runs per command)
#
# Both commands list a root directory with no VM running (each run starts
# from `stop --all`):
#   plain   /plain.img/raw/: a 48 MiB ext4 on the whole disk, made here
#           with mke2fs -d (nothing mounted on the host)
#   LVM     /lvm.img/lvm/vgtest/root/: the LVM test disk of the volume
#           suite (tests/guest/volume-disks.sh: a GPT partition holding
#           the VG vgtest with the LVs root, data and a thin pool with thin
#           and thinsnap), built in a VM once and cached
#           ($FR_TEST_DISK_CACHE, default /var/tmp/file-restore-test-disks)
# Results: bench/work/lvm-list/results.md, to be copied into
# docs/benchmarks.md. Needs a build with the guest image, hyperfine, and
# root (the helper is used as built) or FILE_RESTORE_HELPER set to the
# installed setuid helper.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/${BUILD_DIR:-build}
runs=${1:-10}
work=$root/bench/work/lvm-list
client=$build/client/file-restore
for f in "$client" "$build/guest/vmlinuz" "$build/guest/initramfs.img"; do
  [[ -e $f ]] || { echo "lvm-list: $f missing: run scripts/build.sh" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "lvm-list: needs hyperfine (scripts/install-deps.sh --bench)" >&2; exit 1; }
if [[ -z ${FILE_RESTORE_HELPER:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "lvm-list: as a user, set FILE_RESTORE_HELPER to the setuid helper" >&2; exit 1; }
  export FILE_RESTORE_HELPER=$build/helper/file-restore-helper
fi

disks=$(tests/guest/volume-disks.sh "$build/guest" "${FR_TEST_DISK_CACHE:-/var/tmp/file-restore-test-disks}")
# Two snapshots: one VM per snapshot, and a VM scans every disk of its
# snapshot (the LVM disk beside the plain one would slow the plain list).
snap=vm/101/2026-11-30T00:00:00Z
plain=vm/102/2026-11-30T00:00:00Z
repo=$work/repo
export FILE_RESTORE_REPOSITORY=$repo
export XDG_RUNTIME_DIR=$work/run
rm -rf "$repo"
mkdir -p "$repo/$snap" "$repo/$plain" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
cp "$disks/lvm.img" "$repo/$snap/lvm.img"
tree=$work/tree
rm -rf "$tree"
mkdir -p "$tree/etc" "$tree/data"
echo plain-host >"$tree/etc/hostname"
seq 1 100000 >"$tree/data/numbers"
mke2fs -q -F -t ext4 -d "$tree" "$repo/$plain/plain.img" 48M
trap '"$client" stop --all >/dev/null 2>&1 || true' EXIT

fr=$client
# Both answer before they are timed.
$fr list "$plain" /plain.img/raw/etc | grep -q hostname
$fr list "$snap" /lvm.img/lvm/vgtest/root/etc | grep -q hostname
"$client" stop --all >/dev/null

hyperfine --warmup 1 --runs "$runs" --export-json "$work/cold-list.json" \
  --prepare "$client stop --all" \
  -n "plain ext4: list /plain.img/raw/" "$fr list $plain /plain.img/raw/" \
  -n "LVM: list /lvm.img/lvm/vgtest/root/" "$fr list $snap /lvm.img/lvm/vgtest/root/"

python3 - "$work/cold-list.json" >"$work/results.md" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]["mean"]
print("| command | mean | min–max | vs plain |")
print("|---|---|---|---|")
for r in results:
    print(f"| `{r['command']}` | {r['mean']:.3f} s ± {r['stddev']:.3f} | "
          f"{r['min']:.3f}–{r['max']:.3f} s | {r['mean'] / base:.2f}× |")
EOF
cat "$work/results.md"
