#!/bin/bash
# Bad calls and their named errors, and after each one the daemon still answers and
# the previous backup still verifies: wrong signature, unknown option key, wrong
# option type, a second operation while a backup runs (Busy), the store locked by
# another process (Busy), a backup while a recovery is armed (RecoveryInProgress),
# Cancel (Cancelled), a deadline that passes, per call and from the config (Timeout),
# a dry-run backup that would not fit (NoSpace).
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
THROTTLE=15 # percent of a CPU: a backup of the tree takes seconds however fast the machine
dbus_setup
dbus_big_tree 12000
dbus_start_daemon

J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "first backup failed: $(jprop "$J" Message)"
B=$(latest_id)
ok "first backup $B: $(jprop "$J" Message)"

# still_good: the daemon answers, $B is still the latest and still verifies, and no
# staging directory is left behind.
still_good()
{
    daemon_alive
    [ "$(latest_id)" = "$B" ] || die "latest moved from $B to $(latest_id)"
    ls -a "$STORE/backups" | grep -q '^\.staging-' && die "staging left behind: $(ls -a "$STORE/backups")"
    verify_ok "$B"
    ok "  daemon answers, $B still latest and verifies"
}

# --- malformed calls -------------------------------------------------------------
out=$(mcall StartBackup s x 2>&1) && die "StartBackup(s) accepted"
grep -qF "Invalid arguments 's'" <<<"$out" || die "wrong signature: $out"
out=$(mcall VerifyBackup s "$B" 2>&1) && die "VerifyBackup(s) accepted"
grep -qF "Invalid arguments" <<<"$out" || die "short signature: $out"
ok "wrong signatures: $out"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'bogus': <uint32 1>}")"
out=$(gcall StartBackup "{'bogus': <uint32 1>}")
grep -qF "'bogus'" <<<"$out" || die "the error does not name the unknown key: $out"
out=$(gcall StartBackup "{'timeout': <'5'>}")
expect_error "$ERR.InvalidArgs" "$out"
grep -qF "'timeout'" <<<"$out" || die "the error does not name the mistyped key: $out"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'force': <uint32 1>}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'id': <'not-an-id'>}")"
# Digits that are not a time (month 13, hour 25): refused before any job.
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'id': <'20241340T256199Z'>}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'id': <'99999999T999999Z'>}")"
# Well formed but refused by the store (taken, before the newest, more than a day
# ahead): refused by the call too, with no job and no property changed. The job
# used to end InvalidArgs with BackupId naming the existing backup as its own, and
# State / LastError changed for a call with bad arguments.
props() { echo "$(mprop State)|$(mprop CurrentJob)|$(mprop LastErrorName)|$(mprop LastError)|$(mprop LastBackup)"; }
jobs_on_bus() { busctl --system tree --list "$BUS_NAME" | grep -c "^$MGR_PATH/job/" || true; }
before=$(props) jobs_before=$(jobs_on_bus)
out=$(gcall StartBackup "{'id': <'$B'>}")
expect_error "$ERR.InvalidArgs" "$out"
grep -qF "exists already" <<<"$out" || die "StartBackup of an existing id: $out"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'id': <'20000101T000000Z'>, 'dry_run': <true>}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartBackup "{'id': <'$(date -u -d '+3 days' +%Y%m%dT%H%M%SZ)'>}")"
[ "$(props)" = "$before" ] || die "a refused StartBackup changed properties: $before -> $(props)"
[ "$(jobs_on_bus)" = "$jobs_before" ] || die "a refused StartBackup made a job: $(busctl --system tree --list "$BUS_NAME")"
expect_error "$ERR.InvalidArgs" "$(gcall ArmRecovery "$B" "{'reboot': <'yes'>}")"
expect_error "$ERR.InvalidArgs" "$(gcall VerifyBackup "$B" "{'deep': <true>}")"
expect_error "$ERR.InvalidArgs" "$(gcall VerifyBackup "../etc" "{}")"
expect_error "$ERR.NotFound" "$(gcall VerifyBackup 20000101T000000Z "{}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartRecovery "{'resume': <true>, 'restart': <true>}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartRecovery "{'dry_run': <true>, 'dry_run': <true>}")"
out=$(busctl --system call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" NoSuchMethod 2>&1) && die "NoSuchMethod accepted"
still_good

# --- Busy while a backup runs, then Cancel ----------------------------------------
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
wait_progress "$J" 1
[ "$(mprop CurrentJob)" = "$J" ] || die "CurrentJob is $(mprop CurrentJob), want $J"
expect_error "$ERR.Busy" "$(gcall StartBackup '{}')"
expect_error "$ERR.Busy" "$(gcall VerifyBackup "$B" '{}')"
expect_error "$ERR.Busy" "$(gcall DeleteBackup "$B")"
expect_error "$ERR.Busy" "$(gcall ArmRecovery "$B" '{}')"
expect_error "$ERR.Busy" "$(gcall DisarmRecovery)"
expect_error "$ERR.Busy" "$(gcall AbandonRecovery "{'force': <true>}")"
expect_error "$ERR.Busy" "$(gcall StartRecovery "{'dry_run': <true>}")"
# Reads go on while it runs.
mcall ListBackups | grep -qF "$B" || die "ListBackups during a backup"
# StopWatchdog waits for the job (the watchdog would wait for the store, then fire).
mcall StopWatchdog >"$T/stopwd.out" 2>&1 &
stopper=$!
sleep 1
kill -0 "$stopper" 2>/dev/null || die "StopWatchdog answered while a backup job runs: $(cat "$T/stopwd.out")"
jcall "$J" Cancel || die "Cancel failed"
S=$(wait_job "$J")
wait "$stopper" || die "StopWatchdog held during the job failed: $(cat "$T/stopwd.out")"
[ "$(cat "$T/stopwd.out")" = "b false" ] || die "StopWatchdog after the job: $(cat "$T/stopwd.out")"
[ "$S" = Cancelled ] || die "cancelled job ended $S"
[ "$(jprop "$J" Error)" = "$ERR.Cancelled" ] || die "cancelled job Error: $(jprop "$J" Error)"
[ "$(mprop State)" = Error ] && [ "$(mprop LastErrorName)" = "$ERR.Cancelled" ] ||
    die "after Cancel: State $(mprop State), LastErrorName $(mprop LastErrorName)"
jcall "$J" Cancel || die "Cancel of a finished job is not a no-op"
ok "Busy x6 while a backup runs, StopWatchdog held until it ends; Cancel -> Cancelled: $(jprop "$J" Message)"
still_good

# --- Busy when another process holds the store lock (the CLI does that) -----------
# flock(1) on fd 9 of this shell: the same flock(2) lock lock_store takes.
exec 9>>"$STORE/.lock"
flock -n 9 || die "cannot take the store lock for the test"
expect_error "$ERR.Busy" "$(gcall StartBackup '{}')"
expect_error "$ERR.Busy" "$(gcall ArmRecovery "$B" '{}')"
J=$(mcall VerifyBackup 'sa{sv}' "$B" 0 | objpath) || die "VerifyBackup call"
[ "$(wait_job "$J")" = Error ] && [ "$(jprop "$J" Error)" = "$ERR.Busy" ] ||
    die "verify under a foreign lock: $(jprop "$J" State) $(jprop "$J" Error)"
exec 9>&-
ok "Busy while another process holds the store lock"
still_good

# --- RecoveryInProgress while a recovery is armed ---------------------------------
mcall ArmRecovery 'sa{sv}' "$B" 0 || die "ArmRecovery"
expect_error "$ERR.RecoveryInProgress" "$(gcall StartBackup '{}')"
[ "$(mprop RecoveryState)" = Armed ] || die "RecoveryState $(mprop RecoveryState)"
mcall DisarmRecovery || die "DisarmRecovery"
# Arm with reboot, and no systemd on this bus to reboot: ExternalFailed, still armed.
expect_error "$ERR.ExternalFailed" "$(gcall ArmRecovery "$B" "{'reboot': <true>}")"
[ "$(cat "$STORE/recovery/armed")" = "$B" ] || die "not armed after a failed reboot request"
mcall DisarmRecovery || die "DisarmRecovery"
still_good

# --- a deadline that passes: per call, then from the config -----------------------
# The daemon is stopped (SIGSTOP) right after it accepted the job, so the deadline
# passes while the backup is at its start, however fast the machine is.
stall() { kill -STOP "$DAEMON_PID" && sleep "$1" && kill -CONT "$DAEMON_PID"; }
# With an id: BackupId is the backup a job published, so it stays empty here.
ID=$(date -u -d '+1 hour' +%Y%m%dT%H%M%SZ)
J=$(mcall StartBackup 'a{sv}' 2 timeout u 1 id s "$ID" | objpath)
stall 1.5
S=$(wait_job "$J")
[ "$S" = Timeout ] || die "backup with a 1 s deadline ended $S: $(jprop "$J" Message)"
[ "$(jprop "$J" Error)" = "$ERR.Timeout" ] || die "timeout job Error: $(jprop "$J" Error)"
[ ! -e "$STORE/backups/$ID" ] && [ "$(jprop "$J" BackupId)" = "" ] ||
    die "a backup job that published nothing has BackupId '$(jprop "$J" BackupId)'"
[ "$(mprop State)" = Timeout ] && [ "$(mprop LastErrorName)" = "$ERR.Timeout" ] ||
    die "after the deadline: State $(mprop State), LastErrorName $(mprop LastErrorName)"
ok "per-call deadline -> Timeout: $(jprop "$J" Message)"
still_good

before="$(mprop State) $(mprop LastErrorName)"
dbus_stop_daemon
sed -i 's/^timeout = .*/timeout = 1/' "$CFG"
dbus_start_daemon
# The last result (here the verify's) survives a restart.
[ "$(mprop State) $(mprop LastErrorName)" = "$before" ] || die "after a restart: $(mprop State), was $before"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
stall 1.5
S=$(wait_job "$J")
[ "$S" = Timeout ] || die "backup with backup.timeout = 1 ended $S: $(jprop "$J" Message)"
ok "backup.timeout deadline -> Timeout"
still_good
# timeout 0 in the call: no deadline although the config has one.
J=$(mcall StartBackup 'a{sv}' 1 timeout u 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "backup with timeout 0 failed: $(jprop "$J" Message)"
[ "$(mprop State)" = Succeeded ] && [ "$(mprop LastErrorName)" = "" ] && [ "$(mprop LastError)" = "" ] ||
    die "after a success: State $(mprop State), LastErrorName '$(mprop LastErrorName)'"
ok "timeout 0 overrides the config; a success clears LastError"

# --- the configuration is read again at every call --------------------------------
# It was read once at the start: a daemon kept alive by its callers took backups with a
# drop-in the CLI refused as broken (and the backup then carried that file to restore).
cp "$CFG" "$T/config.good"
echo 'bogus_key = 1' >>"$CFG" # in [daemon], the last table: an unknown key
line=$(wc -l <"$CFG")
before=$(props) jobs_before=$(jobs_on_bus)
for call in "StartBackup {}" "ListBackups" "VerifyBackup '' {}" "DisarmRecovery"; do
    # shellcheck disable=SC2086 # the call's words
    out=$(eval gcall $call)
    expect_error "$ERR.BadConfig" "$out"
    grep -qF "$CFG:$line:1" <<<"$out" || die "$call: the error does not name $CFG:$line:1: $out"
done
[ "$(props)" = "$before" ] && [ "$(jobs_on_bus)" = "$jobs_before" ] ||
    die "a call refused for the configuration changed something: $before -> $(props)"
daemon_alive
ok "a broken configuration written after the start is refused by every call, naming it"

# A good change reaches the next call without a restart: the dry run below does not fit.
B=$(latest_id)
cp "$T/config.good" "$CFG"
sed -i 's/^free_space_margin = .*/free_space_margin = "1000TiB"/' "$CFG"

# --- a dry-run backup that would not fit: the job ends NoSpace, nothing written -----
before=$(cd "$STORE" && find . -printf '%p %i %s %T@ %C@\n' | LC_ALL=C sort | md5sum)
# backup.timeout is 1 s here since the deadline section: no deadline for a scan under load.
J=$(mcall StartBackup 'a{sv}' 2 dry_run b true timeout u 0 | objpath)
S=$(wait_job "$J")
[ "$S" = Error ] || die "a dry run that does not fit ended $S: $(jprop "$J" Message)"
[ "$(jprop "$J" Error)" = "$ERR.NoSpace" ] || die "dry run Error: $(jprop "$J" Error)"
[[ $(jprop "$J" Message) == *"dry run: a backup now would not fit"*"Delete older backups"* ]] ||
    die "dry run Message: $(jprop "$J" Message)"
[ "$(cd "$STORE" && find . -printf '%p %i %s %T@ %C@\n' | LC_ALL=C sort | md5sum)" = "$before" ] ||
    die "a dry run that does not fit changed the store"
ok "dry run that does not fit -> NoSpace: $(jprop "$J" Message)"
still_good

# --- a file name that is not UTF-8 in an error: still a readable D-Bus string -------
# A name a host may legally have; verify names it in its mismatch. D-Bus strings
# must be UTF-8, and the raw bytes made every read of Message, the job's GetAll,
# Manager LastError (kept across restarts) and the Finished signal fail.
bad="$STORE/backups/$B/etc/added-$(printf '\xff\xfe')-name"
mt=$(stat -c %y "$STORE/backups/$B/etc")
echo extra >"$bad"
touch -d "$mt" "$STORE/backups/$B/etc" # the added name is the first mismatch
J=$(mcall VerifyBackup 'sa{sv}' "$B" 0 | objpath) || die "VerifyBackup call"
[ "$(wait_job "$J")" = Error ] && [ "$(jprop "$J" Error)" = "$ERR.Corrupt" ] ||
    die "verify with an added file: $(jprop "$J" State) $(jprop "$J" Error)"
msg=$(jprop "$J" Message) || die "the job's Message cannot be read"
# busctl shows bytes beyond ASCII in octal: U+FFFD twice.
[[ $msg == *'added-\357\277\275\357\277\275-name: in the backup but not in the manifest'* ]] ||
    die "Message does not name the file with U+FFFD: $msg"
busctl --system call "$BUS_NAME" "$J" org.freedesktop.DBus.Properties GetAll s "$JOB_IFACE" >/dev/null ||
    die "the job's GetAll fails"
busctl --system call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Properties GetAll s "$MGR_IFACE" >/dev/null ||
    die "the Manager's GetAll fails"
[[ $(mprop LastError) == *"added-"* ]] || die "LastError: $(mprop LastError)"
rm "$bad"
touch -d "$mt" "$STORE/backups/$B/etc"
ok "a name that is not UTF-8 reaches D-Bus with U+FFFD: $msg"
still_good

# --- no thread for the job's worker (EAGAIN, as under TasksMax) -------------------
# The daemon in a pids cgroup that allows only the tasks it has: the job fails, the
# service goes on. (cgroup v1 pids here; without it this section does not run.)
CG=/sys/fs/cgroup/pids/urt-dbus-errors-$$
if mkdir "$CG" 2>/dev/null; then
    echo "$DAEMON_PID" >"$CG/cgroup.procs"
    ls "/proc/$DAEMON_PID/task" | wc -l >"$CG/pids.max"
    out=$(gcall StartBackup '{}')
    echo "$DAEMON_PID" >/sys/fs/cgroup/pids/cgroup.procs
    refused=$(sed -n 's/^max //p' "$CG/pids.events")
    rmdir "$CG"
    [ "$refused" -gt 0 ] || die "the pids limit refused nothing"
    expect_error "$ERR.Internal" "$out"
    grep -q "cannot start the job's worker thread" <<<"$out" || die "StartBackup without a thread: $out"
    [ "$(mprop State)" = Error ] || die "State after a job that could not start: $(mprop State)"
    [[ $(mprop LastError) == *"worker thread"* ]] || die "LastError: $(mprop LastError)"
    daemon_alive
    J=$(mcall StartBackup 'a{sv}' 2 dry_run b true timeout u 0 | objpath)
    [ "$(wait_job "$J")" = Error ] || die "a dry run once threads are back: $(jprop "$J" State)" # NoSpace, as above
    ok "a job whose thread the system refuses fails; the service goes on"
else
    echo "note: no pids cgroup (v1) here; the worker-thread section did not run"
fi

# --- the bus goes away: the daemon exits (activation starts a new one) -------------
# It used to stay up, unreachable, until a SIGTERM (idle_exit = 0) or the idle timer.
kill -TERM "$BUS_PID"
BUS_PID=
for ((i = 0; i < 100; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the daemon still runs 10 s after the bus went away"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
[ "$rc" = 0 ] || die "the daemon exited $rc after losing the bus"
ok "the daemon exits 0 when the bus goes away"

echo "PASS: test_dbus_errors"
