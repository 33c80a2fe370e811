#!/bin/bash
# Crash safety of recovery phase 1 (issue 4): SIGKILL the real CLI's offline
# phase 1 at 24 points: before and after every journaled phase 1 step
# (recovery.<step>, recovery.<step>.done) and inside the restore at the N-th
# rewritten file (restore.file:N, a complete temporary written but not yet renamed
# into place), then `recover --resume` must always finish phase 1 with every tree
# equal to the backup (ur-tree-compare), no temporary left behind, the .wants
# links edited, phase 2 pending, and nothing outside the root touched. A last round
# kills the resumes themselves, three times in a row. Prints a table.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init cr "$@"
t0=$(date +%s)

ur_fx_disk 1G 900M
ROOT=$T/root
OUT=$T/outside
python3 "$UR_FIXTURE" make-tree "$ROOT" --files 300 --usrlocal-dir var/usrlocal
ln -s ../var/usrlocal "$ROOT/usr/local"
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
ur_fx_units "$ROOT"
mkdir -p "$OUT/target-dir"
echo "outside" >"$OUT/target-file"
echo "outside dir" >"$OUT/target-dir/f"
out_before=$(fx_digest "$OUT" --strict)
check "backup exits 0" run_rc 0 "$T/b.json" "$T/b.err" cli "$ROOT" --json backup
ID=$(json "$T/b.json" 'j["id"]')
B=$ROOT/var/recovery/backups/$ID
W=$ROOT/etc/systemd/system/multi-user.target.wants

# The failed upgrade, again before every round (the previous round restored the tree),
# plus new mtimes on every pod file so the restore rewrites ~330 files.
break_tree()
{
    python3 "$UR_FIXTURE" fail-upgrade "$ROOT" "$OUT" --usrlocal var/usrlocal >/dev/null
    find "$ROOT/var/lib/kubelet/pods" -type f -print0 | xargs -0 touch -d "@$((1700000000 + $1))"
}

restored()
{
    _ok=0
    tree_equal "$ROOT/etc" "$B/etc" --exclude kubernetes/manifests \
        --exclude systemd/system/multi-user.target.wants >"$T/eq.out" || _ok=1
    tree_equal "$ROOT/var/usrlocal" "$B/usrlocal" >>"$T/eq.out" || _ok=1
    tree_equal "$ROOT/var/lib/kubelet" "$B/kubelet" >>"$T/eq.out" || _ok=1
    [ $_ok = 0 ] || sed 's/^/  /' "$T/eq.out" | grep -v '^  ur-tree-compare' | head -20 >&2
    return $_ok
}
no_temporaries() { test -z "$(find "$ROOT" -name '.ur-restore-*' -print -quit)"; }
units_edited()
{
    test ! -L "$W/kubelet.service" -a -L "$W/upgrade-recovery-phase2.service"
}
phase2_pending() { test "$(json <(cli "$ROOT" --json status) 'str(j["phase2_pending"])')" = True; }

points="recovery.verify recovery.verify.done recovery.platform-rollback recovery.platform-rollback.done
recovery.restore-files restore.file:1 restore.file:2 restore.file:3 restore.file:10 restore.file:30
restore.file:60 restore.file:100 restore.file:150 restore.file:200 restore.file:250 restore.file:300
recovery.restore-files.done recovery.disable-kubelet recovery.disable-kubelet.done recovery.enable-phase2
recovery.enable-phase2.done recovery.phase1-done recovery.phase1-done.done"

n=0
table=""
row()
{
    table="$table$(printf '%-34s %-5s %-6s %-10s %-6s %-8s %-10s %-6s %-8s %-7s' "$@")
"
}
for fp in $points; do
    n=$((n + 1))
    break_tree "$n"
    rc=0
    UR_FAILPOINT=$fp cli "$ROOT" recover --restart >"$T/k.out" 2>"$T/k.err" || rc=$?
    killed=no
    grep -q "failpoint reached" "$T/k.err" && killed=yes
    check "[$fp] phase 1 was killed by the failpoint (exit $rc)" test "$rc" = 137 -a "$killed" = yes
    tmp=$(find "$ROOT" -name '.ur-restore-*' -printf x | wc -c)
    # A fresh start is refused while one is in progress: the operator must choose.
    r2=0
    cli "$ROOT" recover >"$T/r.out" 2>"$T/r.err" || r2=$?
    check "[$fp] a plain 'recover' is refused while one is in progress (exit 6)" test "$r2" = 6
    rr=0
    cli "$ROOT" recover --resume >"$T/r.out" 2>"$T/r.err" || rr=$?
    check "[$fp] recover --resume exits 0" test "$rr" = 0
    [ "$rr" = 0 ] || sed 's/^/  /' "$T/r.err" | tail -5 >&2
    eq=ok
    restored || eq=FAIL
    check "[$fp] after --resume every tree equals the backup" test $eq = ok
    nt=ok
    no_temporaries || nt=FAIL
    check "[$fp] no restore temporary is left" test $nt = ok
    ue=ok
    units_edited || ue=FAIL
    check "[$fp] kubelet disabled, phase 2 enabled" test $ue = ok
    pp=ok
    phase2_pending || pp=FAIL
    check "[$fp] phase 2 is pending" test $pp = ok
    ou=ok
    test "$(fx_digest "$OUT" --strict)" = "$out_before" || ou=FAIL
    check "[$fp] nothing outside the root changed" test $ou = ok
    row "$fp" "$rc" "$killed" "$tmp" "$rr" "$eq" "$nt" "$ue" "$pp" "$ou"
