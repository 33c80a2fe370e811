#!/bin/bash
# The journal events of a daemon's jobs, in a real systemd-journald: job started and
# ended, backup started/succeeded/failed (also a CLI backup's failure), recovery
# armed/disarmed, an interrupted job and a CLI recovery's steps, each with its MESSAGE_ID and the
# UPGRADE_RECOVERY_JOB / _BACKUP_ID / _STEP fields; and `journalctl -x` explains
# them from our catalog.
#
# journald runs in a private mount namespace with its own /run (and our catalog bound
# over the catalog directories there), so neither the host nor a parallel test sees it.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
JOURNALD=${UR_JOURNALD:-/lib/systemd/systemd-journald}
if [ -z "${UR_IN_NAMESPACE:-}" ]; then
    require_root
    require_cmd unshare journalctl
    [ -x "$JOURNALD" ] || skip "no systemd-journald at $JOURNALD"
    UR_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi

mount -t tmpfs -o mode=0755 ur-journal-run /run || die "cannot mount a tmpfs on /run"
CATDIR=$(mktemp -d)
cp "$UR_SOURCE_DIR/units/upgrade-recovery.catalog" "$CATDIR/"
mount --bind "$CATDIR" /usr/lib/systemd/catalog || die "cannot bind the catalog"
mount -t tmpfs ur-catalog-db /var/lib/systemd/catalog || die "cannot mount the catalog database dir"
journalctl --update-catalog || die "journalctl --update-catalog"
mkdir -p /run/systemd/journal
"$JOURNALD" >/run/journald.log 2>&1 &
JOURNALD_PID=$!
for ((i = 0; i < 100; i++)); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
[ -S /run/systemd/journal/socket ] || die "systemd-journald did not start: $(cat /run/journald.log)"

dbus_setup
on_exit "kill $JOURNALD_PID; rm -rf $CATDIR"
dbus_big_tree 3000
dbus_start_daemon

# jfind MESSAGE_ID FIELD=VALUE...: the entries matching, in the verbose form.
jfind()
{
    # -q: without it journalctl prints "-- No entries --", which is not empty.
    journalctl -q -D /run/log/journal --no-pager -o verbose "MESSAGE_ID=$1" "${@:2}" 2>/dev/null
}
# expect_event NAME MESSAGE_ID FIELD=VALUE...: exactly such an entry exists.
expect_event()
{
    local name=$1 id=$2 i out
    shift 2
    for ((i = 0; i < 50; i++)); do # journald writes asynchronously
        out=$(jfind "$id" "$@")
        grep -q "^    MESSAGE_ID=$id\$" <<<"$out" && break
        sleep 0.1
    done
    grep -q "^    MESSAGE_ID=$id\$" <<<"$out" || die "no journal entry '$name' (MESSAGE_ID=$id $*): $(journalctl -D /run/log/journal --no-pager -o cat | tail -20)"
    ok "journal: $name $* -- $(grep -m1 '^    MESSAGE=' <<<"$out" | sed 's/^    MESSAGE=//')"
}

JOB_STARTED=6c2d9a87c3fd4d74a07c989e92a54396
JOB_FINISHED=98a88a1822a944edb5fcdfefe5169534
BACKUP_STARTED=db6b67fd5620470f9a284327447c36b3
BACKUP_SUCCEEDED=85622ca2b66a4d8ab266daa80c34fb03
BACKUP_FAILED=0b67e28681194639ac2c9e9560d1bae8
ARMED=a710fdbdd46b458bae3134003c6c6c59
DISARMED=45b4cc1b257e4946a80837cbc5c65c22
INTERRUPTED=4f2c78b431f84437adc8c715278bfcb1

