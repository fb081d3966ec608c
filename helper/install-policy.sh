#!/bin/sh
# meson install script: installs the default policy (helper.conf.default) at
# the compiled-in policy path unless a policy is already there, and, when
# installing onto this system as root, creates the system group it names.
# A policy naming a group that does not exist denies everyone (a typo must
# not silently change who is allowed), so the group must exist.
#   install-policy.sh POLICY_PATH DEFAULT_POLICY
set -eu
policy="${DESTDIR:-}$1"
if [ -e "$policy" ] || [ -L "$policy" ]; then
  echo "install-policy: keeping the existing $policy"
  exit 0
fi
install -d -m 0755 "$(dirname "$policy")"
install -m 0644 "$2" "$policy"
echo "install-policy: installed $policy (allow group file-restore)"
if [ -z "${DESTDIR:-}" ] && [ "$(id -u)" -eq 0 ] && ! getent group file-restore >/dev/null; then
  groupadd --system file-restore
  echo "install-policy: created the system group file-restore; add users with: usermod -aG file-restore USER"
fi
