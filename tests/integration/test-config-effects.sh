#!/bin/bash
# What upgrade-recovery.conf(5) says a key does, seen through the CLI with a drop-in
# in a plain-directory sandbox (no partition needed):
#  - partition.mount_point in a tree where the host really has it (the tree a
#    symlink, as RHCOS's /usr/local -> ../var/usrlocal): exit 3 naming the tree,
#    nothing created; it copied itself into the backup until the depth limit;
#  - recovery.systemctl = "dbus" with --root another root: recover --dry-run exits 2
#    as the run does (it exited 0, "nothing was changed", planning an offline run);
#  - recovery.wipe_images with phase 1 offline: recover --dry-run shows the wipe where
#    the run does it, in phase 2's start-crio (the plan said only "start crio.service");
#  - etcd.mode = "etcdctl" without etcd.endpoints: the backup fails, exit 3;
#  - backup --dry-run fails as the backup does, changing nothing, for ostree.mode = "on"
#    without a sysroot (exit 1), etcd.mode = "script" without the script (exit 1) and
#    etcdctl without endpoints (exit 3); it used to say the backup fits;
#  - an empty backup.trees: exit 3 naming file, line and column;
#  - backup.trees that overlap: exit 3 naming both trees; a later drop-in's list
#    replaces the earlier one whole;
#  - backup.share_unchanged = false with an earlier backup: backup, list and the dry
#    run no longer say there is no earlier backup;
#  - partition.filesystem: a partition with another file system is refused mounted
#    too (as var-recovery.mount leaves it), not only before upgrade-recovery mounts it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd jq
T=$(ur_mktemp)
trap 'ur_cleanup_image "$T/disk.img"; rm -rf "$T"' EXIT

# sandbox NAME: a fresh root $R with its /etc config and an empty config.d ($D).
sandbox()
{
    R=$T/$1/root
    D=$R/etc/upgrade-recovery/config.d
    mkdir -p "$D"
    ur_plain_sandbox "$R" "$R/etc/upgrade-recovery/config.toml" "ur-config-effects-none-$$"
}
cli() { "$UR_CLI" --root "$R" "$@"; }
# rc WANT OUT ERR CMD...: run CMD, its status must be WANT.
rc()
{
    want=$1 out=$2 err=$3
    shift 3
    got=0
    "$@" >"$out" 2>"$err" || got=$?
    [ "$got" = "$want" ] || die "'$*': exit $got, not $want: $(cat "$err")"
}

# --- partition.mount_point inside a tree reached through a symlink ------------------
sandbox link
rm -r "${R:?}/usr/local"
mkdir -p "$R/var/usrlocal/bin"
ln -s ../var/usrlocal "$R/usr/local"
echo tool >"$R/var/usrlocal/bin/tool"
printf '[partition]\nmount_point = "/var/usrlocal/recovery"\n' >"$D/50-store.toml"
for c in backup status; do
    rc 3 "$T/l.out" "$T/l.err" cli "$c"
    grep -qF "the backup directory /var/usrlocal/recovery (partition.mount_point or --dir) overlaps the backed-up tree 'usrlocal' (/usr/local, on the host /var/usrlocal)" "$T/l.err" ||
        die "$c: the error does not name the tree where the host has it: $(cat "$T/l.err")"
done
[ ! -e "$R/var/usrlocal/recovery" ] || die "the refused backup created the store in the tree"
rc 3 "$T/l.out" "$T/l.err" cli --dir /var/usrlocal/recovery backup --dry-run
# The other way round: the store holding where the tree really is.
rm "$D/50-store.toml"
rc 3 "$T/l.out" "$T/l.err" cli --dir /var/usrlocal status
grep -qF "overlaps the backed-up tree 'usrlocal' (/usr/local, on the host /var/usrlocal)" "$T/l.err" ||
    die "--dir /var/usrlocal: $(cat "$T/l.err")"
# A store beside the tree is fine, and the backup holds the tree's file.
rc 0 "$T/l.out" "$T/l.err" cli --dir /var/usrlocal-store backup
[ "$(cat "$R/var/usrlocal-store/latest/usrlocal/bin/tool")" = tool ] || die "the backup lacks /usr/local/bin/tool"
echo "ok: partition.mount_point where the host really has a tree"

