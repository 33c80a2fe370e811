#!/bin/bash
# The bash completion (upgrade-recovery.bash) offers what upgrade-recovery(8) accepts.
# bash-completion's _init_completion and _filedir are stood in for, and so is the CLI
# (a function printing a fixed list --json): no package, no store needed.
# Usage: test-bash-completion.sh upgrade-recovery.bash
set -u
failures=0
# shellcheck disable=SC2034 # set for _upgrade_recovery, as bash-completion does
_init_completion()
{
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
}
_filedir() { :; }
complete() { :; }
# shellcheck source=/dev/null
. "$1"
# The store of another root (--root /sandbox) has another backup.
upgrade-recovery()
{
    if [[ $* == "--root /sandbox list --json" || $* == "--root /sandbox --dir /srv list --json" ]]; then
        echo '[{"id":"20250101T000000Z"}]'
    elif [[ $* == "list --json" ]]; then
        echo '[{"id":"20240102T030405Z"},{"id":"20240101T000000Z"}]'
    fi
}

# expect "WANT" WORD...: the completion of the last WORD is exactly WANT.
expect()
{
    local want=$1
    shift
    COMP_WORDS=(upgrade-recovery "$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _upgrade_recovery
    local got="${COMPREPLY[*]}"
    if [[ $got != "$want" ]]; then
        echo "FAIL: upgrade-recovery $* <TAB>: got '$got', want '$want'"
        failures=$((failures + 1))
    fi
}

ids="20240102T030405Z 20240101T000000Z"
expect "start stop monitor trigger" watchdog ""
expect "$ids" watchdog start ""
expect "$ids" --json watchdog start ""
expect "" watchdog stop ""
expect "--timeout" watchdog start --t
expect "" watchdog stop --t
expect "--reason --root" watchdog trigger --r
expect "--root" watchdog start --r
expect "$ids" verify ""
expect "$ids" recover --backup ""
expect "--output" metrics --o
expect "" metrics --j
expect "--json" status --j

# The ids of the store the line names, not of this host's.
expect "20250101T000000Z" --root /sandbox verify ""
expect "20250101T000000Z" --root /sandbox --dir /srv recover --backup ""
expect "20250101T000000Z" --root /sandbox watchdog start ""

[ $failures = 0 ] || exit 1
echo "PASS: test-bash-completion"