# A backup that succeeds.
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "backup failed"
N=${J##*/} B=$(latest_id)
expect_event "job started" $JOB_STARTED UPGRADE_RECOVERY_JOB="$N" UPGRADE_RECOVERY_JOB_TYPE=backup
expect_event "backup started" $BACKUP_STARTED UPGRADE_RECOVERY_BACKUP_ID="$B" UPGRADE_RECOVERY_STEP=start
expect_event "backup succeeded" $BACKUP_SUCCEEDED UPGRADE_RECOVERY_BACKUP_ID="$B"
expect_event "job ended" $JOB_FINISHED UPGRADE_RECOVERY_JOB="$N" UPGRADE_RECOVERY_RESULT=Succeeded \
    UPGRADE_RECOVERY_BACKUP_ID="$B" UPGRADE_RECOVERY_STEP=done

# A backup whose deadline passes (the daemon is stopped for longer than the deadline).
J=$(mcall StartBackup 'a{sv}' 1 timeout u 1 | objpath)
kill -STOP "$DAEMON_PID"
sleep 1.5
kill -CONT "$DAEMON_PID"
[ "$(wait_job "$J")" = Timeout ] || die "backup with a passed deadline: $(jprop "$J" State)"
N2=${J##*/}
expect_event "backup failed" $BACKUP_FAILED UPGRADE_RECOVERY_JOB="$N2" UPGRADE_RECOVERY_ERROR="$ERR.Timeout"
jfind $BACKUP_FAILED UPGRADE_RECOVERY_JOB="$N2" | grep -q '^    UPGRADE_RECOVERY_STEP=.' || die "backup failed has no STEP"
expect_event "job ended" $JOB_FINISHED UPGRADE_RECOVERY_JOB="$N2" UPGRADE_RECOVERY_RESULT=Timeout

# Arm and disarm.
mcall ArmRecovery 'sa{sv}' "$B" 0 >/dev/null || die "ArmRecovery"
mcall DisarmRecovery >/dev/null || die "DisarmRecovery"
expect_event "recovery armed" $ARMED UPGRADE_RECOVERY_BACKUP_ID="$B"
expect_event "recovery disarmed" $DISARMED UPGRADE_RECOVERY_BACKUP_ID="$B"

# A job the daemon dies under: SIGKILL right after the reply (the job is recorded
# before it), well before a backup of the tree can end; the next start reports it.
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
N3=${J##*/}
dbus_start_daemon
expect_event "job interrupted" $INTERRUPTED UPGRADE_RECOVERY_JOB="$N3" UPGRADE_RECOVERY_JOB_TYPE=backup

# The CLI's backup journals its failure too (the daemon is idle; same store).
CLI=$UR_BUILD_DIR/src/cli/upgrade-recovery
"$CLI" --root "$ROOT" --config "$CFG" arm "$B" >/dev/null 2>&1 || die "upgrade-recovery arm"
rc=0
"$CLI" --root "$ROOT" --config "$CFG" backup >"$T/cli.out" 2>"$T/cli.err" || rc=$?
[ "$rc" = 6 ] || die "a CLI backup while armed exited $rc, not 6: $(cat "$T/cli.err")"
[ "$(grep -c "a recovery is in progress" "$T/cli.err")" = 1 ] ||
    die "the CLI did not print the failure exactly once: $(cat "$T/cli.err")"
# The same fields as the daemon's event: the D-Bus error name, and the step.
expect_event "backup failed (CLI)" $BACKUP_FAILED SYSLOG_IDENTIFIER=upgrade-recovery \
    UPGRADE_RECOVERY_ERROR="$ERR.RecoveryInProgress" UPGRADE_RECOVERY_STEP=prepare
"$CLI" --root "$ROOT" --config "$CFG" disarm >/dev/null 2>&1 || die "upgrade-recovery disarm"

# A recovery from the CLI, offline on ROOT (so phase 1 only): its start, one entry per
# step with its result and duration, and phase 1 done; then given up.
REC_STARTED=a36a1a6c7cfd420bac2327ab7bc9c141
REC_STEP=152f7cb330e1422cb4a1ac857012825d
PHASE1_DONE=df581197f42a445a835c66cdb1d4c990
# Offline, enable-phase2 links the unit file the package installs under the root.
mkdir -p "$ROOT/usr/lib/systemd/system"
printf '[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' \
    >"$ROOT/usr/lib/systemd/system/upgrade-recovery-phase2.service"
"$CLI" --root "$ROOT" --config "$CFG" recover --backup "$B" >"$T/rec.out" 2>"$T/rec.err" ||
    die "upgrade-recovery recover: $(cat "$T/rec.err")"
R=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["recovery_id"])' "$STORE/recovery/journal")
expect_event "recovery started" $REC_STARTED UPGRADE_RECOVERY_RECOVERY_ID="$R" UPGRADE_RECOVERY_BACKUP_ID="$B"
expect_event "step done" $REC_STEP UPGRADE_RECOVERY_RECOVERY_ID="$R" UPGRADE_RECOVERY_STEP=restore-files \
    UPGRADE_RECOVERY_RESULT=done
expect_event "step skipped offline" $REC_STEP UPGRADE_RECOVERY_RECOVERY_ID="$R" UPGRADE_RECOVERY_STEP=stop-kubelet \
    UPGRADE_RECOVERY_RESULT=skipped
expect_event "phase 1 done" $PHASE1_DONE UPGRADE_RECOVERY_RECOVERY_ID="$R"
# One entry, with a duration, for each step the journal has as done or skipped.
want=$(python3 -c 'import json, sys; print(sum(s["state"] in ("done", "skipped") for s in json.load(open(sys.argv[1]))["steps"]))' \
    "$STORE/recovery/journal")
n=$(jfind $REC_STEP UPGRADE_RECOVERY_RECOVERY_ID="$R" | grep -c '^    UPGRADE_RECOVERY_DURATION_SECONDS=[0-9]*\.[0-9][0-9][0-9]$')
[ "$want" -ge 8 ] && [ "$n" = "$want" ] || die "$n step entries with a duration, the journal has $want steps ended"
ok "journal: $n step entries of recovery $R, each with its result and duration"
"$CLI" --root "$ROOT" --config "$CFG" recover --abandon >/dev/null 2>&1 || die "upgrade-recovery recover --abandon"

# journalctl -x explains an entry from our catalog, fields filled in.
x=$(journalctl -D /run/log/journal --no-pager -x MESSAGE_ID=$INTERRUPTED 2>&1)
grep -q "Subject: Upgrade recovery job $N3 was interrupted" <<<"$x" || die "journalctl -x shows no catalog text: $x"
grep -q "Defined-By: upgrade-recovery" <<<"$x" || die "journalctl -x: no Defined-By: $x"
ok "journalctl -x explains it: $(grep -m1 'Subject:' <<<"$x" | sed 's/^ *//')"
echo "PASS: test_dbus_journal"
