#!/bin/bash
# Restore (issue 4), with real parts: back up an SNO-like tree (nasty names, every
# metadata kind, /usr/local a symlink to ../var/usrlocal as on RHCOS, a tmpfs pod
# volume below /var/lib/kubelet) onto a real GPT/xfs partition, play a failed
# upgrade on it (changed, added, deleted, re-permissioned, re-owned, relabelled
# files; a file and a directory replaced by symlinks pointing outside the root; a
# directory replaced by a file and a file by a directory; a hard link broken; files
# in the /etc exclude list changed), then:
#  - `recover --dry-run` lists the changes and changes nothing (strict tree digest);
#  - `recover` (phase 1, offline because the root is not /) makes every tree equal
#    to the backup in every byte and attribute (ur-tree-compare), honours the /etc
#    exclude list, leaves the mounted tmpfs alone, writes into ROOT/var/usrlocal
#    through the symlink, edits the .wants links (kubelet disabled, phase 2 enabled),
#    marks phase 2 pending (a backup is now refused with exit 6) and touches NOTHING
#    outside the root (the symlink targets keep content, metadata, inode and ctime);
#  - a change that kept size and mtime is found (the inode's ctime moved), also
#    with `--checksum`;
#  - mounts below the trees (a tmpfs and same-filesystem bind mounts of directories
#    outside the root, in a new pod and over a backed-up directory) are not crossed;
#  - an absolute /usr/local symlink ("/var/usrlocal", and one naming a directory that
#    exists on the host too) is resolved inside the root by backup and restore;
#  - a hard-link group across trees (/etc and /usr/local) is one inode again, and a
#    copy of its own when /usr/local is on another mount (EXDEV) without failing;
#  - /usr/local -> ../var/usrlocal with ROOT/var/usrlocal deleted: the dry run and the
#    run both create it; a symlink climbing above the root is refused by both;
#  - a 500-level deep tree backs up and restores under `ulimit -n 1024`, and a deeper
#    one the failed upgrade added is deleted.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init rs "$@"
t0=$(date +%s)

ur_fx_disk 2600M 900M 300M 300M 300M 300M 300M
ROOT=$T/root
OUT=$T/outside
python3 "$UR_FIXTURE" make-tree "$ROOT" --files 200 --usrlocal-dir var/usrlocal
ln -s ../var/usrlocal "$ROOT/usr/local"
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
ur_fx_units "$ROOT"
TOK=var/lib/kubelet/pods/mounted/volumes/kubernetes.io~secret/token
mount -t tmpfs -o size=1m tmpfs "$ROOT/$TOK"
echo "pod secret" >"$ROOT/$TOK/token"
# What the failed upgrade's symlinks will point at: outside the root.
mkdir -p "$OUT/target-dir/sub"
echo "outside file: must never be written" >"$OUT/target-file"
echo "outside dir content" >"$OUT/target-dir/sub/f"
touch -d @1234567890 "$OUT/target-file" "$OUT/target-dir/sub/f"
out_before=$(fx_digest "$OUT" --strict)
host_varusrlocal=$([ -e /var/usrlocal ] && echo exists || echo absent)

check "backup exits 0" run_rc 0 "$T/b.json" "$T/b.err" cli "$ROOT" --json backup
ID=$(json "$T/b.json" 'j["id"]')
B=$ROOT/var/recovery/backups/$ID
check "the backup took /usr/local through the symlink (ROOT/var/usrlocal)" \
    tree_equal "$ROOT/var/usrlocal" "$B/usrlocal"
check "the backup equals the source: etc" tree_equal "$ROOT/etc" "$B/etc"
check "the /etc exclude list is recorded" \
    test "$(json "$T/b.json" '"kubernetes/manifests" in j["etc_excludes"] and "ur-tmpfiles-dir" in j["etc_excludes"]')" = true
backup_digest=$(fx_digest "$B")

