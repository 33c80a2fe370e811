#!/bin/bash
# Driver for test-partition (Catch2): builds a real GPT disk image, attaches it
# with losetup + partx, formats xfs, runs the test binary against it, and
# cleans up every loop device and mount even when the binary crashes.
# Usage: test-partition.sh TEST-BINARY [catch2 args...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -ge 1 ] || die "usage: $0 TEST-BINARY [catch2 args]"
bin=$1
shift
require_root
require_cmd sgdisk partx losetup mkfs.xfs findmnt

T=$(ur_mktemp)
cleanup()
{
    # Mounts the binary left behind (it should leave none; checked below).
    findmnt -rn -o TARGET | grep -F "$T/" | sort -r | while read -r m; do umount -l "$m" || true; done
    ur_cleanup_image "$T/disk.img"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Names unique to this run so parallel tests never see each other's partitions.
label=urtest-$$
ur_gpt_image "$T/disk.img" 700M "$label-store:320M" "$label-other:320M" "$label-raw:0"
loop=$(ur_loop_attach "$T/disk.img")
ur_mkfs_xfs "$(ur_loop_partition "$loop" 1)"
ur_mkfs_xfs "$(ur_loop_partition "$loop" 2)"
ur_loop_partition "$loop" 3 >/dev/null # left unformatted on purpose

export UR_TEST_DIR=$T UR_TEST_IMAGE=$T/disk.img UR_TEST_LOOP=$loop UR_TEST_LABEL=$label UR_TEST_LIB=$here/lib.sh
rc=0
"$bin" "$@" || rc=$?

left=$(findmnt -rn -o TARGET | grep -F "$T/" || true)
[ -z "$left" ] || die "the test left mounts behind: $left"
[ "$(losetup -j "$T/disk.img" -n -O NAME | wc -l)" = 1 ] || die "the test left extra loop devices on $T/disk.img"
exit $rc
