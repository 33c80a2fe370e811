# shellcheck shell=bash
# Helpers of the guest side of the VM harness (installed as /usr/lib/ur-e2e/lib-guest.sh).
# Results go to the serial console as "UR-E2E: ..." lines, which the host reads.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
E2E_STATE=/var/lib/ur-e2e # outside every backed-up tree
mkdir -p "$E2E_STATE"

say() { echo "UR-E2E: $*" >/dev/console; echo "UR-E2E: $*"; }
note() { say "note $*"; }

# The host gets qemu exit code (v<<1)|1 from a write of v to isa-debug-exit (0xf4).
debug_exit() { printf "\\x$(printf %02x "$1")" | dd of=/dev/port bs=1 seek=244 count=1 status=none 2>/dev/null; }

fail() {
    say "FAIL ${E2E_STAGE:-?}: $*"
    # Context for the host's log.
    {
        systemctl --no-pager --failed
        journalctl -b --no-pager -n 80 -o short-monotonic
    } 2>&1 | sed 's/^/UR-E2E-LOG: /' >/dev/console
    sync
    debug_exit 1
    sleep 5
    systemctl poweroff --force --force
}

check() { # description command...
    local what=$1
    shift
    "$@" || fail "$what"
}

# Which stage this boot runs (kernel argument ur_e2e.stage=NAME).
stage_from_cmdline() { sed -n 's/.*ur_e2e\.stage=\([^ ]*\).*/\1/p' /proc/cmdline; }

# Monotonic microseconds of the journal entries of a unit in this boot (the initrd
# part of the journal included): the start job message and the finish.
unit_runtime_ms() { # unit -> milliseconds between "Starting" and "Finished"/"Deactivated", or ""
    journalctl -b -o export --output-fields=MESSAGE_ID,__MONOTONIC_TIMESTAMP,UNIT,JOB_RESULT -u "$1" 2>/dev/null |
        awk -F= '
        /^__MONOTONIC_TIMESTAMP=/ { ts = $2 }
        /^MESSAGE_ID=7d4958e842da4a758f6c1cdc7b36dcc5/ { if (start == "") start = ts }   # starting
        /^MESSAGE_ID=39f53479d3a045ac8e11786248231fbf/ { done = ts }                    # started / finished
        END { if (start != "" && done != "") printf "%.0f\n", (done - start) / 1000 }'
}

# The listing the trees are compared by: every entry's type, mode, owner, group, size
# (not of directories), mtime in ns, link count (not of directories), symlink target,
# allocated blocks, content digest and every xattr (SELinux labels and ACLs included).
E2E_TREES="/etc /usr/local /var/lib/kubelet"
listing() { # out-file [trees...]
    local out=$1
    shift
    local trees="" t
    # Resolved: on the ostree variant /usr/local is a symlink to /var/usrlocal.
    for t in ${*:-$E2E_TREES}; do trees="${trees:+$trees }$(readlink -f "$t")"; done
    {
        # shellcheck disable=SC2086
        find $trees -xdev \( -type d -printf 'meta %p d %m %U:%G - %T@ - -\n' \) -o \
            \( -printf 'meta %p %y %m %U:%G %s %T@ %n %b %l\n' \)
        # shellcheck disable=SC2086
        find $trees -xdev -type f -print0 | xargs -0 -r sha256sum | awk '{ h = $1; $1 = ""; print "data" $0 " " h }'
        # shellcheck disable=SC2086
        getfattr -R -P -d -m - -e hex --absolute-names $trees 2>/dev/null |
            awk '/^# file: / { f = substr($0, 9); next } /=/ { print "xattr " f " " $0 }'
    } | LC_ALL=C sort >"$out"
}

# Compare two listings; lines about paths matching the allow regex are reported but
# do not count. Prints the differences; returns 1 when any counts.
compare_listings() { # expected actual allow-regex
    local d
    d=$(diff "$1" "$2" | grep '^[<>]')
    [ -z "$d" ] && return 0
    local bad
    if [ -n "${3:-}" ]; then
        bad=$(grep -Ev "^[<>] (meta|data|xattr) ($3)( |$)" <<<"$d" || true)
    else
        bad=$d
    fi
    grep -E "^[<>] (meta|data|xattr) ($3)( |$)" <<<"$d" 2>/dev/null | sed 's/^/UR-E2E: note allowed difference: /' >/dev/console
    [ -z "$bad" ] && return 0
    sed 's/^/UR-E2E: diff: /' <<<"$bad" | head -n 60 >/dev/console
    return 1
}

etcdctl_local() { ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 --command-timeout=20s "$@"; }
wait_etcd() { # seconds
    local i
    for ((i = 0; i < $1 * 2; i++)); do
        etcdctl_local endpoint health >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

# The recovery partition's state in one line per fact (for "nothing changed").
partition_state() {
    local m=/var/recovery
    (cd "$m" && find . -path ./backups -prune -o -printf '%p %y %s %T@\n' | LC_ALL=C sort)
    ls "$m/backups" 2>/dev/null
    [ -e "$m/recovery/journal" ] && sha256sum "$m/recovery/journal"
}
