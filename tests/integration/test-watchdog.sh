#!/bin/bash
# The upgrade watchdog with the real CLI on a real GPT/xfs partition:
#  - start: bad timeouts and ids are usage errors, nothing written; a started
#    watchdog is on the partition and in status (text and --json);
#  - in the boot it was started in, monitor and trigger do nothing;
#  - its backup is neither pruned by the retention nor deleted;
#  - in a later boot (the recorded boot id changed), monitor fires once the
#    timeout since the boot began has passed (waiting for the store's lock while
#    another operation holds it): the backup's recovery is armed,
#    the watchdog gone, and a second start is refused while armed (exit 6);
#  - trigger (a unit's ExecStopPost hook) fires at once in a later boot;
#  - a waiting monitor ends when the watchdog is stopped, and on SIGTERM (the
#    watchdog stays for the next boot), arming nothing;
#  - the monitor counts each later boot once (a restarted monitor does not count
#    it again); status (text and --json) and the metrics say when it fires in
#    this boot and the boots counted; a node that came up more than
#    watchdog.max_boots times (a reboot loop, simulated by boot ids recorded in
#    the file) fires at the start of the boot, long before its timeout, saying
#    so; watchdog.max_boots from the configuration decides;
#  - a damaged watchdog file fires nothing: monitor and status exit 7.
# Offline (--root): firing arms and says to reboot; the reboot itself is
# systemd's, seen in the VM tests' recoveries.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init wd "$@"
t0=$(date +%s)

ur_fx_disk 600M 500M
ROOT=$T/root
mkdir -p "$ROOT/etc/sub" "$ROOT/usr/local/bin" "$ROOT/var/lib/kubelet"
echo "node" >"$ROOT/etc/hostname"
echo "tool" >"$ROOT/usr/local/bin/tool"
echo "pod" >"$ROOT/var/lib/kubelet/pod"
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
mkdir -p "$ROOT/etc/upgrade-recovery/config.d"
printf '[backup]\nretention = 2\n' >"$ROOT/etc/upgrade-recovery/config.d/10-retention.toml"
WD=$ROOT/var/recovery/recovery/watchdog
ARMED=$ROOT/var/recovery/recovery/armed
later_boot() { sed -i 's/^boot_id = .*/boot_id = "an-earlier-boot"/' "$WD"; }
# earlier_later_boots IDS: the boots the monitor saw before this one (a TOML array's body).
earlier_later_boots() {
    sed -i '/^later_boots = /d' "$WD"
    echo "later_boots = [$1]" >>"$WD"
}
BOOT=$(cat /proc/sys/kernel/random/boot_id)

check "first backup" run_rc 0 "$T/b1.json" "$T/b1.err" cli "$ROOT" --json backup
B1=$(json "$T/b1.json" 'j["id"]')

check "stop without a watchdog exits 0" run_rc 0 "$T/s0.out" "$T/s0.err" cli "$ROOT" watchdog stop
check "... and says so" grep -q "No watchdog was running" "$T/s0.out"
check "trigger without a watchdog exits 0" run_rc 0 "$T/tn.json" "$T/tn.err" cli "$ROOT" --json watchdog trigger
check "... --json: not fired, reason 'no watchdog'" \
    test "$(json "$T/tn.json" 'str(j["fired"]).lower()+" "+j["reason"]')" = "false no watchdog"
# A recovery armed beside a running watchdog: stop removes the watchdog, but the next
# boot restores, so it is no success for automation (exit 6) and says how to keep the node.
check "watchdog start" run_rc 0 "$T/wa.out" "$T/wa.err" cli "$ROOT" watchdog start --timeout 600
check "arm beside it" run_rc 0 "$T/aa.out" "$T/aa.err" cli "$ROOT" arm
check "stop with a recovery armed exits 6" run_rc 6 "$T/sa.json" "$T/sa.err" cli "$ROOT" --json watchdog stop
check "... stopped it, and names the armed backup" \
    test "$(json "$T/sa.json" 'str(j["stopped"]).lower()+" "+j["armed"]')" = "true $B1"