done

# Kills during the resumes themselves.
n=$((n + 1))
break_tree "$n"
chain=""
rc=0
UR_FAILPOINT=restore.file:40 cli "$ROOT" recover --restart >/dev/null 2>"$T/k.err" || rc=$?
chain="$chain $rc"
for fp in restore.file:40 restore.file:5 recovery.enable-phase2; do
    rc=0
    UR_FAILPOINT=$fp cli "$ROOT" recover --resume >/dev/null 2>"$T/k.err" || rc=$?
    chain="$chain $rc"
done
check "four kills in a row (first run and three resumes): exits$chain" test "$chain" = " 137 137 137 137"
rr=0
cli "$ROOT" recover --resume >"$T/r.out" 2>"$T/r.err" || rr=$?
check "[chain] the final --resume exits 0" test "$rr" = 0
eq=ok
restored || eq=FAIL
check "[chain] every tree equals the backup" test $eq = ok
nt=ok
no_temporaries || nt=FAIL
ue=ok
units_edited || ue=FAIL
pp=ok
phase2_pending || pp=FAIL
ou=ok
test "$(fx_digest "$OUT" --strict)" = "$out_before" || ou=FAIL
check "[chain] no temporary, units edited, phase 2 pending, outside untouched" test "$nt$ue$pp$ou" = okokokok
row "chain:${chain# }" "-" "-" "-" "$rr" "$eq" "$nt" "$ue" "$pp" "$ou"

# SIGTERM (systemctl stop, a shutdown) in the middle of the restore: the step is
# recorded as failed (cancelled) and the command exits 10, instead of dying with a
# journal that says "started" and a child process left running on its own.
# sigterm_recover FAILPOINT NAME: recover --restart stopped at FAILPOINT, then
# SIGTERM and SIGCONT; its exit status in $rc.
sigterm_recover()
{
    check "[SIGTERM] stopped at $1" stopped_at "$1" "$T/$2.out" "$T/$2.err" "$ROOT" recover --restart
    kill -TERM "$pid"
    kill -CONT "$pid"
    rc=0
    wait "$pid" || rc=$?
}
# The step in the journal: STEP STATE [TEXT in its error]; the recovery must be failed (resumable).
journal_step()
{
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); s=[x for x in j["steps"] if x["name"]==sys.argv[2]][0]
sys.exit(0 if j["state"]=="failed" and s["state"]==sys.argv[3] and sys.argv[4] in s.get("error","") else 1)' \
        "$ROOT/var/recovery/recovery/journal" "$@"
}
n=$((n + 1))
break_tree "$n"
sigterm_recover restore.file:20 t
check "[SIGTERM] in the restore: exits 10 (cancelled), not killed by the signal (exit $rc)" test "$rc" = 10
check "[SIGTERM] ... restore-files failed: cancelled" journal_step restore-files failed cancel
# The same in verify: cancelled is not a bad backup, the recovery must not end there
# (it did: aborted, armed removed, nothing left for the next boot to resume).
sigterm_recover recovery.verify tv
check "[SIGTERM] in verify: exits 10 (exit $rc)" test "$rc" = 10
check "[SIGTERM] ... verify failed: cancelled; the recovery stays failed (resumable)" journal_step verify failed cancel
check "[SIGTERM] ... armed" test -e "$ROOT/var/recovery/recovery/armed"
rr=0
cli "$ROOT" recover --resume >"$T/r.out" 2>"$T/r.err" || rr=$?
check "[SIGTERM] recover --resume exits 0" test "$rr" = 0
eq=ok
restored || eq=FAIL
check "[SIGTERM] every tree equals the backup" test $eq = ok
check "the backup still verifies after all of it" run_rc 0 "$T/v.out" "$T/v.err" cli "$ROOT" verify

echo
printf '%-34s %-5s %-6s %-10s %-6s %-8s %-10s %-6s %-8s %-7s\n' point exit killed temps-left resume trees no-temps units pending outside
printf '%s' "$table"
echo "$((n - 1)) single points plus one chain of kills"
check "at least 20 points were tried" test $((n - 1)) -ge 20
echo "test-crash-recover: $(($(date +%s) - t0)) s"
ur_fx_done
