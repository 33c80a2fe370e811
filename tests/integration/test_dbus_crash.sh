#!/bin/bash
# SIGKILL upgrade-recoveryd in the middle of a backup job: the next start reports the
# interrupted job (LastError / LastErrorName ...Error.Interrupted, a kJobInterrupted
# event), drops the partial staging, and the partition holds the previous complete
# backup, which still verifies. SIGTERM mid-backup instead cancels the job cleanly.
# A recovery whose process (the CLI, the daemon's job) is killed reads Interrupted in
# RecoveryState, as in `status`; Running while that process lives. A subscriber gets
# PropertiesChanged with Interrupted when the CLI's process dies, without reading;
# watching a living one does not keep the service from its idle exit.
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

# --- a recovery whose process is killed: Interrupted, as `status` says ---------------
# The journal says running whoever wrote it; the daemon used to show Running for ever.
# Phase 1 offline against the sandbox root (it enables the phase 2 unit under it).
mkdir -p "$ROOT/usr/lib/systemd/system"
cp "$UR_SOURCE_DIR/units/upgrade-recovery-phase2.service.in" "$ROOT/usr/lib/systemd/system/upgrade-recovery-phase2.service"
CLI=${UR_CLI:-$UR_BUILD_DIR/src/cli/upgrade-recovery}
# rstate WANT: RecoveryState becomes WANT (a re-read comes with a read 2 s after the last).
rstate()
{
    local i s
    for ((i = 0; i < 50; i++)); do
        s=$(mprop RecoveryState) || die "cannot read RecoveryState"
        [ "$s" = "$1" ] && return 0
        sleep 0.2
    done
    die "RecoveryState is $s, want $1 (summary: $(mprop RecoverySummary))"
}
# A subscriber that only listens: busctl monitor (BecomeMonitor) sees every message on
# the bus, the method calls too, so it also shows that no Get/GetAll came in between.
busctl --system monitor --json=short >"$T/monitor.json" 2>"$T/monitor.err" &
MON=$!
on_exit "kill $MON 2>/dev/null"
# mon_since LINE: the complete messages the monitor logged after line LINE, a JSON array.
mon_since() { tail -n +"$(($1 + 1))" "$T/monitor.json" | jq -nRc '[inputs | fromjson?]'; }
# mon_index MSGS STATE: the index in MSGS of the first Manager PropertiesChanged that
# carries RecoveryState STATE, -1 when none does.
mon_index()
{
    jq --arg p "$MGR_PATH" --arg i "$MGR_IFACE" --arg s "$2" \
        'map(.type == "signal" and .member == "PropertiesChanged" and .path == $p and .payload.data[0] == $i
             and .payload.data[1].RecoveryState.data == $s) | index(true) // -1' <<<"$1"
}
# mon_wait FROM STATE SECONDS: wait for that signal after line FROM; prints the messages
# up to and including it. Never reads a property itself.
mon_wait()
{
    local i msgs n
    for ((i = 0; i < $3 * 10; i++)); do
        msgs=$(mon_since "$1")
        n=$(mon_index "$msgs" "$2")
        if [ "$n" -ge 0 ]; then
            jq -c --argjson n "$n" '.[:$n + 1]' <<<"$msgs"
            return 0
        fi
        kill -0 "$MON" 2>/dev/null || die "busctl monitor exited: $(cat "$T/monitor.err")"
        sleep 0.1
    done
    return 1
}
# Subscribed: it logs a call made now.
for ((i = 0; i < 100; i++)); do
    busctl --system call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Peer Ping >/dev/null || die "Ping"
    [ "$(jq -nR '[inputs | fromjson? | select(.member == "Ping")] | length' <"$T/monitor.json")" -gt 0 ] && break
    kill -0 "$MON" 2>/dev/null || die "busctl monitor exited: $(cat "$T/monitor.err")"
    sleep 0.1
done
[ "$i" -lt 100 ] || die "busctl monitor does not see the bus: $(cat "$T/monitor.err")"
MON_START=$(wc -l <"$T/monitor.json")

# recover_stopped ARGS...: a CLI 'recover ARGS' stopped (SIGSTOP) at the start of
# restore-files, alive; its pid in RP.
recover_stopped()
{
    local i
    UR_FAILPOINT=recovery.restore-files UR_FAILPOINT_ACTION=stop \
        "$CLI" --root "$ROOT" --config "$CFG" recover "$@" >"$T/rec.log" 2>&1 &
    RP=$!
    for ((i = 0; i < 600; i++)); do
        [ "$(ps -o stat= -p "$RP" | cut -c1)" = T ] && return 0
        kill -0 "$RP" 2>/dev/null || die "recover $* exited before the failpoint: $(cat "$T/rec.log")"
        sleep 0.1
    done
    die "recover $* did not stop at recovery.restore-files"
}

