#!/usr/bin/env bash
# Builds every libFuzzer target with clang (-Dfuzzing=true, ASan + UBSan) into
# build-fuzz/ and runs each for FUZZ_SECONDS on a copy of its seed corpus.
# Without FUZZ_SECONDS the stage gets FUZZ_BUDGET seconds of wall time in
# all (default 200, CI's share of its 40 minutes), split evenly over the
# targets (FUZZ_JOBS at a time), each at least 15 s and at most 60 s. Fails on any crash, leak, timeout or out-of-memory; the
# offending input is kept under build-fuzz/artifacts/ — add it to
# fuzz/corpus/<parser>/ as a regression input (docs/fuzzing.md).
#   FUZZ_SECONDS=600 scripts/fuzz.sh            # longer runs
#   scripts/fuzz.sh fuzz_policy fuzz_qcow2      # only these targets
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-fuzz
jobs=${FUZZ_JOBS:-$(nproc)}

if [[ ! -f "$build/build.ninja" ]]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzzing=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  # Every target listed in fuzz/meson.build.
  mapfile -t targets < <(grep -oE "^  'fuzz_[a-z0-9_]+'" fuzz/meson.build | tr -d " '" | sort)
fi
((${#targets[@]})) || { echo "fuzz: no targets listed" >&2; exit 1; }
if [[ -n ${FUZZ_SECONDS:-} ]]; then
  seconds=$FUZZ_SECONDS
else
  seconds=$(( ${FUZZ_BUDGET:-200} * jobs / ${#targets[@]} ))
  ((seconds >= 15)) || seconds=15
  ((seconds <= 60)) || seconds=60
fi
# Only the fuzz binaries (and what they link): the programs, the guest image
# and the tests are built and tested elsewhere.
ninja -C "$build" "${targets[@]/#/fuzz/}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$PWD/$build/artifacts"
mkdir -p "$artifacts"

run_one() {
  local name=$1 parser=${1#fuzz_}
  local corpus="$work/$name"
  mkdir -p "$corpus"
  cp -r "fuzz/corpus/$parser/." "$corpus/" 2>/dev/null || true
  rm -f "$corpus/README.md"
  local dict=()
  [[ -f "fuzz/dict/$parser.dict" ]] && dict=(-dict="fuzz/dict/$parser.dict")
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/fuzz/$name" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$corpus" >"$work/$name.log" 2>&1; then
    echo "fuzz: $name ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$') runs in ${seconds}s)"
  else
    echo "fuzz: $name FAILED" >&2
    tail -n 60 "$work/$name.log" >&2
    return 1
  fi
}
export -f run_one
export build seconds work artifacts

echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time" >&2
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
