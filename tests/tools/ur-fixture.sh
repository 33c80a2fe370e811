# Shell fixture for the backup/restore/crash integration tests; source it after
# tests/integration/lib.sh:
#
#   . "$here/lib.sh"; . "$here/../tools/ur-fixture.sh"
#   ur_fx_init NAME "$@"         # re-exec in a private mount namespace, root, tools, $T, cleanup trap
#   ur_fx_disk 1G 900M [900M]    # GPT image with partitions $UR_FX_LABEL-1.., xfs; $PART1..
#   ur_fx_config ROOT LABEL      # ROOT/etc/upgrade-recovery/config.toml for that partition
#   cli ROOT ARGS...             # the real CLI ($UR_CLI) with --root ROOT
#   check "what" CMD...          # a check: counts a failure (and goes on) when CMD fails
#   ur_fx_done                   # exit 1 if any check failed
#
# Every test gets its own GPT names (urt-NAME-PID-N), so parallel tests never
# find each other's partitions, and runs in its own mount namespace, so the
# CLI's mounts vanish with the test even when it is killed.

ur_fx_failures=0

fail()
{
    ur_fx_failures=$((ur_fx_failures + 1))
    echo "FAIL: $*" >&2
}

check()
{
    _what=$1
    shift
    if "$@"; then
        echo "ok: $_what"
    else
        fail "$_what"
    fi
}

