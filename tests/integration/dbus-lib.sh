# Fixture for the D-Bus tests: a private system bus that includes our policy file,
# a sandbox root, upgrade-recoveryd serving it, and busctl helpers.
#
#   . "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
#   dbus_setup                # root, tools, temp dir, bus, sandbox tree, cleanup trap
#   dbus_start_daemon         # upgrade-recoveryd --root $ROOT --config $CFG
#   J=$(mcall StartBackup 'a{sv}' 0 | objpath); wait_job "$J"
#
# Everything goes through the real dbus-daemon and busctl; error names are read with
# gdbus (busctl prints only the message). Each test gets its own bus, root and
# store, so the tests run in parallel.
# shellcheck shell=bash

. "$UR_SOURCE_DIR/tests/integration/lib.sh"

BUS_NAME=io.openshift.UpgradeRecovery1
MGR_PATH=/io/openshift/UpgradeRecovery1
MGR_IFACE=io.openshift.UpgradeRecovery1.Manager
JOB_IFACE=io.openshift.UpgradeRecovery1.Job
ERR=io.openshift.UpgradeRecovery1.Error
DAEMON=${UR_DAEMON:-$UR_BUILD_DIR/src/daemon/upgrade-recoveryd}
POLICY=$UR_SOURCE_DIR/units/io.openshift.UpgradeRecovery1.conf

T= ROOT= CFG= STORE= BUS_PID= DAEMON_PID=
_cleanup_cmds=()

log() { echo "# $*" >&2; }
ok() { echo "ok: $*" >&2; }

