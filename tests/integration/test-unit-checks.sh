#!/bin/bash
# arm, watchdog start and status say when a unit that must act after the next boot
# will not (systemctl --root is-enabled, on a temporary root with our unit files):
#  - phase 2 unit masked: arm and watchdog start warn with the unmask + enable
#    command, status prints a WARNING line and units.*.state in --json; phase 1
#    then really fails at enable-phase2 after kubelet was disabled;
#  - watchdog unit disabled: watchdog start warns with the enable command, status too;
#  - both enabled: no warning; phase 2 unit disabled before phase 1: none either
#    (phase 1 enables it, seen here), but once phase 2 is pending a disabled one is;
#  - no systemctl: a note that it cannot tell, no warning; the commands succeed.
# A plain-directory store in temporary roots: no partition needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd python3 systemctl
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT

P2=upgrade-recovery-phase2.service
WDU=upgrade-recovery-watchdog.service
fails=0
ok() { echo "ok: $1"; }
bad()
{
    echo "FAIL: $1" >&2
    fails=$((fails + 1))
}
# has FILE TEXT WHAT / hasnt FILE TEXT WHAT
has() { if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: '$2' not in: $(cat "$1")"; fi; }
hasnt() { if grep -qF -- "$2" "$1"; then bad "$3: '$2' in: $(cat "$1")"; else ok "$3"; fi; }
# is WHAT CMD...: CMD must succeed.
is()
{
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# make_root DIR: an SNO-like root with our two units installed (neither enabled).
make_root()
{
    local r=$1
    mkdir -p "$r/etc/systemd/system" "$r/usr/local/bin" "$r/var/lib/kubelet" "$r/var/recovery" \
        "$r/usr/lib/systemd/system"
    echo node-0 >"$r/etc/hostname"
    echo pod >"$r/var/lib/kubelet/pod"
    cp "$UR_SOURCE_DIR/units/$P2.in" "$r/usr/lib/systemd/system/$P2"
    cp "$UR_SOURCE_DIR/units/$WDU.in" "$r/usr/lib/systemd/system/$WDU"
    printf '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' \
        >"$r/usr/lib/systemd/system/kubelet.service"
    sctl "$r" enable kubelet.service
}
sctl()
{
    local r=$1
    shift
    systemctl --root="$r" "$@" >/dev/null 2>&1 || die "systemctl --root=$r $*"
}
CFG=$T/config.toml
ur_plain_store_config "$CFG" "ur-unit-checks-none-$$"
cli()
{
    local r=$1
    shift
    "$UR_CLI" --root "$r" --config "$CFG" "$@"
}
# run OUT ERR ROOT ARGS...: exit 0 wanted.
run()
{
    local out=$1 err=$2
    shift 2
    cli "$@" >"$out" 2>"$err" || die "upgrade-recovery $*: exit $?: $(cat "$err")"
}

# --- phase 2 unit masked, watchdog unit disabled ------------------------------------------
R=$T/root
make_root "$R"
sctl "$R" mask "$P2"
run "$T/b.out" "$T/b.err" "$R" backup # the mask is in the backup's /etc too

run "$T/arm.out" "$T/arm.err" "$R" arm
has "$T/arm.err" "warning: $P2 is masked" "arm warns of the masked phase 2 unit"
has "$T/arm.err" "run 'systemctl --root=$R unmask $P2 && systemctl --root=$R enable $P2'" \
    "... naming the commands that fix it"
has "$T/arm.err" "enable-phase2" "... and what phase 1 then fails at"
hasnt "$T/arm.err" "$WDU" "arm says nothing of the watchdog unit"
is "arm armed all the same" test -e "$R/var/recovery/recovery/armed"

run "$T/s.out" "$T/s.err" "$R" status
has "$T/s.out" "WARNING: $P2 is masked" "status prints a WARNING line for it"
hasnt "$T/s.out" "WARNING: $WDU" "status: no watchdog, no warning of its unit"
run "$T/s.json" "$T/sj.err" "$R" --json status
is "status --json: phase 2 unit masked" test "$(json "$T/s.json" "j['units']['$P2']['state']")" = masked
is "status --json: its warning" test "$(json "$T/s.json" "j['units']['$P2']['warning'] != ''")" = True
is "status --json: watchdog unit disabled" test "$(json "$T/s.json" "j['units']['$WDU']['state']")" = disabled

# What the warning is about: phase 1 disables kubelet, then cannot enable phase 2.
rc=0
cli "$R" recover >"$T/r.out" 2>"$T/r.err" || rc=$?
is "phase 1 with the phase 2 unit masked fails (exit $rc)" test $rc != 0
has "$T/r.err" "masked" "... because the unit is masked"
is "... after kubelet was disabled" test ! -e "$R/etc/systemd/system/multi-user.target.wants/kubelet.service"
cli "$R" recover --abandon >/dev/null 2>&1 || die "recover --abandon"

sctl "$R" unmask "$P2"
run "$T/w.out" "$T/w.err" "$R" watchdog start --timeout 60
has "$T/w.err" "warning: $WDU is not enabled" "watchdog start warns of the disabled watchdog unit"
has "$T/w.err" "run 'systemctl --root=$R enable $WDU'" "... naming the command that fixes it"
hasnt "$T/w.err" "warning: $P2" "... and not of a phase 2 unit phase 1 will enable"
run "$T/ws.out" "$T/ws.err" "$R" status
has "$T/ws.out" "WARNING: $WDU is not enabled" "status warns of it while the watchdog runs"
sctl "$R" mask "$P2"
run "$T/w2.out" "$T/w2.err" "$R" watchdog start --timeout 60
has "$T/w2.err" "warning: $P2 is masked" "watchdog start warns of a masked phase 2 unit too"
sctl "$R" unmask "$P2"

# --- both enabled: silence ----------------------------------------------------------------
sctl "$R" enable "$P2" "$WDU"
run "$T/w3.out" "$T/w3.err" "$R" watchdog start --timeout 60
hasnt "$T/w3.err" "upgrade-recovery-" "watchdog start with both units enabled warns of neither"
run "$T/s3.out" "$T/s3.err" "$R" status
hasnt "$T/s3.out" "WARNING" "status with both units enabled has no WARNING"
run "$T/s3.json" "$T/s3j.err" "$R" --json status
is "status --json: both enabled, no warning" \
    test "$(json "$T/s3.json" '",".join(u["state"]+":"+u["warning"] for u in j["units"].values())')" = "enabled:,enabled:"
run "$T/st.out" "$T/st.err" "$R" watchdog stop

# --- phase 2 unit disabled: phase 1 enables it; once pending, disabled is a problem ---------
R2=$T/root2
make_root "$R2"
run "$T/b2.out" "$T/b2.err" "$R2" backup
run "$T/a2.out" "$T/a2.err" "$R2" arm
hasnt "$T/a2.err" "$P2" "arm does not warn of a disabled phase 2 unit (phase 1 enables it)"
run "$T/r2.out" "$T/r2.err" "$R2" recover
is "... as phase 1 did (enable-phase2)" test -L "$R2/etc/systemd/system/multi-user.target.wants/$P2"
run "$T/s4.out" "$T/s4.err" "$R2" status
hasnt "$T/s4.out" "WARNING: $P2" "status: phase 2 pending, its unit enabled: no warning"
sctl "$R2" disable "$P2"
run "$T/s5.out" "$T/s5.err" "$R2" status
has "$T/s5.out" "WARNING: $P2 is not enabled: phase 2 is pending" "status warns: phase 2 pending, its unit disabled"
has "$T/s5.out" "run 'systemctl --root=$R2 enable $P2'" "... naming the command"

# --- no systemctl: cannot tell ------------------------------------------------------------
R3=$T/root3
make_root "$R3"
run "$T/b3.out" "$T/b3.err" "$R3" backup
mkdir "$T/empty-path"
PATH=$T/empty-path "$UR_CLI" --root "$R3" --config "$CFG" watchdog start --timeout 60 >"$T/w4.out" 2>"$T/w4.err" ||
    die "watchdog start without systemctl: $(cat "$T/w4.err")"
has "$T/w4.err" "note: cannot tell whether $P2 is enabled" "without systemctl: a note for the phase 2 unit"
has "$T/w4.err" "note: cannot tell whether $WDU is enabled" "... and for the watchdog unit"
hasnt "$T/w4.err" "warning: upgrade-recovery-" "... and no warning"

[ $fails = 0 ] || die "$fails check(s) failed"
echo "PASS: test-unit-checks"
