# Shared fixture for integration tests and scripts: GPT disk images, loop
# devices, xfs, and skip helpers. Source it from bash or POSIX sh:
#
#   . "$UR_SOURCE_DIR/tests/integration/lib.sh"
#   require_root; require_cmd sgdisk partx losetup mkfs.xfs
#   T=$(ur_mktemp); trap 'ur_cleanup_image "$T/disk.img"; rm -rf "$T"' EXIT
#   ur_gpt_image "$T/disk.img" 400M "recovery-test-$$:320M"   # xfs needs >= 300M; the file stays sparse
#   L=$(ur_loop_attach "$T/disk.img"); P=$(ur_loop_partition "$L" 1); ur_mkfs_xfs "$P"
#
# Failures call `die` (exit 1); inside $(...) that only ends the subshell, so
# callers run with `set -e` (or check the status) to stop the test.
#
# The kernel here has no EFI partition support (losetup -P makes no partitions)
# and no udev runs, so partitions come from `partx -a` and /dev/disk/by-* does
# not exist. Give every test its own GPT names (e.g. recovery-test-$$) so
# parallel tests never find each other's partitions.

# Exit 77 (meson/automake "skipped") with the reason on stderr.
skip()
{
    echo "SKIP: $*" >&2
    exit 77
}

require_root()
{
    [ "$(id -u)" = 0 ] || skip "needs root (loop devices, partx, mount)"
}

require_cmd()
{
    for _c in "$@"; do
        command -v "$_c" >/dev/null 2>&1 || skip "$_c is not installed (scripts/install-deps.sh test)"
    done
}

# Fail the test with a message (exit 1).
die()
{
    echo "FAIL: $*" >&2
    exit 1
}

# A fresh private directory on disk (not /dev/shm: loop files want a real fs).
ur_mktemp()
{
    mktemp -d "${TMPDIR:-/var/tmp}/ur-test.XXXXXX"
}

# ur_plain_store_config FILE LABEL: a configuration for a plain-directory store at the
# root's mount point (no partition is named LABEL), no space margin, ostree and etcd off.
ur_plain_store_config()
{
    cat >"$1" <<TOML
[partition]
label = "$2"
allow_plain_directory = true
[backup]
free_space_margin = 0
[ostree]
mode = "off"
[etcd]
mode = "off"
TOML
}

# ur_plain_sandbox ROOT CFG LABEL: a small host root (/etc/hostname, /usr/local/bin,
# /var/lib/kubelet/pod) and, in CFG, ur_plain_store_config's configuration for a
# plain-directory store at ROOT/var/recovery, which is not made here.
ur_plain_sandbox()
{
    mkdir -p "$1/etc" "$1/usr/local/bin" "$1/var/lib/kubelet"
    echo node-0 >"$1/etc/hostname"
    echo pod >"$1/var/lib/kubelet/pod"
    ur_plain_store_config "$2" "$3"
}

