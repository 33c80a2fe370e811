#!/bin/bash
# Under load: 8 clients (each its own connection) call Properties.Get, GetAll and
# ListBackups in a loop while a backup job runs; every call must answer, the backup
# must still succeed, and the latency (p50/p90/p99/max) is printed. The same client
# drives bench/dbus_latency.sh.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
LOAD=${UR_DBUS_LOAD_CLIENT:-$UR_BUILD_DIR/tests/integration/dbus-load-client}
[ -x "$LOAD" ] || die "no load client at $LOAD"
dbus_setup
dbus_big_tree 12000
dbus_start_daemon

J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "first backup failed"

# Idle baseline, then the same load while a backup runs.
"$LOAD" --clients 8 --seconds 2 >"$T/idle.txt" || die "calls failed on an idle daemon: $(cat "$T/idle.txt")"
log "idle:"
sed 's/^/#   /' "$T/idle.txt" >&2

J=$(mcall StartBackup 'a{sv}' 0 | objpath)
wait_progress "$J" 1
"$LOAD" --clients 8 --seconds 120 --until-job "$J" >"$T/busy.txt"
rc=$?
log "during backup job $J:"
sed 's/^/#   /' "$T/busy.txt" >&2
[ $rc = 0 ] || die "calls failed while a backup ran"
grep -q "until the job ended" "$T/busy.txt" || die "the backup outlived the load window"
n=$(awk '$1 == "all" { sub("n=", "", $2); print $2 }' "$T/busy.txt")
[ "${n:-0}" -ge 80 ] || die "only ${n:-0} calls answered during the backup"
[ "$(wait_job "$J")" = Succeeded ] || die "the backup under load failed: $(jprop "$J" Message)"
ok "$n calls answered during the backup, which succeeded: $(jprop "$J" Message)"
daemon_alive
echo "PASS: test_dbus_load"
