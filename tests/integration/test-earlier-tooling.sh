#!/bin/bash
# A node moved over from the earlier tooling (launchBackup + upgrade-recovery.sh,
# prior-art.md 1.3-1.5) keeps its recovery partition and what that tooling left on it:
# its backup (cluster/ etc/ usrlocal/ kubelet/ extras.tgz etc.exclude.list), its script,
# and, while its recovery runs, `progress`. upgrade-recovery must:
#   - refuse a backup while that recovery is in progress (exit 6), changing nothing of it,
#     and the start of a recovery of its own (arm, recover --dry-run, watchdog start);
#     a watchdog that fires then arms nothing and is removed;
#   - say so in `status` (text and --json warnings);
#   - never touch the old backup, and name it with its size and how to remove it;
#   - keep the old script as upgrade-recovery.sh.earlier when its own takes the name;
#   - name the old backup's space when a backup does not fit.
# A plain-directory store in a temporary root: no partition needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd python3
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT

ROOT=$T/root
STORE=$ROOT/var/recovery
CFG=$T/config.toml
ur_plain_sandbox "$ROOT" "$CFG" "ur-earlier-none-$$"
mkdir -p "$STORE"
cli() { "$UR_CLI" --root "$ROOT" --config "$CFG" "$@"; }
has() { grep -qF -- "$2" "$1" || die "$3: '$2' not in: $(cat "$1")"; }
json() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# What the earlier tooling left: its backup (2 MiB of etcd snapshot among it), its
# script, and a recovery of it that got as far as restoring the files.
mkdir -p "$STORE/cluster" "$STORE/etc/kubernetes" "$STORE/usrlocal/bin" "$STORE/kubelet/pods"
head -c $((2 << 20)) /dev/urandom >"$STORE/cluster/snapshot_2026-01-01_000000.db"
echo conf >"$STORE/etc/kubernetes/kubelet.conf"
echo tool >"$STORE/usrlocal/bin/tool"
ln "$STORE/usrlocal/bin/tool" "$STORE/usrlocal/bin/tool-link"
echo x >"$STORE/kubelet/pods/x"
echo etc/kubernetes >"$STORE/etc.exclude.list"
printf '#!/bin/bash\n# the earlier upgrade-recovery.sh\necho restoring\n' >"$STORE/upgrade-recovery.sh"
chmod 0700 "$STORE/upgrade-recovery.sh"
printf 'started\nrestore_files\n' >"$STORE/progress"
old_files() { (cd "$STORE" && find cluster etc usrlocal kubelet etc.exclude.list -printf '%p %s %n %T@\n' | sort && sha256sum cluster/* etc.exclude.list); }
old_files >"$T/old.before"
old_script=$(sha256sum <"$STORE/upgrade-recovery.sh")

# --- its recovery in progress refuses a backup -------------------------------------
rc=0
cli backup >"$T/b1.out" 2>"$T/b1.err" || rc=$?
[ $rc -eq 6 ] || die "backup during the earlier tool's recovery exited $rc, not 6: $(cat "$T/b1.err")"
has "$T/b1.err" "a recovery by the earlier upgrade-recovery.sh is in progress" "the refusal"
has "$T/b1.err" "$STORE/progress: started, restore_files" "the refusal names the file and its stages"
has "$T/b1.err" "$STORE/upgrade-recovery.sh --resume" "the refusal says how to finish it"
[ -z "$(ls -A "$STORE/backups" 2>/dev/null)" ] || die "the refused backup left $(ls -A "$STORE/backups")"
[ "$(sha256sum <"$STORE/upgrade-recovery.sh")" = "$old_script" ] || die "the refused backup changed the old script"
old_files >"$T/old.after"
cmp -s "$T/old.before" "$T/old.after" || die "the refused backup changed the old backup: $(diff "$T/old.before" "$T/old.after")"
echo "ok: a backup during the earlier tool's recovery exits 6 and changes nothing of it"
rc=0
cli backup --dry-run >"$T/d1.out" 2>"$T/d1.err" || rc=$?
[ $rc -eq 6 ] || die "backup --dry-run during the earlier tool's recovery exited $rc, not 6"
echo "ok: so does a dry run"

# --- status says it ------------------------------------------------------------------
cli status >"$T/s1.out" 2>&1 || die "status: $(cat "$T/s1.out")"
has "$T/s1.out" "WARNING: a recovery by the earlier upgrade-recovery.sh is in progress" "status"
has "$T/s1.out" "WARNING: the recovery partition holds a backup of the earlier upgrade-recovery.sh (cluster, etc, usrlocal, kubelet, etc.exclude.list)" "status"
cli --json status >"$T/s1.json" || die "status --json failed"
[ "$(json "$T/s1.json" 'sum("earlier upgrade-recovery.sh" in w for w in j["warnings"])')" = 2 ] ||
    die "status --json warnings: $(json "$T/s1.json" 'j["warnings"]')"
echo "ok: status warns of both, text and --json"

# --- once it is given up: a backup, the old files untouched --------------------------
rm "$STORE/progress"
cli backup >"$T/b2.out" 2>"$T/b2.err" || die "backup after the progress file went: $(cat "$T/b2.err")"
# The old backup holds at least its 2 MiB snapshot; the hard link counts once.
has "$T/b2.err" "the recovery partition holds a backup of the earlier upgrade-recovery.sh (cluster, etc, usrlocal, kubelet, etc.exclude.list, 2." "the backup's warning with the size"
has "$T/b2.err" "rm -rf $STORE/cluster $STORE/etc $STORE/usrlocal $STORE/kubelet $STORE/etc.exclude.list" "the backup's warning says how to remove it"
B=$(basename "$(readlink "$STORE/latest")")
has "$STORE/backups/$B/metadata.toml" "backup of the earlier upgrade-recovery.sh" "the backup's metadata keeps the warning"
old_files >"$T/old.after"
cmp -s "$T/old.before" "$T/old.after" || die "the backup changed the old backup: $(diff "$T/old.before" "$T/old.after")"
[ "$(sha256sum <"$STORE/upgrade-recovery.sh.earlier")" = "$old_script" ] || die "the old script was not kept"
grep -q "compatibility entry point written by upgrade-recovery" "$STORE/upgrade-recovery.sh" ||
    die "upgrade-recovery.sh is not ours after the backup"
cli verify "$B" >/dev/null 2>&1 || die "the backup does not verify"
echo "ok: the backup warns with the size, leaves the old backup alone, keeps the old script"

# A second backup keeps the kept script as it is (ours is never kept in its place).
cli backup >/dev/null 2>&1 || die "second backup failed"
[ "$(sha256sum <"$STORE/upgrade-recovery.sh.earlier")" = "$old_script" ] || die "the kept old script was replaced"
echo "ok: a later backup keeps upgrade-recovery.sh.earlier"

# --- the kept script run by hand to restore the old backup: no recovery of ours -----
printf 'started\n' >"$STORE/progress"
rc=0
cli arm "$B" >"$T/a1.out" 2>"$T/a1.err" || rc=$?
[ $rc -eq 6 ] || die "arm during the earlier tool's recovery exited $rc, not 6: $(cat "$T/a1.err")"
has "$T/a1.err" "a recovery of upgrade-recovery is refused while it runs" "arm's refusal"
has "$T/a1.err" "finish it ('$STORE/upgrade-recovery.sh.earlier --resume')" "arm's refusal names the kept script"
[ ! -e "$STORE/recovery/armed" ] || die "the refused arm armed"
# Without the kept script, ours in its place: the refusal must not send anyone to ours
# (its --resume resumes a recovery of upgrade-recovery).
mv "$STORE/upgrade-recovery.sh.earlier" "$T/kept"
rc=0
cli arm "$B" >"$T/a2.out" 2>"$T/a2.err" || rc=$?
[ $rc -eq 6 ] || die "arm during the earlier tool's recovery, its script gone, exited $rc, not 6: $(cat "$T/a2.err")"
has "$T/a2.err" "finish it with the earlier upgrade-recovery.sh --resume (it is not on the partition)" "the refusal without the old script"
! grep -qF "$STORE/upgrade-recovery.sh --resume" "$T/a2.err" || die "the refusal names our script: $(cat "$T/a2.err")"
mv "$T/kept" "$STORE/upgrade-recovery.sh.earlier"
rc=0
cli recover --dry-run >"$T/r1.out" 2>"$T/r1.err" || rc=$?
[ $rc -eq 6 ] || die "recover --dry-run during the earlier tool's recovery exited $rc, not 6: $(cat "$T/r1.err")"
has "$T/r1.err" "a recovery by the earlier upgrade-recovery.sh is in progress" "the dry run's refusal"
rc=0
cli watchdog start "$B" >"$T/w1.out" 2>"$T/w1.err" || rc=$?
[ $rc -eq 6 ] || die "watchdog start during the earlier tool's recovery exited $rc, not 6: $(cat "$T/w1.err")"
has "$T/w1.err" "a watchdog is refused while it runs" "watchdog start's refusal"
[ ! -e "$STORE/recovery/watchdog" ] || die "the refused watchdog start left a watchdog"
cli status >"$T/s2.out" 2>&1 || die "status: $(cat "$T/s2.out")"
has "$T/s2.out" "backups and recoveries of upgrade-recovery are refused while it runs" "status"
rm "$STORE/progress"
cli arm "$B" >/dev/null 2>&1 || die "arm after the progress file went failed"
cli disarm >/dev/null 2>&1 || die "disarm failed"
echo "ok: arm, recover --dry-run and watchdog start exit 6 while the earlier script's recovery runs; arm works after"

# --- a watchdog started before the kept script was run by hand ----------------------
# It fires in a later boot (the recorded boot id is another): it must not arm ours over
# the old recovery, nor stay to fail at every look of its monitor.
cli watchdog start "$B" >/dev/null 2>&1 || die "watchdog start after the progress file went failed"
sed -i 's/^boot_id = .*/boot_id = "an-earlier-boot"/' "$STORE/recovery/watchdog"
printf 'started\n' >"$STORE/progress"
rc=0
cli watchdog trigger --reason test >"$T/t1.out" 2>"$T/t1.err" || rc=$?
[ $rc -eq 6 ] || die "a watchdog firing during the earlier tool's recovery exited $rc, not 6: $(cat "$T/t1.err")"
has "$T/t1.err" "the watchdog (backup $B) is removed rather than arm a recovery over it" "the firing watchdog's message"
[ ! -e "$STORE/recovery/armed" ] || die "the watchdog armed a recovery over the earlier tool's"
[ ! -e "$STORE/recovery/watchdog" ] || die "the watchdog stayed"
cli --json watchdog monitor >"$T/m1.json" 2>"$T/m1.err" || die "the monitor after it: $(cat "$T/m1.err")"
[ "$(json "$T/m1.json" 'j["reason"]')" = "no watchdog" ] || die "the monitor after it: $(cat "$T/m1.json")"
rm "$STORE/progress"
echo "ok: a watchdog that fires during the earlier script's recovery arms nothing and is removed"

# --- short of space: the old backup's space is named ---------------------------------
ur_plain_store_config "$T/big.toml" "ur-earlier-none-$$"
sed -i 's/^free_space_margin = 0$/free_space_margin = "1000TiB"/' "$T/big.toml"
rc=0
"$UR_CLI" --root "$ROOT" --config "$T/big.toml" backup >"$T/b3.out" 2>"$T/b3.err" || rc=$?
[ $rc -eq 5 ] || die "a backup that cannot fit exited $rc, not 5: $(cat "$T/b3.err")"
has "$T/b3.err" "Besides, the recovery partition holds a backup of the earlier upgrade-recovery.sh" "the no-space error"
echo "ok: the no-space error names the old backup"
echo "PASS"
