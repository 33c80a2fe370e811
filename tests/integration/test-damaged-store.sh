#!/bin/bash
# What upgrade-recovery(8) promises for a store holding damage, checked in a
# plain-directory store in a temporary root (no partition needed):
#  - a name in backups/ like a backup id that is no directory (a file, a symbolic
#    link): list shows it as DAMAGED and says 'delete ID' removes it;
#  - list --json marks it "damaged": true, and one whose metadata cannot be read
#    now (perhaps a good backup) "damaged": false;
#  - delete removes such a name, exit 0, leaving nothing behind and never
#    following the link;
#  - verify --json and delete --json carry the keys the page lists.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd jq setpriv
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
# --json tells a damaged name (delete removes it) from a backup that cannot be read now.
rc=0
cli --json list >"$T/lj.out" 2>"$T/lj.err" || rc=$?
[ $rc = 7 ] || die "list --json with damaged names: exit $rc, not 7"
for id in $FILE_ID $LINK_ID; do
    jq -e --arg id "$id" '[.[] | select(.id == $id)] | length == 1 and .[0].damaged == true and (.[0].error | contains("is not a directory"))' \
        "$T/lj.out" >/dev/null || die "list --json: $id is not one damaged entry: $(cat "$T/lj.out")"
done
jq -e --arg id "$B1" '[.[] | select(.id == $id)] | length == 1 and .[0].damaged == null' "$T/lj.out" >/dev/null ||
    die "list --json: the backup $B1 is not one entry without damaged: $(cat "$T/lj.out")"
# One whose metadata cannot be read now (EACCES: root without CAP_DAC_OVERRIDE) is
# UNREADABLE, perhaps a good backup: damaged false.
mode=$(stat -c %a "$STORE/backups/$B1/metadata.toml")
chmod 000 "$STORE/backups/$B1/metadata.toml"
rc=0
setpriv --inh-caps=-dac_override,-dac_read_search --bounding-set=-dac_override,-dac_read_search -- \
    "$UR_CLI" --root "$ROOT" --config "$CFG" --json list >"$T/lu.out" 2>"$T/lu.err" || rc=$?
chmod "$mode" "$STORE/backups/$B1/metadata.toml"
[ $rc = 1 ] || die "list --json with unreadable metadata: exit $rc, not 1: $(cat "$T/lu.err")"
jq -e --arg id "$B1" '[.[] | select(.id == $id)] | length == 1 and .[0].damaged == false and (.[0].error | contains("Permission denied"))' \
    "$T/lu.out" >/dev/null || die "list --json: the unreadable $B1 is not one entry with damaged false: $(cat "$T/lu.out")"
echo "ok: list --json tells damaged from unreadable"

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

# --- the --json objects of verify and delete, as the page lists their keys ----------
cli --json verify >"$T/v.json" 2>"$T/v.err" || die "verify --json: $(cat "$T/v.err")"
jq -e --arg id "$B1" 'keys == ["checked", "id", "mismatches", "ok"] and .id == $id and .ok == true and .checked > 0 and .mismatches == []' \
    "$T/v.json" >/dev/null || die "verify --json: $(cat "$T/v.json")"
cli backup >"$T/b2.out" 2>&1 || die "second backup: $(cat "$T/b2.out")"
cli --json delete "$B1" >"$T/d.json" 2>"$T/d.err" || die "delete --json: $(cat "$T/d.err")"
jq -e --arg id "$B1" 'keys == ["deleted", "finished_interrupted", "unpinned"] and .deleted == $id and .unpinned == [] and .finished_interrupted == []' \
    "$T/d.json" >/dev/null || die "delete --json: $(cat "$T/d.json")"
echo "ok: verify --json and delete --json have the page's keys"

echo "PASS: test-damaged-store"
