#!/usr/bin/env bash
# The bash completion offers `stop` the VM names from the state map,
# shell-quoted (names hold '\'); zsh's file at least parses.
#   completion_test.sh <build/client/file-restore> <completion dir>
set -euo pipefail
client=$1
completion=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -m 700 "$work/run" "$work/run/file-restore"
name='qemu_-srv-b-vm-100-2026\x2d11\x2d25'
ticket=$(printf 'a%.0s' {1..64})
cat >"$work/run/file-restore/vm-map.json" <<JSON
{"version":1,"vms":[{"name":"${name//\\/\\\\}","pid":4321,"start_time":1,"transport":"serial","cid":null,
 "socket":"/run/x.sock","ticket":"$ticket","started_at":0,"idle_timeout":600,"memory":null,
 "archives":[{"name":"YS5pbWc=","format":"raw","path":"L2EuaW1n"}]}]}
JSON
chmod 600 "$work/run/file-restore/vm-map.json"

export XDG_RUNTIME_DIR=$work/run
[[ $("$client" status --names) == "$name" ]] || { echo "status --names: wrong output"; exit 1; }

complete_words() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _file_restore; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$completion/file-restore.bash" "$@"
}
got=$(complete_words "$client" stop qemu_-srv)
printf -v want '%q' "$name"
[[ $got == "$want" ]] || { echo "stop completion: got '$got', want '$want'"; exit 1; }
# The quoted word names the VM once the shell dequotes it.
eval "set -- $got"
[[ $1 == "$name" ]] || { echo "quoted name does not dequote to the name"; exit 1; }
[[ -z $(complete_words "$client" stop nomatch) ]] || { echo "unexpected candidates"; exit 1; }
[[ $(complete_words "$client" li) == list ]] || { echo "subcommand completion broken"; exit 1; }
[[ $(complete_words "$client" list --transport s) == serial ]] || { echo "--transport completion broken"; exit 1; }

if command -v zsh >/dev/null; then
	zsh -n "$completion/_file-restore" || { echo "zsh completion does not parse"; exit 1; }
else
	echo "zsh not installed: zsh completion syntax not checked"
fi
echo "completion ok"
