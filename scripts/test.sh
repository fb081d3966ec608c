#!/usr/bin/env bash
# The README's second command: the same set-up as quickstart.sh, then the
# whole test suite. Exits non-zero when anything fails.
#   scripts/test.sh           everything: unit + end-to-end suites, static
#                             analysis, fuzzing (FUZZ_SECONDS each), and the
#                             suite again under ASan + UBSan
#   scripts/test.sh --quick   the unit + end-to-end suites only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "== $name" >&2
  "$@"
  echo "== $name: done in $((SECONDS - start)) s" >&2
}

stage build scripts/build.sh
stage tests meson test -C "${BUILD_DIR:-build}" --print-errorlogs --num-processes "$(nproc)"
if ((!quick)); then
  stage lint scripts/lint.sh
  stage fuzz scripts/fuzz.sh
  stage asan scripts/asan.sh
fi
echo "== all green in $SECONDS s" >&2