echo "--- the failed upgrade"
python3 "$UR_FIXTURE" fail-upgrade "$ROOT" "$OUT" --usrlocal var/usrlocal | sed 's/^/  /'
check "the failed upgrade really changed etc" bash -c "! '$UR_TREE_COMPARE' '$ROOT/etc' '$B/etc' >/dev/null"
check "the failed upgrade really changed usr/local" bash -c "! '$UR_TREE_COMPARE' '$ROOT/var/usrlocal' '$B/usrlocal' >/dev/null"
check "the failed upgrade really changed kubelet" \
    bash -c "! '$UR_TREE_COMPARE' '$ROOT/var/lib/kubelet' '$B/kubelet' --exclude '${TOK#var/lib/kubelet/}' >/dev/null"

# --- dry run -----------------------------------------------------------------------
root_before=$(fx_digest "$ROOT" --strict --exclude var/recovery)
check "recover --dry-run exits 0" run_rc 0 "$T/dry.out" "$T/dry.err" cli "$ROOT" recover --dry-run
sed 's/^/  /' "$T/dry.out" | head -60
for want in "would update /etc/hosts" "would create /etc/with space" "would delete /etc/added.conf" \
    "would delete /etc/added-link" "would create /etc/links" "would replace /etc/pki" \
    "would replace /etc/machine-config-daemon/node-annotations.json" "would replace /etc/dir with space" \
    "would replace /etc/percent%41,comma=eq" "would metadata /etc/modes/m4755" "would metadata /etc/hostname" \
    "would metadata /etc/acl/file" "would update /usr/local/bin/tool" "would delete /usr/local/bin/new-tool" \
    "would create /usr/local/all-hole" "would delete /var/lib/kubelet/pods/new-pod" \
    "would update /var/lib/kubelet/config.yaml" "would update /var/lib/kubelet/pki/kubelet-client-current.pem" \
    "would replace /etc/special/fifo" "would update /etc/special/null-like" "would update /etc/hl/pair-1" "would update /etc/hl/b/two" "would update /etc/hl/a/one"; do
    check "dry run lists '$want'" grep -qxF "$want" "$T/dry.out"
done
check "dry run does not list the excluded /etc/kubernetes/manifests" bash -c "! grep -q 'kubernetes/manifests' '$T/dry.out'"
check "dry run does not touch the mounted tmpfs" bash -c "! grep -q 'secret/token/' '$T/dry.out'"
check "dry run changed nothing in the root (strict digest)" \
    test "$(fx_digest "$ROOT" --strict --exclude var/recovery)" = "$root_before"
check "dry run started no recovery" test "$(json <(cli "$ROOT" --json status) 'str(j["recovery"])')" = None

# --- phase 1, offline -----------------------------------------------------------------
check "recover (phase 1, offline) exits 0" run_rc 0 "$T/rec.out" "$T/rec.err" cli "$ROOT" recover
sed 's/^/  /' "$T/rec.out"
check "it says phase 1 is complete" grep -q "^Phase 1 of recovery .* is complete under $ROOT" "$T/rec.out"
EX="--exclude kubernetes/manifests --exclude systemd/system/multi-user.target.wants"
# shellcheck disable=SC2086
check "restored etc equals the backup (exclude list and .wants aside)" tree_equal "$ROOT/etc" "$B/etc" $EX
check "restored usr/local (ROOT/var/usrlocal) equals the backup" tree_equal "$ROOT/var/usrlocal" "$B/usrlocal"
check "restored kubelet equals the backup (the mount aside)" \
    tree_equal "$ROOT/var/lib/kubelet" "$B/kubelet" --exclude "${TOK#var/lib/kubelet/}"
check "ROOT/usr/local is still the symlink ../var/usrlocal" test "$(readlink "$ROOT/usr/local")" = ../var/usrlocal
check "the excluded etcd-pod.yaml kept the upgrade's change" \
    grep -q "# new revision" "$ROOT/etc/kubernetes/manifests/etcd-pod.yaml"
