#!/usr/bin/env bash
# Static analysis of the product code: clang-tidy (the repository's
# .clang-tidy) and cppcheck on shared/, helper/, client/ and guest/. Reports
# nothing on a clean tree; exits non-zero on any finding. Needs a configured
# build directory for compile_commands.json.
#
# clang-tidy is slow here (a file that includes CLI11 or nlohmann/json takes
# up to a minute on two cores), so a file found clean is remembered, like
# ccache remembers objects: the key is the hash of its preprocessed source,
# its compile command, .clang-tidy and the clang-tidy version, so any change
# to the file or to anything it includes analyses it again. The cache lives
# in $LINT_CACHE (default ~/.cache/file-restore/lint); LINT_CACHE=off
# analyses every file.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[[ -f "$build/compile_commands.json" ]] || { echo "lint: no $build/compile_commands.json (run scripts/build.sh)" >&2; exit 2; }
cache=${LINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/file-restore/lint}

mapfile -t sources < <(git ls-files 'shared/*.cpp' 'helper/*.cpp' 'client/*.cpp' 'guest/*.cpp' | sort)

# "<key> <file>" for each source: sha256 over what clang-tidy would see.
keys() {
  python3 - "$build" "$@" <<'EOF'
import concurrent.futures, hashlib, json, os, shlex, subprocess, sys
build, files = sys.argv[1], sys.argv[2:]
entries = {}
for e in json.load(open(os.path.join(build, 'compile_commands.json'))):
    entries.setdefault(os.path.normpath(os.path.join(e['directory'], e['file'])), e)
common = hashlib.sha256(open('.clang-tidy', 'rb').read())
common.update(subprocess.run(['clang-tidy', '--version'], capture_output=True).stdout)
drop_with_value = {'-o', '-MQ', '-MF', '-MT'}
def key(f):
    e = entries.get(os.path.abspath(f))
    if e is None:
        return 'none'  # not compiled in this build: always analysed
    args, skip = [], False
    for a in shlex.split(e['command'])[1 if e['command'].startswith('ccache ') else 0:]:
        if skip:
            skip = False
        elif a in drop_with_value:
            skip = True
        elif a not in ('-c', '-MD', '-MMD', '-fdiagnostics-color=always'):
            args.append(a)
    pre = subprocess.run(args + ['-E'], cwd=e['directory'], capture_output=True)
    h = common.copy()
    h.update(' '.join(args).encode())
    h.update(pre.stdout if pre.returncode == 0 else os.urandom(16))
    return h.hexdigest()
# One preprocessor per core: sequentially this took a minute and a half.
with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    for f, k in zip(files, pool.map(key, files)):
        print(k, f)
EOF
}

todo=()
if [[ "$cache" == off ]]; then
  todo=("${sources[@]/#/none }")
else
  mkdir -p "$cache"
  while read -r key file; do
    [[ "$key" != none && -e "$cache/$key" ]] || todo+=("$key $file")
  done < <(keys "${sources[@]}")
fi
echo "lint: clang-tidy on ${#todo[@]} of ${#sources[@]} files (the others unchanged since found clean)" >&2
tidy_one() {
  local key=$1 file=$2
  clang-tidy -p "$build" --quiet "$file" 2> >(grep -v -E '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' >&2) || return 1
  [[ "$key" == none || "$cache" == off ]] || touch "$cache/$key"
}
export -f tidy_one
export build cache
((${#todo[@]} == 0)) || printf '%s\n' "${todo[@]}" | xargs -P "$(nproc)" -L 1 bash -c 'tidy_one "$@"' _

# useStlAlgorithm is off: a plain loop over a few ids is easier to audit
# in the helper than an algorithm call with a lambda.
echo "lint: cppcheck on shared/ helper/ client/ guest/" >&2
cppcheck --enable=warning,style,performance,portability --error-exitcode=1 --inline-suppr \
  --std=c++20 -I. -I"$build" --suppress=missingIncludeSystem --suppress=useStlAlgorithm --quiet \
  -j "$(nproc)" shared/ helper/ client/ guest/
echo "lint: clean" >&2
