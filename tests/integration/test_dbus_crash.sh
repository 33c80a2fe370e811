#!/bin/bash
# SIGKILL upgrade-recoveryd in the middle of a backup job: the next start reports the
# interrupted job (LastError / LastErrorName ...Error.Interrupted, a kJobInterrupted
# event), drops the partial staging, and the partition holds the previous complete
# backup, which still verifies. SIGTERM mid-backup instead cancels the job cleanly.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
THROTTLE=15 # percent of a CPU: the kill lands in the middle of the backup
dbus_setup
dbus_big_tree 12000
dbus_start_daemon

J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "first backup failed: $(jprop "$J" Message)"
B=$(latest_id)

# --- SIGKILL mid-backup ------------------------------------------------------------
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
N=${J##*/}
wait_progress "$J" 5
STEP=$(jprop "$J" Message)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
ok "killed the daemon at $(date +%T) during job $N ('$STEP')"

# What the kill left: the previous backup published and latest, a partial staging.
[ "$(latest_id)" = "$B" ] || die "latest is $(latest_id), want $B"
[ "$(ls "$STORE/backups")" = "$B" ] || die "published generations after the kill: $(ls "$STORE/backups")"
ls -a "$STORE/backups" | grep -q '^\.staging-' || log "no staging left (the kill came before any was made)"

: >"$T/daemon.log"
dbus_start_daemon
[ "$(mprop LastErrorName)" = "$ERR.Interrupted" ] || die "LastErrorName after the restart: '$(mprop LastErrorName)'"
[ "$(mprop State)" = Error ] || die "State after the restart: $(mprop State)"
msg=$(mprop LastError)
grep -q "backup job $N was interrupted" <<<"$msg" || die "LastError does not name job $N: $msg"
grep -q "backup job $N was interrupted" "$T/daemon.log" || die "no interruption report in the log: $(cat "$T/daemon.log")"
ok "next start reports: $msg"
ls -a "$STORE/backups" | grep -q '^\.staging-' && die "the partial staging was not removed: $(ls -a "$STORE/backups")"
[ "$(latest_id)" = "$B" ] || die "latest moved to $(latest_id)"
verify_ok "$B"
ok "the partition holds $B, complete, and it verifies"

# Reported once: a later restart does not report it again, and job numbers go on.
dbus_stop_daemon
: >"$T/daemon.log"
dbus_start_daemon
grep -q "interrupted" "$T/daemon.log" && die "the interruption was reported twice"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "${J##*/}" -gt "$N" ] || die "job number $J reused after the restart (killed job was $N)"
[ "$(wait_job "$J")" = Succeeded ] || die "backup after the crash failed: $(jprop "$J" Message)"
B2=$(latest_id)
[ "$B2" != "$B" ] || die "no new backup after the crash"
ok "a new backup after the crash: $B2"

# --- SIGTERM mid-backup: the job is cancelled, not interrupted ----------------------
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
wait_progress "$J" 5
kill -TERM "$DAEMON_PID"
for ((i = 0; i < 600; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the daemon did not exit within 60 s of SIGTERM"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
[ "$(latest_id)" = "$B2" ] || die "latest after SIGTERM: $(latest_id)"
ls -a "$STORE/backups" | grep -q '^\.staging-' && die "staging left after a cancelled backup"
dbus_start_daemon
[ "$(mprop LastErrorName)" = "$ERR.Cancelled" ] || die "after SIGTERM: LastErrorName $(mprop LastErrorName)"
verify_ok "$B2"
ok "SIGTERM cancels the running backup; $B2 intact"

# --- killed between publishing and switching latest ---------------------------------
# The new backup is complete and kept; the report used to say it was discarded.
dbus_stop_daemon
UR_FAILPOINT=backup.after-publish dbus_start_daemon
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
N=${J##*/}
for ((i = 0; i < 600; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the failpoint backup.after-publish did not kill the daemon"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
B3=$(ls "$STORE/backups" | sort | tail -n1)
[ "$B3" != "$B2" ] && [ "$(latest_id)" = "$B2" ] || die "after the kill: newest $B3, latest $(latest_id)"
dbus_start_daemon
msg=$(mprop LastError)
[[ $msg == *"backup job $N was interrupted"*"backup $B3 was published before that and is kept"* ]] ||
    die "LastError after a kill past the publish: $msg"
verify_ok "$B3"
ok "a kill past the publish reports the backup as kept: $msg"

echo "PASS: test_dbus_crash"