# --- recovery.systemctl = "dbus" on another root --------------------------------------
sandbox dbus
rc 0 "$T/d.out" "$T/d.err" cli backup
rc 0 "$T/d.out" "$T/d.err" cli recover --dry-run
printf '[recovery]\nsystemctl = "dbus"\n' >"$D/50-dbus.toml"
before=$(find "$R" -printf '%p %s %T@\n' | sort)
rc 2 "$T/d.out" "$T/d.err" cli recover
grep -qF 'recovery.systemctl = "dbus" controls the running system' "$T/d.err" || die "recover: $(cat "$T/d.err")"
rc 2 "$T/d.out" "$T/d.err" cli recover --dry-run
grep -qF 'recovery.systemctl = "dbus" controls the running system' "$T/d.err" ||
    die "recover --dry-run does not name what the run stops on: $(cat "$T/d.err")"
rc 2 "$T/d.json" "$T/d.err" cli --json recover --dry-run
[ "$(jq -r '.refused.error' "$T/d.json")" = InvalidArgs ] || die "--json refused: $(cat "$T/d.json")"
after=$(find "$R" -printf '%p %s %T@\n' | sort)
[ "$before" = "$after" ] || die "recover with systemctl = dbus changed the root: $(diff <(echo "$before") <(echo "$after"))"
echo "ok: recovery.systemctl = dbus on another root: the dry run exits as the run does"

# --- recovery.wipe_images when phase 1 runs offline -------------------------------------
sandbox wipe
rc 0 "$T/w.out" "$T/w.err" cli backup
rc 0 "$T/w.out" "$T/w.err" cli recover --dry-run
grep -qx "after the reboot, start-crio: start crio.service" "$T/w.out" || die "wipe_images off: $(cat "$T/w.out")"
printf '[recovery]\nwipe_images = true\n' >"$D/50-wipe.toml"
rc 0 "$T/w.out" "$T/w.err" cli recover --dry-run
grep -qx "wipe-images: skipped (offline: nothing runs there)" "$T/w.out" || die "phase 1: $(cat "$T/w.out")"
grep -qx "after the reboot, start-crio: wipe the container storage (recovery.wipe_images, which phase 1 cannot do offline), then start crio.service" "$T/w.out" ||
    die "the plan does not show the wipe phase 2 does: $(cat "$T/w.out")"
echo "ok: recovery.wipe_images offline: the dry run shows the wipe in phase 2"

# --- backup --dry-run refuses what the backup refuses before its first write -----------
# The dry run was the space check alone: each of these fitted, then the backup failed.
# state: the root with the store in it, as a listing (not atimes: the walk reads).
state() { find "$R" -printf '%p %y %m %s %i %T@ %C@ %l\n' | LC_ALL=C sort; }
# dry_run_fails_as_backup WANT TEXT: with the drop-ins in $D, `backup --dry-run` exits
# WANT naming TEXT, with the error line the backup then gives, and changes nothing.
dry_run_fails_as_backup()
{
    local want=$1 text=$2 before after
    latest=$(readlink "$R/var/recovery/latest")
    before=$(state)
    rc "$want" "$T/x.out" "$T/x.err" cli backup --dry-run
    after=$(state)
    [ "$before" = "$after" ] || die "the dry run changed the root or store: $(diff <(echo "$before") <(echo "$after"))"
    grep -qF "$text" "$T/x.err" || die "the dry run does not say '$text': $(cat "$T/x.err")"
    rc "$want" "$T/y.out" "$T/y.err" cli backup
    [ "$(tail -n1 "$T/x.err")" = "$(tail -n1 "$T/y.err")" ] ||
        die "the dry run's error is not the backup's: $(tail -n1 "$T/x.err") / $(tail -n1 "$T/y.err")"
    [ "$(readlink "$R/var/recovery/latest")" = "$latest" ] || die "the failing backup published one"
}