check "... the watchdog is gone" test ! -e "$WD"
check "... the recovery stays armed" test "$(cat "$ARMED")" = "$B1"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm
check "watchdog start again" run_rc 0 "$T/wa.out" "$T/wa.err" cli "$ROOT" watchdog start --timeout 600
check "arm beside it again" run_rc 0 "$T/aa.out" "$T/aa.err" cli "$ROOT" arm
check "the text says so too (exit 6)" run_rc 6 "$T/sa.out" "$T/sa.err" cli "$ROOT" watchdog stop
check "... with the way to keep the node" grep -q "^Watchdog stopped, but a recovery of backup $B1 is armed: the next boot restores it. To keep the node as it is, run 'upgrade-recovery disarm' before that reboot.$" "$T/sa.out"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm
# A damaged armed marker beside it: whether the next boot restores cannot be told, so
# stop is no success either, and says what removes the marker.
check "watchdog start a third time" run_rc 0 "$T/wa.out" "$T/wa.err" cli "$ROOT" watchdog start --timeout 600
echo 'not an id' >"$ARMED"
check "stop with a damaged armed marker exits 7" run_rc 7 "$T/sd.out" "$T/sd.err" cli "$ROOT" watchdog stop
check "... says the watchdog is stopped and what removes the marker" grep -q "the watchdog is stopped, but whether a recovery is armed cannot be told: .*'upgrade-recovery disarm' removes it" "$T/sd.err"
check "... the watchdog is gone" test ! -e "$WD"
check "disarm removes the damaged marker" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm
check "stop after it exits 0" run_rc 0 "$T/s1.out" "$T/s1.err" cli "$ROOT" watchdog stop
check "... no watchdog, nothing armed" grep -q "^No watchdog was running.$" "$T/s1.out"
for bad in "--timeout 59" "--timeout abc" "--timeout" "--reason x" "extra arg"; do
    # shellcheck disable=SC2086 # the options are meant to split
    check "watchdog start $bad exits 2" run_rc 2 "$T/u.out" "$T/u.err" cli "$ROOT" watchdog start $bad
done
check "watchdog start --timeout abc names the minimum, not 'no limit'" \
    bash -c "'$UR_CLI' --root '$ROOT' watchdog start --timeout abc 2>&1 | grep -q 'wants whole seconds (at least 60)'"
check "watchdog without an action exits 2" run_rc 2 "$T/u.out" "$T/u.err" cli "$ROOT" watchdog
check "a watchdog for a backup that does not exist is refused" \
    bash -c "! '$UR_CLI' --root '$ROOT' watchdog start 20990101T000000Z >/dev/null 2>&1"
check "nothing was written by the refusals" test ! -e "$WD"

# --- started: on the partition and in status --------------------------------------------
check "watchdog start --timeout 60 exits 0" run_rc 0 "$T/w.json" "$T/w.err" cli "$ROOT" --json watchdog start --timeout 60
check "it names the latest backup, the timeout and this boot" \
    test "$(json "$T/w.json" 'j["watchdog"]["backup"]+" "+str(j["watchdog"]["timeout"])+" "+j["watchdog"]["boot_id"]')" \
    = "$B1 60 $(cat /proc/sys/kernel/random/boot_id)"
check "the watchdog file is on the partition" grep -Eqx "backup = [\"']$B1[\"']" "$WD"
check "status shows it" bash -c "'$UR_CLI' --root '$ROOT' status | grep -q '^Watchdog: started .* recovers backup $B1 '"
check "status --json shows it" test "$(json <(cli "$ROOT" --json status) 'j["watchdog"]["backup"]')" = "$B1"
cli "$ROOT" --json status >"$T/st0.json"
check "... not applying in this boot: no time left, no deadline, 0 of 3 boots" \
    test "$(json "$T/st0.json" '(lambda w: [w["applies_this_boot"], w["seconds_left"], w["deadline"], w["boots"], w["max_boots"]])(j["watchdog"])')" \
    = "[False, None, None, 0, 3]"
check "status says it waits for the next boot" \
    bash -c "'$UR_CLI' --root '$ROOT' status | grep -q '^  This boot: the watchdog was started in it; it waits for the next boot (later boots: 0; it fires at the start of later boot 4 (watchdog.max_boots = 3))'"
