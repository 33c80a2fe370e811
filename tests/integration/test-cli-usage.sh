#!/bin/bash
# Usage errors an administrator makes (upgrade-recovery(8), EXIT STATUS 2): each names
# the mistake and the way out, exits 2, prints one JSON error object with --json, and
# changes nothing. Then the status text of an armed recovery, and recover --dry-run's
# exit status when the run would stop. A plain-directory store
# in a temporary root: no partition needed.
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
ur_plain_sandbox "$ROOT" "$CFG" "ur-cli-usage-none-$$"
cli() { "$UR_CLI" --root "$ROOT" --config "$CFG" "$@"; }

# usage WANT_IN_STDERR ARGS...: exit 2, the text on stderr, and with --json one
# InvalidArgs object on stdout; the store is not created.
usage()
{
    want=$1
    shift
    rc=0
    cli "$@" >"$T/u.out" 2>"$T/u.err" || rc=$?
    [ $rc = 2 ] || die "'$*': exit $rc, not 2: $(cat "$T/u.err")"
    grep -qF -- "$want" "$T/u.err" || die "'$*': '$want' not in: $(cat "$T/u.err")"
    rc=0
    cli --json "$@" >"$T/j.out" 2>"$T/j.err" || rc=$?
    [ $rc = 2 ] || die "'--json $*': exit $rc, not 2"
    # -s: an empty output is [], not a pass (jq -e passes on no input at all).
    jq -se 'length == 1 and .[0].error == "InvalidArgs" and (.[0].message | type == "string")' "$T/j.out" >/dev/null ||
        die "'--json $*': not one InvalidArgs object: $(cat "$T/j.out")"
    # The message as every other error's: the stderr line without its program-name prefix.
    msg=$(jq -r .message "$T/j.out")
    case $msg in upgrade-recovery*) die "'--json $*': the message has the program-name prefix: $msg" ;; esac
    grep -qxF -- "$(grep '^upgrade-recovery[a-z -]*: ' "$T/j.err" | head -n 1 | cut -d: -f1): $msg" "$T/j.err" ||
        die "'--json $*': the message is not the stderr line's: $msg; stderr: $(cat "$T/j.err")"
    [ ! -e "$STORE" ] || die "'$*' created the store"
}

# A command's option before the command (the global options go anywhere, these do not).
usage "--dry-run is an option of a command, not of upgrade-recovery itself: give it after the command name (upgrade-recovery backup --dry-run" \
    --dry-run backup
usage "give it after the command name (upgrade-recovery delete --force" --force delete 20240102T030405Z
usage "give it after the command name (upgrade-recovery recover --backup" --backup 20240102T030405Z recover
# An option nobody knows is an unknown option, wherever it is; not an unknown command.
usage "unknown option '--frob'" --frob status
usage "unknown option '--frob'" status --frob
usage "unknown command 'frob'" frob
echo "ok: options before the command"

# watchdog: the action that is wrong, and the word or option that does not belong to it.
usage "upgrade-recovery watchdog: which action?" watchdog
usage "unknown action 'foo'" watchdog foo
usage "upgrade-recovery watchdog stop: unexpected argument 'extra'" watchdog stop extra
usage "upgrade-recovery watchdog trigger: unexpected argument 'x'" watchdog trigger x
usage "upgrade-recovery watchdog monitor: --timeout goes with watchdog start only" watchdog monitor --timeout 100
usage "upgrade-recovery watchdog stop: --reason goes with watchdog trigger only" watchdog stop --reason finished
echo "ok: watchdog actions"

# recover and rollback-plan take the backup as --backup ID, not alone as verify and arm do.
usage "upgrade-recovery recover: the backup is given as --backup ID (upgrade-recovery recover --backup 20240102T030405Z)" \
    recover --dry-run 20240102T030405Z
usage "upgrade-recovery rollback-plan: the backup is given as --backup ID (upgrade-recovery rollback-plan --backup 20240102T030405Z)" \
    rollback-plan 20240102T030405Z
usage "unexpected argument 'foo'" recover foo
usage "unexpected argument '20240102T030405Z'" recover --abandon 20240102T030405Z
echo "ok: --backup ID"

# An id that cannot be one: named with what to type, and refused before the store is
# opened (arm, watchdog start and recover write: they would create or mount it).
usage "upgrade-recovery arm: 'bogus' is not a backup id (YYYYMMDDTHHMMSSZ, or with -N appended, as 'upgrade-recovery list' shows them; leave it out for the latest backup)" \
    arm bogus