dbus_cleanup()
{
    local c
    dbus_stop_daemon
    for c in "${_cleanup_cmds[@]}"; do eval "$c" || true; done
    [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
    if [ -n "$T" ] && [ -z "${UR_KEEP_TMP:-}" ]; then
        # The tmpfs goes with everything on it; a plain directory is removed.
        if mountpoint -q "$T"; then umount -l "$T" && rmdir "$T"; else rm -rf "$T"; fi
    fi
}

on_exit() { _cleanup_cmds+=("$1"); }

# The bus config: type system, our socket, EXTERNAL auth, the distribution's default
# policy (copied from system.conf, so the test sees what a node sees) plus our policy
# file. $1: extra XML (e.g. a <servicedir> for activation).
dbus_write_config()
{
    local policy
    policy=$(xmllint --xpath '/busconfig/policy' /usr/share/dbus-1/system.conf) ||
        die "cannot read the default policy from /usr/share/dbus-1/system.conf"
    cat >"$T/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$T/bus.sock</listen>
  <auth>EXTERNAL</auth>
  ${1:-}
  $policy
  <include>$POLICY</include>
</busconfig>
XML
}

dbus_start_bus()
{
    dbus-daemon --config-file="$T/bus.conf" --print-address=3 --print-pid=4 --fork 3>"$T/bus.addr" 4>"$T/bus.pid" ||
        die "dbus-daemon did not start"
    # --fork returns once the bus listens and the address is printed: real readiness.
    BUS_PID=$(cat "$T/bus.pid")
    DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$T/bus.addr")
    [ -n "$DBUS_SYSTEM_BUS_ADDRESS" ] || die "dbus-daemon printed no address"
    export DBUS_SYSTEM_BUS_ADDRESS
    # Readable by the unprivileged caller of the auth test.
    chmod 755 "$T"
}

# A sandbox root with the three default trees, a plain-directory store under
# var/recovery and a config with small limits. The partition label is unique, so a
# parallel test's loop partition is never taken for ours.
dbus_make_root()
{
    ROOT=$T/root
    STORE=$ROOT/var/recovery
    mkdir -p "$ROOT/etc/kubernetes" "$ROOT/usr/local/bin" "$ROOT/var/lib/kubelet/pki" "$STORE"
    echo "node-0" >"$ROOT/etc/hostname"
    echo "apiVersion: v1" >"$ROOT/etc/kubernetes/kubelet.conf"
    printf '#!/bin/sh\necho tool\n' >"$ROOT/usr/local/bin/tool"
    chmod 755 "$ROOT/usr/local/bin/tool"
    echo "cert" >"$ROOT/var/lib/kubelet/pki/kubelet.crt"
    CFG=$T/config.toml
    cat >"$CFG" <<TOML
[partition]
label = "ur-dbus-none-$$"
allow_plain_directory = true

[backup]
retention = 2
free_space_margin = 0
timeout = ${BACKUP_TIMEOUT:-600}
# Slow and predictable: the tests act while a backup runs, and the machine is shared.
copy_threads = 1
share_unchanged = false

[ostree]
mode = "off"

[etcd]
mode = "off"

[daemon]
idle_exit = ${IDLE_EXIT:-0}
TOML
}

# dbus_big_tree N: N files of 4 KiB under var/lib/kubelet/pods, so a backup takes a
# few seconds (the Busy, Cancel, SIGKILL and load tests act while it runs).
dbus_big_tree()
{
    local n=$1 d=$ROOT/var/lib/kubelet/pods i
    head -c 4096 /dev/urandom >"$T/blob"
    for ((i = 0; i < n; i += 100)); do
        mkdir -p "$d/p$i"
        # One blob to a hundred names per tee: fast enough for tens of thousands.
        (cd "$d/p$i" && tee f{0..99} <"$T/blob" >/dev/null) || die "cannot create the test tree"
        echo "$i" >>"$d/p$i/f0" # distinct content per directory
    done
}

dbus_setup()
{
    require_root
    require_cmd dbus-daemon busctl gdbus xmllint setpriv
    [ -x "$DAEMON" ] || die "no daemon binary at $DAEMON"
    T=$(ur_mktemp)
    trap dbus_cleanup EXIT
    # A tmpfs of its own: tens of thousands of files come and go per test, and the
    # shared disk makes that slow (rm -rf alone took 30 s under load). UR_DBUS_TMPFS=0
    # keeps the test on disk.
    if [ "${UR_DBUS_TMPFS:-1}" = 1 ]; then
        mount -t tmpfs -o size=2g,mode=0755 ur-dbus-test "$T" || die "cannot mount a tmpfs on $T"
    fi
    dbus_write_config "${1:-}"
    dbus_start_bus
    dbus_make_root
}

bus_has_owner()
{
    busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s "$BUS_NAME" 2>/dev/null |
        grep -q true
}

# dbus_throttle PID PERCENT: cap the process at PERCENT of one CPU (cgroup v1 cpu
# quota), so a backup of a given tree takes seconds on a fast idle machine too; calls
# still answer within a scheduling period (100 ms). Without a writable cpu controller
# the process runs unthrottled and the test relies on the size of its tree.
CG=
dbus_throttle()
{
    local base=/sys/fs/cgroup/cpu
    if [ -z "$CG" ]; then
        [ -w "$base/cgroup.procs" ] || { log "no writable cgroup v1 cpu controller: not throttling"; return 0; }
        CG=$base/ur-dbus-test-$$
        mkdir -p "$CG" && echo 100000 >"$CG/cpu.cfs_period_us" && echo $(($2 * 1000)) >"$CG/cpu.cfs_quota_us" || {
            log "cannot set up $CG: not throttling"
            CG=
            return 0
        }
        on_exit "rmdir $CG 2>/dev/null"
    fi
    echo "$1" >"$CG/cgroup.procs" || log "cannot move $1 into $CG"
}

# Start upgrade-recoveryd in the background and wait until it owns the name.
# THROTTLE=PERCENT runs it under dbus_throttle.
dbus_start_daemon()
{
    "$DAEMON" --root "$ROOT" --config "$CFG" "$@" >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    [ -n "${THROTTLE:-}" ] && dbus_throttle "$DAEMON_PID" "$THROTTLE"
    local i
    for ((i = 0; i < 200; i++)); do
        bus_has_owner && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$T/daemon.log" >&2; die "upgrade-recoveryd exited at start"; }
        sleep 0.05
    done
    die "upgrade-recoveryd did not take $BUS_NAME within 10 s"
}

# SIGTERM (a running job is cancelled), then SIGKILL after 10 s.
dbus_stop_daemon()
{
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}

# mcall METHOD SIGNATURE ARGS...: a Manager method through busctl.
mcall() { busctl --system call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" "$@"; }
# jcall PATH METHOD [SIGNATURE ARGS...]: a Job method.
jcall()
{
    local p=$1
    shift
    busctl --system call "$BUS_NAME" "$p" "$JOB_IFACE" "$@"
}
# 'o "/io/..."' -> /io/...
objpath() { sed -nE 's/^o "(.*)"$/\1/p'; }

# The value of a property without its type: 's "Idle"' -> Idle, 'u 42' -> 42.
_value() { sed -E '1s/^[a-z]+ //; 1s/^"(.*)"$/\1/'; }
# Both fail (status 1) when the call fails.
mprop()
{
    local v
    v=$(busctl --system get-property "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" "$1") || return 1
    _value <<<"$v"
}
jprop()
{
    local v
    v=$(busctl --system get-property "$BUS_NAME" "$1" "$JOB_IFACE" "$2") || return 1
    _value <<<"$v"
}

# wait_job PATH [SECONDS]: poll until the job's State is final; prints it.
wait_job()
{
    local p=$1 limit=${2:-300} i s
    for ((i = 0; i < limit * 10; i++)); do
        s=$(jprop "$p" State) || die "job $p: cannot read State"
        case $s in
        Succeeded | Timeout | Cancelled | Error)
            echo "$s"
            return 0
            ;;
        esac
        sleep 0.1
    done
    die "job $p did not finish within $limit s (State $s)"
}

# wait_progress PATH MIN: until the job reports at least MIN percent (and still runs).
wait_progress()
{
    local p=$1 min=$2 i pr s
    for ((i = 0; i < 600; i++)); do
        s=$(jprop "$p" State) || die "job $p: cannot read State"
        pr=$(jprop "$p" Progress) || die "job $p: cannot read Progress"
        [ "$s" = Active ] && [ "$pr" -ge "$min" ] && return 0
        case $s in Succeeded | Timeout | Cancelled | Error) die "job $p ended ($s) before reaching $min% (make the tree bigger)" ;; esac
        sleep 0.05
    done
    die "job $p never reached $min%"
}

