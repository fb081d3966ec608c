#!/usr/bin/env bash
# The README's second command: the same set-up as quickstart.sh, then the
# whole test suite. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

meson test -C "${BUILD_DIR:-build}" --print-errorlogs --num-processes "$(nproc)"
