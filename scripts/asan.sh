#!/usr/bin/env bash
# The unit and end-to-end suites under AddressSanitizer +
# UndefinedBehaviorSanitizer, in a separate build directory (build-asan/).
#
# The guest daemon is linked statically and runs inside the VM: it is never
# sanitized (guest/meson.build), so this build makes no image of its own but
# boots the main build's (-Dprebuilt_image, brought up to date first), and
# leaves out suite 'guest-vm' (tests/guest/vm_test.cpp and
# vm_volumes_test.cpp), whose code under test is that daemon. The daemon's
# logic is still run sanitized here by the host-side unit suites ('guest':
# tree, session, channels), and the client against a real VM by 'e2e' and
# 'pbs_e2e'.
#
# Compiled at -O1 with line tables only (-g1): ASan's recommended level,
# and half the compile time of the main build's -O2 -g.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan
main=${BUILD_DIR:-build}
[[ -f "$main/build.ninja" ]] || { echo "asan: no $main/ (run scripts/build.sh first: its guest image is booted here)" >&2; exit 2; }
ninja -C "$main" guest/vmlinuz guest/initramfs.img
image=$PWD/$main/guest
options=(-Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1 -Ddebug=false
  -Dcpp_args=-g1 -Dc_args=-g1 -Dimage_dir="$image" -Dprebuilt_image="$image")
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" "${options[@]}"
else
  meson configure "$build" "${options[@]}"
fi
ninja -C "$build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" --no-suite guest-vm "$@"
