#!/bin/bash
# Idle exit and D-Bus activation: the bus starts upgrade-recoveryd from our activation
# file on the first call, the daemon exits after daemon.idle_exit seconds without work,
# never while a job runs, and the next call starts it again with the last result
# (State, LastBackup) intact; a job of an earlier instance answers NotFound, saying
# where its result is. Also the --request-backup client (what
# upgrade-recovery-backup.service runs) through activation.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
IDLE_EXIT=2
# The bus execs services itself here (no systemd, no setuid helper): the activation
# file is ours, with Exec= pointing at the build tree and the sandbox.
T0=$(mktemp -d)
dbus_setup "<servicedir>$T0</servicedir>"
sed -e "s#^Exec=@libexecdir@/upgrade-recoveryd\$#Exec=$DAEMON --root $ROOT --config $CFG#" \
    "$UR_SOURCE_DIR/units/io.openshift.UpgradeRecovery1.service.in" >"$T0/io.openshift.UpgradeRecovery1.service"
grep -q "^Exec=$DAEMON " "$T0/io.openshift.UpgradeRecovery1.service" || die "activation file has no Exec= to rewrite"
on_exit "rm -rf $T0"
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig || die "ReloadConfig"

daemon_pid()
{
    busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetConnectionUnixProcessID s \
        "$BUS_NAME" 2>/dev/null | awk '{ print $2 }'
}
# wait_exit PID SECONDS: the activated daemon went away by itself (and gave up the name).
wait_exit()
{
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! kill -0 "$1" 2>/dev/null && ! bus_has_owner; then return 0; fi
        sleep 0.1
    done
    die "the daemon (pid $1) did not exit within $2 s of idling"
}

bus_has_owner && die "someone owns $BUS_NAME before the first call"
mcall ListBackups >/dev/null || die "ListBackups did not activate the service"
P1=$(daemon_pid)
[ -n "$P1" ] || die "no owner after activation"
on_exit "kill $P1 2>/dev/null"
[ "$(mprop State)" = Idle ] || die "State of a fresh daemon: $(mprop State)"
ok "activated by a call (pid $P1)"
wait_exit "$P1" 20
ok "exited after idling ${IDLE_EXIT}s"

# A job longer than idle_exit: no exit while it runs.
dbus_big_tree 12000
"$DAEMON" --request-backup >"$T/client.log" 2>&1 || die "--request-backup failed: $(cat "$T/client.log")"
P2=$(daemon_pid)
B=$(latest_id)
[ -n "$B" ] || die "no backup made"
grep -q "published" "$T/client.log" || die "client log: $(cat "$T/client.log")"
grep -qE '^ *[0-9]+% ' "$T/client.log" || die "the client printed no progress: $(cat "$T/client.log")"
ok "--request-backup through activation: $(tail -n1 "$T/client.log")"
[ -n "$P2" ] && [ "$P2" != "$P1" ] || die "not a new instance: '$P2'"
on_exit "kill $P2 2>/dev/null"
wait_exit "$P2" 20
ok "the second instance exited after its job and ${IDLE_EXIT}s idle"

# The last result survives the idle exit.
[ "$(mprop State)" = Succeeded ] || die "State after re-activation: $(mprop State)"
[ "$(mprop LastBackup)" = "$B" ] || die "LastBackup after re-activation: $(mprop LastBackup)"
P3=$(daemon_pid)
on_exit "kill $P3 2>/dev/null"
ok "re-activated (pid $P3): State Succeeded, LastBackup $B"
wait_exit "$P3" 20

# State (the last job on the bus) and LastError (the last operation) come back as
# they were, also when the last operation was a DeleteBackup, which is no State job.
"$DAEMON" --request-backup >"$T/client2.log" 2>&1 || die "second --request-backup failed: $(cat "$T/client2.log")"
B2=$(latest_id)
[ "$B2" != "$B" ] || die "no second backup"
truncate -s 10 "$STORE/backups/$B/manifest"
JV=$(mcall VerifyBackup 'sa{sv}' "$B" 0 | objpath) || die "VerifyBackup call failed"
[ "$(wait_job "$JV")" = Error ] || die "verify of a truncated manifest: $(jprop "$JV" State)"
[ "$(mprop State)" = Error ] || die "State after the failed verify: $(mprop State)"
[ -n "$(mprop LastError)" ] || die "no LastError after the failed verify"
mcall DeleteBackup s "$B" || die "DeleteBackup $B failed"
[ "$(mprop State)" = Error ] || die "State after DeleteBackup: $(mprop State) (it is no State job)"
[ -z "$(mprop LastError)" ] && [ -z "$(mprop LastErrorName)" ] ||
    die "LastError after a successful DeleteBackup: '$(mprop LastErrorName)' '$(mprop LastError)'"
P4=$(daemon_pid)
on_exit "kill $P4 2>/dev/null"
wait_exit "$P4" 20
[ "$(mprop State)" = Error ] || die "State after re-activation: $(mprop State), want Error (the failed verify)"
[ -z "$(mprop LastError)" ] || die "LastError after re-activation: $(mprop LastError)"
P5=$(daemon_pid)
on_exit "kill $P5 2>/dev/null"
ok "re-activated (pid $P5) after a failed verify and a DeleteBackup: State Error, LastError empty"

# The verify job's object went with its instance. Calls on its path get a named error
# saying so and where its result is, not a bare UnknownObject.
jgdbus() { gdbus call --system --dest "$BUS_NAME" --object-path "$1" --method "$2" "${@:3}" 2>&1; }
for call in "org.freedesktop.DBus.Properties.Get $JOB_IFACE State" "org.freedesktop.DBus.Properties.GetAll $JOB_IFACE" \
    "$JOB_IFACE.Cancel"; do
    # shellcheck disable=SC2086 # method and arguments, split on purpose
    out=$(jgdbus "$JV" $call)
    expect_error "$ERR.NotFound" "$out"
    grep -q "job ${JV##*/} is no longer known" <<<"$out" || die "$call on $JV: $out"
    grep -qF "journalctl UPGRADE_RECOVERY_JOB=${JV##*/}" <<<"$out" || die "$call on $JV names no journal: $out"
done
out=$(jgdbus "${JV%/*}/4000000000" org.freedesktop.DBus.Properties.Get "$JOB_IFACE" State)
expect_error "$ERR.NotFound" "$out"
grep -q "no job 4000000000 was ever started" <<<"$out" || die "a job number never given out: $out"
# What is no job path at all stays unknown.
out=$(jgdbus "${JV%/*}/x1" org.freedesktop.DBus.Properties.Get "$JOB_IFACE" State)
grep -qF "org.freedesktop.DBus.Error.UnknownObject" <<<"$out" || die "a path that is no job's: $out"
ok "a job of an earlier instance: NotFound naming the journal"
wait_exit "$P5" 20
echo "PASS: test_dbus_activation"