# A CLI recovery stopped at the start of restore-files, alive: still Running.
recover_stopped --backup "$B3"
# The store watch signalled Running when the CLI wrote its journal: the monitor gets
# the service's signals (so the wait after the kill below cannot pass for nothing).
mon_wait "$MON_START" Running 10 >/dev/null || die "the monitor saw no PropertiesChanged RecoveryState Running"
ok "the monitor saw PropertiesChanged RecoveryState Running"
rstate Running
"$CLI" --root "$ROOT" --config "$CFG" status | grep -q "^Recovery .*: running " || die "status of a live recovery"
ok "a recovery whose process lives (pid $RP, stopped): RecoveryState Running"
# Killed: PropertiesChanged with Interrupted comes by itself (the service watches the
# process with a pidfd), within 10 s, without any property read in between.
MARK=$(wc -l <"$T/monitor.json")
KILLED_US=$(date +%s%6N)
kill -KILL "$RP"
wait "$RP" 2>/dev/null
seen=$(mon_wait "$MARK" Interrupted 10) ||
    die "no PropertiesChanged with RecoveryState Interrupted within 10 s of the kill ($(jq -c \
        'map(select(.member == "PropertiesChanged") | .payload.data[1]) ' <<<"$(mon_since "$MARK")"))"
gets=$(jq -c 'map(select(.type == "method_call" and (.member == "Get" or .member == "GetAll")))' <<<"$seen")
[ "$gets" = "[]" ] || die "a property was read between the kill and the signal: $gets"
summary=$(jq -r '.[-1].payload.data[1].RecoverySummary.data' <<<"$seen")
grep -q "interrupted at step restore-files" <<<"$summary" || die "RecoverySummary in the signal: $summary"
ms=$((($(jq '.[-1]."timestamp-realtime"' <<<"$seen") - KILLED_US) / 1000))
ok "killed: PropertiesChanged RecoveryState Interrupted ${ms} ms after the kill, no Get before it; summary: $summary"
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
rstate Interrupted
summary=$(mprop RecoverySummary)
grep -q "interrupted at step restore-files" <<<"$summary" || die "RecoverySummary: $summary"
st=$("$CLI" --root "$ROOT" --config "$CFG" status) || die "status: $st"
grep -q "^Recovery .*: INTERRUPTED" <<<"$st" || die "status does not say interrupted: $st"
grep -q "^Next: 'upgrade-recovery recover --resume' runs step restore-files again" <<<"$st" || die "status Next: $st"
[ "$("$CLI" --root "$ROOT" --config "$CFG" --json status | jq .recovery_interrupted)" = true ] ||
    die "status --json: recovery_interrupted is not true"
ok "killed: RecoveryState Interrupted, as status says; summary: $summary"

# Watching a living recovery process does not keep the service from its idle exit.
dbus_stop_daemon
sed -i 's/^idle_exit = .*/idle_exit = 3/' "$CFG"
dbus_start_daemon
recover_stopped --resume
rstate Running # a re-read: the service now watches pid $RP, through a pidfd (fdinfo "Pid:")
grep -qx "Pid:[[:space:]]*$RP" /proc/"$DAEMON_PID"/fdinfo/* 2>/dev/null ||
    die "the service holds no pidfd on recovery process $RP"
for ((i = 0; i < 200; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the service did not exit idle (3 s) while recovery process $RP lives"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
kill -0 "$RP" 2>/dev/null || die "recovery process $RP is gone"
grep -q "idle, exiting" "$T/daemon.log" || die "no idle exit in the log: $(tail -n 5 "$T/daemon.log")"
ok "idle exit while recovery process $RP lives (watched)"
kill -KILL "$RP"
wait "$RP" 2>/dev/null
sed -i 's/^idle_exit = .*/idle_exit = 0/' "$CFG"

# The daemon's own recovery job, killed at the same step: after the restart the
# job is reported interrupted, and so is the recovery.
dbus_stop_daemon
UR_FAILPOINT=recovery.restore-files dbus_start_daemon
JR=$(mcall StartRecovery 'a{sv}' 1 resume b true | objpath) || die "StartRecovery resume"
for ((i = 0; i < 600; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the failpoint recovery.restore-files did not kill the daemon"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
dbus_start_daemon
[ "$(mprop LastErrorName)" = "$ERR.Interrupted" ] || die "after the restart: LastErrorName $(mprop LastErrorName)"
rstate Interrupted
ok "the daemon's recovery job ${JR##*/} killed: RecoveryState Interrupted after the restart"
JR=$(mcall StartRecovery 'a{sv}' 1 resume b true | objpath) || die "StartRecovery resume after the kill"
[ "$(wait_job "$JR")" = Succeeded ] || die "resume ended $(jprop "$JR" State): $(jprop "$JR" Message)"
rstate Phase2Pending
ok "resumed: phase 1 done, RecoveryState Phase2Pending"

echo "PASS: test_dbus_crash"
