#!/usr/bin/env bash
# The README's first command: install what is needed, build everything into
# build/, then run the main job on a sample disk image made here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

echo
echo "== file-restore built in build/"
build/client/file-restore --version
build/helper/file-restore-helper --version
