#!/bin/bash
# Crash safety of the backup (W2): SIGKILL the real CLI at 24 different points
# (UR_FAILPOINT: every named backup failpoint plus backup.copy-file:N for many N,
# in the middle of copying a few hundred changed files while the unchanged ones are
# shared with the previous generation). After each kill:
#  - latest names a complete backup that verify accepts: the previous one, or the
#    new one once the kill came after `latest` was switched;
#  - every id `list` shows verifies (a generation published but not yet latest is
#    complete too), and no staging directory shows up as a backup;
#  - the next backup succeeds, removes what the killed one left, verifies, and
#    equals the source tree.
# Then 8 of the points again as a power cut (kill + xfs shutdown without log
# flush + remount): only what was fsync'd survives, and the same must hold.
# Prints a table of the points tried and the outcome.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init cb "$@"
require_cmd xfs_io
t0=$(date +%s)

ur_fx_disk 1G 900M
ROOT=$T/root
python3 "$UR_FIXTURE" make-tree "$ROOT" --files 300
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
TOK=var/lib/kubelet/pods/mounted/volumes/kubernetes.io~secret/token
check "the first backup exits 0" run_rc 0 "$T/b0.out" "$T/b0.err" cli "$ROOT" --json backup
STORE=$ROOT/var/recovery

points="backup.start backup.after-scan backup.after-ostree backup.after-cluster
backup.copy-file:1 backup.copy-file:2 backup.copy-file:3 backup.copy-file:5 backup.copy-file:17
backup.copy-file:30 backup.copy-file:50 backup.copy-file:100 backup.copy-file:150 backup.copy-file:200
backup.copy-file:250 backup.copy-file:290 backup.before-manifest backup.after-metadata backup.before-sync
backup.before-publish backup.after-publish backup.after-latest backup.after-prune"
# After these the new generation is published (renamed into backups/); after the
# last two `latest` names it too.
published_after="backup.after-publish backup.after-latest backup.after-prune"
latest_after="backup.after-latest backup.after-prune"

latest_id() { readlink "$STORE/latest" | sed 's|^backups/||'; }
list_ids() { json <(cli "$ROOT" --json list) '" ".join(b["id"] for b in j)'; }

# Every listed backup verifies; none is a staging directory.
all_listed_verify()
{
    _ids=$(list_ids) || return 1
    [ -n "$_ids" ] || return 1
    for _i in $_ids; do
        case $_i in .* | *staging*) echo "  listed: $_i" >&2; return 1 ;; esac
        cli "$ROOT" verify "$_i" >"$T/lv.out" 2>&1 || { echo "  $_i does not verify" >&2; tail -5 "$T/lv.out" >&2; return 1; }
    done
}

# Make the next backup copy ~300 files (new mtimes) and share the rest.
touch_pods()
{
    find "$ROOT/var/lib/kubelet/pods" -path "*kubernetes.io~secret*" -prune -o -type f -print0 |
        xargs -0 touch -d "@$((1700000000 + $1))"
}

n=0
table=""
for fp in $points; do
    n=$((n + 1))
    prev=$(latest_id)
    touch_pods "$n"
    echo "changed in round $n" >"$ROOT/etc/round"
    rc=0
    UR_FAILPOINT=$fp cli "$ROOT" backup >"$T/k.out" 2>"$T/k.err" || rc=$?
    killed=no
    grep -q "failpoint reached" "$T/k.err" && killed=yes
    check "[$fp] the backup was killed by the failpoint (exit $rc)" test "$rc" = 137 -a "$killed" = yes

    now=$(latest_id)
    newest=$(list_ids | awk '{print $1}')
    case " $latest_after " in
    *" $fp "*)
        expect="new"
        check "[$fp] latest names the new backup" test "$now" != "$prev" -a "$now" = "$newest"
        ;;
    *)
        expect="previous"
        check "[$fp] latest still names the previous backup $prev" test "$now" = "$prev"
        case " $published_after " in
        *" $fp "*) check "[$fp] the published (not yet latest) backup is listed" test "$newest" != "$prev" ;;
        *) check "[$fp] no new backup is listed" test "$newest" = "$prev" ;;
        esac
        ;;
    esac
    v=ok
    run_rc 0 "$T/v.out" "$T/v.err" cli "$ROOT" verify || v=FAIL
    check "[$fp] latest ($now) verifies" test $v = ok
    l=ok
    all_listed_verify || l=FAIL
    check "[$fp] every listed backup verifies, no staging directory listed" test $l = ok
    staging=$(find "$STORE/backups" -maxdepth 1 -name '.staging-*' | wc -l)

    nb=ok
    run_rc 0 "$T/n.out" "$T/n.err" cli "$ROOT" --json backup || nb=FAIL
    check "[$fp] the next backup succeeds" test $nb = ok
    nid=$(json "$T/n.out" 'j["id"]' 2>/dev/null || echo none)
    check "[$fp] the next backup is latest" test "$(latest_id)" = "$nid"
    nv=ok
    run_rc 0 "$T/nv.out" "$T/nv.err" cli "$ROOT" verify || nv=FAIL
    check "[$fp] the next backup verifies" test $nv = ok
    check "[$fp] no staging directory is left after it" \
        test "$(find "$STORE/backups" -maxdepth 1 -name '.staging-*' | wc -l)" = 0
    eq=ok
    tree_equal "$ROOT/var/lib/kubelet" "$STORE/backups/$nid/kubelet" --exclude "${TOK#var/lib/kubelet/}" \
        >/dev/null || eq=FAIL
    tree_equal "$ROOT/etc" "$STORE/backups/$nid/etc" >/dev/null || eq=FAIL
    check "[$fp] the next backup equals the source tree" test $eq = ok
    table="$table$(printf '%-24s %-5s %-6s %-9s %-8s %-6s %-8s %-5s %-7s %-5s' \
        "$fp" "$rc" "$killed" "$expect" "$v" "$l" "$staging" "$nb" "$nv" "$eq")
