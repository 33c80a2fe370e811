#!/bin/bash
# What upgrade-recovery(8) promises for a store holding damage, checked in a
# plain-directory store in a temporary root (no partition needed):
#  - a name in backups/ like a backup id that is no directory (a file, a symbolic
#    link): list shows it as DAMAGED and says 'delete ID' removes it; delete does,
#    exit 0, leaving nothing behind and never following the link.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd jq
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT

ROOT=$T/root
STORE=$ROOT/var/recovery
CFG=$T/config.toml
ur_plain_sandbox "$ROOT" "$CFG" "ur-damaged-store-none-$$"
cli() { "$UR_CLI" --root "$ROOT" --config "$CFG" "$@"; }

cli backup >"$T/b.out" 2>&1 || die "backup: $(cat "$T/b.out")"
B1=$(cli --json list | jq -r '.[0].id')

# --- damaged names that are no directory ------------------------------------------
mkdir "$T/outside"
echo keep >"$T/outside/file"
FILE_ID=20000101T000000Z LINK_ID=20000102T000000Z
echo junk >"$STORE/backups/$FILE_ID"
ln -s "$T/outside" "$STORE/backups/$LINK_ID"
rc=0
cli list >"$T/l.out" 2>"$T/l.err" || rc=$?
[ $rc = 7 ] || die "list with damaged names: exit $rc, not 7"
for id in $FILE_ID $LINK_ID; do
    grep -q "^$id  DAMAGED, .*'upgrade-recovery delete $id' removes it" "$T/l.out" ||
        die "list does not show $id as damaged: $(cat "$T/l.out")"
done
for id in $FILE_ID $LINK_ID; do
    rc=0
    cli delete "$id" >"$T/d.out" 2>"$T/d.err" || rc=$?
    [ $rc = 0 ] || die "delete $id (damaged, no directory): exit $rc, not 0: $(cat "$T/d.err")"
    grep -qxF "Deleted backup $id." "$T/d.out" || die "delete $id: $(cat "$T/d.out")"
done
[ "$(ls -A "$STORE/backups")" = "$B1" ] || die "delete left something in backups/: $(ls -A "$STORE/backups")"
[ "$(cat "$T/outside/file")" = keep ] || die "delete followed the symbolic link"
cli list >"$T/l2.out" 2>"$T/l2.err" || die "list after the deletes: $(cat "$T/l2.err")"
echo "ok: delete removes a damaged name that is no directory"

echo "PASS: test-damaged-store"
