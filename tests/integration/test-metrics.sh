#!/bin/bash
# `upgrade-recovery metrics` with the real CLI on a real GPT/xfs partition, read by the
# real consumer: node_exporter's textfile collector, scraped over HTTP after each step
# (a file it cannot parse shows as node_textfile_scrape_error 1 and its samples vanish).
#  - an empty store, then a backup: the count, the latest backup's id and time, the
#    attempt's state;
#  - an armed recovery: armed and in progress, and the backup it refuses is recorded
#    as a failed attempt;
#  - a backup killed at a failpoint: the attempt reads as interrupted;
#  - a damaged attempt record: still a file, the part flagged unreadable, exit 7;
#  - no partition (a config naming none): the file is replaced by store_up 0 alone,
#    exit 4 (an old file would go on saying what was true before);
#  - bad use: --output into a missing directory (exit 1, nothing written), --json
#    (exit 2); no temporary is ever left in the textfile directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init metrics "$@"
require_cmd prometheus-node-exporter
t0=$(date +%s)

ur_fx_disk 600M 500M
ROOT=$T/root
mkdir -p "$ROOT/etc" "$ROOT/usr/local/bin" "$ROOT/var/lib/kubelet"
echo "node" >"$ROOT/etc/hostname"
echo "pod" >"$ROOT/var/lib/kubelet/pod"
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
TF=$T/textfile
mkdir -p "$TF"
PROM=$TF/upgrade_recovery.prom

# The real node_exporter, only its textfile collector, on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus-node-exporter --collector.disable-defaults --collector.textfile --collector.textfile.directory="$TF" \
    --web.listen-address="127.0.0.1:$port" >"$T/node-exporter.log" 2>&1 &
ne=$!
trap 'kill $ne 2>/dev/null; ur_fx_cleanup' EXIT
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/metrics')" 2>/dev/null && break
    sleep 0.1