"
done

# Power cut: the same kill, then the filesystem is shut down at once without
# flushing its log (xfs_io shutdown, no -f), as if the power went, and mounted
# again (log recovery). Only what was fsync'd before the point survives; latest
# must still name a complete backup. (The loop device's backing file keeps what
# xfs had submitted; what xfs still held in memory is lost.)
pc_table=""
pc_points="backup.copy-file:100 backup.before-manifest backup.after-metadata backup.before-sync
backup.before-publish backup.after-publish backup.after-latest backup.after-prune"
for fp in $pc_points; do
    n=$((n + 1))
    prev=$(latest_id)
    touch_pods "$n"
    rc=0
    UR_FAILPOINT=$fp cli "$ROOT" backup >"$T/k.out" 2>"$T/k.err" || rc=$?
    xfs_io -x -c shutdown "$STORE"
    umount "$STORE"
    mount "$PART1" "$STORE"
    check "[power cut at $fp] the backup was killed there (exit $rc)" \
        test "$rc" = 137 -a -n "$(grep -l 'failpoint reached' "$T/k.err")"
    now=$(latest_id)
    newest=$(list_ids | awk '{print $1}')
    case " $latest_after " in
    *" $fp "*)
        expect=new
        check "[power cut at $fp] latest names the new backup" test "$now" != "$prev" -a "$now" = "$newest"
        ;;
    *)
        expect=previous
        check "[power cut at $fp] latest still names $prev" test "$now" = "$prev"
        ;;
    esac
    v=ok
    run_rc 0 "$T/v.out" "$T/v.err" cli "$ROOT" verify || v=FAIL
    check "[power cut at $fp] latest ($now) verifies" test $v = ok
    l=ok
    all_listed_verify || l=FAIL
    check "[power cut at $fp] every listed backup verifies" test $l = ok
    nb=ok
    run_rc 0 "$T/n.out" "$T/n.err" cli "$ROOT" --json backup || nb=FAIL
    check "[power cut at $fp] the next backup succeeds" test $nb = ok
    nv=ok
    run_rc 0 "$T/nv.out" "$T/nv.err" cli "$ROOT" verify || nv=FAIL
    check "[power cut at $fp] the next backup verifies" test $nv = ok
    pc_table="$pc_table$(printf '%-24s %-5s %-9s %-8s %-6s %-5s %-7s' "$fp" "$rc" "$expect" "$v" "$l" "$nb" "$nv")
"
done

echo
printf '%-24s %-5s %-6s %-9s %-8s %-6s %-8s %-5s %-7s %-5s\n' point exit killed latest verify listed staging next n-verify equal
printf '%s' "$table"
echo
echo "power cut (kill, then xfs shutdown without log flush, remount):"
printf '%-24s %-5s %-9s %-8s %-6s %-5s %-7s\n' point exit latest verify listed next n-verify
printf '%s' "$pc_table"
echo "$n kills, $(echo $points | wc -w) distinct points"
check "at least 20 distinct points were tried" test "$(echo $points | wc -w)" -ge 20
echo "test-crash-backup: $(($(date +%s) - t0)) s"
ur_fx_done