cli "$ROOT" metrics >"$T/met0.prom" || true
check "metrics: 0 boots, at most 3, no deadline in this boot" \
    bash -c "grep -qx 'upgrade_recovery_watchdog_boots 0' '$T/met0.prom' && grep -qx 'upgrade_recovery_watchdog_max_boots 3' '$T/met0.prom' && ! grep -q '^upgrade_recovery_watchdog_deadline' '$T/met0.prom'"

# --- the boot it was started in: nothing fires --------------------------------------------
check "monitor in the same boot exits 0 at once" run_rc 0 "$T/m0.out" "$T/m0.err" cli "$ROOT" watchdog monitor
check "... and says it waits from the next boot" grep -q "started in this boot" "$T/m0.out"
check "monitor --json says so in JSON" run_rc 0 "$T/m0.json" "$T/m0j.err" cli "$ROOT" --json watchdog monitor
check "... (not fired, started in this boot)" \
    test "$(json "$T/m0.json" 'str(j["fired"]) + " " + j["reason"]')" = "False started in this boot"
check "trigger in the same boot exits 0" run_rc 0 "$T/t0.out" "$T/t0.err" cli "$ROOT" watchdog trigger --reason "kubelet failed"
check "... --json: not fired, and why" run_rc 0 "$T/t0.json" "$T/t0j.err" cli "$ROOT" --json watchdog trigger
check "... reason 'started in this boot'" \
    test "$(json "$T/t0.json" 'str(j["fired"]).lower()+" "+j["reason"]')" = "false started in this boot"
check "... without firing" grep -q "^Not fired (kubelet failed): the watchdog was started in this boot" "$T/t0.out"
check "nothing is armed" test ! -e "$ARMED"

# --- its backup stays ------------------------------------------------------------------------
sleep 1
check "second backup" run_rc 0 "$T/b2.json" "$T/b2.err" cli "$ROOT" --json backup
sleep 1
check "third backup (retention 2)" run_rc 0 "$T/b3.json" "$T/b3.err" cli "$ROOT" --json backup
B2=$(json "$T/b2.json" 'j["id"]')
check "the retention pruned the second backup, not the watchdog's" \
    test "$(json "$T/b3.json" '",".join(j["pruned"])')" = "$B2"
check "the watchdog's backup is still there" test -f "$ROOT/var/recovery/backups/$B1/metadata.toml"
check "deleting the watchdog's backup is refused (exit 11)" run_rc 11 "$T/d.out" "$T/d.err" cli "$ROOT" delete "$B1"
check "... saying why" grep -q "the upgrade watchdog recovers to" "$T/d.err"

# --- a later boot: the timeout since the boot began has passed -----------------------------
up=$(cut -d. -f1 /proc/uptime)
[ "$up" -gt 61 ] || sleep $((62 - up)) # the machine has been up for longer than the timeout
later_boot
# Another operation holds the store for 4 s: the watchdog waits for it, it does not give up.
flock "$ROOT/var/recovery/.lock" sleep 4 &
holder=$!
sleep 0.5
t1=$(date +%s)
check "monitor in a later boot fires (exit 0)" run_rc 0 "$T/m1.out" "$T/m1.err" cli "$ROOT" watchdog monitor
check "... once the store's lock was free" test $(($(date +%s) - t1)) -ge 3
wait "$holder"
sed 's/^/  /' "$T/m1.out"
check "... saying why and what to do" grep -q "^Watchdog fired (the upgrade was not declared complete within 60 s of the boot): recovery armed with backup $B1; reboot to recover" "$T/m1.out"
check "the watchdog's backup is armed" test "$(cat "$ARMED")" = "$B1"
check "the watchdog is gone (it fires once)" test ! -e "$WD"
check "a new watchdog is refused while the recovery is armed (exit 6)" \
    run_rc 6 "$T/w6.out" "$T/w6.err" cli "$ROOT" watchdog start --timeout 60
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm

