#!/usr/bin/env bash
# What Landlock for QEMU costs (issue 11): a cold `file-restore list` (the
# helper starts QEMU, the guest boots, answers status, mounts and lists an
# ext4 root, then the VM is stopped) with the helper as built against the
# same helper with the Landlock step compiled out
# (build/bench/file-restore-helper-no-landlock). Results go to
# docs/benchmarks.md.
#
#   bench/landlock-cost.sh [ROUNDS]     (default 8)
#
# As root (the helper is used as built, like scripts/quickstart.sh). The
# two helpers alternate run by run (round-robin), so a load that changes
# during the run weighs on both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/${BUILD_DIR:-build}
rounds=${1:-8}
client=$build/client/file-restore
with=$build/helper/file-restore-helper
without=$build/bench/file-restore-helper-no-landlock
for f in "$client" "$with" "$without" "$build/guest/vmlinuz"; do
  [[ -e $f ]] || { echo "landlock-cost: $f missing: ninja -C ${BUILD_DIR:-build}" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "landlock-cost: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "landlock-cost: needs hyperfine" >&2; exit 1; }
work=$root/bench/work/landlock
snap=vm/100/2026-11-30T00:00:00Z
export FILE_RESTORE_REPOSITORY=$work/repo XDG_RUNTIME_DIR=$work/run
mkdir -p "$work/repo/$snap" "$work/root/etc" && mkdir -p -m 700 "$XDG_RUNTIME_DIR"
echo bench-host >"$work/root/etc/hostname"
if [[ ! -f $work/repo/$snap/disk.img ]]; then
  truncate -s 64M "$work/repo/$snap/disk.img"
  mkfs.ext4 -q -F -d "$work/root" "$work/repo/$snap/disk.img"
fi
"$client" stop --all >/dev/null 2>&1 || true
trap '"$client" stop --all >/dev/null 2>&1 || true' EXIT
list="$client list $snap /disk.img/raw/etc"
# One run each first: both must work, and the Landlock one must say so in
# nothing (the no-Landlock one logs that it runs without).
FILE_RESTORE_HELPER=$with $list >/dev/null
"$client" stop --all >/dev/null
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 0; i < rounds; i++)); do
  for variant in with without; do
    helper=$with; [[ $variant == without ]] && helper=$without
    hyperfine --runs 1 --style none --export-json "$work/$variant-$i.json" \
      --cleanup "$client stop --all" "FILE_RESTORE_HELPER=$helper $list" >/dev/null
  done
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
for v, label in (("without", "helper without Landlock (before)"), ("with", "helper with Landlock (after)")):
    t = [json.load(open(f"{work}/{v}-{i}.json"))["results"][0]["mean"] for i in range(rounds)]
    print(f"| {label} | {statistics.mean(t):.3f} ± {statistics.stdev(t):.3f} s | {min(t):.3f} s | {max(t):.3f} s |")
PY
