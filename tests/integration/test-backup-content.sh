#!/bin/bash
# Backup content, with real parts: a GPT image (sgdisk) attached with losetup +
# partx, xfs, mounted by the CLI; a host tree full of nasty names and every
# metadata kind, with a tmpfs mounted below /var/lib/kubelet (W16). Proves with
# the independent ur-tree-compare that every byte, xattr (incl. security.selinux,
# security.capability, ACLs), owner, mode, ns mtime, link, device number, hole and
# hard-link group came through; that the mount was not crossed; that verify,
# list --json and status --json agree; that the source was not touched; that a
# second backup after 1% of the files changed shares every unchanged file with
# the first (same inode) and copies the changed ones, without changing the
# first; (negative control) that damage to the backup is found by both
# ur-tree-compare and verify; and that the next backups do not inherit that
# damage (damaged copies are copied again, a damaged manifest shares nothing);
# and that the backup leaves upgrade-recovery.sh (feature 11) on the partition.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init bc "$@"
t0=$(date +%s)

ur_fx_disk 1G 900M
ROOT=$T/root
python3 "$UR_FIXTURE" make-tree "$ROOT" --files 300
ur_fx_config "$ROOT" "$UR_FX_LABEL-1"
# W16: a pod volume (tmpfs) mounted below /var/lib/kubelet; its content must not be backed up.
TOK=var/lib/kubelet/pods/mounted/volumes/kubernetes.io~secret/token
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$ROOT/$TOK"
echo "secret token" >"$ROOT/$TOK/token"
mkdir "$ROOT/$TOK/..data"
echo "more" >"$ROOT/$TOK/..data/ca.crt"
# W16 too: a bind mount from the same filesystem (kubelet's volume-subpaths, hostPath
# volumes): same st_dev as the tree, still another mount.
BND=var/lib/kubelet/pods/bound/volume-subpaths/vol
mkdir -p "$ROOT/$BND" "$T/hostpath/sub"
echo "host path data" >"$T/hostpath/sub/file"
mount --bind "$T/hostpath" "$ROOT/$BND"
src_before=$(fx_digest "$ROOT" --strict --exclude var/recovery --exclude var)
kub_before=$(fx_digest "$ROOT/var/lib/kubelet" --strict)

# --- first backup -----------------------------------------------------------------
check "backup exits 0" run_rc 0 "$T/b1.json" "$T/b1.err" cli "$ROOT" --json backup
ID1=$(json "$T/b1.json" 'j["id"]')
B1=$ROOT/var/recovery/backups/$ID1
echo "first backup $ID1 in $(json "$T/b1.json" 'j["duration_seconds"]') s"
check "the CLI mounted the partition at ROOT/var/recovery" \
    test "$(findmnt -n -o SOURCE --mountpoint "$ROOT/var/recovery")" = "$PART1"
check "backups/$ID1 is a directory" test -d "$B1"
check "latest names $ID1" test "$(readlink "$ROOT/var/recovery/latest")" = "backups/$ID1"
# Feature 11: the entry point of the tools we replace, on the partition itself.
CS=$ROOT/var/recovery/upgrade-recovery.sh
check "the backup wrote upgrade-recovery.sh on the partition, mode 0700" test "$(stat -c %a "$CS" 2>&1)" = 700
check "upgrade-recovery.sh runs the binary that took the backup" grep -qxF "BIN='$(readlink -f "$UR_CLI")'" "$CS"
check "upgrade-recovery.sh --help exits 0 and names the CLI it maps onto" \
    sh -c '"$1" --help | grep -q "upgrade-recovery backup"' sh "$CS"
check "the json lists the three trees" \
    test "$(json "$T/b1.json" '",".join(t["name"] for t in j["trees"])')" = "etc,kubelet,usrlocal"
check "the tree has no MachineConfig, and the backup says so in its warnings (W6)" \
    test "$(json "$T/b1.json" 'sum(w.startswith("no MachineConfig at /etc/machine-config-daemon/currentconfig:") for w in j["warnings"])')" = 1