# --- trigger in a later boot fires at once ----------------------------------------------------
check "start again" run_rc 0 "$T/w2.out" "$T/w2.err" cli "$ROOT" watchdog start "$B1" --timeout 100000
later_boot
check "trigger in a later boot exits 0" run_rc 0 "$T/t1.json" "$T/t1.err" cli "$ROOT" --json watchdog trigger --reason "kubelet.service: exit-code"
check "... fired and armed $B1" test "$(json "$T/t1.json" 'str(j["fired"]).lower()+" "+j["armed"]')" = "true $B1"
check "the backup is armed" test "$(cat "$ARMED")" = "$B1"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm
# One that cannot reboot (recovery.systemctl = "dbus" acts on the running system, not on
# this root) arms all the same and says why it does not reboot.
printf '[recovery]\nsystemctl = "dbus"\n' >"$ROOT/etc/upgrade-recovery/config.d/20-dbus.toml"
check "start again" run_rc 0 "$T/w3.out" "$T/w3.err" cli "$ROOT" watchdog start "$B1" --timeout 100000
later_boot
check "trigger that cannot reboot exits 0" run_rc 0 "$T/t3.out" "$T/t3.err" cli "$ROOT" watchdog trigger --reason test
check "... armed, reboot to recover" grep -q "recovery armed with backup $B1; reboot to recover" "$T/t3.out"
check "... and says why it does not reboot" grep -q "watchdog: cannot reboot the node: recovery.systemctl = \"dbus\" controls the running system" "$T/t3.err"
rm "$ROOT/etc/upgrade-recovery/config.d/20-dbus.toml"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm

# --- a waiting monitor: stopped by 'watchdog stop', and by SIGTERM ----------------------------
wait_for_line() { # file pattern: up to 10 s
    for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
check "start with a long timeout" run_rc 0 "$T/w3.out" "$T/w3.err" cli "$ROOT" watchdog start --timeout 100000
later_boot
"$UR_CLI" --root "$ROOT" watchdog monitor >"$T/m2.out" 2>"$T/m2.err" &
mon=$!
check "the monitor waits and says how long" wait_for_line "$T/m2.out" "is recovered in [0-9]* s unless"
check "stop while it waits" run_rc 0 "$T/s1.out" "$T/s1.err" cli "$ROOT" watchdog stop
rc=0
for _ in $(seq 1 100); do kill -0 "$mon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mon" 2>/dev/null; then kill "$mon"; rc=timeout; else wait "$mon" || rc=$?; fi
check "the monitor ended by itself, exit 0" test "$rc" = 0
check "... saying the upgrade was declared complete" grep -q "declared complete" "$T/m2.out"
check "nothing is armed" test ! -e "$ARMED"

check "start once more" run_rc 0 "$T/w4.out" "$T/w4.err" cli "$ROOT" watchdog start --timeout 100000
later_boot
"$UR_CLI" --root "$ROOT" watchdog monitor >"$T/m3.out" 2>"$T/m3.err" &
mon=$!
check "the monitor waits" wait_for_line "$T/m3.out" "is recovered in"
"$UR_CLI" --root "$ROOT" --json watchdog monitor >"$T/m3.json" 2>"$T/m3j.err" &
monj=$!
check "a monitor with --json says it waits, as a JSON line" wait_for_line "$T/m3.json" '"waiting":true'
kill -TERM "$monj"
wait "$monj" || true
check "... with the seconds left and the backup" \
    python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if j["seconds_left"] > 0 and j["watchdog"]["backup"] else 1)' "$T/m3.json"
kill -TERM "$mon"
rc=0
wait "$mon" || rc=$?
check "SIGTERM ends the monitor with exit 0" test "$rc" = 0
check "... the watchdog stays for the next boot" test -f "$WD"
check "... nothing is armed" test ! -e "$ARMED"