check "the excluded new-pod.yaml is still there" test -f "$ROOT/etc/kubernetes/manifests/new-pod.yaml"
check "the mounted tmpfs kept its content" test "$(cat "$ROOT/$TOK/token")" = "pod secret"
check "the tmpfs is still mounted" mountpoint -q "$ROOT/$TOK"
W=$ROOT/etc/systemd/system/multi-user.target.wants
check "kubelet.service is disabled (its .wants link removed)" test ! -L "$W/kubelet.service"
check "the phase 2 unit is enabled (.wants link to the unit file)" \
    test "$(readlink "$W/upgrade-recovery-phase2.service")" = /usr/lib/systemd/system/upgrade-recovery-phase2.service
check "nothing outside the root changed (content, metadata, inode, ctime)" \
    test "$(fx_digest "$OUT" --strict)" = "$out_before"
check "the outside file still has its content" \
    test "$(cat "$OUT/target-file")" = "outside file: must never be written"
check "the host's /var/usrlocal was not created or touched" \
    test "$([ -e /var/usrlocal ] && echo exists || echo absent)" = "$host_varusrlocal"
check "the restore did not change the backup" test "$(fx_digest "$B")" = "$backup_digest"
check "the backup still verifies" run_rc 0 "$T/v.out" "$T/v.err" cli "$ROOT" verify
check "status --json: phase 2 pending, phase 1 steps done" \
    test "$(json <(cli "$ROOT" --json status) 'str(j["phase2_pending"])+" "+",".join(s["name"] for s in j["recovery"]["steps"] if s["state"]=="done")')" \
    = "True verify,restore-files,disable-kubelet,enable-phase2,phase1-done"
check "a backup is refused while the recovery is in progress (exit 6, W13)" \
    run_rc 6 "$T/b6.out" "$T/b6.err" cli "$ROOT" backup
check "the backup phase 2 still reads cannot be deleted, not even with --force (exit 11)" \
    run_rc 11 "$T/d11.out" "$T/d11.err" cli "$ROOT" delete --force "$ID"
check "... the refusal says why" grep -q "is in progress and still reads it" "$T/d11.err"
check "... and the backup is still there" test -f "$B/metadata.toml"
# A delta dry run now only wants to undo phase 1's own unit edits in /etc. A plain
# recover is refused while this one is in progress, and so is its dry run (exit 6);
# a start over (--restart) is what the plan is then for.
check "a dry run while the recovery is in progress exits 6, as recover would" \
    run_rc 6 "$T/dry6.out" "$T/dry6.err" cli "$ROOT" recover --dry-run
check "... the plan says it is refused" grep -q "^refused: Recovery .* has already started" "$T/dry6.out"
check "a delta dry run of a start over exits 0" run_rc 0 "$T/dry2.out" "$T/dry2.err" cli "$ROOT" recover --dry-run --restart
check "a delta dry run after the restore finds only the .wants edits of phase 1" \
    bash -c "grep '^would ' '$T/dry2.out' | grep -qv 'multi-user.target.wants' && exit 1; grep -q '^would ' '$T/dry2.out'"

# --- a change that kept size and mtime (what rsync without -c misses) ------------------
# The write moved the inode's ctime, so it is no longer provably the file the
# backup read: the default compares its contents; --checksum compares all.
f=$ROOT/etc/hl/pair-1
mt=$(stat -c %y "$f")
printf 'SECOND' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
touch -d "$mt" "$f"
check "the default dry run finds it" \
    bash -c "'$UR_CLI' --root '$ROOT' recover --dry-run 2>/dev/null | grep -qxF 'would update /etc/hl/pair-1'"
check "with --checksum the dry run finds it" \
    bash -c "'$UR_CLI' --root '$ROOT' recover --dry-run --checksum 2>/dev/null | grep -qxF 'would update /etc/hl/pair-1'"
