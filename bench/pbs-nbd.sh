#!/usr/bin/env bash
# The PBS datastore reader without a VM (issue 13): QEMU's own NBD client
# (qemu-img convert) reads the 1 GiB benchmark disk through nbdkit, once as
# the raw file (nbdkit's file plugin) and once from a datastore through our
# plugin, zstd and encrypted (4 MiB chunks). It measures what the chunk
# reader (decode, CRC, digest, decryption, cache) costs on top of serving
# a file; bench/compare.sh measures the whole path through the VM.
#
#   bench/pbs-nbd.sh [RUNS]      (default 5)
#
# Results: bench/work/pbs/results.md. Needs a build, hyperfine, nbdkit,
# qemu-utils; writes 1 GiB to /dev/shm per run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/${BUILD_DIR:-build}
runs=${1:-5}
work=$root/bench/work/pbs
plugin=$build/client/pbs/nbdkit-file-restore-pbs-plugin.so
maker=$build/tests/pbs/fr-pbs-make-datastore
pair=$root/bench/nbd_pair.py
snap=vm/100/2026-11-26T00:00:00Z
index=$snap/drive-scsi0.img.fidx
for f in "$plugin" "$maker"; do
  [[ -e $f ]] || { echo "pbs-nbd: $f missing: build first" >&2; exit 1; }
done
for tool in hyperfine nbdkit qemu-img python3; do
  command -v "$tool" >/dev/null || { echo "pbs-nbd: needs $tool" >&2; exit 1; }
done
mkdir -p "$work"
disk=$work/disk.img
if [[ ! -f $disk ]]; then
  echo "== making the benchmark disk"
  bench/make-bench-disk.sh "$disk.new" >/dev/null
  mv "$disk.new" "$disk"
fi
[[ -f $work/key.json ]] || "$maker" --new-key "$work/key.json"
for kind in zstd enc; do
  ds=$work/ds-$kind
  if [[ ! -f $ds/$index ]]; then
    rm -rf "$ds"
    keyopt=()
    [[ $kind == enc ]] && keyopt=(--keyfile "$work/key.json")
    "$maker" "${keyopt[@]}" "$ds" "$snap" drive-scsi0.img="$disk"
  fi
done
# The raw key for key-fd (the client sends it the same way, on a pipe).
python3 -c 'import base64, json, sys; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))["data"]))' \
  "$work/key.json" >"$work/key.bin"
csum() { python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()[4096:]).hexdigest())' "$1/$index"; }
size=$(stat -c %s "$disk")
out=/dev/shm/fr-pbs-nbd-$$.raw
trap 'rm -f "$out"' EXIT
client="qemu-img convert --image-opts driver=nbd,server.type=fd,server.str=3 -O raw $out"
server="nbdkit --single --readonly --threads=4 --log=stderr"
pbs() { # kind -> the plugin's arguments
  local ds=$work/ds-$1
  echo "$plugin datastore=$ds index=$index csum=$(csum "$ds") size=$size"
}
hyperfine --warmup 1 --runs "$runs" --export-json "$work/nbd.json" \
  -n "raw file (nbdkit file)" "$pair $server file $disk -- $client" \
  -n "datastore, zstd" "$pair $server $(pbs zstd) encrypted=false -- $client" \
  -n "datastore, encrypted" "bash -c 'exec 5<$work/key.bin; exec $pair $server $(pbs enc) encrypted=true key-fd=5 -- $client'"
cmp "$out" "$disk" || { echo "pbs-nbd: the copy differs from the disk" >&2; exit 1; }
{
  echo "# PBS datastore reader over NBD, no VM ($(date -u +%Y-%m-%d))"
  echo
  echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r); $(nbdkit --version | head -1); $(qemu-img --version | head -1)"
  echo "- 1 GiB disk (bench/make-bench-disk.sh), 4 MiB chunks, $runs runs: qemu-img convert from NBD to /dev/shm"
  echo
  python3 - "$work/nbd.json" "$size" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
base = size / res[0]["median"] / 1e6
print("| source | median | MB/s | vs raw |")
print("|---|---:|---:|---:|")
for r in res:
    rate = size / r["median"] / 1e6
    print(f"| {r['command']} | {r['median']:.2f} s | {rate:.0f} | {rate / base:.2f}× |")
PY
} | tee "$work/results.md"
