#!/usr/bin/env bash
# file-restore against libguestfs, side by side, on the same disk images in
# one run (issue 7). Results: bench/work/compare/results.md, to be copied
# into docs/benchmarks.md.
#
#   bench/compare.sh [RUNS]          (default 5 timed runs per command)
#
# Environment: BUILD_DIR (default build), SKIP_SCALE=1 (leave out the
# 1,000,000-entry directory and the 4 GiB sparse file), SKIP_COLD=1,
# SKIP_PBS=1 (leave out the PBS datastores).
#
# Needs a build (scripts/build.sh), hyperfine, and libguestfs-tools with a
# kernel for its appliance (scripts/install-deps.sh --bench). Runs as root
# (the helper is used as built, like scripts/quickstart.sh does) or as a
# user with the helper installed setuid (FILE_RESTORE_HELPER).
#
# What is compared (libguestfs with LIBGUESTFS_BACKEND=direct, both under
# the same accelerator: TCG here):
#   cold list     `file-restore list` of the ext4 partition's root, no VM
#                 running                        vs `virt-ls -m /dev/sda1 /`
#   cold extract  the 256 MiB file into a directory, no VM running
#                                                vs `guestfish -m /dev/sda1 copy-out`
#                 (what `virt-copy-out` runs, less its OS inspection `-i`,
#                 which refuses a disk without an operating system)
#   warm list     `file-restore list` on the running VM
#                                                vs `guestfish --remote ls`
#   warm extract  the 256 MiB file to stdout     vs `guestfish --remote download`
#   memory        QEMU's peak RSS (VmHWM) after the warm runs, both
#   PBS           the same disk as a Proxmox Backup Server datastore, 4 MiB
#                 chunks, zstd and encrypted (issue 13): cold list and warm
#                 extract against the raw file, and the client's and the NBD
#                 server's peak RSS (needs a build with tests: the datastore
#                 writer is a test tool)
#   scale         directories of 100,000 and 1,000,000 entries (client
#                 peak RSS, the guest daemon's peak RSS from its log), a
#                 4 GiB sparse file
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/${BUILD_DIR:-build}
runs=${1:-5}
work=$root/bench/work/compare
client=$build/client/file-restore
export LIBGUESTFS_BACKEND=direct

for f in "$client" "$build/helper/file-restore-helper" "$build/guest/vmlinuz" "$build/guest/initramfs.img"; do
  [[ -e $f ]] || { echo "compare: $f missing: run scripts/build.sh" >&2; exit 1; }
