#!/bin/bash
# `recover --initrd` without --root works on /sysroot, configuration included: the
# retry an administrator types in the emergency shell (upgrade-recovery-dracut(7))
# must read the real root's settings, as the unit (--root /sysroot) does, not the
# initramfs's own /etc. The initramfs is played by a chroot into an overlay of
# this machine's / (upper layer on a tmpfs, so nothing of the host changes) in
# which /sysroot exists.
#  - a broken /sysroot config: the boot goes on (exit 0) and the reason names
#    /sysroot/etc/upgrade-recovery/config.toml;
#  - a /sysroot config naming a partition that does not exist: the reason names
#    that label, not the default 'recovery';
#  - in text, nothing printed when not on a terminal, and on one (script(1)'s pty)
#    "nothing armed" with the reason;
#  - --root given: that root's configuration, as before.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

require_root
require_cmd unshare chroot script
[ -n "${UR_CLI:-}" ] || die "UR_CLI is not set (run through meson test)"

if [ -z "${UR_IN_NS:-}" ]; then
    exec env UR_IN_NS=1 unshare --mount --propagation private "$0" "$@"
fi

T=$(ur_mktemp)
trap 'umount -R "$T/m" 2>/dev/null || true; umount "$T" 2>/dev/null || true; rm -rf "$T"' EXIT
mount -t tmpfs tmpfs "$T"
mkdir "$T/u" "$T/w" "$T/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/u,workdir=$T/w" "$T/m" 2>/dev/null ||
    skip "cannot mount an overlay of / here"
for d in proc sys dev; do mount --rbind "/$d" "$T/m/$d"; done
[ ! -e "$T/m/sysroot" ] || skip "this machine has a /sysroot"
cp "$UR_CLI" "$T/m/ur-cli" # the build directory may be on another mount
mkdir -p "$T/m/sysroot/etc/upgrade-recovery" "$T/m/other/etc/upgrade-recovery"
cfg=$T/m/sysroot/etc/upgrade-recovery/config.toml
fails=0
expect()
{
    local what=$1 want=$2 out=$3
    if printf '%s' "$out" | grep -qF -- "$want"; then
        echo "ok: $what"
    else
        echo "FAIL: $what: wanted '$want' in: $out" >&2
        fails=$((fails + 1))
    fi
}
run() { chroot "$T/m" /ur-cli --json "$@" recover --initrd 2>/dev/null; }

printf 'bogus = 1\n' >"$cfg"
out=$(run) || die "recover --initrd with a broken /sysroot config failed (a boot must go on): $out"
expect "a broken /sysroot configuration is the one read" \
    '"reason":"configuration unreadable: /sysroot/etc/upgrade-recovery/config.toml:1:1' "$out"

label=urt-initrd-root-$$-none
printf '[partition]\nlabel = "%s"\n' "$label" >"$cfg"
out=$(run) || die "recover --initrd failed: $out"
expect "the /sysroot configuration's partition label is used" "$label" "$out"

# Text: quiet on every boot (the unit's output goes to the console), but typed at a
# terminal (the emergency shell) it says why nothing ran.
out=$(chroot "$T/m" /ur-cli recover --initrd 2>/dev/null) || die "recover --initrd (text) failed: $out"
[ -z "$out" ] && echo "ok: nothing printed when not on a terminal" ||
    { echo "FAIL: printed when not on a terminal: $out" >&2; fails=$((fails + 1)); }
out=$(script -qec "chroot $T/m /ur-cli recover --initrd" /dev/null 2>&1) || die "recover --initrd on a pty failed: $out"
expect "on a terminal, 'nothing armed' and why" "upgrade-recovery: nothing armed (no recovery partition" "$out"

printf 'bogus = 2\n' >"$T/m/other/etc/upgrade-recovery/config.toml"
out=$(run --root /other) || die "recover --initrd --root /other failed: $out"
expect "--root names another root: its configuration" "/other/etc/upgrade-recovery/config.toml:1:1" "$out"

[ "$fails" = 0 ] || die "$fails check(s) failed"