# ostree.mode = "on" without an ostree sysroot under the root.
sandbox ostree
rc 0 "$T/o.out" "$T/o.err" cli backup # a store with a backup in it: the dry run leaves both alone
printf '[ostree]\nmode = "on"\n' >"$D/50-ostree.toml"
dry_run_fails_as_backup 1 "pin the booted deployment: ostree: no ostree sysroot at $R/sysroot (no ostree/repo)"
echo "ok: ostree.mode = on without a sysroot: backup --dry-run exits 1 as the backup does"

# etcd.mode = "script" without the script; with it, the dry run fits and runs nothing.
sandbox script
rc 0 "$T/s.out" "$T/s.err" cli backup
printf '[etcd]\nmode = "script"\n' >"$D/50-etcd.toml"
dry_run_fails_as_backup 1 "etcd snapshot: etcd.mode is \"script\", but the cluster backup script '$R/usr/local/bin/cluster-backup.sh'"
printf '#!/bin/sh\ntouch "%s"\nexit 1\n' "$T/script-ran" >"$R/usr/local/bin/cluster-backup.sh"
chmod 755 "$R/usr/local/bin/cluster-backup.sh"
rc 0 "$T/s.out" "$T/s.err" cli backup --dry-run
[ ! -e "$T/script-ran" ] || die "the dry run ran the cluster backup script"
echo "ok: etcd.mode = script without the script: backup --dry-run exits 1 as the backup does"

# --- etcd.mode = "etcdctl" needs etcd.endpoints -----------------------------------------
sandbox etcdctl
rc 0 "$T/c.out" "$T/c.err" cli backup
printf '[etcd]\nmode = "etcdctl"\n' >"$D/50-etcd.toml"
dry_run_fails_as_backup 3 "etcd snapshot: etcd.mode = etcdctl needs etcd.endpoints"
# A backup that does not fit fails on the space first: the dry run says that (exit 5).
printf '[backup]\nfree_space_margin = 1125899906842624\n' >"$D/60-margin.toml"
rc 5 "$T/c.out" "$T/c.err" cli backup --dry-run
rc 5 "$T/c.out" "$T/c.err" cli backup
echo "ok: etcd.mode = etcdctl without etcd.endpoints fails the backup and its dry run (exit 3)"

# --- an empty backup.trees ---------------------------------------------------------
sandbox empty
printf '[backup]\nretention = 2\ntrees = []\n' >"$D/50-trees.toml"
rc 3 "$T/e.out" "$T/e.err" cli backup
grep -qF "$D/50-trees.toml:3:9: backup.trees must name at least one tree" "$T/e.err" ||
    die "an empty backup.trees is not named at its position: $(cat "$T/e.err")"
[ ! -e "$R/var/recovery" ] || die "the refused backup created the store"
echo "ok: an empty backup.trees names file, line and column"

# --- backup.trees that overlap ------------------------------------------------------
# /etc/kubernetes beside /etc was copied twice into each backup (and restored twice).
sandbox overlap
mkdir -p "$R/etc/kubernetes"
echo kubeconfig >"$R/etc/kubernetes/kubeconfig"
printf '[[backup.trees]]\nname = "etc"\npath = "/etc"\n\n[[backup.trees]]\nname = "kube"\npath = "/etc/kubernetes"\n' \
    >"$D/50-trees.toml"
for c in backup "backup --dry-run" list; do
    # shellcheck disable=SC2086 # $c is a command and its option
    rc 3 "$T/o.out" "$T/o.err" cli $c
    grep -qF "$D/50-trees.toml:5:1: backup.trees 'kube' (/etc/kubernetes) lies inside the tree 'etc' (/etc, at $D/50-trees.toml:1:1)" "$T/o.err" ||
        die "$c: overlapping trees are not refused naming both: $(cat "$T/o.err")"
