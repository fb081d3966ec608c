#!/usr/bin/env bash
# Installs the dependencies and builds everything into build/ (or $BUILD_DIR).
# Extra arguments go to `meson setup` on the first configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

scripts/install-deps.sh

if [[ ! -f "$build/build.ninja" ]]; then
  # The development image directory: the VM runs straight from the build tree.
  meson setup "$build" -Dimage_dir="$PWD/$build/guest" "$@"
fi
ninja -C "$build"