ur_fx_done()
{
    if [ "$ur_fx_failures" -ne 0 ]; then
        echo "$ur_fx_failures check(s) FAILED" >&2
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

ur_fx_cleanup()
{
    set +e
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        # Innermost mounts first (tmpfs below a tree, then the store).
        findmnt -rn -o TARGET | grep -F "$T/" | sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m"
        done
        for img in "$T"/*.img; do
            [ -e "$img" ] && ur_cleanup_image "$img"
        done
        rm -rf "$T"
    fi
}

# ur_fx_init NAME "$@": call first, from the test script itself.
ur_fx_init()
{
    _name=$1
    shift
    require_root
    require_cmd sgdisk partx losetup mkfs.xfs findmnt unshare python3 setfacl getfattr setfattr
    if [ -z "${UR_FX_NS:-}" ]; then
        # A private mount namespace: mounts made by the test and the CLI stay in it.
        UR_FX_NS=1 exec unshare -m --propagation private "$0" "$@"
    fi
    : "${UR_SOURCE_DIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
    : "${UR_BUILD_DIR:=$UR_SOURCE_DIR/build-itest}"
    : "${UR_CLI:=$UR_BUILD_DIR/src/cli/upgrade-recovery}"
    : "${UR_TREE_COMPARE:=$UR_BUILD_DIR/tests/tools/ur-tree-compare}"
    : "${UR_FIXTURE:=$UR_SOURCE_DIR/tests/tools/ur-fixture.py}"
    [ -x "$UR_CLI" ] || die "UR_CLI ($UR_CLI) is not an executable; build first"
    [ -x "$UR_TREE_COMPARE" ] || die "UR_TREE_COMPARE ($UR_TREE_COMPARE) is not an executable; build first"
    [ -f "$UR_FIXTURE" ] || die "UR_FIXTURE ($UR_FIXTURE) is missing"
    export UR_CLI UR_TREE_COMPARE UR_FIXTURE
    T=$(ur_mktemp)
    UR_FX_LABEL="urt-$_name-$$"
    trap ur_fx_cleanup EXIT
    trap 'exit 130' INT TERM
    echo "test dir $T, partition names $UR_FX_LABEL-N"
}

# ur_fx_disk IMAGE-SIZE PART-SIZE... : one xfs partition per size, named
# $UR_FX_LABEL-1, -2...; their devices in PART1, PART2...
ur_fx_disk()
{
    _size=$1
    shift
    _specs=""
    _n=0
    for _p in "$@"; do
        _n=$((_n + 1))
        _specs="$_specs $UR_FX_LABEL-$_n:$_p"
    done
    # shellcheck disable=SC2086 # labels have no spaces
    ur_gpt_image "$T/disk.img" "$_size" $_specs
    LOOP=$(ur_loop_attach "$T/disk.img")
    _i=0
    while [ $_i -lt $_n ]; do
        _i=$((_i + 1))
        _dev=$(ur_loop_partition "$LOOP" $_i)
        ur_mkfs_xfs "$_dev"
        eval "PART$_i=\$_dev"
    done
}

# ur_fx_config ROOT LABEL [EXTRA-TOML]
ur_fx_config()
{
    mkdir -p "$1/etc/upgrade-recovery"
    cat >"$1/etc/upgrade-recovery/config.toml" <<EOF
# written by the test: its own partition, no etcd, no ostree, a small margin
[partition]
label = "$2"

[backup]
free_space_margin = "1MiB"

[etcd]
mode = "off"

[ostree]
mode = "off"
${3:-}
EOF
}

# The units offline phase 1 edits: kubelet (enabled, as on a node) and a stand-in
# for the phase 2 unit with the [Install] section the real one has.
ur_fx_units()
{
    mkdir -p "$1/usr/lib/systemd/system"
    cat >"$1/usr/lib/systemd/system/upgrade-recovery-phase2.service" <<'EOF'
[Unit]
Description=Upgrade recovery: phase 2 (test stand-in)
[Service]
Type=oneshot
ExecStart=/usr/bin/upgrade-recovery recover --resume
[Install]
WantedBy=multi-user.target
EOF
}

cli()
{
    _root=$1
    shift
    "$UR_CLI" --root "$_root" "$@"
}

# stopped_at FAILPOINT OUT ERR ROOT ARGS...: the CLI in the background, stopped
# (SIGSTOP, UR_FAILPOINT_ACTION=stop) when it reaches FAILPOINT; its pid in $pid.
# Fails when it did not stop within 30 s.
stopped_at()
{
    _fp=$1 _out=$2 _err=$3
    shift 3
    # The CLI itself, not a subshell: $pid must be what a signal is sent to.
    UR_FAILPOINT=$_fp UR_FAILPOINT_ACTION=stop "$UR_CLI" --root "$@" >"$_out" 2>"$_err" &
    pid=$!
    for _ in $(seq 1 1500); do
        [ "$(ps -o state= -p "$pid" | tr -d ' ')" = T ] && return 0
        sleep 0.02
    done
    return 1
}

# run_rc WANT OUT ERR CMD...: run, keep stdout/stderr, succeed when the exit code is WANT.
run_rc()
{
    _want=$1 _out=$2 _err=$3
    shift 3
    _rc=0
    "$@" >"$_out" 2>"$_err" || _rc=$?
    if [ "$_rc" != "$_want" ]; then
        echo "  '$*' exited $_rc, expected $_want" >&2
        sed 's/^/  stdout: /' "$_out" | head -20 >&2
        sed 's/^/  stderr: /' "$_err" | head -20 >&2
        return 1
    fi
    return 0
}

# json FILE PYTHON-EXPR: evaluate EXPR with `j` bound to the parsed JSON document; print the result.
json()
{
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); r=eval(sys.argv[2]); print(r if not isinstance(r,bool) else str(r).lower())' "$1" "$2"
}

# tree_equal A B [ur-tree-compare options]: equal trees, differences printed.
tree_equal()
{
    _rc=0
    _o=$("$UR_TREE_COMPARE" "$@" 2>&1) || _rc=$?
    printf '%s\n' "$_o" | tail -n 30 | sed 's/^/  /'
    return $_rc
}

# fx_digest DIR [--strict] [--exclude REL]...: one sha256 over the tree.
fx_digest()
{
    python3 "$UR_FIXTURE" digest "$@"
}
