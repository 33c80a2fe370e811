#!/bin/bash
# D-Bus latency of upgrade-recoveryd: N clients calling Properties.Get(State),
# Properties.GetAll(Manager) and ListBackups in a loop, first on an idle daemon,
# then while a backup job runs; prints p50/p90/p99/max per call and writes JSON.
#
#   bench/dbus_latency.sh [--build DIR] [--clients N] [--seconds S] [--files N] [--out FILE]
#
# Needs root (private system bus, tmpfs). Everything is private: its own dbus-daemon
# with the project's policy, a sandbox root on a tmpfs, its own daemon.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build clients=8 seconds=10 files=20000 out=
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--clients N] [--seconds S] [--files N] [--out FILE]" >&2; exit 2 ;;
    esac
done
export UR_SOURCE_DIR=$here UR_BUILD_DIR=$build
LOAD=$build/tests/integration/dbus-load-client
. "$here/tests/integration/dbus-lib.sh"
[ -x "$LOAD" ] || die "build first: no $LOAD"
dbus_setup
dbus_big_tree "$files"
dbus_start_daemon
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "first backup failed"

echo "== idle daemon, $clients clients, $seconds s"
"$LOAD" --clients "$clients" --seconds "$seconds" || die "calls failed"
idle=$("$LOAD" --clients "$clients" --seconds "$seconds" --json) || die "calls failed"

echo "== while a backup of $files files runs, $clients clients"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
wait_progress "$J" 1
busy=$("$LOAD" --clients "$clients" --seconds 600 --until-job "$J" --json) || die "calls failed during the backup"
[ "$(wait_job "$J")" = Succeeded ] || die "the backup under load failed"
python3 - "$busy" <<'PY' 2>/dev/null || echo "$busy"
import json, sys
d = json.loads(sys.argv[1])
for k, v in d["calls"].items():
    print(f"{k:<12} n={v['n']:<7} p50={v['p50_ms']:7.3f} ms  p90={v['p90_ms']:7.3f} ms  p99={v['p99_ms']:7.3f} ms  max={v['max_ms']:8.3f} ms")
print(f"{d['clients']} clients, {d['seconds']:.1f} s, {d['errors']} errors")
PY
result="{\"date\": \"$(date -u +%FT%TZ)\", \"host_cpus\": $(nproc), \"load_avg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"files\": $files, \"idle\": $idle, \"during_backup\": $busy}"
[ -n "$out" ] && echo "$result" >"$out" && echo "wrote $out"
echo "$result"
