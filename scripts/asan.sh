#!/usr/bin/env bash
# The whole unit and end-to-end suite under AddressSanitizer +
# UndefinedBehaviorSanitizer, in a separate build directory (build-asan/).
# The guest daemon is linked statically and runs inside the VM: it is built
# without sanitizers there (guest/meson.build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan
if [[ ! -f "$build/build.ninja" ]]; then
  extra=()
  # Reuse the kernel package the main build fetched, if there is one.
  deb=$(ls build/guest/linux-image-*.deb 2>/dev/null | head -n 1 || true)
  [[ -n "$deb" ]] && extra+=(-Dguest_kernel="$PWD/$deb")
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
    -Dimage_dir="$PWD/$build/guest" "${extra[@]}"
fi
ninja -C "$build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" "$@"