# ur_gpt_image IMG SIZE NAME:SIZE [NAME:SIZE ...]
# Create a sparse image with a GPT holding one partition per argument, in order
# (partition N is the N-th argument, type 8300, GPT name NAME). SIZE as for
# truncate/sgdisk (64M, 1G); the last partition may use SIZE 0 for "the rest".
# Never `sgdisk -q`: it exits 0 without writing anything. The table is checked
# with `sgdisk -p` afterwards.
ur_gpt_image()
{
    _img=$1 _size=$2
    shift 2
    [ $# -gt 0 ] || die "ur_gpt_image: no partitions given"
    rm -f "$_img"
    truncate -s "$_size" "$_img" || die "truncate $_img"
    _n=0 _args="--clear"
    for _spec in "$@"; do
        _n=$((_n + 1))
        _name=${_spec%:*} _psize=${_spec##*:}
        if [ "$_psize" = 0 ]; then _end=0; else _end="+$_psize"; fi
        _args="$_args -n $_n:0:$_end -t $_n:8300 -c $_n:$_name"
    done
    # shellcheck disable=SC2086 # _args is a word list we built; names have no spaces
    sgdisk $_args "$_img" >/dev/null || die "sgdisk $_args $_img failed"
    _table=$(sgdisk -p "$_img") || die "sgdisk -p $_img failed"
    _n=0
    for _spec in "$@"; do
        _n=$((_n + 1))
        _name=${_spec%:*}
        echo "$_table" | awk -v n="$_n" -v name="$_name" '$1 == n && $NF == name { ok = 1 } END { exit !ok }' ||
            die "sgdisk did not write partition $_n '$_name' to $_img: $_table"
    done
}

# ur_loop_attach IMG -> prints /dev/loopN. Partitions are not created (see ur_loop_partition).
ur_loop_attach()
{
    _l=$(losetup -f --show "$1") || die "losetup -f --show $1 failed"
    echo "$_l"
}

# ur_loop_partition LOOP N -> prints LOOPpN after asking the kernel for the
# partitions with partx (BLKPG; no udev needed, devtmpfs makes the node). The
# node must carry the device number sysfs gives this loop's partition: a loop
# number just freed by another test can leave its stale LOOPpN node behind for
# a moment, and mkfs or mount on that fails.
ur_loop_partition()
{
    _l=$1 _n=$2 _b=${1#/dev/}
    if [ ! -e "/sys/block/$_b/${_b}p$_n/dev" ]; then
        partx -a "$_l" 2>/dev/null || partx -u "$_l" || die "partx -a $_l failed"
    fi
    _i=0
    while :; do
        _want=$(cat "/sys/block/$_b/${_b}p$_n/dev" 2>/dev/null || true)
        if [ -n "$_want" ] && [ -b "${_l}p$_n" ]; then
            _have=$(stat -c '%t %T' "${_l}p$_n" | { read -r _ma _mi; printf '%d:%d' "0x$_ma" "0x$_mi"; })
            [ "$_have" = "$_want" ] && break
        fi
        _i=$((_i + 1))
        [ $_i -lt 200 ] || die "no device node ${_l}p$_n for $_want after partx -a $_l"
        sleep 0.05
    done
    echo "${_l}p$_n"
}

# ur_mkfs_xfs DEV [LABEL]
ur_mkfs_xfs()
{
    if [ -n "${2:-}" ]; then
        mkfs.xfs -q -f -L "$2" "$1" || die "mkfs.xfs $1 failed"
    else
        mkfs.xfs -q -f "$1" || die "mkfs.xfs $1 failed"
    fi
}

# ur_cleanup_loop LOOP: unmount everything mounted from the loop device or its
# partitions (innermost first), drop the partitions, detach. Idempotent.
ur_cleanup_loop()
{
    _l=$1
    [ -b "$_l" ] || return 0
    for _d in "$_l" "$_l"p*; do
        [ -b "$_d" ] || continue
        # Repeat: a device can be mounted more than once (overmounts, bind mounts).
        _i=0
        while _t=$(findmnt -rn -S "$_d" -o TARGET | tail -n 1) && [ -n "$_t" ] && [ $_i -lt 20 ]; do
            umount "$_t" 2>/dev/null || umount -l "$_t" || break
            _i=$((_i + 1))
        done
    done
    if ls "$_l"p* >/dev/null 2>&1; then
        partx -d "$_l" 2>/dev/null || echo "warning: partx -d $_l failed" >&2
    fi
    losetup -d "$_l" 2>/dev/null || true
}

# ur_cleanup_image IMG: clean up every loop device backed by IMG (found with
# `losetup -j`, so it works from a trap without remembered state). Idempotent.
ur_cleanup_image()
{
    [ -e "$1" ] || return 0
    for _l in $(losetup -j "$1" -O NAME -n 2>/dev/null); do
        ur_cleanup_loop "$_l"
    done
    return 0
}

# ur_reseal_metadata FILE: after a test edited a backup's metadata.toml on purpose,
# write its checksum line again (the last line: "# sha256 " and the sha256 of every
# byte before it), as a hostile writer could; without it the file is just Corrupt.
ur_reseal_metadata()
{
    sed '$d' "$1" >"$1.resealed"
    printf '# sha256 %s\n' "$(sha256sum <"$1.resealed" | cut -d' ' -f1)" >>"$1.resealed"
    mv "$1.resealed" "$1"
}