done
for tool in hyperfine virt-ls virt-copy-out guestfish python3; do
  command -v "$tool" >/dev/null || { echo "compare: needs $tool (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
if [[ -z ${FILE_RESTORE_HELPER:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "compare: as a user, set FILE_RESTORE_HELPER to the setuid helper" >&2; exit 1; }
  export FILE_RESTORE_HELPER=$build/helper/file-restore-helper
fi

snap=vm/100/2026-11-26T00:00:00Z
repo=$work/repo
export FILE_RESTORE_REPOSITORY=$repo
export XDG_RUNTIME_DIR=$work/run
mkdir -p "$repo/$snap" "$work"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
disk=$repo/$snap/disk.img
scale=$repo/$snap/scale.img
out=$work/out
results=$work/results.md

guestfish_pid=
cleanup() {
  "$client" stop --all >/dev/null 2>&1 || true
  if [[ -n $guestfish_pid ]]; then
    guestfish --remote="$guestfish_pid" exit >/dev/null 2>&1 || true
  fi
  rm -rf "$out"
}
trap cleanup EXIT
"$client" stop --all >/dev/null 2>&1 || true

# --- the disks (kept between runs: they take minutes) ------------------------
if [[ ! -f $disk || ! -f $work/big.sha256 ]]; then
  echo "== making the benchmark disk (1 GiB GPT: ext4 with 10,000 files and 256 MiB, vfat)"
  bench/make-bench-disk.sh "$disk.new" | tail -1 >"$work/big.sha256.new"
  mv "$disk.new" "$disk"
  mv "$work/big.sha256.new" "$work/big.sha256"
fi
big_sha=$(cat "$work/big.sha256")
if [[ ${SKIP_SCALE:-0} != 1 && ! -f $scale ]]; then
  # mkfs.ext4 -d inserts into a directory linearly (hours for 1,000,000
  # names), so this image is filled through a loop mount instead: it is
  # our own, freshly made filesystem, not a backup (the host kernel never
  # mounts anything untrusted). Needs root and loop devices.
  echo "== making the scale disk (ext4, no partition table: /many with 1,000,000 entries, /some with 100,000, /sparse.bin 4 GiB sparse)"
  [[ $(id -u) -eq 0 ]] || { echo "compare: making the scale disk needs root (or SKIP_SCALE=1)" >&2; exit 1; }
  rm -f "$scale.new"
  truncate -s 6G "$scale.new"
  mkfs.ext4 -q -F -N 1100000 -L scale "$scale.new"
  mnt=$(mktemp -d)
  mount -o loop "$scale.new" "$mnt"
  mkdir "$mnt/many" "$mnt/some"
  python3 - "$mnt" <<'PY'
import os, sys
for sub, count in (("many", 1_000_000), ("some", 100_000)):
    os.chdir(os.path.join(sys.argv[1], sub))
    for i in range(count):
        os.close(os.open("f%07d" % i, os.O_CREAT | os.O_WRONLY, 0o644))
PY
  truncate -s 4G "$mnt/sparse.bin"
  printf 'the end\n' | dd of="$mnt/sparse.bin" bs=1 seek=$((4 * 1024 * 1024 * 1024 - 8)) conv=notrunc status=none
  umount "$mnt"
  rmdir "$mnt"
  mv "$scale.new" "$scale"
fi

fr=$client
part=/disk.img/part/1
versions() {
  echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- accelerator: $([[ -n ${LIBGUESTFS_BACKEND_SETTINGS:-} ]] && echo 'TCG (KVM unusable here; libguestfs with force_tcg)' || { [[ -w /dev/kvm ]] && echo KVM || echo 'TCG (no /dev/kvm)'; })"
  echo "- $(qemu-system-x86_64 --version | head -1)"
  echo "- file-restore $("$client" --version | head -1 | awk '{print $NF}'); libguestfs $(guestfish --version | awk '{print $2}'), backend direct"
  echo "- $(hyperfine --version), $runs runs per command after 1 warm-up; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# hyperfine's JSON -> "median (min–max)" per command, and the ratio.
summarize() { # title json
  python3 - "$1" "$2" <<'PY' | tee -a "$results"
import json, sys
title, path = sys.argv[1], sys.argv[2]
res = json.load(open(path))["results"]
print(f"\n## {title}\n")
print("| command | median | min–max | runs |")
print("|---|---:|---:|---:|")
for r in res:
    print(f"| `{r['command']}` | {r['median']:.3f} s | {r['min']:.3f}–{r['max']:.3f} s | {len(r['times'])} |")
if len(res) == 2:
    a, b = res
    print(f"\nfile-restore / libguestfs (medians): **{a['median'] / b['median']:.3f}** "
          f"(libguestfs takes {b['median'] / a['median']:.1f}× as long)")
PY
}
throughput() { # json bytes
  python3 - "$1" "$2" <<'PY' | tee -a "$results"
import json, sys
res = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
rates = [size / r["median"] / 1e6 for r in res]
for r, rate in zip(res, rates):
    print(f"- `{r['command']}`: {rate:.1f} MB/s (median)")
if len(rates) == 2:
    print(f"\nthroughput ratio file-restore / libguestfs: **{rates[0] / rates[1]:.2f}×**")
PY
}
big_bytes=$((256 * 1024 * 1024))

# --- correctness first: both tools see the same bytes ------------------------
echo "== checking both tools return the 256 MiB file intact"
got=$($fr extract "$snap" "$part/big.bin" - 2>"$work/first.err" | sha256sum | cut -d' ' -f1)
cat "$work/first.err" >&2
# The same accelerator for both: where the helper found KVM unusable (a
# /dev/kvm that cannot run a guest hangs QEMU), libguestfs runs under TCG too.
if grep -q 'TCG' "$work/first.err"; then
  export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi
[[ $got == "$big_sha" ]] || { echo "compare: file-restore returned big.bin with sha256 $got, want $big_sha" >&2; exit 1; }
"$client" stop --all >/dev/null
got=$(guestfish --ro --format=raw -a "$disk" -m /dev/sda1 download /big.bin - | sha256sum | cut -d' ' -f1)
[[ $got == "$big_sha" ]] || { echo "compare: libguestfs returned big.bin with sha256 $got, want $big_sha" >&2; exit 1; }
{
  echo "# file-restore vs libguestfs ($(date -u +%Y-%m-%d))"
  echo
  versions
  echo
} >"$results"

# --- cold ----------------------------------------------------------------
if [[ ${SKIP_COLD:-0} != 1 ]]; then
  echo "== cold list"
  hyperfine --warmup 1 --runs "$runs" --export-json "$work/cold-list.json" \
    --prepare "$client stop --all" --prepare "true" \
    -n "file-restore list $part" "$fr list $snap $part" \
    -n "virt-ls -m /dev/sda1 /" "virt-ls --format=raw -a $disk -m /dev/sda1 /"
  summarize "Cold list: a partition's root, no VM running" "$work/cold-list.json"

  echo "== cold extract"
  hyperfine --warmup 1 --runs "$runs" --export-json "$work/cold-extract.json" \
    --prepare "$client stop --all; rm -rf $out; mkdir -p $out" --prepare "rm -rf $out; mkdir -p $out" \
    -n "file-restore extract big.bin DIR" "$fr extract $snap $part/big.bin $out" \
    -n "guestfish -m /dev/sda1 copy-out /big.bin DIR" "guestfish --ro --format=raw -a $disk -m /dev/sda1 copy-out /big.bin $out"
  summarize "Cold extract: the 256 MiB file into a directory, no VM running" "$work/cold-extract.json"
  throughput "$work/cold-extract.json" "$big_bytes"
  "$client" stop --all >/dev/null
fi

# --- warm ----------------------------------------------------------------
echo "== warm: starting both"
$fr list "$snap" "$part" >/dev/null
eval "$(guestfish --listen --ro --format=raw -a "$disk")"
guestfish_pid=$GUESTFISH_PID
guestfish --remote="$guestfish_pid" run
guestfish --remote="$guestfish_pid" mount-ro /dev/sda1 /
gf="guestfish --remote=$guestfish_pid"
[[ $($fr list "$snap" "$part" | wc -l) -eq $($gf ls / | wc -l) ]] \
  || { echo "compare: the two listings differ in length" >&2; exit 1; }

echo "== warm list"
hyperfine --warmup 3 --runs $((runs * 4)) --export-json "$work/warm-list.json" \
  -n "file-restore list $part" "$fr list $snap $part" \
  -n "guestfish --remote ls /" "$gf ls /"
summarize "Warm list: a partition's root on a running VM / appliance" "$work/warm-list.json"

echo "== warm extract"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/warm-extract.json" \
  -n "file-restore extract big.bin -" "$fr extract $snap $part/big.bin -" \
  -n "guestfish --remote download /big.bin -" "$gf download /big.bin -"
summarize "Warm extract: the 256 MiB file to stdout" "$work/warm-extract.json"
throughput "$work/warm-extract.json" "$big_bytes"

# --- memory --------------------------------------------------------------
# status: proxmox-file-restore's shape, {"Qemu": {"ids": {NAME: {"pid": N, ...}}}}
fr_qemu=$("$client" status --output-format json |
  python3 -c 'import json,sys; print(next(iter(json.load(sys.stdin)["Qemu"]["ids"].values()))["pid"])')
gf_qemu=
for pid in $(pgrep -x qemu-system-x86 || true); do
  [[ $pid == "$fr_qemu" ]] && continue
  grep -qa guestfs "/proc/$pid/cmdline" && gf_qemu=$pid
done
[[ -n $gf_qemu ]] || { echo "compare: cannot find libguestfs's QEMU" >&2; exit 1; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
mem_of() { tr '\0' ' ' <"/proc/$1/cmdline" | grep -o -- '-m [^ ]*' | head -1; }
fr_hwm=$(hwm "$fr_qemu")
gf_hwm=$(hwm "$gf_qemu")
{
  echo
  echo "## QEMU peak RSS after the warm runs"
  echo
  echo "| | QEMU VmHWM | guest RAM |"
  echo "|---|---:|---:|"
  echo "| file-restore | $((fr_hwm / 1024)) MiB | $(mem_of "$fr_qemu") |"
  echo "| libguestfs | $((gf_hwm / 1024)) MiB | $(mem_of "$gf_qemu") |"
  echo
  python3 -c "print(f'file-restore / libguestfs: **{$fr_hwm / $gf_hwm:.3f}**')"
} | tee -a "$results"
$gf exit
guestfish_pid=
"$client" stop --all >/dev/null

# --- PBS datastores (issue 13) -------------------------------------------
if [[ ${SKIP_PBS:-0} != 1 ]]; then
  echo "== PBS datastores"
  maker=$build/tests/pbs/fr-pbs-make-datastore
  [[ -x $maker ]] || { echo "compare: $maker missing (a build with tests)" >&2; exit 1; }
  export FILE_RESTORE_NBDKIT_PLUGIN=${FILE_RESTORE_NBDKIT_PLUGIN:-$build/client/pbs/nbdkit-file-restore-pbs-plugin.so}
  ds=$work/datastore
  key=$work/pbs-key.json
  snap_enc=vm/101/2026-11-26T00:00:00Z
  [[ -f $key ]] || "$maker" --new-key "$key"
  if [[ ! -f $ds/$snap/disk.img.fidx || $ds/$snap/disk.img.fidx -ot $disk ]]; then
    rm -rf "$ds"
    "$maker" "$ds" "$snap" disk.img="$disk"
    "$maker" --keyfile "$key" "$ds" "$snap_enc" disk.img="$disk"
  fi
  # /disk.img/... names disk.img.fidx in the datastore: the same paths.
  # The repository options go after the command (list, extract).
  raw="--repository $repo"
  pz="--repository $ds"
  pe="--repository $ds --keyfile $key"
  for args in "$pz $snap" "$pe $snap_enc"; do
    got=$($fr extract $args "$part/big.bin" - | sha256sum | cut -d' ' -f1)
    [[ $got == "$big_sha" ]] || { echo "compare: 'extract $args' returned big.bin with sha256 $got, want $big_sha" >&2; exit 1; }
  done
  "$client" stop --all >/dev/null
  ratios() { # title json: each command against the first (the raw file)
    python3 - "$1" "$2" "$big_bytes" <<'PY' | tee -a "$results"
import json, sys
title, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
res = json.load(open(path))["results"]
print(f"\n## {title}\n")
print("| command | median | min–max | vs the raw file |")
print("|---|---:|---:|---:|")
for r in res:
    print(f"| `{r['command']}` | {r['median']:.3f} s | {r['min']:.3f}–{r['max']:.3f} s | {r['median'] / res[0]['median']:.2f}× the time |")
PY
  }
  # Round-robin (one run of each command in turn, a warm-up round first):
  # on a shared, noisy machine consecutive runs of one command see another
  # load than those of the next. Writes hyperfine's JSON shape.
  round_robin() { # json rounds prepare name command [name command ...]
    python3 - "$@" <<'PY'
import json, statistics, subprocess, sys, time
out, rounds, prepare = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pairs = list(zip(sys.argv[4::2], sys.argv[5::2]))
times = {name: [] for name, _ in pairs}
quiet = dict(shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for r in range(rounds + 1):
    for name, cmd in pairs:
        subprocess.run(prepare, **quiet)
        start = time.monotonic()
        subprocess.run(cmd, **quiet)
        if r:
            times[name].append(time.monotonic() - start)
json.dump({"results": [{"command": n, "median": statistics.median(t), "min": min(t),
                        "max": max(t), "times": t} for n, t in times.items()]}, open(out, "w"))
PY
  }
  echo "== PBS: cold list"
  round_robin "$work/pbs-cold-list.json" $((runs * 2)) "$client stop --all" \
    "raw file: list $part" "$fr list $raw $snap $part" \
    "datastore, zstd: list $part" "$fr list $pz $snap $part" \
    "datastore, encrypted: list $part" "$fr list $pe $snap_enc $part"
  ratios "PBS datastore: cold list of a partition's root, $((runs * 2)) rounds round-robin (target ≤ 1.25× the raw file's)" "$work/pbs-cold-list.json"

  echo "== PBS: warm extract"
  $fr list $raw "$snap" "$part" >/dev/null
  $fr list $pz "$snap" "$part" >/dev/null
  $fr list $pe "$snap_enc" "$part" >/dev/null
  round_robin "$work/pbs-warm-extract.json" $((runs * 2)) true \
    "raw file: extract big.bin -" "$fr extract $raw $snap $part/big.bin -" \
    "datastore, zstd: extract big.bin -" "$fr extract $pz $snap $part/big.bin -" \
    "datastore, encrypted: extract big.bin -" "$fr extract $pe $snap_enc $part/big.bin -"
  ratios "PBS datastore: warm extract of the 256 MiB file to stdout, $((runs * 2)) rounds round-robin" "$work/pbs-warm-extract.json"
  python3 - "$work/pbs-warm-extract.json" "$work/warm-extract.json" "$big_bytes" <<'PY' | tee -a "$results"
import json, sys
pbs = json.load(open(sys.argv[1]))["results"]
gf = json.load(open(sys.argv[2]))["results"][1]  # guestfish --remote download, this run
size = int(sys.argv[3])
rate = lambda r: size / r["median"] / 1e6
print()
for r in pbs:
    print(f"- `{r['command']}`: {rate(r):.1f} MB/s, {rate(r) / rate(pbs[0]):.2f}× the raw file's "
          f"(target ≥ 0.5×), {rate(r) / rate(gf):.1f}× libguestfs's {rate(gf):.1f} MB/s (target ≥ 3×)")
PY

  echo "== PBS: memory"
  # The client's peak RSS over one warm extract, and the NBD server's peak
  # (VmHWM) after all the warm runs; the server's chunk cache is bounded
  # to 32 MiB (docs/pbs.md).
  t=$(mktemp)
  /usr/bin/time -f '%M' -o "$t" $fr extract $pz "$snap" "$part/big.bin" - >/dev/null
  client_kib=$(tail -1 "$t")
  /usr/bin/time -f '%M' -o "$t" $fr extract $pe "$snap_enc" "$part/big.bin" - >/dev/null
  client_enc_kib=$(tail -1 "$t")
  rm -f "$t"
  server_hwm() { # the datastore's index path -> VmHWM (KiB) of its server
    local pid
    pid=$(pgrep -f -- "index=$1/disk.img.fidx" | head -1)
    [[ -n $pid ]] && awk '/VmHWM/ {print $2}' "/proc/$pid/status"
  }
  server_kib=$(server_hwm "$snap")
  server_enc_kib=$(server_hwm "$snap_enc")
  {
    echo
    echo "## PBS datastore: peak RSS around the warm extracts"
    echo
    echo "| | client | NBD server (nbdkit + plugin) | both, less the 32 MiB cache (target ≤ 64 MiB) |"
    echo "|---|---:|---:|---:|"
    echo "| zstd | $((client_kib / 1024)) MiB | $((server_kib / 1024)) MiB | $(((client_kib + server_kib) / 1024 - 32)) MiB |"
    echo "| encrypted | $((client_enc_kib / 1024)) MiB | $((server_enc_kib / 1024)) MiB | $(((client_enc_kib + server_enc_kib) / 1024 - 32)) MiB |"
  } | tee -a "$results"
  "$client" stop --all >/dev/null
fi

# --- scale ---------------------------------------------------------------
if [[ ${SKIP_SCALE:-0} != 1 ]]; then
  echo "== scale"
  # Client peak RSS (KiB) and wall time of one command; its stdout goes to
  # a counter, not to memory.
  measure() { # label command...
    local label=$1 t lines
    shift
    t=$(mktemp)
    lines=$( { /usr/bin/time -f '%M %e' -o "$t" "$@" | wc -l; } )
    read -r rss secs <"$t"
    rm -f "$t"
    echo "| $label | $lines | $secs s | $((rss / 1024)) MiB |"
  }
  guest_peak() { # the daemon logs its peak RSS after listing >= 100,000 entries
    grep -aho 'list: [0-9]* entries, peak RSS [0-9]* KiB' "$XDG_RUNTIME_DIR"/file-restore/*.log 2>/dev/null \
      | tail -1 | awk '{print $(NF-1)}'
  }
  # A fresh VM: the daemon's peak is its own since boot.
  "$client" stop --all >/dev/null
  $fr list "$snap" /scale.img/raw >/dev/null
  {
    echo
    echo "## Scale: directories of 100,000 and 1,000,000 entries (VM running)"
    echo
    echo "| listing | lines | wall | client peak RSS | guest daemon peak RSS after it |"
    echo "|---|---:|---:|---:|---:|"
    echo "$(measure "text, 100 entries" $fr list "$snap" "$part/small/d000") – |"
    echo "$(measure "text, 100,000 entries" $fr list "$snap" /scale.img/raw/some) $(guest_peak) KiB |"
    echo "$(measure "text, 1,000,000 entries" $fr list "$snap" /scale.img/raw/many) $(guest_peak) KiB |"
    echo "$(measure "JSON, 1,000,000 entries" $fr list --output-format json "$snap" /scale.img/raw/many) $(guest_peak) KiB |"
  } | tee -a "$results"

  echo "== 4 GiB sparse file"
  rm -rf "$out"
  mkdir -p "$out"
  start=$(date +%s.%N)
  $fr extract "$snap" /scale.img/raw/sparse.bin "$out"
  end=$(date +%s.%N)
  size=$(stat -c %s "$out/sparse.bin")
  used=$(du -k "$out/sparse.bin" | cut -f1)
  tailtext=$(tail -c 8 "$out/sparse.bin")
  [[ $size -eq $((4 * 1024 * 1024 * 1024)) && $tailtext == "the end" ]] \
    || { echo "compare: sparse.bin came back wrong (size $size, tail '$tailtext')" >&2; exit 1; }
  {
    echo
    echo "## Scale: a 4 GiB sparse file extracted into a directory (VM running)"
    echo
    python3 -c "print(f'- {($end - $start):.1f} s; {$size} bytes, {$used} KiB allocated on the host; the last bytes intact')"
  } | tee -a "$results"
fi
echo
echo "results: $results"
