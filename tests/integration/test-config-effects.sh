#!/bin/bash
# What upgrade-recovery.conf(5) says a key does, seen through the CLI with a drop-in
# in a plain-directory sandbox (no partition needed):
#  - an empty backup.trees: exit 3 naming file, line and column.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd jq
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT

# sandbox NAME: a fresh root $R with its /etc config and an empty config.d ($D).
sandbox()
{
    R=$T/$1/root
    D=$R/etc/upgrade-recovery/config.d
    mkdir -p "$D"
    ur_plain_sandbox "$R" "$R/etc/upgrade-recovery/config.toml" "ur-config-effects-none-$$"
}
cli() { "$UR_CLI" --root "$R" "$@"; }
# rc WANT OUT ERR CMD...: run CMD, its status must be WANT.
rc()
{
    want=$1 out=$2 err=$3
    shift 3
    got=0
    "$@" >"$out" 2>"$err" || got=$?
    [ "$got" = "$want" ] || die "'$*': exit $got, not $want: $(cat "$err")"
}

# --- an empty backup.trees ---------------------------------------------------------
sandbox empty
printf '[backup]\nretention = 2\ntrees = []\n' >"$D/50-trees.toml"
rc 3 "$T/e.out" "$T/e.err" cli backup
grep -qF "$D/50-trees.toml:3:9: backup.trees must name at least one tree" "$T/e.err" ||
    die "an empty backup.trees is not named at its position: $(cat "$T/e.err")"
[ ! -e "$R/var/recovery" ] || die "the refused backup created the store"
echo "ok: an empty backup.trees names file, line and column"
echo "PASS: test-config-effects"
