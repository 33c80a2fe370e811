#!/bin/bash
# `systemd-analyze verify` on our unit files; any complaint about one of them fails.
# Usage: verify-units.sh [--map INSTALLED_PATH=BUILD_PATH]... UNIT_FILE...
# The maps point the installed binary paths (ExecStart=) at the build tree, so verify's
# "is it executable" check looks at what was just built. Runs without systemd as PID 1.
set -u
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }
maps=()
units=()
while [ $# -gt 0 ]; do
    case $1 in
    --map) maps+=("$2"); shift 2 ;;
    *) units+=("$1"); shift ;;
    esac
done
[ ${#units[@]} -gt 0 ] || { echo "usage: $0 [--map FROM=TO]... UNIT..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=()
for u in "${units[@]}"; do
    [ -f "$u" ] || { echo "FAIL: no unit file $u"; exit 1; }
    out=$tmp/$(basename "$u")
    cp "$u" "$out"
    for m in "${maps[@]}"; do
        from=${m%%=*} to=${m#*=}
        sed -E -i "s#${from}( |\$)#${to}\\1#g" "$out"
    done
    names+=("$(basename "$u")")
done
cd "$tmp" || exit 1
rc=0
output=$(systemd-analyze verify --man=no "${names[@]/#/./}" 2>&1) || rc=$?
echo "systemd-analyze verify ${names[*]}: rc=$rc"
[ -n "$output" ] && printf '%s\n' "$output"
if [ $rc -ne 0 ]; then
    echo "FAIL: systemd-analyze verify failed"
    exit 1
fi
# Warnings (unknown keys, bad values) do not change the exit code: fail on any line
# about one of our units. Lines about host units our units depend on are only shown.
for n in "${names[@]}"; do
    if grep -F -- "$n" <<<"$output" >/dev/null; then
        echo "FAIL: systemd-analyze verify complained about $n"
        exit 1
    fi
done
echo "ok: ${#names[@]} units verified"