# --- later boots: counted once each; status and metrics say when it fires -----------------
check "the waiting monitor counted this boot" grep -Eq "^later_boots = \[ *[\"']$BOOT[\"'] *\]" "$WD"
"$UR_CLI" --root "$ROOT" watchdog monitor >"$T/m5.out" 2>"$T/m5.err" &
mon=$!
check "a monitor started again in the same boot waits" wait_for_line "$T/m5.out" "is recovered in"
kill -TERM "$mon"
wait "$mon" || true
check "... says it is later boot 1 of the 3 allowed" grep -q "(later boot 1; it fires at the start of later boot 4)" "$T/m5.out"
check "... and did not count this boot twice" test "$(grep -c "$BOOT" "$WD")" = 1
cli "$ROOT" --json status >"$T/st1.json"
check "status --json: applies in this boot, time left, a deadline, 1 of 3 boots" \
    test "$(json "$T/st1.json" '(lambda w: [w["applies_this_boot"], 0 < w["seconds_left"] <= 100000, w["deadline"][-1], w["boots"], w["max_boots"]])(j["watchdog"])')" \
    = "[True, True, 'Z', 1, 3]"
check "status says when it fires and the boots counted" \
    bash -c "'$UR_CLI' --root '$ROOT' status | grep -Eq '^  This boot: fires in [0-9]+ s \([0-9T:-]+Z\) unless stopped; later boots: 1; it fires at the start of later boot 4'"
cli "$ROOT" metrics >"$T/met1.prom" || true
check "metrics: 1 boot, at most 3, the deadline in this boot" \
    bash -c "grep -qx 'upgrade_recovery_watchdog_boots 1' '$T/met1.prom' && grep -qx 'upgrade_recovery_watchdog_max_boots 3' '$T/met1.prom' && grep -Eq '^upgrade_recovery_watchdog_deadline_timestamp_seconds [0-9.]+$' '$T/met1.prom'"
check "stop" run_rc 0 "$T/s3.out" "$T/s3.err" cli "$ROOT" watchdog stop

# --- a reboot loop: more than watchdog.max_boots later boots fire at once -----------------------
check "start with a long timeout" run_rc 0 "$T/w5.out" "$T/w5.err" cli "$ROOT" watchdog start "$B1" --timeout 100000
later_boot
earlier_later_boots '"loop-1", "loop-2"'
"$UR_CLI" --root "$ROOT" watchdog monitor >"$T/m6.out" 2>"$T/m6.err" &
mon=$!
check "the third later boot still waits for the timeout" wait_for_line "$T/m6.out" "(later boot 3; it fires at the start of later boot 4)"
kill -TERM "$mon"
wait "$mon" || true
check "... nothing is armed" test ! -e "$ARMED"
earlier_later_boots '"loop-1", "loop-2", "loop-3"'
check "the fourth later boot fires at once (exit 0)" \
    run_rc 0 "$T/m7.out" "$T/m7.err" timeout 20 "$UR_CLI" --root "$ROOT" watchdog monitor
sed 's/^/  /' "$T/m7.out"
check "... saying why: the boot count, not the timeout" \
    grep -q "^Watchdog fired (the node came up 4 times since the watchdog was started (watchdog.max_boots = 3) and the upgrade was never declared complete: a reboot loop): recovery armed with backup $B1" "$T/m7.out"
check "... the watchdog's backup is armed" test "$(cat "$ARMED")" = "$B1"
check "... the watchdog is gone" test ! -e "$WD"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm

printf '[watchdog]\nmax_boots = 1\n' >"$ROOT/etc/upgrade-recovery/config.d/20-watchdog.toml"
check "start with watchdog.max_boots = 1" run_rc 0 "$T/w6.out" "$T/w6.err" cli "$ROOT" watchdog start "$B1" --timeout 100000
later_boot
earlier_later_boots '"loop-1"'
check "status --json shows the configured limit" test "$(json <(cli "$ROOT" --json status) 'j["watchdog"]["max_boots"]')" = 1
check "the second later boot fires with watchdog.max_boots = 1" \
    run_rc 0 "$T/m8.json" "$T/m8.err" timeout 20 "$UR_CLI" --root "$ROOT" --json watchdog monitor