usage "upgrade-recovery watchdog start: 'latest' is not a backup id" watchdog start latest
usage "upgrade-recovery recover: 'bogus' is not a backup id" recover --restart --backup bogus
usage "leave --backup out for the latest backup" rollback-plan --backup latest
usage "upgrade-recovery verify: 'latest' is not a backup id" verify latest
usage "upgrade-recovery delete: 'latest' is not a backup id" delete latest
echo "ok: ids that cannot be one"

# A well-formed id that names no backup (and no backup at all for the latest): exit 1
# (upgrade-recovery(8), EXIT STATUS), one NotFound object with --json, and nothing made
# under a root whose store does not exist yet: arm, watchdog start and recover write,
# but only into the store that holds their backup.
# no_backup WANT_IN_STDERR ARGS...
no_backup()
{
    want=$1
    shift
    before=$(find "$ROOT" | sort)
    rc=0
    cli "$@" >"$T/n.out" 2>"$T/n.err" || rc=$?
    [ $rc = 1 ] || die "'$*': exit $rc, not 1: $(cat "$T/n.err")"
    grep -qF -- "$want" "$T/n.err" || die "'$*': '$want' not in: $(cat "$T/n.err")"
    rc=0
    cli --json "$@" >"$T/n.json" 2>/dev/null || rc=$?
    [ $rc = 1 ] || die "'--json $*': exit $rc, not 1"
    jq -se 'length == 1 and .[0].error == "NotFound"' "$T/n.json" >/dev/null ||
        die "'--json $*': not one NotFound object: $(cat "$T/n.json")"
    after=$(find "$ROOT" | sort)
    [ "$after" = "$before" ] || die "'$*' changed the root: $(diff <(echo "$before") <(echo "$after"))"
}
NOID=20990101T000000Z
for args in "arm $NOID" "arm $NOID --reboot" "verify $NOID" "delete $NOID" "delete --force $NOID" \
    "rollback-plan --backup $NOID" "recover --backup $NOID" "recover --dry-run --backup $NOID" \
    "recover --restart --backup $NOID" "recover --step --backup $NOID" "watchdog start $NOID" \
    "watchdog start $NOID --timeout 600"; do
    # shellcheck disable=SC2086 # a word list
    no_backup "no backup '$NOID'" $args
done
no_backup "there is no backup" arm
no_backup "there is no backup" watchdog start
no_backup "there is no backup" recover
no_backup "there is no recovery in progress to resume" recover --resume
echo "ok: a backup id that names no backup changes nothing"

# A requested backup id ahead of the clock needs no store to be refused: exit 2 and
# nothing made, as StartBackup refuses it before any job.
before=$(find "$ROOT" | sort)
rc=0
cli backup --id 29991231T000000Z >"$T/n.out" 2>"$T/n.err" || rc=$?
[ $rc = 2 ] || die "backup --id ahead of the clock: exit $rc, not 2: $(cat "$T/n.err")"
grep -qF "lies more than a day ahead of the clock" "$T/n.err" || die "backup --id ahead: $(cat "$T/n.err")"
after=$(find "$ROOT" | sort)
[ "$after" = "$before" ] || die "backup --id ahead of the clock changed the root: $(diff <(echo "$before") <(echo "$after"))"
echo "ok: a backup id ahead of the clock changes nothing"

# No command: the usage on stderr; with --json, still the one error object.
usage "Usage: upgrade-recovery [OPTIONS] COMMAND"
echo "ok: no command"

# upgrade-recoveryd --request-backup (the client of upgrade-recovery-backup.service): its
# usage errors exit 2 before the bus is asked (a bus that does not exist here).
daemon_usage()
{
    want=$1
    shift
    rc=0
    DBUS_SYSTEM_BUS_ADDRESS=unix:path=$T/no-bus "$UR_DAEMON" "$@" >"$T/d.out" 2>"$T/d.err" || rc=$?
    [ $rc = 2 ] || die "upgrade-recoveryd $*: exit $rc, not 2: $(cat "$T/d.err")"
    grep -qF -- "$want" "$T/d.err" || die "upgrade-recoveryd $*: '$want' not in: $(cat "$T/d.err")"
}
daemon_usage "--root, --config and --initrd-run-dir are the service's" --request-backup --root "$ROOT"
daemon_usage "--root, --config and --initrd-run-dir are the service's" --config "$CFG" --request-backup
daemon_usage "upgrade-recoveryd: --id: 'bogus' is not a backup id" --request-backup --id bogus
echo "ok: upgrade-recoveryd --request-backup"