check "etc equals the source in every attribute" tree_equal "$ROOT/etc" "$B1/etc"
check "usr/local equals the source" tree_equal "$ROOT/usr/local" "$B1/usrlocal"
check "var/lib/kubelet equals the source, but for the mount points" \
    tree_equal "$ROOT/var/lib/kubelet" "$B1/kubelet" --exclude "${TOK#var/lib/kubelet/}" --exclude "${BND#var/lib/kubelet/}"
# The comparison walked what it should (not an empty or truncated tree).
n=$("$UR_TREE_COMPARE" "$ROOT/etc" "$B1/etc" | sed -n 's/^ur-tree-compare: \([0-9]*\) entries.*/\1/p')
check "etc comparison covered > 100 entries ($n)" test "${n:-0}" -gt 100
check "the path longer than PATH_MAX is in the backup" \
    python3 -c 'import os,sys
d=os.open(sys.argv[1],os.O_RDONLY)
for c in ["deep"]+["%02d-"%i+"L"*236 for i in range(20)]: d=os.open(c,os.O_RDONLY,dir_fd=d)
os.stat("bottom file",dir_fd=d)' "$B1/etc"
check "the tmpfs mount point is an empty directory in the backup" \
    test -d "$B1/kubelet/${TOK#var/lib/kubelet/}" -a -z "$(ls -A "$B1/kubelet/${TOK#var/lib/kubelet/}")"
check "nothing of the tmpfs is in the manifest" bash -c "! grep -a -e 'token/token' -e '..data' '$B1/manifest'"
check "the same-filesystem bind mount point is an empty directory in the backup" \
    test -d "$B1/kubelet/${BND#var/lib/kubelet/}" -a -z "$(ls -A "$B1/kubelet/${BND#var/lib/kubelet/}")"
flags=$(grep -a '^kubelet/pods/mounted/volumes/kubernetes.io~secret/token d ' "$B1/manifest" | cut -d' ' -f11)
check "the mount point is flagged in the manifest (kMountPoint, flags ${flags:-none})" test $((${flags:-0} & 2)) = 2
alloc=$(stat -c '%b*%B' "$B1/usrlocal/sparse.img")
check "the sparse file is sparse in the backup ($((alloc)) bytes allocated)" test $((alloc)) -lt $((8 << 20))

check "verify exits 0" run_rc 0 "$T/v1.out" "$T/v1.err" cli "$ROOT" verify
check "verify reports 0 mismatches" grep -q "0 mismatches" "$T/v1.out"
check "list --json exits 0" run_rc 0 "$T/l1.json" "$T/l1.err" cli "$ROOT" --json list
check "list --json: one backup, $ID1, latest" \
    test "$(json "$T/l1.json" 'str(len(j))+" "+j[0]["id"]+" "+str(j[0]["latest"])')" = "1 $ID1 True"
check "status --json exits 0" run_rc 0 "$T/s1.json" "$T/s1.err" cli "$ROOT" --json status
check "status --json: partition, 1 backup, latest $ID1, no recovery" \
    test "$(json "$T/s1.json" 'j["partition"]+" "+str(j["backups"])+" "+j["latest"]["id"]+" "+str(j["recovery"])')" \
    = "$PART1 1 $ID1 None"
check "the source trees were not touched (contents, metadata, inodes, ctimes)" \
    test "$(fx_digest "$ROOT" --strict --exclude var/recovery --exclude var)" = "$src_before"
check "the kubelet tree (with the tmpfs) was not touched" \
    test "$(fx_digest "$ROOT/var/lib/kubelet" --strict)" = "$kub_before"

# --- second backup after 1% of the files changed --------------------------------
b1_before=$(fx_digest "$B1")
python3 "$UR_FIXTURE" change-some "$ROOT" 1 "$T/changed"
# A relabelled symlink and a re-owned fifo: same inode, but ctime moved, so
# they are recreated, not shared (unchanged ones are hard-linked like files).
setfattr -h -n security.selinux -v system_u:object_r:changed_t:s0 "$ROOT/etc/links/relative"
chown -h 7:8 "$ROOT/etc/special/fifo"
printf '%s\n' etc/links/relative etc/special/fifo >>"$T/changed"
nchanged=$(wc -l <"$T/changed")
sleep 1 # a new id second (a collision would get -1, which is fine too)
check "second backup exits 0" run_rc 0 "$T/b2.json" "$T/b2.err" cli "$ROOT" --json backup
ID2=$(json "$T/b2.json" 'j["id"]')
B2=$ROOT/var/recovery/backups/$ID2
check "the second id sorts after the first" test "$ID2" \> "$ID1"
check "unchanged entries are hard links to the first generation, the $nchanged changed ones are not" \
    python3 "$UR_FIXTURE" shared "$B1" "$B2" "$T/changed"
check "metadata names $ID1 as previous" test "$(json "$T/b2.json" 'j["previous"]')" = "$ID1"
check "metadata counts > 300 shared files" test "$(json "$T/b2.json" 'j["sizes"]["shared_files"] > 300')" = true
check "metadata: copied bytes < 5% of the total" \
    test "$(json "$T/b2.json" 'j["sizes"]["copied_bytes"] * 20 < j["sizes"]["total_bytes"]')" = true
check "the second generation equals the changed source: etc" tree_equal "$ROOT/etc" "$B2/etc"
check "the second generation equals the changed source: usr/local" tree_equal "$ROOT/usr/local" "$B2/usrlocal"
check "the second generation equals the changed source: kubelet" \
    tree_equal "$ROOT/var/lib/kubelet" "$B2/kubelet" --exclude "${TOK#var/lib/kubelet/}" --exclude "${BND#var/lib/kubelet/}"
check "the first generation did not change (W2)" test "$(fx_digest "$B1")" = "$b1_before"
check "verify $ID1 exits 0" run_rc 0 "$T/v2a.out" "$T/v2a.err" cli "$ROOT" verify "$ID1"
check "verify $ID2 exits 0" run_rc 0 "$T/v2b.out" "$T/v2b.err" cli "$ROOT" verify "$ID2"
check "list --json: two backups, newest first, $ID2 latest" \
    test "$(json <(cli "$ROOT" --json list) '" ".join(b["id"]+":"+str(b["latest"]) for b in j)')" \
    = "$ID2:True $ID1:False"

# --- negative control: damage of each kind is found by ur-tree-compare and verify --
E2=$B2/etc
chmod 0640 "$E2/hosts"                                      # mode
chown 7:7 "$E2/empty"                                       # owner
touch -h -d @1000000000 "$E2/links/absolute"                 # symlink mtime
setfattr -n security.selinux -v "system_u:object_r:wrong_t:s0" "$E2/sysconfig" # label on a directory
setfacl -m u:4321:r "$E2/acl/file"                           # ACL
setfattr -x user.empty "$E2/xattrs/file"                     # an empty-valued xattr removed
ln -sfn /elsewhere "$E2/links/dangling.new" && mv -T "$E2/links/dangling.new" "$E2/links/dangling" # target
rm "$E2/special/loop-like" && mknod "$E2/special/loop-like" b 7 201 # device number
mt=$(stat -c %y "$E2/hl/b/two")
cp "$E2/hl/b/two" "$E2/hl/b/two.new" && mv "$E2/hl/b/two.new" "$E2/hl/b/two" && touch -d "$mt" "$E2/hl/b/two" # hard link broken
printf 'X' | dd of="$E2/machine-config-daemon/node-annotations.json" bs=1 seek=3 conv=notrunc status=none
touch -d "@1602000000" "$E2/machine-config-daemon/node-annotations.json" # content (and mtime)
rc=0
"$UR_TREE_COMPARE" "$ROOT/etc" "$E2" >"$T/neg.out" 2>&1 || rc=$?
check "ur-tree-compare exits 1 on the damaged copy" test $rc = 1
for want in "mode hosts" "owner empty" "mtime links/absolute" "xattr sysconfig" "xattr acl/file" \
    "xattr xattrs/file" "target links/dangling" "rdev special/loop-like" "hardlinks hl/b/two" \
    "content machine-config-daemon/node-annotations.json"; do
    check "ur-tree-compare reports '$want'" grep -q "^DIFF ${want}[: ]" "$T/neg.out"
done
check "verify exits 7 on the damaged backup" run_rc 7 "$T/neg.v" "$T/neg.verr" cli "$ROOT" verify "$ID2"
for want in "etc/hosts: mode" "etc/empty: owner" "etc/links/absolute: mtime" "etc/sysconfig: xattr security.selinux" \
    "etc/acl/file: xattr system.posix_acl_access" "etc/xattrs/file: xattr user.empty" \
    "etc/links/dangling: symlink target" "etc/special/loop-like: device" \
    "etc/hl/b/two: not a hard link of etc/hl/a/one" \
    "etc/machine-config-daemon/node-annotations.json: "; do
    check "verify names '$want'" grep -qF "MISMATCH $want" "$T/neg.v"
done

# --- a damaged previous generation is not handed on ------------------------------
# The damaged copies above still have their names; their source is unchanged, so a
# backup that trusted the manifest alone would link them into the new generation.
sleep 1
check "third backup (after the damage of $ID2) exits 0" run_rc 0 "$T/b3.json" "$T/b3.err" cli "$ROOT" --json backup
ID3=$(json "$T/b3.json" 'j["id"]')
B3=$ROOT/var/recovery/backups/$ID3
# What a stat shows (mode, owner, mtime, size, device) is checked before a copy is
# shared; changed xattrs alone are not (that would read every shared file's xattrs
# again): verify finds those, in both generations.
run_rc 7 "$T/v3.out" "$T/v3.err" cli "$ROOT" verify "$ID3" || true
for p in etc/hosts etc/empty etc/links/absolute etc/links/dangling etc/special/loop-like \
    etc/machine-config-daemon/node-annotations.json; do
    check "verify $ID3: $p was not inherited damaged" bash -c "! grep -qF \"MISMATCH $p:\" \"$T/v3.out\""
done
check "verify $ID3: only the two xattr-only damages are left (documented)" \
    test "$(grep -c '^MISMATCH' "$T/v3.out")" = 2
check "  ... and they are etc/acl/file and etc/xattrs/file" \
    test "$(grep '^MISMATCH' "$T/v3.out" | cut -d: -f1 | sort | tr '\n' ' ')" = "MISMATCH etc/acl/file MISMATCH etc/xattrs/file "
check "the damaged copy of etc/hosts was copied again, not shared" \
    test "$(stat -c %i "$B3/etc/hosts")" != "$(stat -c %i "$E2/hosts")"
check "the warnings name a damaged copy and say to verify $ID2" \
    test "$(json "$T/b3.json" 'sum("etc/hosts differs from its manifest" in w and "verify '"$ID2"'" in w for w in j["warnings"])')" = 1
check "undamaged files are still shared with $ID2" test "$(json "$T/b3.json" 'j["sizes"]["shared_files"] > 300')" = true
# A manifest that is not the one the metadata records is not used for sharing at all.
echo "# an added line" >>"$B3/manifest"
sleep 1
check "fourth backup (after the damage of $ID3's manifest) exits 0" \
    run_rc 0 "$T/b4.json" "$T/b4.err" cli "$ROOT" --json backup
ID4=$(json "$T/b4.json" 'j["id"]')
check "verify $ID4 exits 0" run_rc 0 "$T/v4.out" "$T/v4.err" cli "$ROOT" verify "$ID4"
check "nothing shared with $ID3 and no previous named" \
    test "$(json "$T/b4.json" 'j["sizes"]["shared_files"] == 0 and not j.get("previous")')" = true
check "the warning says why" \
    test "$(json "$T/b4.json" 'sum("previous backup '"$ID3"': its manifest does not match" in w for w in j["warnings"])')" = 1

echo "test-backup-content: $(($(date +%s) - t0)) s"
ur_fx_done
