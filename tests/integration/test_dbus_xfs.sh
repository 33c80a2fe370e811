#!/bin/bash
# upgrade-recoveryd on a real recovery partition: a GPT image with an xfs partition
# (loop + partx, as on a node without udev). The service finds the partition by its
# GPT name and mounts it itself for the first backup; reads work from then on. When
# something else is mounted at the mount point the job ends NotMounted, and without a
# partition (and no plain directory allowed) calls fail with PartitionNotFound.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
require_root
require_cmd sgdisk partx losetup mkfs.xfs findmnt
dbus_setup
# The image on disk (loop devices over tmpfs files are fine, but keep to the fixture's rule).
IMGDIR=$(ur_mktemp)
on_exit "ur_cleanup_image $IMGDIR/disk.img; rm -rf $IMGDIR"
LABEL=urdbus-$$
ur_gpt_image "$IMGDIR/disk.img" 400M "$LABEL:320M"
L=$(ur_loop_attach "$IMGDIR/disk.img")
P=$(ur_loop_partition "$L" 1)
ur_mkfs_xfs "$P"
sed -i -e "s/^label = .*/label = \"$LABEL\"/" -e 's/^allow_plain_directory = .*/allow_plain_directory = false/' "$CFG"
on_exit "umount -l $STORE 2>/dev/null"
dbus_big_tree 1000
dbus_start_daemon

# Nothing mounted yet: a read says so; the backup job mounts the partition.
expect_error "$ERR.NotMounted" "$(gcall ListBackups)"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
S=$(wait_job "$J")
[ "$S" = Succeeded ] || die "backup onto the partition: $S $(jprop "$J" Error) $(jprop "$J" Message)"
src=$(findmnt -n -o SOURCE,FSTYPE --target "$STORE")
[ "$src" = "$P xfs" ] || die "$STORE is not the xfs partition $P: '$src'"
B=$(latest_id)
mcall ListBackups | grep -qF "$B" || die "ListBackups does not show $B"
verify_ok "$B"
[ "$(mprop LastBackup)" = "$B" ] || die "LastBackup $(mprop LastBackup)"
ok "backup $B on $P (mounted by the service at $STORE)"

# Something else at the mount point: refused, never written to.
umount "$STORE" || die "umount $STORE"
mount -t tmpfs ur-not-the-partition "$STORE" || die "mount tmpfs on $STORE"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Error ] && [ "$(jprop "$J" Error)" = "$ERR.NotMounted" ] ||
    die "backup onto a tmpfs at the mount point: $(jprop "$J" State) $(jprop "$J" Error) $(jprop "$J" Message)"
[ -z "$(ls -A "$STORE")" ] || die "something was written to the wrong filesystem: $(ls -A "$STORE")"
ok "NotMounted: $(jprop "$J" Message)"
umount "$STORE"

# No such partition, plain directories not allowed.
dbus_stop_daemon
sed -i "s/^label = .*/label = \"urdbus-none-$$\"/" "$CFG"
dbus_start_daemon
expect_error "$ERR.PartitionNotFound" "$(gcall ListBackups)"
expect_error "$ERR.PartitionNotFound" "$(gcall GetRollbackPlan)"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Error ] && [ "$(jprop "$J" Error)" = "$ERR.PartitionNotFound" ] ||
    die "backup without a partition: $(jprop "$J" State) $(jprop "$J" Error)"
[ "$(mprop RecoveryState)" = Unknown ] || die "RecoveryState without a partition: $(mprop RecoveryState)"
daemon_alive
echo "PASS: test_dbus_xfs"
