#!/bin/bash
# Authorization: an unprivileged caller (nobody, via setpriv) reads every property,
# lists backups, reads the rollback plan and introspects, and gets AccessDenied from
# every method that changes anything; nothing changed afterwards. A non-root
# process cannot own the name (bus policy).
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
dbus_setup
dbus_start_daemon

J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "backup as root failed: $(jprop "$J" Message)"
B=$(latest_id)

nb() { as_nobody busctl --system "$@"; }

# Reads that anyone may do.
for p in Version State CurrentJob RecoveryState RecoverySummary LastBackup LastError LastErrorName; do
    nb get-property "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" "$p" >/dev/null || die "nobody cannot read Manager.$p"
done
[ "$(nb get-property "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" LastBackup | _value)" = "$B" ] || die "nobody reads a wrong LastBackup"
for p in Id Type State Progress Message Error BackupId Warnings; do
    nb get-property "$BUS_NAME" "$J" "$JOB_IFACE" "$p" >/dev/null || die "nobody cannot read Job.$p"
done
nb call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Properties GetAll s "$MGR_IFACE" >/dev/null || die "nobody: GetAll"
nb call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" ListBackups | grep -qF "$B" || die "nobody cannot list backups"
nb call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" GetRollbackPlan >/dev/null || die "nobody cannot read the rollback plan"
nb introspect "$BUS_NAME" "$MGR_PATH" >/dev/null || die "nobody cannot introspect"
nb call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Peer Ping || die "nobody cannot ping"
ok "nobody reads properties, ListBackups, GetRollbackPlan, Introspect, Ping"

# Everything that changes something: AccessDenied, from the service (the policy lets
# the call through) or, for Properties.Set, from the bus policy.
denied()
{
    local what=$1 out
    shift
    if out=$(as_nobody gdbus call --system --dest "$BUS_NAME" "$@" 2>&1); then
        die "nobody was allowed to $what: $out"
    fi
    grep -qF "org.freedesktop.DBus.Error.AccessDenied" <<<"$out" || die "$what by nobody: not AccessDenied: $out"
    ok "nobody $what: AccessDenied"
}
denied StartBackup --object-path "$MGR_PATH" --method "$MGR_IFACE.StartBackup" '{}'
denied VerifyBackup --object-path "$MGR_PATH" --method "$MGR_IFACE.VerifyBackup" "$B" '{}'
denied DeleteBackup --object-path "$MGR_PATH" --method "$MGR_IFACE.DeleteBackup" "$B"
denied StartRecovery --object-path "$MGR_PATH" --method "$MGR_IFACE.StartRecovery" "{'dry_run': <true>}"
denied ArmRecovery --object-path "$MGR_PATH" --method "$MGR_IFACE.ArmRecovery" "$B" '{}'
denied DisarmRecovery --object-path "$MGR_PATH" --method "$MGR_IFACE.DisarmRecovery"
denied AbandonRecovery --object-path "$MGR_PATH" --method "$MGR_IFACE.AbandonRecovery" "{'force': <true>}"
denied StartWatchdog --object-path "$MGR_PATH" --method "$MGR_IFACE.StartWatchdog" "$B" '{}'
denied StopWatchdog --object-path "$MGR_PATH" --method "$MGR_IFACE.StopWatchdog"
denied Job.Cancel --object-path "$J" --method "$JOB_IFACE.Cancel"
denied Properties.Set --object-path "$MGR_PATH" --method org.freedesktop.DBus.Properties.Set "$MGR_IFACE" State "<'Idle'>"
# busctl sees the same.
out=$(as_nobody busctl --system call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" StartBackup 'a{sv}' 0 2>&1) &&
    die "busctl StartBackup as nobody succeeded"
grep -qi "access denied\|not permitted" <<<"$out" || die "busctl StartBackup as nobody: $out"

# Nothing happened: same single backup, not armed, no new job.
[ "$(ls "$STORE/backups")" = "$B" ] || die "the store changed: $(ls "$STORE/backups")"
[ ! -e "$STORE/recovery/armed" ] || die "nobody armed a recovery"
[ "$(mprop CurrentJob)" = / ] || die "a job runs: $(mprop CurrentJob)"

# Only root may own the name.
out=$(as_nobody "$DAEMON" --root "$ROOT" --config "$CFG" 2>&1) && die "nobody could run the service: $out"
grep -q "request bus name: Permission denied" <<<"$out" ||
    die "unexpected failure of the service as nobody: $out"
ok "nobody cannot own $BUS_NAME"

# And root may still do everything.
verify_ok "$B"
daemon_alive
echo "PASS: test_dbus_auth"