done
[ ! -e "$R/var/recovery" ] || die "the refused backup created the store"
# A later drop-in replaces the whole list, so /etc there and /etc/kubernetes in a
# later one do not overlap (each file's list is checked on its own).
printf '[[backup.trees]]\nname = "etc"\npath = "/etc"\n' >"$D/50-trees.toml"
printf '[[backup.trees]]\nname = "kube"\npath = "/etc/kubernetes"\n' >"$D/60-trees.toml"
rc 0 "$T/o.out" "$T/o.err" cli backup
[ "$(cat "$R/var/recovery/latest/kube/kubeconfig")" = kubeconfig ] || die "the backup lacks the kube tree"
[ ! -e "$R/var/recovery/latest/etc" ] || die "the replaced list's tree /etc is in the backup"
echo "ok: overlapping backup.trees are refused naming both; a later drop-in's list replaces them"

# --- backup.share_unchanged = false with an earlier backup ----------------------------
# The text said "shared with no earlier backup" (backup, list) and the dry run
# "(no earlier backup)" or "0 B with backup ID" while an earlier backup was there.
sandbox noshare
rc 0 "$T/s.out" "$T/s.err" cli backup
printf '[backup]\nshare_unchanged = false\n' >"$D/50-share.toml"
rc 0 "$T/s.out" "$T/s.err" cli backup --dry-run
grep -qx "  shared:     nothing (backup.share_unchanged is off)" "$T/s.out" || die "dry run: $(cat "$T/s.out")"
# --json names no backup compared against (it named the latest one).
rc 0 "$T/s.json" "$T/s.err" cli --json backup --dry-run
jq -e '.previous == "" and .shared_bytes == 0' "$T/s.json" >/dev/null || die "dry run --json: $(cat "$T/s.json")"
rc 0 "$T/s.out" "$T/s.err" cli backup
grep -qE "^  data: .* copied, nothing shared: backup.share_unchanged is off$" "$T/s.out" ||
    die "backup: $(cat "$T/s.out")"
rc 0 "$T/s.out" "$T/s.err" cli list
[ "$(grep -c "^  data: .* copied, nothing shared with an earlier backup$" "$T/s.out")" = 2 ] ||
    die "list: $(cat "$T/s.out")"
if grep -q "no earlier backup" "$T/s.out"; then die "list: $(cat "$T/s.out")"; fi
echo "ok: backup.share_unchanged = false: the text says why nothing is shared"
# --- partition.filesystem on a mounted partition --------------------------------------
if command -v sgdisk >/dev/null && command -v partx >/dev/null && command -v mkfs.ext4 >/dev/null; then
    sandbox fs
    label=ur-cfgfx-$$ # sgdisk -p shows 20 characters of a name
    ur_gpt_image "$T/disk.img" 64M "$label:32M"
    part=$(ur_loop_partition "$(ur_loop_attach "$T/disk.img")" 1)
    mkfs.ext4 -q "$part" || die "mkfs.ext4 $part"
    printf '[partition]\nlabel = "%s"\nallow_plain_directory = false\n' "$label" >"$D/50-part.toml"
    rc 3 "$T/f.out" "$T/f.err" cli status
    grep -qF "holds ext4 but partition.filesystem is xfs" "$T/f.err" || die "unmounted: $(cat "$T/f.err")"
    # Mounted where the store is, as var-recovery.mount mounts it at boot.
    mkdir -p "$R/var/recovery"
    mount "$part" "$R/var/recovery"
    rmdir "$R/var/recovery/lost+found"
    for c in status backup; do
        rc 3 "$T/f.out" "$T/f.err" cli "$c"
        grep -qF "mounted at $R/var/recovery, holds ext4 but partition.filesystem is xfs" "$T/f.err" ||
            die "mounted, $c: $(cat "$T/f.err")"
    done
    [ -z "$(ls -A "$R/var/recovery")" ] || die "the refused backup wrote on the partition: $(ls -A "$R/var/recovery")"
    # The file system it has, or any (empty), is accepted.
    for fs in ext4 ""; do
        printf '[partition]\nfilesystem = "%s"\n' "$fs" >"$D/60-fs.toml"
        rc 0 "$T/f.out" "$T/f.err" cli status
    done
    umount "$R/var/recovery"
    echo "ok: partition.filesystem holds for a mounted partition"
else
    echo "skip: partition.filesystem on a mounted partition (sgdisk, partx or mkfs.ext4 missing)"
fi

echo "PASS: test-config-effects"