check "... and armed $B1" test "$(json "$T/m8.json" 'str(j["fired"]).lower()+" "+j["armed"]')" = "true $B1"
check "... logging the boot count as the reason" grep -q "came up 2 times .*watchdog.max_boots = 1" "$T/m8.err"
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm
printf '[watchdog]\nmax_boots = 0\n' >"$ROOT/etc/upgrade-recovery/config.d/20-watchdog.toml"
check "watchdog.max_boots = 0 is a configuration error (exit 3)" \
    run_rc 3 "$T/c3.out" "$T/c3.err" cli "$ROOT" watchdog monitor
check "... naming file, line and column" grep -q "20-watchdog.toml:2:13: watchdog.max_boots must be at least 1" "$T/c3.err"
rm "$ROOT/etc/upgrade-recovery/config.d/20-watchdog.toml"

# --- started again while one from an earlier boot counts in this boot: refused ---------------
check "start before the 'upgrade'" run_rc 0 "$T/w9.out" "$T/w9.err" cli "$ROOT" watchdog start "$B1" --timeout 100000
later_boot
check "start while one from an earlier boot counts is refused (exit 11)" \
    run_rc 11 "$T/w5.out" "$T/w5.err" cli "$ROOT" watchdog start --timeout 60000
check "... saying it would leave this boot unguarded, and what to do" \
    grep -q "in an earlier boot, counts in this one.*leave this one unguarded.*watchdog stop' first" "$T/w5.err"
check "... the watchdog is unchanged" grep -qx "timeout = 100000" "$WD"
# Stop waits for a busy store, as firing does: one that gave up let the watchdog fire later.
flock "$ROOT/var/recovery/.lock" sleep 4 &
holder=$!
sleep 0.5
t1=$(date +%s)
check "stop while another operation holds the store exits 0" run_rc 0 "$T/s3.out" "$T/s3.err" cli "$ROOT" watchdog stop
check "... once the lock was free" test $(($(date +%s) - t1)) -ge 3
wait "$holder"
check "... and stopped it" grep -q "^Watchdog stopped" "$T/s3.out"
check "... saying it waited" grep -q "another operation holds .*; waiting up to 600 s" "$T/s3.err"
check "started twice in one boot: the second replaces the first" \
    bash -c "'$UR_CLI' --root '$ROOT' watchdog start $B1 --timeout 100000 >/dev/null && '$UR_CLI' --root '$ROOT' watchdog start $B1 --timeout 200000 >/dev/null"
check "... with its timeout" grep -qx "timeout = 200000" "$WD"
# Stop after the watchdog fired: it says the recovery is armed, and how to keep the node.
later_boot
check "trigger fires" run_rc 0 "$T/t2.out" "$T/t2.err" cli "$ROOT" watchdog trigger --reason test
check "stop after it fired exits 6: the next boot restores" run_rc 6 "$T/s4.json" "$T/s4.err" cli "$ROOT" --json watchdog stop
check "... not stopped, the armed backup named" \
    test "$(json "$T/s4.json" 'str(j["stopped"]) + " " + j["armed"]')" = "False $B1"
check "... in text: armed, and disarm keeps the node" \
    bash -c "'$UR_CLI' --root '$ROOT' watchdog stop | grep -q \"backup $B1 is armed.*'upgrade-recovery disarm' before that reboot\""
check "disarm" run_rc 0 "$T/da.out" "$T/da.err" cli "$ROOT" disarm

# --- a damaged watchdog fires nothing ---------------------------------------------------------
echo 'backup = ' >"$WD"
check "monitor with a damaged watchdog exits 7" run_rc 7 "$T/m4.out" "$T/m4.err" cli "$ROOT" watchdog monitor
check "status says it is unreadable and exits 7" run_rc 7 "$T/s7.out" "$T/s7.err" cli "$ROOT" status
check "... naming it" grep -q "^Watchdog: UNREADABLE: " "$T/s7.out"
check "nothing is armed" test ! -e "$ARMED"
check "stop removes even a damaged one" run_rc 0 "$T/s2.out" "$T/s2.err" cli "$ROOT" watchdog stop
check "status is clean again" run_rc 0 "$T/s8.out" "$T/s8.err" cli "$ROOT" status

echo "test-watchdog: $(($(date +%s) - t0)) s"
ur_fx_done