# gcall METHOD ARGS...: a Manager method through gdbus, which prints the error name.
gcall() { gdbus call --system --dest "$BUS_NAME" --object-path "$MGR_PATH" --method "$MGR_IFACE.$1" "${@:2}" 2>&1; }

# expect_error NAME OUTPUT: the call's output names the D-Bus error NAME.
expect_error()
{
    local name=$1 out=$2
    grep -qF "GDBus.Error:$name:" <<<"$out" || die "expected $name, got: $out"
    ok "$name: ${out#*"GDBus.Error:$name: "}"
}

# The daemon still answers (Peer.Ping and a property read).
daemon_alive()
{
    busctl --system call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Peer Ping >/dev/null ||
        die "upgrade-recoveryd does not answer Ping"
    mprop State >/dev/null || die "upgrade-recoveryd does not answer a property read"
}

# latest_id: what the store's `latest` points at.
latest_id() { basename "$(readlink "$STORE/latest")"; }

# verify_ok [ID]: a VerifyBackup job for ID (default latest) succeeds.
verify_ok()
{
    local j s
    j=$(mcall VerifyBackup 'sa{sv}' "${1:-}" 0 | objpath) || die "VerifyBackup call failed"
    s=$(wait_job "$j")
    [ "$s" = Succeeded ] || die "verify of ${1:-latest} ended $s: $(jprop "$j" Message)"
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" "$@"; }
