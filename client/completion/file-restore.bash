# bash completion for file-restore                      -*- shell-script -*-
# Installed by meson as <datadir>/bash-completion/completions/file-restore.
# VM names for `stop` come from `file-restore status --names`, which reads
# the state map without contacting any VM.

_file_restore()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	local prev=${COMP_WORDS[COMP_CWORD-1]}
	local sub="" i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		list | extract | status | stop)
			sub=${COMP_WORDS[i]}
			break
			;;
		esac
	done

	case $prev in
	--output-format)
		mapfile -t COMPREPLY < <(compgen -W "text json json-pretty" -- "$cur")
		return
		;;
	--transport)
		mapfile -t COMPREPLY < <(compgen -W "auto vsock serial" -- "$cur")
		return
		;;
	--format)
		mapfile -t COMPREPLY < <(compgen -W "tar zip" -- "$cur")
		return
		;;
	--repository)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	--image | --keyfile)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	--timeout | --memory | --idle-timeout | --ns | --keyfd | --key-password-fd)
		return
		;;
	esac

	local global="-v --verbose --output-format --version -h --help"
	local target="--repository --image --base64 --timeout --transport --memory --idle-timeout --ns --keyfile --keyfd --key-password-fd"
	case $sub in
	"")
		mapfile -t COMPREPLY < <(compgen -W "list extract status stop $global" -- "$cur")
		;;
	list)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$target $global" -- "$cur")
		fi
		;;
	extract)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$target --format --zstd --symlinks $global" -- "$cur")
		else
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		fi
		;;
	status)
		mapfile -t COMPREPLY < <(compgen -W "--names --timeout $global" -- "$cur")
		;;
	stop)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--all --timeout $global" -- "$cur")
			return
		fi
		# VM names hold '\' (systemd escapes): offer them shell-quoted, and
		# match what was typed against the quoted form (no compgen -W, which
		# would expand the words).
		local name quoted
		COMPREPLY=()
		while IFS= read -r name; do
			printf -v quoted '%q' "$name"
			[[ $quoted == "$cur"* ]] && COMPREPLY+=("$quoted")
		done < <("${COMP_WORDS[0]}" status --names 2>/dev/null)
		;;
	esac
}
complete -F _file_restore file-restore