check "recover --restart exits 0" run_rc 0 "$T/rc.out" "$T/rc.err" cli "$ROOT" recover --restart
# shellcheck disable=SC2086
check "etc equals the backup again (and the hard link group is whole)" tree_equal "$ROOT/etc" "$B/etc" $EX
printf 'THIRD!' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
touch -d "$mt" "$f"
check "recover --restart --checksum exits 0" run_rc 0 "$T/rc.out" "$T/rc.err" cli "$ROOT" recover --restart --checksum
# shellcheck disable=SC2086
check "etc equals the backup again (and the hard link group is whole)" tree_equal "$ROOT/etc" "$B/etc" $EX
check "nothing outside the root changed" test "$(fx_digest "$OUT" --strict)" = "$out_before"

# --- mounts below the trees during the restore (W16) ----------------------------------
# A pod the failed upgrade started has volumes mounted: a tmpfs and a bind mount of
# a directory outside the root (same filesystem, so the same st_dev). And a bind
# mount of an outside directory sits on a directory the backup has. The restore must
# not empty, fill or delete anything inside any of them.
NP=$ROOT/var/lib/kubelet/pods/upgrade-pod
mkdir -p "$NP/volumes/kubernetes.io~secret/s" "$NP/volume-subpaths/v" "$OUT/hostpath/d" "$OUT/cm"
mount -t tmpfs -o size=1m tmpfs "$NP/volumes/kubernetes.io~secret/s"
echo "upgrade pod secret" >"$NP/volumes/kubernetes.io~secret/s/key"
echo "host path file" >"$OUT/hostpath/d/file"
mount --bind "$OUT/hostpath" "$NP/volume-subpaths/v"
CM=$(cd "$ROOT/var/lib/kubelet/pods" && ls -d ./*-pod | head -n 1)/volumes/kubernetes.io~configmap/cm
echo "not from the backup" >"$OUT/cm/other"
mount --bind "$OUT/cm" "$ROOT/var/lib/kubelet/pods/$CM"
# Files bound by a subPath: one in the new pod (its directory is deleted around it),
# one over a file the backup has with other content (unlink and rename get EBUSY).
mkdir -p "$NP/volume-subpaths/cm/c/0"
echo "subPath file" >"$OUT/subpath-file"
touch "$NP/volume-subpaths/cm/c/0/app.conf"
mount --bind "$OUT/subpath-file" "$NP/volume-subpaths/cm/c/0/app.conf"
OVER=var/lib/kubelet/$(cd "$B/kubelet" && find pods -type f | sort | head -n 1)
echo "bound over a backed-up file" >"$OUT/over-file"
mount --bind "$OUT/over-file" "$ROOT/$OVER"
out_mounts=$(fx_digest "$OUT" --strict)
echo "changed again" >>"$ROOT/etc/hosts" # something for the restore to do
rc=0
cli "$ROOT" recover --restart >"$T/m.out" 2>"$T/m.err" || rc=$?
echo "  recover with mounts below the trees exited $rc: $(tail -n 1 "$T/m.err")"
check "recover with mounts below the trees exits 0 (what is mounted is kept, not an error)" test $rc = 0
check "the subPath file mounts are still there" \
    test "$(cat "$NP/volume-subpaths/cm/c/0/app.conf")/$(cat "$ROOT/$OVER")" = "subPath file/bound over a backed-up file"
check "... and etc was restored next to them" tree_equal "$ROOT/etc" "$B/etc" $EX
check "nothing inside the bind-mounted outside directories changed" test "$(fx_digest "$OUT" --strict)" = "$out_mounts"
check "the tmpfs of the new pod kept its content" \
    test "$(cat "$NP/volumes/kubernetes.io~secret/s/key" 2>/dev/null)" = "upgrade pod secret"
check "the file outside the root seen through the bind mount is still there" test -f "$OUT/hostpath/d/file"
check "the outside directory bound over a backed-up directory kept its own file" test -f "$OUT/cm/other"
check "the new pod's directory was kept (a filesystem is mounted below it)" test -d "$NP/volumes/kubernetes.io~secret/s"
check "... and the restore said so" grep -q "warning: kept /var/lib/kubelet/pods/upgrade-pod: .*mount point" "$T/m.err"
umount "$ROOT/var/lib/kubelet/pods/$CM" "$NP/volume-subpaths/v" "$NP/volumes/kubernetes.io~secret/s" \
    "$NP/volume-subpaths/cm/c/0/app.conf" "$ROOT/$OVER"
rc=0
cli "$ROOT" recover --restart >"$T/m2.out" 2>"$T/m2.err" || rc=$?
check "with the mounts gone, recover --restart exits 0" test $rc = 0
# shellcheck disable=SC2086
check "... and etc equals the backup" tree_equal "$ROOT/etc" "$B/etc" $EX
check "... and kubelet equals the backup" \
    tree_equal "$ROOT/var/lib/kubelet" "$B/kubelet" --exclude "${TOK#var/lib/kubelet/}"

# --- absolute /usr/local symlinks -----------------------------------------------------
# R2: /usr/local -> /var/usrlocal (RHCOS). R3: /usr/local -> $T/decoy, a path that
# also exists on the host with other content: followed on the host, it would be
# backed up and overwritten there.
variant()
{
    _n=$1 _r=$2 _target=$3
    mkdir -p "$_r/etc" "$_r/var/lib/kubelet" "$_r/usr" "$_r$_target/bin"
    echo "hosts $_n" >"$_r/etc/hosts"
    echo "tool $_n" >"$_r$_target/bin/tool"
    echo "keep $_n" >"$_r$_target/bin/keep"
    setfattr -n security.selinux -v "system_u:object_r:bin_t:s0" "$_r$_target/bin/tool"
    ln -s "$_target" "$_r/usr/local"
    ur_fx_config "$_r" "$UR_FX_LABEL-$_n"
    ur_fx_units "$_r"
    check "[$_target] backup exits 0" run_rc 0 "$T/v$_n.json" "$T/v$_n.err" cli "$_r" --json backup
    _id=$(json "$T/v$_n.json" 'j["id"]')
    _b=$_r/var/recovery/backups/$_id
    check "[$_target] the backup holds the root's $_target" tree_equal "$_r$_target" "$_b/usrlocal"
    echo "upgraded" >>"$_r$_target/bin/tool"
    echo "new" >"$_r$_target/bin/added"
    rm "$_r$_target/bin/keep"
    setfattr -n security.selinux -v "system_u:object_r:unlabeled_t:s0" "$_r$_target/bin"
    # A NOTIFY_SOCKET as systemd gives the Type=notify phase 2 unit: a recover that
    # ends well must say READY=1 even when it stops before the readiness step.
    _sock=$T/notify-$_n.sock
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(60)
while True:
    m=s.recv(4096).decode(); print(m, flush=True)
    if "READY=1" in m.split("\n"): break' "$_sock" >"$T/notify-$_n.out" 2>&1 &
    _listener=$!
    for _i in $(seq 1 100); do [ -S "$_sock" ] && break; sleep 0.05; done
    export NOTIFY_SOCKET=$_sock
    check "[$_target] recover exits 0" run_rc 0 "$T/v$_n.rec" "$T/v$_n.rerr" cli "$_r" recover
    unset NOTIFY_SOCKET
    wait "$_listener" || true
    check "[$_target] recover told the notify socket READY=1" grep -qx 'READY=1' "$T/notify-$_n.out"
    check "[$_target] the root's $_target equals the backup again" tree_equal "$_r$_target" "$_b/usrlocal"
    check "[$_target] /usr/local is still the symlink" test "$(readlink "$_r/usr/local")" = "$_target"
}
variant 2 "$T/root2" /var/usrlocal
check "the host's /var/usrlocal was not created or touched" \
    test "$([ -e /var/usrlocal ] && echo exists || echo absent)" = "$host_varusrlocal"
mkdir -p "$T/decoy/bin"
echo "host decoy: never back up or restore this" >"$T/decoy/bin/tool"
echo "host decoy keep" >"$T/decoy/bin/keep"
decoy_before=$(fx_digest "$T/decoy" --strict)
variant 3 "$T/root3" "$T/decoy"
check "the host directory with the same path was not touched" test "$(fx_digest "$T/decoy" --strict)" = "$decoy_before"

# A root with etc, usr/local and kubelet for the cases below: ROOT LABEL-N.
small_root()
{
    mkdir -p "$1/etc" "$1/usr/local/bin" "$1/var/lib/kubelet"
    echo "hosts" >"$1/etc/hosts"
    echo "tool" >"$1/usr/local/bin/tool"
    echo "cfg" >"$1/var/lib/kubelet/config.yaml"
    ur_fx_config "$1" "$UR_FX_LABEL-$2"
    ur_fx_units "$1"
}

# --- a hard-link group across trees ------------------------------------------------------
R4=$T/root4
small_root "$R4" 4
echo "shared across trees" >"$R4/etc/hl-etc"
ln "$R4/etc/hl-etc" "$R4/usr/local/hl-usr"
check "[cross-tree link] backup exits 0" run_rc 0 "$T/x4.out" "$T/x4.err" cli "$R4" backup
# The failed upgrade replaced both names by files of their own (same content and mtime).
for f in etc/hl-etc usr/local/hl-usr; do cp -p "$R4/$f" "$R4/$f.new" && mv "$R4/$f.new" "$R4/$f"; done
check "[cross-tree link] recover exits 0" run_rc 0 "$T/x4r.out" "$T/x4r.err" cli "$R4" recover
check "[cross-tree link] /etc/hl-etc and /usr/local/hl-usr are one inode again" \
    test "$(stat -c %i "$R4/etc/hl-etc")" = "$(stat -c %i "$R4/usr/local/hl-usr")"
# /usr/local on another mount: a link cannot reach /etc (EXDEV), a copy of its own can.
mount -t tmpfs -o size=1m tmpfs "$R4/usr/local"
check "[cross-tree link] with /usr/local on another mount, recover --restart exits 0" \
    run_rc 0 "$T/x4m.out" "$T/x4m.err" cli "$R4" recover --restart
check "[cross-tree link] ... /usr/local/hl-usr has the group's content and mtime" \
    test "$(cat "$R4/usr/local/hl-usr") $(stat -c %Y "$R4/usr/local/hl-usr")" = \
    "shared across trees $(stat -c %Y "$R4/etc/hl-etc")"
check "[cross-tree link] ... and a dry run then has nothing to do in /usr/local" \
    bash -c "'$UR_CLI' --root '$R4' recover --dry-run --restart >'$T/x4d.out' && ! grep -q '^would [a-z]* /usr/local' '$T/x4d.out'"
umount "$R4/usr/local"

# --- /usr/local -> ../var/usrlocal, its target deleted -------------------------------------
R5=$T/root5
small_root "$R5" 5
mkdir -p "$R5/var/usrlocal"
mv "$R5/usr/local/bin" "$R5/var/usrlocal/"
rmdir "$R5/usr/local"
ln -s ../var/usrlocal "$R5/usr/local"
check "[missing target] backup exits 0" run_rc 0 "$T/x5.json" "$T/x5.err" cli "$R5" --json backup
B5=$R5/var/recovery/backups/$(json "$T/x5.json" 'j["id"]')
rm -rf "$R5/var/usrlocal"
check "[missing target] recover --dry-run exits 0" run_rc 0 "$T/x5d.out" "$T/x5d.err" cli "$R5" recover --dry-run
check "[missing target] ... and would create /usr/local" grep -qxF "would create /usr/local" "$T/x5d.out"
check "[missing target] ... and created nothing" test ! -e "$R5/var/usrlocal"
check "[missing target] recover exits 0" run_rc 0 "$T/x5r.out" "$T/x5r.err" cli "$R5" recover
check "[missing target] ROOT/var/usrlocal equals the backup" tree_equal "$R5/var/usrlocal" "$B5/usrlocal"
check "[missing target] /usr/local is still the symlink" test "$(readlink "$R5/usr/local")" = ../var/usrlocal
# From ROOT/usr, ../../x climbs above the root ($T/x on the host): the dry run and the
# run refuse it alike, and create nothing anywhere.
ln -sfn ../../usrlocal-above "$R5/usr/local"
check "[above the root] recover --dry-run is refused (exit 11)" \
    run_rc 11 "$T/x5a.out" "$T/x5a.err" cli "$R5" recover --dry-run
check "[above the root] ... saying what to do" grep -q "climbs above the root.*make that symlink point inside" "$T/x5a.err"
check "[above the root] recover --restart is refused the same way (exit 11)" \
    run_rc 11 "$T/x5b.out" "$T/x5b.err" cli "$R5" recover --restart
check "[above the root] ... with the same message" grep -q "climbs above the root" "$T/x5b.err"
check "[above the root] ... and nothing was created" test ! -e "$T/usrlocal-above" -a ! -e "$R5/usrlocal-above"

# --- deep trees, with few descriptors -------------------------------------------------------
# 500 levels (kMaxTreeDepth is 512) back up and restore; a 1500-level tree the failed
# upgrade added is deleted (one descriptor at a time, no recursion).
R6=$T/root6
small_root "$R6" 6
deep()
{
    python3 -c 'import os,sys
fd=os.open(sys.argv[1],os.O_RDONLY)
for i in range(int(sys.argv[2])):
    os.mkdir("d",dir_fd=fd); n=os.open("d",os.O_RDONLY,dir_fd=fd); os.close(fd); fd=n
f=os.open("leaf",os.O_WRONLY|os.O_CREAT,0o644,dir_fd=fd); os.write(f,b"leaf\n")' "$1" "$2"
}
mkdir -p "$R6/etc/deep" "$R6/etc/deeper"
deep "$R6/etc/deep" 500
few_fds() { bash -c 'ulimit -n 1024 && exec "$@"' few_fds "$@"; }
check "[deep] backup of a 500-level tree exits 0 under ulimit -n 1024" \
    run_rc 0 "$T/x6.json" "$T/x6.err" few_fds "$UR_CLI" --root "$R6" --json backup
B6=$R6/var/recovery/backups/$(json "$T/x6.json" 'j["id"]')
rm -rf "$R6/etc/deep/d/d"
deep "$R6/etc/deeper" 1500
check "[deep] recover exits 0 under ulimit -n 1024" \
    run_rc 0 "$T/x6r.out" "$T/x6r.err" few_fds "$UR_CLI" --root "$R6" recover
check "[deep] the 500-level tree equals the backup" tree_equal "$R6/etc/deep" "$B6/etc/deep"
check "[deep] the 1500-level tree is gone (only the backup's empty directory is left)" \
    test -z "$(ls -A "$R6/etc/deeper")"

# --- an immutable file in the way ------------------------------------------------------
# chattr +i on a file the restore must delete: the error says what it is (it used to
# read "Not a directory": EPERM was taken for a directory), and once cleared the
# recovery resumes.
echo "added by the upgrade" >"$R6/etc/added-imm"
if chattr +i "$R6/etc/added-imm" 2>/dev/null; then
    check "[immutable] recover fails (exit 1)" run_rc 1 "$T/x7.out" "$T/x7.err" cli "$R6" recover --restart
    check "[immutable] ... naming the file and the flag" \
        grep -q "remove 'added-imm': Operation not permitted (immutable or append-only?" "$T/x7.err"
    chattr -i "$R6/etc/added-imm"
    check "[immutable] cleared: recover --resume exits 0" run_rc 0 "$T/x7r.out" "$T/x7r.err" cli "$R6" recover --resume
    check "[immutable] ... and the file is gone" test ! -e "$R6/etc/added-imm"
else
    echo "note: chattr +i does not work on this filesystem; the immutable section did not run"
fi

echo "test-restore: $(($(date +%s) - t0)) s"
ur_fx_done
