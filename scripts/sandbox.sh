#!/bin/sh
# The README's main job on an embedded default, on a fresh Debian 12 machine (root):
# build, make a sandbox (a sparse disk image with a GPT partition named
# "recovery", xfs, and an SNO-like host root in a temporary directory), take a
# backup onto it and print what was backed up and how long it took; then play
# a failed upgrade on the host root, recover it (phase 1, offline) and prove
# that the trees equal the backup.
#
# Usage: sudo scripts/sandbox.sh [--scale F] [--keep]
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
scale=0.2
keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--scale F] [--keep]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "sandbox: run as root (loop devices and mounts)" >&2; exit 1; }

sh scripts/install-deps.sh test
build=${UR_BUILD_DIR:-$src/build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" src/cli/upgrade-recovery bench/ur-gen-tree tests/tools/ur-tree-compare >/dev/null
ur=$build/src/cli/upgrade-recovery
gen=$build/bench/ur-gen-tree
cmp=$build/tests/tools/ur-tree-compare

. "$src/tests/integration/lib.sh"
work=$(mktemp -d /var/tmp/ur-sandbox.XXXXXX)
img=$work/disk.img
root=$work/root
cleanup() {
    ur_cleanup_image "$img" 2>/dev/null || true
    if [ $keep = 0 ]; then rm -rf "$work"; else echo "sandbox kept in $work"; fi
}
trap cleanup EXIT INT TERM

# The label is the product's default, "recovery"; refuse to run next to a real one.
if blkid -t PARTLABEL=recovery >/dev/null 2>&1; then
    echo "sandbox: this machine already has a partition named 'recovery'; not touching it" >&2
    exit 1
fi

echo "== sandbox in $work"
ur_gpt_image "$img" 4G "root:512M" "recovery:0"
loop=$(ur_loop_attach "$img")
part=$(ur_loop_partition "$loop" 2)
ur_mkfs_xfs "$part" recovery
echo "   disk image $img: GPT partition 2 named 'recovery' on $part (xfs)"

"$gen" generate "$root" --scale "$scale" >/dev/null
mkdir -p "$root/etc/upgrade-recovery"
cat >"$root/etc/upgrade-recovery/config.toml" <<'EOF'
# Sandbox: no etcd or ostree here; everything else is the embedded default.
[etcd]
mode = "off"
[backup]
free_space_margin = "64MiB"
EOF
echo "   host root $root: $(find "$root" -xdev | wc -l) entries, $(du -sh --apparent-size "$root" | cut -f1) apparent"
# Units the offline phase 1 enables/disables under the root.
mkdir -p "$root/usr/lib/systemd/system" "$root/etc/systemd/system/multi-user.target.wants"
printf '[Unit]\nDescription=kubelet stand-in\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' \
    >"$root/usr/lib/systemd/system/kubelet.service"
ln -sf /usr/lib/systemd/system/kubelet.service "$root/etc/systemd/system/multi-user.target.wants/kubelet.service"
sed "s|@bindir@|/usr/bin|g" "$src/units/upgrade-recovery-phase2.service.in" >"$root/usr/lib/systemd/system/upgrade-recovery-phase2.service"

echo
echo "== backup (the recovery partition is found by its GPT name and mounted by upgrade-recovery)"
"$ur" --root "$root" backup
echo
echo "== verify"
"$ur" --root "$root" verify

echo
echo "== a failed upgrade changes 5% of the files"
"$gen" mutate "$root" --percent 5 --kind upgrade
id=$(readlink "$root/var/recovery/latest" | sed 's|backups/||')
bk=$root/var/recovery/backups/$id
if "$cmp" "$bk/etc" "$root/etc" >/dev/null 2>&1; then
    echo "sandbox: the mutation changed nothing?" >&2
    exit 1
fi
echo "   trees now differ from backup $id"

echo
echo "== recover: phase 1 offline against the host root (what the initramfs runs on /sysroot)"
start=$(date +%s.%N)
"$ur" --root "$root" recover
end=$(date +%s.%N)
echo "   phase 1 took $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s"
"$ur" --root "$root" status | sed -n '/^Recovery /,$p' | head -8

echo
echo "== proof: every tree equals the backup in every byte and attribute"
ok=0
# Phase 1 itself edits one directory of /etc after the restore: kubelet is
# disabled and the phase 2 unit enabled. Checked on its own below.
wants=systemd/system/multi-user.target.wants
excl="--exclude $wants"
for e in $(sed -n '/^\[etc\]/,/^\[/{s/^exclude = \[//;s/\]$//;p}' "$bk/metadata.toml" | tr -d '",'); do
    excl="$excl --exclude $e"
done
for t in etc usrlocal kubelet; do
    case $t in etc) p=/etc ;; usrlocal) p=/usr/local ;; kubelet) p=/var/lib/kubelet ;; esac
    # shellcheck disable=SC2086
    if [ $t = etc ]; then set -- $excl; else set --; fi
    if "$cmp" "$@" "$bk/$t" "$root$p"; then
        echo "   $p: equal to backup $id"
    else
        echo "   $p: DIFFERS from backup $id"
        ok=1
    fi
done
if [ ! -e "$root/etc/$wants/kubelet.service" ] && [ -L "$root/etc/$wants/upgrade-recovery-phase2.service" ]; then
    echo "   /etc/$wants: kubelet.service disabled, upgrade-recovery-phase2.service enabled (phase 1's own change)"
else
    echo "   /etc/$wants: phase 1 did not disable kubelet / enable phase 2"
    ok=1
fi
[ $ok = 0 ] && echo "== the host root equals backup $id" || echo "== RECOVERY INCOMPLETE"
exit $ok
