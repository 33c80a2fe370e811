#!/bin/bash
# D-Bus latency of upgrade-recoveryd: N clients (one connection each) calling
# Properties.Get(State), Properties.GetAll(Manager) and ListBackups in a loop, first on
# an idle daemon, then while backups run back to back; prints p50/p90/p99/max per call
# and the whole result as JSON.
#
#   bench/dbus_latency.sh [--build DIR] [--clients N] [--seconds S] [--files N] [--out FILE]
#
# Needs root (private system bus, tmpfs). Everything is private: its own dbus-daemon
# with the project's policy, a sandbox root on a tmpfs, its own upgrade-recoveryd.
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

show()
{
    python3 - "$1" <<'PY' 2>/dev/null || echo "$1"
import json, sys
d = json.loads(sys.argv[1])
for k, v in d["calls"].items():
    print(f"{k:<12} n={v['n']:<7} p50={v['p50_ms']:7.3f} ms  p90={v['p90_ms']:7.3f} ms  "
          f"p99={v['p99_ms']:7.3f} ms  max={v['max_ms']:8.3f} ms")
print(f"{d['clients']} clients, {d['seconds']:.1f} s, {d['errors']} errors")
PY
}

echo "== idle daemon: $clients clients, $seconds s"
idle=$("$LOAD" --clients "$clients" --seconds "$seconds" --json) || die "calls failed: $idle"
show "$idle"

echo "== backups of $files files back to back: $clients clients, $seconds s"
rm -f "$T/stop"
(
    n=0
    while [ ! -e "$T/stop" ]; do
        j=$(mcall StartBackup 'a{sv}' 0) || exit 1
        j=$(objpath <<<"$j")
        [ "$(wait_job "$j" 600)" = Succeeded ] || exit 1
        n=$((n + 1))
    done
    echo "$n" >"$T/backups"
) &
runner=$!
for ((i = 0; i < 100; i++)); do [ "$(mprop CurrentJob)" != / ] && break; sleep 0.1; done
busy=$("$LOAD" --clients "$clients" --seconds "$seconds" --json) || die "calls failed during the backups: $busy"
touch "$T/stop"
wait "$runner" || die "a backup failed under load"
show "$busy"
echo "$(cat "$T/backups") backups completed during the window"

result="{\"date\": \"$(date -u +%FT%TZ)\", \"host_cpus\": $(nproc), \"load_avg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"files\": $files, \"backups_during_window\": $(cat "$T/backups"), \"idle\": $idle, \"during_backups\": $busy}"
if [ -n "$out" ]; then echo "$result" >"$out" && echo "wrote $out"; fi