done
scrape() { python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" >"$T/scrape"; }
# sample 'NAME{LABELS}' VALUE: the scraped sample has that value (node_exporter prints
# large numbers in exponent form, so compare numerically).
sample() {
    local got
    got=$(awk -v n="$1" '$1 == n { print $2 }' "$T/scrape")
    [ -n "$got" ] || { echo "  no sample $1 in the scrape" >&2; return 1; }
    python3 -c "import sys; sys.exit(0 if float('$got') == float('$2') else 1)" ||
        { echo "  $1 is $got, expected $2" >&2; return 1; }
}
no_sample() { ! grep -q "^$1" "$T/scrape"; }
# metrics WANT-RC: write the file, scrape it; the collector read it without an error.
metrics() {
    run_rc "$1" "$T/m.out" "$T/m.err" cli "$ROOT" metrics --output "$PROM" && scrape &&
        sample node_textfile_scrape_error 0 && sample "node_textfile_mtime_seconds{file=\"$PROM\"}" "$(stat -c %Y "$PROM")"
}
only_prom() { test "$(ls -A "$TF")" = upgrade_recovery.prom; }

# --- an empty store, then a backup ---------------------------------------------------------
# Read-only commands never mount; on a node var-recovery.mount has done this.
mkdir -p "$ROOT/var/recovery"
mount "$PART1" "$ROOT/var/recovery"
check "metrics on an empty store exits 0 and node_exporter reads the file" metrics 0
check "... the store is up" sample upgrade_recovery_store_up 1
check "... with no backup" sample upgrade_recovery_backups 0
check "... no latest backup" no_sample upgrade_recovery_latest_backup_info
check "... no attempt" no_sample upgrade_recovery_last_backup_attempt
check "... the partition's size is the file system's" sample upgrade_recovery_store_size_bytes \
    "$(($(stat -f -c '%b' "$ROOT/var/recovery") * $(stat -f -c '%S' "$ROOT/var/recovery")))"
check "metrics without --output prints the same samples" bash -c "'$UR_CLI' --root '$ROOT' metrics | grep -qx 'upgrade_recovery_backups 0'"

before=$(date +%s)
check "backup" run_rc 0 "$T/b1.json" "$T/b1.err" cli "$ROOT" --json backup
after=$(date +%s)
B1=$(json "$T/b1.json" 'j["id"]')
check "metrics after the backup" metrics 0
check "... one backup" sample upgrade_recovery_backups 1
check "... the latest is $B1" sample "upgrade_recovery_latest_backup_info{backup_id=\"$B1\",openshift_version=\"\",ostree_checksum=\"\"}" 1
ts=$(awk '$1 == "upgrade_recovery_latest_backup_timestamp_seconds" { printf "%d", $2 }' "$T/scrape")
check "... taken between $before and $after (got $ts)" test "${ts:-0}" -ge "$before" -a "${ts:-0}" -le "$after"
check "... the attempt succeeded" sample 'upgrade_recovery_last_backup_attempt_state{state="succeeded"}' 1
check "... and is in no other state" sample 'upgrade_recovery_last_backup_attempt_state{state="failed"}' 0
check "... nothing armed, no recovery" sample upgrade_recovery_recovery_in_progress 0
check "... nothing unreadable" no_sample 'upgrade_recovery_unreadable{.*} 1$'
check "... no temporary left in the textfile directory" only_prom

# --- armed: a backup is refused, and that is the last attempt -------------------------------------
check "arm" run_rc 0 "$T/a.out" "$T/a.err" cli "$ROOT" arm "$B1"
check "a backup while armed exits 6" run_rc 6 "$T/b2.out" "$T/b2.err" cli "$ROOT" backup
check "metrics while armed" metrics 0
check "... armed" sample upgrade_recovery_recovery_armed 1
check "... a recovery in progress" sample upgrade_recovery_recovery_in_progress 1
check "... the refused backup is the failed last attempt" sample 'upgrade_recovery_last_backup_attempt_state{state="failed"}' 1
check "... still one backup, the same latest" sample "upgrade_recovery_latest_backup_info{backup_id=\"$B1\",openshift_version=\"\",ostree_checksum=\"\"}" 1
check "disarm" run_rc 0 "$T/d.out" "$T/d.err" cli "$ROOT" disarm
check "metrics after disarm" metrics 0
check "... not armed" sample upgrade_recovery_recovery_armed 0
check "... no earlier tooling's recovery" sample upgrade_recovery_earlier_recovery_in_progress 0
# The earlier tooling's recovery (its progress file): backups are refused, so an alert must see it.
echo started >"$ROOT/var/recovery/progress"
check "a backup during the earlier tooling's recovery exits 6" run_rc 6 "$T/b3.out" "$T/b3.err" cli "$ROOT" backup
check "metrics during it" metrics 0
check "... the earlier tooling's recovery in progress" sample upgrade_recovery_earlier_recovery_in_progress 1
rm "$ROOT/var/recovery/progress"

# --- a backup killed in the middle --------------------------------------------------------------
rc=0
UR_FAILPOINT=backup.after-scan cli "$ROOT" backup >"$T/k.out" 2>&1 || rc=$?
check "a backup killed at a failpoint dies of SIGKILL (rc $rc)" test "$rc" = 137
check "metrics after the kill" metrics 0
check "... the attempt reads as interrupted" sample 'upgrade_recovery_last_backup_attempt_state{state="interrupted"}' 1
check "... and not as running" sample 'upgrade_recovery_last_backup_attempt_state{state="running"}' 0

# --- a damaged attempt record ---------------------------------------------------------------------
echo '{"state": ' >"$ROOT/var/recovery/last-backup.json"
check "metrics with a damaged attempt record exits 7" metrics 7
check "... flags that part" sample 'upgrade_recovery_unreadable{part="last_backup_attempt"}' 1
check "... and only that one" sample 'upgrade_recovery_unreadable{part="latest_backup"}' 0
check "... the rest is still there" sample upgrade_recovery_store_up 1
check "... and says so on stderr" grep -q "unreadable" "$T/m.err"

# --- a directory named like a backup that is none -------------------------------------------------
rm "$ROOT/var/recovery/last-backup.json"
mkdir "$ROOT/var/recovery/backups/20000101T000000Z"
check "metrics with a damaged generation exits 7" metrics 7
check "... flags the backups" sample 'upgrade_recovery_unreadable{part="backups"}' 1
check "... and names it on stderr" grep -q "20000101T000000Z" "$T/m.err"
rmdir "$ROOT/var/recovery/backups/20000101T000000Z"
check "metrics without it exits 0 again" metrics 0

# --- no partition: the old file must not stay -----------------------------------------------------
mkdir -p "$ROOT/etc/upgrade-recovery/config.d"
printf '[partition]\nlabel = "%s-none"\n' "$UR_FX_LABEL" >"$ROOT/etc/upgrade-recovery/config.d/90-gone.toml"
umount "$ROOT/var/recovery"
check "metrics without the partition exits 4" metrics 4
check "... the store is down" sample upgrade_recovery_store_up 0
check "... and nothing else is claimed" test "$(grep -c '^upgrade_recovery_' "$T/scrape")" = 1
check "... the error names the partition" grep -q "no GPT partition named '$UR_FX_LABEL-none'" "$T/m.err"
rm "$ROOT/etc/upgrade-recovery/config.d/90-gone.toml"

# --- bad use ---------------------------------------------------------------------------------------
check "--output into a missing directory exits 1" run_rc 1 "$T/o.out" "$T/o.err" cli "$ROOT" metrics --output "$T/none/x.prom"
check "... saying the directory must exist" grep -q "must exist" "$T/o.err"
check "... writing nothing" test ! -e "$T/none"
mkdir "$T/ro" && mount -t tmpfs -o ro,size=1m tmpfs "$T/ro"
check "--output into a read-only directory exits 1" run_rc 1 "$T/r.out" "$T/r.err" cli "$ROOT" metrics --output "$T/ro/x.prom"
check "... naming the file it was asked for" grep -qF "write --output $T/ro/x.prom: " "$T/r.err"
umount "$T/ro"
check "--json exits 2" run_rc 2 "$T/j.out" "$T/j.err" cli "$ROOT" --json metrics
check "an unknown option exits 2" run_rc 2 "$T/u.out" "$T/u.err" cli "$ROOT" metrics --bogus
check "the textfile directory holds only the file" only_prom

echo "test-metrics: $(($(date +%s) - t0)) s"
ur_fx_done