# status: "a last line Next: says what to do next" (upgrade-recovery(8)), also when
# WARNING lines are shown: this root has no upgrade-recovery-phase2.service.
cli backup >"$T/b.out" 2>&1 || die "backup: $(cat "$T/b.out")"
# Beside a backup too: recover made recovery/ before it looked for the id.
for args in "arm $NOID" "recover --backup $NOID" "watchdog start $NOID"; do
    # shellcheck disable=SC2086 # a word list
    no_backup "no backup '$NOID'" $args
done
cli arm >"$T/a.out" 2>&1 || die "arm: $(cat "$T/a.out")"
cli status >"$T/s.out" 2>&1 || die "status: $(cat "$T/s.out")"
grep -q '^WARNING: upgrade-recovery-phase2.service is not installed' "$T/s.out" || die "status: no WARNING line: $(cat "$T/s.out")"
tail -n 1 "$T/s.out" | grep -q "^Next: reboot to recover, or 'upgrade-recovery disarm' to cancel$" ||
    die "status: Next: is not the last line: $(cat "$T/s.out")"
echo "ok: status ends with Next:"

# recover --abandon of a recovery only armed: no journal to keep steps in, and it says so.
cli recover --abandon >"$T/ab.out" 2>&1 || die "recover --abandon: $(cat "$T/ab.out")"
grep -qF "Recovery abandoned: no recovery was running, only its marker was removed." "$T/ab.out" ||
    die "recover --abandon of an armed recovery: $(cat "$T/ab.out")"
[ ! -e "$STORE/recovery/journal" ] || die "recover --abandon made a journal"
[ ! -e "$STORE/recovery/armed" ] || die "recover --abandon left the armed marker"
echo "ok: abandon of an armed recovery"

# recover --dry-run exits with the status the run would exit with when it would stop
# (upgrade-recovery(8), --dry-run): the plan on stdout, the error on stderr, --json's
# "refused". The recovery directory stays as it was (no journal).
# dry_run WANT_RC ARGS...: the exit status with and without --json, the same refusal in both.
dry_run()
{
    want=$1
    shift
    rc=0
    cli recover --dry-run "$@" >"$T/dr.out" 2>"$T/dr.err" || rc=$?
    [ $rc = "$want" ] || die "recover --dry-run $*: exit $rc, not $want: $(cat "$T/dr.err")"
    grep -q "^verify: " "$T/dr.out" || die "recover --dry-run $*: no plan on stdout: $(cat "$T/dr.out")"
    rc=0
    cli --json recover --dry-run "$@" >"$T/dr.json" 2>"$T/drj.err" || rc=$?
    [ $rc = "$want" ] || die "--json recover --dry-run $*: exit $rc, not $want"
    jq -se 'length == 1' "$T/dr.json" >/dev/null || die "--json recover --dry-run $*: not one object: $(cat "$T/dr.json")"
    [ "$(ls -A "$STORE/recovery" 2>&1)" = "$rec_before" ] || die "recover --dry-run $* changed $STORE/recovery"
}
rec_before=$(ls -A "$STORE/recovery" 2>&1)
dry_run 0
jq -e '.[0].refused == null' -s "$T/dr.json" >/dev/null || die "a recovery that would go on: refused is not null: $(cat "$T/dr.json")"
! grep -q "would stop" "$T/dr.err" || die "a recovery that would go on: stderr: $(cat "$T/dr.err")"

dry_run 1 --resume
grep -qxF "refused: there is no recovery in progress to resume" "$T/dr.out" || die "--resume: $(cat "$T/dr.out")"
grep -qF "dry run: a recovery now would stop: there is no recovery in progress to resume" "$T/dr.err" ||
    die "--resume: stderr: $(cat "$T/dr.err")"
jq -se '.[0].refused.error == "NotFound"' "$T/dr.json" >/dev/null || die "--resume: $(cat "$T/dr.json")"

ID=$(cli --json list | jq -r '.[-1].id')
f=$(find "$STORE/backups/$ID/etc" -name hostname -type f)
echo node-X >"$f" # other contents (and time): what verify finds
dry_run 7
grep -q "^verify: CORRUPT: [0-9]* mismatches, first: etc/hostname: " "$T/dr.out" || die "corrupt: $(cat "$T/dr.out")"
grep -q "dry run: a recovery now would stop: backup $ID is corrupt: [0-9]* of [0-9]* entries differ" "$T/dr.err" || die "corrupt: stderr: $(cat "$T/dr.err")"
jq -se '.[0].refused.error == "Corrupt" and (.[0].refused.message | contains("--force restores it anyway"))' \
    "$T/dr.json" >/dev/null || die "corrupt: $(cat "$T/dr.json")"
dry_run 0 --force # the run would restore it anyway
echo "ok: recover --dry-run exits as the run would"

echo "PASS: test-cli-usage"
