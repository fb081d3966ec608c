#!/usr/bin/env bash
# Static analysis of the code that handles untrusted input with privilege:
# clang-tidy (the repository's .clang-tidy) and cppcheck on shared/ and
# helper/. Reports nothing on a clean tree; exits non-zero on any finding.
# Needs a configured build directory for compile_commands.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[[ -f "$build/compile_commands.json" ]] || { echo "lint: no $build/compile_commands.json (run scripts/build.sh)" >&2; exit 2; }

mapfile -t sources < <(git ls-files 'shared/*.cpp' 'helper/*.cpp' | sort)
echo "lint: clang-tidy on ${#sources[@]} files" >&2
printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2> >(grep -v -E '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' >&2)

echo "lint: cppcheck on shared/ helper/" >&2
cppcheck --enable=warning,style,performance,portability --error-exitcode=1 --inline-suppr \
  --std=c++20 -I. -I"$build" --suppress=missingIncludeSystem --quiet \
  -j "$(nproc)" shared/ helper/
echo "lint: clean" >&2
