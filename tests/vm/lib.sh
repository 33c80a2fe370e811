# shellcheck shell=bash
# The VM end-to-end harness (suite 'vm'): everything that builds, caches and boots
# the guest. Sourced by tests/vm/test-*.sh and scripts/vm-*.sh.
#
# What it builds, all cached under $UR_BUILD_DIR/vm-cache (never in git):
#   kernel/<pkg>/           Debian's guest kernel, `apt-get download` + `dpkg -x` (nothing
#                           is installed on the host), depmod'ed
#   debootstrap-<key>.tgz   `debootstrap --make-tarball` (the only step that needs the network)
#   base-<key>/             the unpacked, configured Debian 12 root (key: packages, mirror,
#                           this file's base recipe)
#   image-<key>/            base + our `meson install --destdir` + stand-ins: rootfs/,
#                           initrd.img (dracut with our module), disk.img (GPT: root ext4,
#                           recovery xfs), built without loop devices (mkfs -d, sgdisk, dd)
#   runs/<test>/            per-test disk copies, serial logs, inspection output
#
# The machine's facts this relies on (shared/reference/test-recipes.md part 2): KVM is a
# PVM device that cannot run a stock kernel, so qemu runs with TCG; `losetup -P` makes no
# partition nodes (we use -o/--sizelimit); `sgdisk -q` writes nothing; dracut only scans
# $dracutbasedir/modules.d.
set -euo pipefail

UR_SOURCE_DIR=${UR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
: "${UR_BUILD_DIR:?UR_BUILD_DIR must name the meson build directory}"
UR_BUILD_DIR=$(cd "$UR_BUILD_DIR" && pwd)
VM_DIR=$UR_SOURCE_DIR/tests/vm
VM_CACHE=${UR_VM_CACHE:-$UR_BUILD_DIR/vm-cache}
VM_SUITE=bookworm
# One VM at a time on the whole machine (2 cores shared by everyone), whatever build dir.
VM_GLOBAL_LOCK=${UR_VM_LOCK:-/run/lock/upgrade-recovery-vm.lock}
VM_MEM=${UR_VM_MEM:-1024}
VM_SMP=${UR_VM_SMP:-2}
# plain: a Debian root on the root partition, /var on its own partition.
# ostree: the same root committed into an ostree sysroot and deployed (RHCOS's layout:
# /etc in the deployment, /var the stateroot's, /usr/local -> var/usrlocal), booted from
# the boot entry ostree wrote (vm_ostree_boot_entry plays the boot loader).
VM_VARIANT=${VM_VARIANT:-plain}

# Partition layout (MiB). The recovery partition must be >= 300 MiB for mkfs.xfs.
VM_ROOT_START=1
VM_ROOT_MIB=1400
VM_REC_MIB=512
# /var is its own partition, mounted by /etc/systemd/system/var.mount as Ignition's
# with_mount_unit writes it on RHCOS: phase 1 in the initramfs must mount it itself.
VM_VAR_MIB=400

vm_log() { printf '[vm %s] %s\n' "$(date +%T)" "$*" >&2; }
vm_skip() { echo "SKIP: $*"; exit 77; }
vm_die() { echo "FAIL: $*" >&2; exit 1; }
vm_now() { date +%s.%N; }
vm_elapsed() { awk -v a="$1" -v b="$(vm_now)" 'BEGIN{printf "%.1f", b-a}'; }

# Timings go to $VM_TIMINGS (appended) and to stderr.
vm_time() { # label start
    local t
    t=$(vm_elapsed "$2")
    vm_log "time: $1 ${t}s"
    [ -n "${VM_TIMINGS:-}" ] && printf '%s %s\n' "$1" "$t" >>"$VM_TIMINGS"
    return 0
}

# ---------------------------------------------------------------------------------
# Prerequisites. Skip (77) only when qemu cannot run at all; anything else that is
# missing is a failure (scripts/install-deps.sh vm installs it).
vm_require() {
    [ "$(id -u)" = 0 ] || vm_skip "the vm suite needs root (debootstrap, mkfs -d of root-owned files, loop mounts)"
    command -v qemu-system-x86_64 >/dev/null ||
        vm_skip "qemu-system-x86_64 is not installed (scripts/install-deps.sh vm installs qemu-system-x86)"
    local t
    for t in qemu-img debootstrap dracut sgdisk mkfs.ext4 mkfs.xfs debugfs apt-get dpkg depmod zstd flock losetup; do
        command -v "$t" >/dev/null || vm_die "missing tool '$t': run scripts/install-deps.sh vm"
    done
    mkdir -p "$VM_CACHE"
    vm_qemu_probe
}

# Can qemu start a TCG machine at all? (cached per qemu binary)
vm_qemu_probe() {
    local stamp=$VM_CACHE/qemu-ok
    [ -e "$stamp" ] && return 0
    local out rc=0
    out=$(timeout 30 qemu-system-x86_64 -accel tcg -machine q35 -nodefaults -nographic -display none \
        -monitor none -serial none -S -no-reboot -qmp stdio 2>&1 <<<'{"execute":"qmp_capabilities"}
{"execute":"quit"}') || rc=$?
    if [ $rc -ne 0 ] || ! grep -q '"return"' <<<"$out"; then
        vm_skip "qemu-system-x86_64 cannot start a TCG machine here (rc $rc): $(tail -c 300 <<<"$out")"
    fi
    touch "$stamp"
}

# ---------------------------------------------------------------------------------
# The Debian mirror the machine's apt sources name (UR_VM_MIRROR overrides).
vm_mirror() {
    if [ -n "${UR_VM_MIRROR:-}" ]; then echo "$UR_VM_MIRROR"; return; fi
    local m f
    # deb822 .sources: the first enabled deb paragraph whose Suites has bookworm.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        m=$(awk -v suite="$VM_SUITE" 'BEGIN{RS=""; FS="\n"}
            { types=""; uris=""; suites=""; enabled="yes"
              for (i = 1; i <= NF; i++) {
                line = $i; if (line ~ /^[ \t]*#/) continue
                if (line ~ /^Types:/) types = substr(line, 7)
                if (line ~ /^URIs:/) uris = substr(line, 6)
                if (line ~ /^Suites:/) suites = substr(line, 8)
                if (line ~ /^Enabled:/) enabled = substr(line, 9)
              }
              if (enabled ~ /no/) next
              if ((" " types " ") !~ / deb /) next
              if ((" " suites " ") !~ (" " suite " ")) next
              split(uris, u, " "); for (k in u) if (u[k] != "") { print u[k]; exit }
            }' "$f" | head -n1)
        [ -n "$m" ] && { echo "$m"; return; }
    done
    # One-line format.
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' |
        awk -v suite="$VM_SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
    [ -n "$m" ] && { echo "$m"; return; }
    vm_die "no '$VM_SUITE' deb source in /etc/apt/sources.list(.d); set UR_VM_MIRROR"
}

vm_hash() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------------
# Guest kernel: Debian's linux-image-<abi>-amd64 unpacked into the cache. Sets
# VM_KVER, VM_KERNEL (the bzImage) and VM_KROOT (a root holding lib/modules/$VM_KVER).
vm_kernel() {
    local pkg="${UR_VM_KERNEL_PKG:-}"
    if [ -z "$pkg" ]; then
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        if [ -z "$pkg" ]; then
            vm_log "apt lists have no linux-image-amd64; running apt-get update"
            apt-get update -qq
            pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        fi
    fi
    [ -n "$pkg" ] || vm_die "cannot find the guest kernel package (linux-image-amd64's dependency)"
    VM_KVER=${pkg#linux-image-}
    VM_KROOT=$VM_CACHE/kernel/$pkg
    VM_KERNEL=$VM_KROOT/boot/vmlinuz-$VM_KVER
    if [ ! -e "$VM_KROOT.done" ]; then
        local t0 tmp
        t0=$(vm_now)
        tmp=$VM_CACHE/kernel/.dl
        rm -rf "$tmp" "$VM_KROOT"
        mkdir -p "$tmp"
        vm_log "downloading guest kernel $pkg"
        (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) || vm_die "apt-get download $pkg failed"
        dpkg -x "$tmp"/*.deb "$VM_KROOT"
        # bookworm's package ships /lib/modules; a merged-/usr one would ship /usr/lib/modules.
        if [ ! -d "$VM_KROOT/lib/modules/$VM_KVER" ] && [ -d "$VM_KROOT/usr/lib/modules/$VM_KVER" ]; then
            mkdir -p "$VM_KROOT/lib/modules" && mv "$VM_KROOT/usr/lib/modules/$VM_KVER" "$VM_KROOT/lib/modules/"
        fi
        depmod -b "$VM_KROOT" "$VM_KVER"
        rm -rf "$tmp"
        [ -e "$VM_KERNEL" ] || vm_die "no $VM_KERNEL in $pkg"
        touch "$VM_KROOT.done"
        vm_time kernel-download "$t0"
    fi
}

# ---------------------------------------------------------------------------------
# Our build, installed with `meson install --destdir` from a build whose prefix is /usr
# (the guest is a normal distribution root). When UR_BUILD_DIR has another prefix, a
# second build dir configured with --prefix=/usr is kept under the cache.
vm_stage_install() { # -> VM_STAGE
    local bdir=$UR_BUILD_DIR prefix
    prefix=$(meson introspect "$bdir" --buildoptions 2>/dev/null |
        python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
    if [ "$prefix" != /usr ]; then
        bdir=$VM_CACHE/guest-build
        vm_log "build dir prefix is '$prefix'; building a --prefix=/usr copy for the guest in $bdir"
        if [ ! -e "$bdir/build.ninja" ]; then
            meson setup "$bdir" "$UR_SOURCE_DIR" --prefix=/usr -Dtests=false >/dev/null
        fi
        ninja -C "$bdir" -j2 >/dev/null
    fi
    VM_STAGE=$VM_CACHE/stage
    rm -rf "$VM_STAGE"
    meson install -C "$bdir" --no-rebuild --destdir "$VM_STAGE" >/dev/null ||
        vm_die "meson install --destdir failed"
    [ -x "$VM_STAGE/usr/bin/upgrade-recovery" ] || vm_die "the install has no /usr/bin/upgrade-recovery"
}

# Packages of the guest: Debian 12 minbase plus these. The runtime libraries of our
# binaries are listed explicitly (a stable cache key); vm_build_image fails naming the
# package when an installed binary needs a library the guest lacks.
VM_BASE_PACKAGES="systemd systemd-sysv dbus udev kmod xfsprogs e2fsprogs util-linux procps
  acl attr etcd-server etcd-client libostree-1-1 libglib2.0-0 libtomlplusplus3 libssl3 libsystemd0
  libmount1 libblkid1 libstdc++6 libgcc-s1 ostree ostree-boot"

# The recipe of the base root; change VM_BASE_RECIPE when vm_configure_base changes.
VM_BASE_RECIPE=3
vm_base_rootfs() { # packages -> VM_BASE
    local pkgs=$1 mirror key tgz t0
    mirror=$(vm_mirror)
    key=$(printf '%s|%s|%s|%s|%s' "$pkgs" "$mirror" "$VM_SUITE" "$VM_BASE_RECIPE" "$VM_KVER" | vm_hash)
    tgz=$VM_CACHE/debootstrap-$(printf '%s|%s|%s' "$pkgs" "$mirror" "$VM_SUITE" | vm_hash).tgz
    VM_BASE=$VM_CACHE/base-$key
    [ -e "$VM_BASE.done" ] && return 0
    local inc
    inc=$(tr ' ' '\n' <<<"$pkgs" | sed '/^$/d' | paste -sd, -)
    if [ ! -e "$tgz" ]; then
        t0=$(vm_now)
        vm_log "debootstrap --make-tarball from $mirror (needs the network once)"
        rm -rf "$VM_CACHE/tb" "$tgz.tmp"
        debootstrap --variant=minbase --include="$inc" --make-tarball="$tgz.tmp" "$VM_SUITE" "$VM_CACHE/tb" "$mirror" \
            >"$VM_CACHE/debootstrap-make.log" 2>&1 ||
            vm_die "debootstrap --make-tarball failed: $(tail -5 "$VM_CACHE/debootstrap-make.log")"
        mv "$tgz.tmp" "$tgz"
        rm -rf "$VM_CACHE/tb"
        vm_time debootstrap-make-tarball "$t0"
    fi
    t0=$(vm_now)
    # Older bases are dead weight (~400 MB each).
    local old
    for old in "$VM_CACHE"/base-*; do
        [ -d "$old" ] && [ "$old" != "$VM_BASE" ] && rm -rf "$old" "$old.done"
    done
    rm -rf "$VM_BASE.tmp"
    vm_log "debootstrap --unpack-tarball into $VM_BASE"
    # The mirror URL must be the one the tarball was made with (apt list file names).
    unshare -n debootstrap --variant=minbase --include="$inc" --unpack-tarball="$tgz" "$VM_SUITE" "$VM_BASE.tmp" "$mirror" \
        >"$VM_CACHE/debootstrap-unpack.log" 2>&1 ||
        vm_die "debootstrap --unpack-tarball failed: $(tail -5 "$VM_CACHE/debootstrap-unpack.log")"
    vm_configure_base "$VM_BASE.tmp"
    mv "$VM_BASE.tmp" "$VM_BASE"
    touch "$VM_BASE.done"
    vm_time debootstrap-unpack+configure "$t0"
}

# Turn the debootstrap root into a quiet, fast-booting guest.
vm_configure_base() {
    local r=$1
    echo urvm >"$r/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 urvm\n' >"$r/etc/hosts"
    # A fixed machine id: no first-boot changes in /etc between boots.
    echo 5c6e0f4a9e1f4d3b8a1e2f3c4d5e6f70 >"$r/etc/machine-id"
    printf '/dev/disk/by-partlabel/root / ext4 rw,errors=remount-ro 0 0\n' >"$r/etc/fstab"
    chroot "$r" passwd -d root >/dev/null
    mkdir -p "$r/var/log/journal"
    chroot "$r" systemctl set-default multi-user.target >/dev/null 2>&1
    # Masked: what the guest has no use for and what slows a TCG boot. etcd.service is
    # the package's own; the kubelet stand-in runs etcd like a static pod instead.
    chroot "$r" systemctl mask systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        dpkg-db-backup.timer man-db.timer systemd-timesyncd.service etcd.service >/dev/null 2>&1 || true
    # The guest kernel's modules, only the parts a virtio guest needs.
    local m=$r/lib/modules/$VM_KVER src=$VM_KROOT/lib/modules/$VM_KVER d
    mkdir -p "$m/kernel/drivers"
    cp -a "$src"/modules.order "$src"/modules.builtin* "$m/"
    for d in fs lib crypto arch; do cp -a "$src/kernel/$d" "$m/kernel/"; done
    for d in block virtio char; do cp -a "$src/kernel/drivers/$d" "$m/kernel/drivers/"; done
    depmod -b "$r" "$VM_KVER"
    chroot "$r" apt-get clean
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
}

# ---------------------------------------------------------------------------------
# The image: base + our install + stand-ins + the e2e driver, an initramfs with our
# dracut module, and the GPT disk. Sets VM_IMG (dir), VM_DISK, VM_INITRD.
vm_build_image() {
    local t0 key r
    t0=$(vm_now)
    vm_kernel
    vm_stage_install
    vm_base_rootfs "$(echo $VM_BASE_PACKAGES)"
    vm_initrd
    key=$( (echo "$VM_BASE $VM_IMAGE_RECIPE"
        cd "$VM_STAGE" && find . -type f -print0 | sort -z | xargs -0 sha256sum
        cd "$VM_DIR" && find guest -type f -print0 | sort -z | xargs -0 sha256sum) | vm_hash)
    VM_IMG=$VM_CACHE/image-$VM_VARIANT-$key
    VM_DISK=$VM_IMG/disk.img
    if [ -e "$VM_IMG/.done" ]; then
        vm_log "image $VM_IMG is up to date"
        return 0
    fi
    local old
    for old in "$VM_CACHE"/image-"$VM_VARIANT"-*; do [ -d "$old" ] && [ "$old" != "$VM_IMG" ] && rm -rf "$old"; done
    rm -rf "$VM_IMG"
    mkdir -p "$VM_IMG"
    r=$VM_IMG/rootfs
    cp -a "$VM_BASE" "$r"
    # Our files. /lib etc. are symlinks in the guest (merged /usr): keep them.
    tar -C "$VM_STAGE" -cf - . | tar -C "$r" -xf - --keep-directory-symlink --no-same-owner
    vm_check_libs "$r"
    vm_install_guest "$r"
    vm_time image-rootfs "$t0"
    local t1
    t1=$(vm_now)
    if [ "$VM_VARIANT" = ostree ]; then
        vm_make_ostree_disk "$r" "$VM_DISK"
    else
        vm_make_disk "$r" "$VM_DISK"
    fi
    rm -rf "$r"
    vm_time image-disk "$t1"
    touch "$VM_IMG/.done"
    vm_time image-total "$t0"
}
# Bump when vm_build_image, vm_install_guest or vm_make_disk change what they make.
VM_IMAGE_RECIPE=5

# The initramfs, cached by what goes into it: the kernel, our binary and dracut module,
# the host's dracut and systemd. Sets VM_INITRD.
VM_INITRD_RECIPE=1
vm_initrd() {
    local key mod
    mod=$(find "$VM_STAGE" -path '*/dracut/modules.d/90upgrade-recovery' -type d | head -n1)
    [ -n "$mod" ] || vm_die "the install has no dracut module 90upgrade-recovery"
    key=$( (echo "$VM_KVER $VM_INITRD_RECIPE $VM_VARIANT $(dpkg-query -W -f='${Version}' dracut-core systemd ostree-boot)"
        sha256sum "$VM_STAGE/usr/bin/upgrade-recovery" "$mod"/*) | vm_hash)
    VM_INITRD=$VM_CACHE/initrd-$VM_VARIANT-$key.img
    [ -e "$VM_INITRD" ] && return 0
    local t0 old
    t0=$(vm_now)
    for old in "$VM_CACHE"/initrd-"$VM_VARIANT"-*.img; do [ -e "$old" ] && rm -f "$old"; done
    vm_make_initrd "$mod" "$VM_INITRD.tmp"
    mv "$VM_INITRD.tmp" "$VM_INITRD"
    vm_time image-initrd "$t0"
}

# Every ELF file we installed must find its libraries in the guest.
vm_check_libs() {
    local r=$1 f missing="" lib
    while IFS= read -r f; do
        while IFS= read -r lib; do
            missing="$missing ${f#"$r"}:$lib($( (dpkg -S "*/$lib" 2>/dev/null || echo "?:") | head -n1 | cut -d: -f1))"
        done < <(chroot "$r" ldd "${f#"$r"}" 2>/dev/null | awk '/not found/ {print $1}')
    done < <(cd "$VM_STAGE" && find . -type f -perm -u+x -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print |
        sed "s|^\.|$r|")
    [ -z "$missing" ] || vm_die "guest lacks libraries (file:library(host package)):$missing — add the packages to VM_BASE_PACKAGES in tests/vm/lib.sh"
}

# Stand-ins and the test driver (tests/vm/guest/), enabled like a node would have them.
vm_install_guest() {
    local r=$1 g=$VM_DIR/guest
    install -d "$r/usr/lib/ur-e2e" "$r/usr/libexec/standin"
    install -m 0755 "$g"/driver.sh "$g"/lib-guest.sh "$r/usr/lib/ur-e2e/"
    install -m 0755 "$g"/standin/kubelet "$r/usr/libexec/standin/"
    install -m 0755 "$g"/standin/crio "$g"/standin/crictl "$g"/standin/oc "$r/usr/bin/"
    install -d "$r/usr/local/bin"
    install -m 0755 "$g"/standin/cluster-backup.sh "$g"/standin/cluster-restore.sh "$r/usr/local/bin/"
    install -m 0644 "$g"/ur-e2e.service "$g"/ur-e2e-early.service "$r/usr/lib/systemd/system/"
    install -m 0644 "$g"/crio.service "$r/usr/lib/systemd/system/"
    # kubelet.service lives in /etc on a node (written by the MCO), so it is in the backup.
    install -m 0644 "$g"/kubelet.service "$r/etc/systemd/system/"
    install -m 0644 "$g"/var.mount "$r/etc/systemd/system/"
    install -d "$r/etc/upgrade-recovery"
    install -m 0644 "$g"/config.toml "$r/etc/upgrade-recovery/config.toml"
    "$g"/populate.sh "$r"
    # Nothing to gain from these in a TCG guest but boot time (kvm cannot load anyway).
    printf 'blacklist %s\n' kvm kvm_amd kvm_intel floppy pcspkr >"$r/etc/modprobe.d/ur-e2e-blacklist.conf"
    local u
    for u in var.mount var-recovery.mount upgrade-recovery-phase2.service upgrade-recovery-watchdog.service crio.service \
        kubelet.service ur-e2e.service ur-e2e-early.service; do
        [ -e "$r/usr/lib/systemd/system/$u" ] || [ -e "$r/lib/systemd/system/$u" ] || [ -e "$r/etc/systemd/system/$u" ] ||
            { vm_log "note: $u is not installed (yet); not enabled"; continue; }
        systemctl --root="$r" enable "$u" >/dev/null 2>&1 || vm_die "systemctl --root enable $u failed"
    done
}

# dracut from the host's modules plus ours (a private dracutbasedir: dracut scans only
# $dracutbasedir/modules.d). Binaries and libraries come from the host, which is the
# same Debian 12 as the guest (dracut 059's --sysroot cannot take dracut's own files
# from the host); our binary from the install tree, the modules from the guest kernel.
vm_make_initrd() { # module-dir out
    local mod=$1 out=$2 base=$VM_CACHE/dracut-base f
    rm -rf "$base" "$VM_CACHE/dracut-conf.d"
    mkdir -p "$base/modules.d" "$VM_CACHE/dracut-conf.d"
    for f in /usr/lib/dracut/*; do
        [ "$(basename "$f")" = modules.d ] || ln -sfn "$f" "$base/"
    done
    for f in /usr/lib/dracut/modules.d/*; do ln -sfn "$f" "$base/modules.d/"; done
    ln -sfn "$mod" "$base/modules.d/90upgrade-recovery"
    local modules="systemd systemd-initrd dracut-systemd udev-rules base fs-lib rootfs-block kernel-modules upgrade-recovery"
    # ostree-prepare-root (Debian's ostree-boot on the host) makes /sysroot the deployment.
    [ "$VM_VARIANT" = ostree ] && modules="$modules ostree"
    UPGRADE_RECOVERY_BINARY=$VM_STAGE/usr/bin/upgrade-recovery \
        dracutbasedir=$base dracut --force --quiet --no-hostonly --conf /dev/null --confdir "$VM_CACHE/dracut-conf.d" \
        --kver "$VM_KVER" --kmoddir "$VM_KROOT/lib/modules/$VM_KVER" \
        -m "$modules" \
        --drivers "virtio_pci virtio_blk ext4 crc32c_generic" --compress zstd \
        "$out" "$VM_KVER" >"$VM_CACHE/dracut.log" 2>&1 || vm_die "dracut failed: $(tail -20 "$VM_CACHE/dracut.log")"
    # Prove the module is in it (a variable, not a pipe into grep -q: pipefail).
    local list
    list=$(lsinitrd "$out" 2>/dev/null | tr -d '\0')
    grep -q 'upgrade-recovery-initrd.service$' <<<"$list" || vm_die "the initramfs has no upgrade-recovery-initrd.service"
    grep -q 'initrd.target.wants/upgrade-recovery-initrd.service' <<<"$list" || vm_die "the initrd unit is not wanted by initrd.target"
    grep -q 'usr/bin/upgrade-recovery$' <<<"$list" || vm_die "the initramfs has no upgrade-recovery binary"
    grep -q '/xfs.ko' <<<"$list" || vm_die "the initramfs has no xfs module"
    if [ "$VM_VARIANT" = ostree ]; then
        grep -q 'ostree-prepare-root$' <<<"$list" || vm_die "the initramfs has no ostree-prepare-root (ostree-boot on the host?)"
    fi
}

# GPT disk without loop devices: mkfs.ext4 -d, mkfs.xfs, sgdisk, dd at the offsets.
# Partitions: 1 root (ext4, /var an empty mount point), 2 recovery (xfs), 3 var (ext4).
vm_make_disk() {
    local r=$1 disk=$2 d=$VM_IMG
    rm -rf "$d/root.part" "$d/rec.part" "$d/var.part" "$d/var" "$disk"
    mv "$r/var" "$d/var"
    install -d -m 0755 "$r/var"
    truncate -s "${VM_ROOT_MIB}M" "$d/root.part"
    mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$r" "$d/root.part" || vm_die "mkfs.ext4 -d (root) failed"
    truncate -s "${VM_VAR_MIB}M" "$d/var.part"
    # 4 KiB blocks like the backup's xfs (mke2fs picks 1 KiB for a file system this
    # small; a restored sparse file would then differ in allocated blocks).
    mkfs.ext4 -q -F -b 4096 -L var -E root_owner=0:0 -d "$d/var" "$d/var.part" || vm_die "mkfs.ext4 -d (var) failed"
    rmdir "$r/var"
    mv "$d/var" "$r/var"
    vm_assemble_disk "$disk" "$d/root.part" "$d/var.part:var:8310"
}

# The GPT disk from partition images, without loop devices: root (ext4 image, 8304),
# the recovery partition (xfs, made here), then any "image:name:typecode" given.
vm_assemble_disk() { # disk root-image [image:name:typecode...]
    local disk=$1 root=$2 rec=$VM_IMG/rec.part spec img name code n=2 off mib total args=()
    shift 2
    truncate -s "${VM_REC_MIB}M" "$rec"
    mkfs.xfs -q -f -L recovery "$rec" || vm_die "mkfs.xfs failed"
    local parts=("$root:root:8304" "$rec:recovery:8300" "$@")
    total=$VM_ROOT_START
    for spec in "${parts[@]}"; do total=$((total + $(stat -c %s "${spec%%:*}") / 1048576)); done
    truncate -s "$((total + 1))M" "$disk"
    n=0
    for spec in "${parts[@]}"; do
        IFS=: read -r img name code <<<"$spec"
        n=$((n + 1))
        args+=(-n "$n:0:+$(($(stat -c %s "$img") / 1048576))M" -t "$n:$code" -c "$n:$name")
    done
    # No -q: with it sgdisk silently writes nothing. Partition 1 starts at VM_ROOT_START.
    args[1]="1:${VM_ROOT_START}M:${args[1]#1:0:}"
    sgdisk -o "${args[@]}" "$disk" >/dev/null || vm_die "sgdisk failed"
    off=$VM_ROOT_START
    for spec in "${parts[@]}"; do
        IFS=: read -r img name code <<<"$spec"
        sgdisk -p "$disk" | grep -q " $name\$" || vm_die "sgdisk wrote no $name partition"
        mib=$(($(stat -c %s "$img") / 1048576))
        dd if="$img" of="$disk" bs=1M seek="$off" conv=sparse,notrunc status=none
        off=$((off + mib))
        rm -f "$img"
    done
}

# The ostree variant's disk: the image root turned into an OS tree the way RHCOS lays
# it out, committed twice into a real sysroot (urvm/v1, and urvm/v2 that differs in
# /usr/lib/ur-e2e/release: the "upgrade"), v1 deployed; the sysroot is the root file
# system, /var the stateroot's var. No var partition. The sysroot is assembled on a
# tmpfs: `ostree admin deploy` freezes (FIFREEZE) the file system that holds it.
vm_make_ostree_disk() {
    local r=$1 disk=$2 d=$VM_IMG S=$VM_IMG/sysroot x
    rm -rf "$d/var" "$d/root.part" "$d/rec.part" "$disk"
    # Not the plain variant's var partition: ostree-system-generator binds the stateroot's var.
    systemctl --root="$r" disable var.mount >/dev/null 2>&1 || true
    rm -f "$r/etc/systemd/system/var.mount"
    : >"$r/etc/fstab" # / is the deployment ostree-prepare-root set up, /var its generator's
    mv "$r/var" "$d/var"
    install -d -m 0755 "$r/var"
    mv "$r/usr/local" "$d/var/usrlocal"
    ln -s ../var/usrlocal "$r/usr/local"
    for x in home srv opt mnt; do
        [ -d "$r/$x" ] && [ ! -L "$r/$x" ] && mv "$r/$x" "$d/var/$x" && ln -s "var/$x" "$r/$x"
    done
    mv "$r/root" "$d/var/roothome" && ln -s var/roothome "$r/root"
    install -m 0644 "$VM_KERNEL" "$r/usr/lib/modules/$VM_KVER/vmlinuz"
    install -m 0644 "$VM_INITRD" "$r/usr/lib/modules/$VM_KVER/initramfs.img"
    rm -rf "${r:?}/boot" && install -d -m 0755 "$r/boot"
    # ostree commits no fifos or device nodes; a node's /etc may hold them. They go into
    # the deployment's /etc after the deploy, as if made at run time.
    (cd "$r/etc" && find . \( -type p -o -type c -o -type b -o -type s \) -print0 |
        tar --null -T - --xattrs --xattrs-include='*' --acls -cf "$d/etc-special.tar") &&
        (cd "$r/etc" && find . \( -type p -o -type c -o -type b -o -type s \) -delete) ||
        vm_die "cannot set aside /etc's special files"
    mv "$r/etc" "$r/usr/etc"
    install -d -m 0755 "$r/sysroot"
    ln -s sysroot/ostree "$r/ostree"
    mkdir -p "$S"
    mountpoint -q "$S" && umount -l "$S"
    mount -t tmpfs -o size=3g,mode=0755 tmpfs "$S" || vm_die "cannot mount a tmpfs for the sysroot"
    # API file systems are mounted at boot; an OS tree has them empty (ostree commits no devices).
    for x in dev proc sys run tmp; do rm -rf "${r:?}/$x" && install -d -m 0755 "$r/$x"; done
    chmod 1777 "$r/tmp"
    # (no `set -e` in a subshell whose status is tested: bash ignores it there)
    {
        ostree admin init-fs --modern "$S" &&
            ostree admin os-init --sysroot="$S" urvm &&
            ostree config --repo="$S/ostree/repo" set sysroot.readonly true &&
            echo "urvm release 1" >"$r/usr/lib/ur-e2e/release" &&
            ostree --repo="$S/ostree/repo" commit -b urvm/v1 --add-metadata-string=version=1 --tree=dir="$r" >"$d/commit-v1" &&
            echo "urvm release 2" >"$r/usr/lib/ur-e2e/release" &&
            ostree --repo="$S/ostree/repo" commit -b urvm/v2 --add-metadata-string=version=2 --tree=dir="$r" >"$d/commit-v2" &&
            ostree admin deploy --sysroot="$S" --os=urvm --karg=root=PARTLABEL=root --karg=rw urvm/v1 &&
            cp -a "$d/var/." "$S/ostree/deploy/urvm/var/" &&
            tar -C "$S/ostree/deploy/urvm/deploy/$(cat "$d/commit-v1").0/etc" --xattrs --xattrs-include='*' --acls \
                -xpf "$d/etc-special.tar"
    } >"$d/ostree.log" 2>&1 || { umount -l "$S"; vm_die "building the ostree sysroot failed: $(tail -5 "$d/ostree.log")"; }
    rm -rf "$d/var"
    truncate -s "${VM_ROOT_MIB}M" "$d/root.part"
    mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$S" "$d/root.part" || { umount -l "$S"; vm_die "mkfs.ext4 -d (sysroot) failed"; }
    umount "$S" && rmdir "$S"
    vm_assemble_disk "$disk" "$d/root.part"
    vm_log "ostree sysroot: v1 $(cat "$d/commit-v1") deployed, v2 $(cat "$d/commit-v2") committed"
}

# The boot loader's part, as GRUB's blscfg does it: of the entries in /boot/loader/entries
# the one with the highest version boots, with its kernel, initramfs and options. Sets
# VM_BOOT_ROOT_ARGS, VM_BOOT_KERNEL, VM_BOOT_INITRD and VM_BOOT_COMMIT (the deployment's
# commit, read from where ostree= points).
vm_ostree_boot_entry() { # disk
    local m=$VM_RUN/mnt-boot e best="" bestv=-1 v
    vm_mount_part "$1" root "$m"
    for e in "$m"/boot/loader/entries/*.conf; do
        [ -e "$e" ] || continue
        v=$(awk '$1 == "version" {print $2}' "$e")
        [ "${v:-0}" -gt "$bestv" ] && bestv=$v && best=$e
    done
    [ -n "$best" ] || { vm_umount_all; vm_die "no boot entry in /boot/loader/entries of the root partition"; }
    VM_BOOT_ROOT_ARGS=$(awk '$1 == "options" {$1 = ""; sub(/^ /, ""); print}' "$best")
    cp "$m/boot$(awk '$1 == "linux" {print $2}' "$best")" "$VM_RUN/boot-kernel"
    cp "$m/boot$(awk '$1 == "initrd" {print $2}' "$best")" "$VM_RUN/boot-initrd"
    VM_BOOT_KERNEL=$VM_RUN/boot-kernel VM_BOOT_INITRD=$VM_RUN/boot-initrd
    local target
    target=$(sed -n 's/.*ostree=\([^ ]*\).*/\1/p' <<<"$VM_BOOT_ROOT_ARGS")
    target=$(readlink -f "$m$target")
    VM_BOOT_COMMIT=$(basename "$target" | cut -d. -f1)
    vm_log "boot loader: $(basename "$best") (version $bestv): commit $VM_BOOT_COMMIT; $VM_BOOT_ROOT_ARGS"
    vm_umount_all
}

# ---------------------------------------------------------------------------------
# Running. vm_boot NAME DISK [TIMEOUT] [-- extra kernel args]: one boot, one qemu process
# (-no-reboot: a guest reboot ends it too). Sets VM_RC (qemu's exit code: 0 power off or
# reboot, 124 timeout, (v<<1)|1 for a guest write of v to isa-debug-exit) and VM_SERIAL.
# UR_VM_KILL_ON='regex' kills qemu (SIGKILL, a power cut) when the serial console shows it.
vm_boot() {
    local name=$1 disk=$2 tmo=${3:-300}
    shift 3 || shift $#
    [ "${1:-}" = -- ] && shift
    local append="${VM_BOOT_ROOT_ARGS:-root=PARTLABEL=root rw} console=ttyS0 panic=-1 loglevel=4 rd.shell=0 rd.emergency=poweroff rd.timeout=60 systemd.show_status=auto $*"
    VM_SERIAL=$VM_RUN/serial-$name.log
    : >"$VM_SERIAL"
    exec {lockfd}>"$VM_GLOBAL_LOCK"
    local tw
    tw=$(vm_now)
    flock -w 1200 "$lockfd" || vm_die "another VM held $VM_GLOBAL_LOCK for 20 minutes"
    [ "$(vm_elapsed "$tw" | cut -d. -f1)" -gt 1 ] && vm_log "waited $(vm_elapsed "$tw")s for another VM to finish"
    local t0
    t0=$(vm_now)
    vm_log "boot $name: $append"
    timeout -k 5 "$tmo" qemu-system-x86_64 -accel tcg -m "$VM_MEM" -smp "$VM_SMP" -nodefaults -nographic \
        -display none -monitor none -nic none -no-reboot \
        -pidfile "$VM_RUN/qemu-$name.pid" -serial "file:$VM_SERIAL" -device isa-debug-exit,iobase=0xf4,iosize=4 \
        -kernel "${VM_BOOT_KERNEL:-$VM_KERNEL}" -initrd "${VM_BOOT_INITRD:-$VM_INITRD}" -append "$append" \
        -drive "file=$disk,format=raw,if=virtio,cache=unsafe" </dev/null >"$VM_RUN/qemu-$name.log" 2>&1 &
    local qpid=$!
    # Watch the console: the power cut pattern (UR_VM_KILL_ON), and a wedged guest. Under
    # TCG on an overloaded host the guest kernel can stall for good in its timers (soft
    # lockups in swapper on every CPU); waiting for the timeout would only burn the budget.
    VM_KILLED=0 VM_WEDGED=0
    while kill -0 "$qpid" 2>/dev/null; do
        if [ -n "${UR_VM_KILL_ON:-}" ] && grep -Eaq "$UR_VM_KILL_ON" "$VM_SERIAL"; then
            # Kill qemu itself hard (its pid file), like pulling the plug.
            kill -KILL "$(cat "$VM_RUN/qemu-$name.pid")" 2>/dev/null || true
            VM_KILLED=1
            vm_log "boot $name: power cut (qemu killed) after '$UR_VM_KILL_ON' at $(vm_elapsed "$t0")s"
            break
        fi
        if [ "$(grep -ac 'watchdog: BUG: soft lockup' "$VM_SERIAL")" -ge 4 ]; then
            kill -KILL "$(cat "$VM_RUN/qemu-$name.pid")" 2>/dev/null || true
            VM_WEDGED=1
            vm_log "boot $name: the guest kernel is wedged (soft lockups under TCG); qemu killed at $(vm_elapsed "$t0")s"
            [ -n "${VM_TIMINGS:-}" ] && echo "wedged-$name $(vm_elapsed "$t0")" >>"$VM_TIMINGS"
            break
        fi
        sleep 0.2
    done
    VM_RC=0
    wait "$qpid" 2>/dev/null || VM_RC=$?
    flock -u "$lockfd"
    exec {lockfd}>&-
    vm_time "boot-$name" "$t0"
    [ "$VM_RC" = 124 ] && vm_log "boot $name: TIMEOUT after ${tmo}s"
    return 0
}

# Fail with the serial log's tail.
vm_fail_boot() {
    echo "FAIL: $*" >&2
    echo "---- last lines of $VM_SERIAL ----" >&2
    tail -n 60 "$VM_SERIAL" >&2
    exit 1
}

# No "[FAILED]" status line on the console of the last boot (systemd prints one for each
# unit that failed or was cut off; a power cut's boot has them by design).
vm_no_failed_units() {
    local failed
    failed=$({ grep -a 'FAILED' "$VM_SERIAL" || true; } | sed 's/\x1b\[[0-9;]*m//g' | tr -d '\r' | head -n 3)
    [ -z "$failed" ] || vm_fail_boot "units failed during boot $(basename "$VM_SERIAL" .log): $failed"
}

# The guest driver's verdict for a stage: "UR-E2E: PASS <stage>" on the console.
vm_expect_pass() { # stage
    if grep -q "UR-E2E: FAIL" "$VM_SERIAL"; then
        vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
    fi
    grep -q "UR-E2E: PASS $1" "$VM_SERIAL" || vm_fail_boot "stage $1 did not pass (qemu rc $VM_RC)"
}

# Lines the guest printed as "UR-E2E: <key> <value>" (timings, facts).
vm_guest_value() { # key
    grep -a "UR-E2E: $1 " "$VM_SERIAL" | tail -n1 | tr -d '\r' | sed "s/.*UR-E2E: $1 //"
}

# "The initrd unit costs under a second": under TCG the guest runs many times slower
# than real hardware, and slower still when the host is busy. The guest reports the
# unit's time (journal: job start to finish) and calib-ms, the time of one
# `upgrade-recovery --version` there; the host times the same command. The unit's time
# scaled by host/guest must be under UR_VM_INITRD_LIMIT_MS (1000); the raw time must
# stay under 60 s whatever the scale.
vm_check_initrd_cost() {
    local ms calib host
    ms=$(vm_guest_value initrd-unit-ms)
    calib=$(vm_guest_value calib-ms)
    [ -n "$ms" ] && [ -n "$calib" ] || vm_fail_boot "the guest reported no initrd unit timing"
    host=$(vm_host_calib_us)
    local scaled
    scaled=$(awk -v ms="$ms" -v c="$calib" -v h="$host" 'BEGIN { c = (c < 1 ? 1 : c); printf "%d", ms * (h / 1000.0) / c }')
    vm_log "initrd unit: ${ms} ms in the guest; startup of the CLI ${calib} ms there, $(awk -v h="$host" 'BEGIN{printf "%.1f", h/1000}') ms here; scaled: ${scaled} ms"
    [ -n "${VM_TIMINGS:-}" ] && printf 'initrd-unit-guest-ms %s\ninitrd-unit-scaled-ms %s\n' "$ms" "$scaled" >>"$VM_TIMINGS"
    [ "$ms" -lt 60000 ] || vm_fail_boot "the initrd unit took ${ms} ms in the guest"
    [ "$scaled" -lt "${UR_VM_INITRD_LIMIT_MS:-1000}" ] ||
        vm_fail_boot "the initrd unit costs ${scaled} ms scaled to this host (limit ${UR_VM_INITRD_LIMIT_MS:-1000} ms)"
}
vm_host_calib_us() {
    local b=$VM_STAGE/usr/bin/upgrade-recovery t0 t1 i
    "$b" --version >/dev/null
    t0=$(date +%s%N)
    for i in 1 2 3 4 5; do "$b" --version >/dev/null; done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 5000))
}

# Per-test run directory with a fresh copy of the image's disk.
vm_new_run() { # test name
    VM_RUN=$VM_CACHE/runs/$1
    rm -rf "$VM_RUN"
    mkdir -p "$VM_RUN"
    VM_TIMINGS=$VM_RUN/timings
    : >"$VM_TIMINGS"
}
vm_copy_disk() { cp --sparse=always "$1" "$2"; }

# ---------------------------------------------------------------------------------
# Inspecting a disk image after the guest stopped: loop devices by offset (`losetup -P`
# makes no partition nodes on these hosts) on a scratch copy, mounted read-only but with
# log/journal replay: after a power cut the xfs log and the ext4 journal hold the last
# writes, which norecovery/noload would not show.
vm_part_offset() { # disk partlabel -> "offset size" in bytes
    sgdisk -i "$(sgdisk -p "$1" | awk -v l="$2" '$NF == l {print $1}')" "$1" |
        awk '/First sector:/ {f=$3} /Last sector:/ {l=$3} END {print f*512, (l-f+1)*512}'
}
VM_MOUNTS=()
vm_mount_part() { # disk partlabel mountpoint
    local off size dev copy=$VM_RUN/inspect.img
    if [ "${VM_INSPECT_SRC:-}" != "$1" ] || [ ! -e "$copy" ]; then
        cp --sparse=always "$1" "$copy"
        VM_INSPECT_SRC=$1
    fi
    read -r off size < <(vm_part_offset "$copy" "$2")
    mkdir -p "$3"
    dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$copy")
    mount -o ro "$dev" "$3" || { losetup -d "$dev"; vm_die "cannot mount $2 of $1"; }
    VM_MOUNTS+=("$3:$dev")
}
# The same, read-write on the disk itself: for a test that changes the disk between boots.
vm_mount_part_rw() { # disk partlabel mountpoint
    local off size dev
    read -r off size < <(vm_part_offset "$1" "$2")
    mkdir -p "$3"
    dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$1")
    mount "$dev" "$3" || { losetup -d "$dev"; vm_die "cannot mount $2 of $1 read-write"; }
    VM_MOUNTS+=("$3:$dev")
}
vm_umount_all() {
    local m i
    for ((i = ${#VM_MOUNTS[@]} - 1; i >= 0; i--)); do # innermost (last mounted) first
        m=${VM_MOUNTS[i]}
        umount "${m%%:*}" 2>/dev/null || umount -l "${m%%:*}" 2>/dev/null || true
        losetup -d "${m##*:}" 2>/dev/null || true
    done
    VM_MOUNTS=()
    rm -f "$VM_RUN/inspect.img"
    VM_INSPECT_SRC=
}

# ---------------------------------------------------------------------------------
# vm_boot, once more when the guest wedged (see vm_boot): the disk is kept as it is,
# which for the guest is a power cut at that moment (phase 1 and phase 2 resume).
vm_boot_retry() {
    vm_boot "$@"
    if [ "$VM_WEDGED" = 1 ]; then
        vm_log "retrying boot $1 once on the same disk"
        cp "$VM_SERIAL" "$VM_SERIAL.wedged"
        vm_boot "$@"
        [ "$VM_WEDGED" = 1 ] && vm_fail_boot "boot $1: the guest wedged twice"
    fi
    return 0
}

# Boot 1 of the recovery cycle (stage "backup": the checks of a boot with nothing armed,
# a backup through the daemon, a failed upgrade, arm, reboot; on the ostree variant v1
# boots and v2 is staged). Its disk is kept in the image directory: the tests of the
# same variant start from it.
#   vm_boot1            run boot 1 (fresh copy of the image's disk)
#   vm_armed_disk DEST  DEST = boot 1's disk, running boot 1 first when it is not there
vm_boot1() {
    local armed=$VM_IMG/armed.img attempt
    rm -f "$armed" "$armed.ok"
    for attempt in 1 2; do
        vm_copy_disk "$VM_DISK" "$armed.tmp"
        if [ "$VM_VARIANT" = ostree ]; then
            vm_ostree_boot_entry "$armed.tmp"
            [ "$VM_BOOT_COMMIT" = "$(cat "$VM_IMG/commit-v1")" ] || vm_die "the new image's boot entry starts $VM_BOOT_COMMIT, not v1"
        fi
        vm_boot backup "$armed.tmp" 900 -- ur_e2e.stage=backup
        [ "$VM_WEDGED" = 1 ] && [ $attempt = 1 ] && { cp "$VM_SERIAL" "$VM_SERIAL.wedged"; continue; }
        break
    done
    [ "$VM_RC" = 0 ] || vm_fail_boot "boot 1 (backup) ended with qemu rc $VM_RC"
    vm_expect_pass backup
    vm_log "guest: backup took $(vm_guest_value backup-seconds) s"
    vm_host_check_armed "$armed.tmp"
    mv "$armed.tmp" "$armed"
    cp "$VM_SERIAL" "$VM_IMG/serial-backup.log"
    touch "$armed.ok"
}
vm_armed_disk() {
    if [ -e "$VM_IMG/armed.img.ok" ]; then
        vm_log "boot 1 (backup, failed upgrade, arm) of this image: $VM_IMG/armed.img"
    else
        vm_boot1
    fi
    vm_copy_disk "$VM_IMG/armed.img" "$1"
}

# What the recovery partition of a stopped guest says: sets VM_J_STATE and VM_J_MODE
# (the recovery journal's, "none" without one), VM_ARMED and VM_PENDING (yes/no).
vm_recovery_marks() { # disk
    local m=$VM_RUN/mnt-rec
    vm_mount_part "$1" recovery "$m"
    read -r VM_J_STATE VM_J_MODE < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j.get("state"), j.get("mode"))' \
        "$m/recovery/journal" 2>/dev/null || echo none none)
    VM_ARMED=$([ -e "$m/recovery/armed" ] && echo yes || echo no)
    VM_PENDING=$([ -e "$m/recovery/phase2-pending" ] && echo yes || echo no)
    vm_umount_all
}

# The boot of a live recovery (driver stage "live"): the initrd unit off, the guest starts
# the recovery through the daemon with reboot=true, and the boot must end in that reboot.
vm_live_boot() { # disk
    vm_boot_retry live "$1" 900 -- ur_e2e.stage=live upgrade_recovery=off
    grep -q "UR-E2E: FAIL" "$VM_SERIAL" && vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
    vm_expect_pass live-started
    [ "$VM_RC" = 0 ] || vm_fail_boot "the boot of the live recovery ended with qemu rc $VM_RC, not with the reboot"
    vm_recovery_marks "$1"
    vm_log "after the live recovery's boot: journal mode '$VM_J_MODE' state '$VM_J_STATE', armed $VM_ARMED, phase2-pending $VM_PENDING"
    [ "$VM_J_MODE" = live ] || vm_die "the recovery journal's mode is '$VM_J_MODE', not live"
}

# ostree variant, the last boot of a recovery: the boot entry must start v1 (the backup's
# deployment); phase 1 ends or runs in its initramfs, phase 2 follows, and the trees are
# compared where they live in the sysroot. [min attempts of a step, for the host check]
vm_ostree_recover_boot() { # disk [attempts]
    local v1
    v1=$(cat "$VM_IMG/commit-v1")
    vm_ostree_boot_entry "$1"
    [ "$VM_BOOT_COMMIT" = "$v1" ] || vm_die "after the platform rollback the boot entry starts $VM_BOOT_COMMIT, not v1 $v1"
    vm_boot_retry recover "$1" 900 -- ur_e2e.stage=recover
    [ "$VM_RC" = 0 ] || vm_fail_boot "the boot of v1 (phase 1 and 2) ended with qemu rc $VM_RC"
    vm_expect_pass early
    vm_expect_pass recover
    echo "v1 boot: initrd unit (phase 1) $(vm_guest_value initrd-unit-ms) ms, phase 2 $(vm_guest_value phase2-ms) ms"
    VM_TREE_MAP="etc:ostree/deploy/urvm/deploy/$v1.0/etc usrlocal:ostree/deploy/urvm/var/usrlocal kubelet:ostree/deploy/urvm/var/lib/kubelet"
    vm_host_check_recovered "$1" "${2:-0}"
}

# On the disk of a finished boot 1: a published backup, `latest`, and the armed marker.
vm_host_check_armed() {
    local m=$VM_RUN/mnt-rec
    vm_mount_part "$1" recovery "$m"
    local id
    id=$(readlink "$m/latest" || true)
    [ -n "$id" ] && [ -d "$m/$id" ] || { vm_umount_all; vm_die "no published backup behind 'latest' on the recovery partition"; }
    [ -s "$m/recovery/armed" ] || { vm_umount_all; vm_die "no armed marker on the recovery partition"; }
    vm_log "host: partition has $id, armed with $(cat "$m/recovery/armed")"
    vm_umount_all
}

# After a finished recovery, read the disk image on the host: the recovery journal is
# final ("complete"), no marker is left, and the trees of the root file system equal the
# backup's copies (rsync dry run comparing contents, owners, modes, times, ACLs, xattrs
# and hard links), apart from the kubelet .wants link phase 1 and phase 2 recreate.
vm_host_check_recovered() { # disk [min attempts of the interrupted step]
    local mr=$VM_RUN/mnt-rec mroot=$VM_RUN/mnt-root
    vm_mount_part "$1" recovery "$mr"
    vm_mount_part "$1" root "$mroot"
    [ "$VM_VARIANT" = ostree ] || vm_mount_part "$1" var "$mroot/var"
    local j=$mr/recovery/journal rc=0
    [ -f "$j" ] || { vm_umount_all; vm_die "no recovery journal on the partition"; }
    cp "$j" "$VM_RUN/recovery-journal.json"
    python3 - "$j" "${2:-0}" <<'PY' || rc=$?
import json, sys
j = json.load(open(sys.argv[1]))
print("host: recovery %s backup %s state %s" % (j.get("recovery_id"), j.get("backup_id"), j.get("state")))
for s in j.get("steps", []):
    print("host:   step %-28s %-8s attempts=%s %s" % (s.get("name"), s.get("state"), s.get("attempts"), s.get("note", "")))
if j.get("state") != "complete":
    sys.exit("recovery journal state is %r, not 'complete'" % j.get("state"))
need = int(sys.argv[2])
if need and max(int(s.get("attempts", 0)) for s in j.get("steps", [])) < need:
    sys.exit("no step was attempted %d times: the power cut did not interrupt a step" % need)
PY
    [ -e "$mr/recovery/armed" ] && rc=1 && echo "FAIL: armed marker left" >&2
    [ -e "$mr/recovery/phase2-pending" ] && rc=1 && echo "FAIL: phase2-pending left" >&2
    if [ $rc = 0 ]; then vm_host_compare_trees "$mr" "$mroot" || rc=$?; fi
    vm_umount_all
    [ $rc = 0 ] || vm_die "host-side check of the recovered disk failed"
}

# The end of a passing test: its timings, and its disks go.
vm_finish() { # test name
    echo "timings:"
    sed 's/^/  /' "$VM_TIMINGS"
    rm -f "$VM_RUN"/*.img # the logs stay; a passing run's disks are not worth 1 GB
    echo "PASS $1"
}

vm_host_compare_trees() { # recovery-mount root-mount
    local mr=$1 mroot=$2 id tree src out bad=0
    id=$(readlink "$mr/latest")
    # VM_TREE_MAP: where each backed-up tree is on the root partition (the ostree
    # variant's /etc is its deployment's, /var the stateroot's).
    for tree in ${VM_TREE_MAP:-etc:etc usrlocal:usr/local kubelet:var/lib/kubelet}; do
        src=$mr/$id/${tree%%:*}
        if [ ! -d "$src" ]; then
            vm_log "host: backup layout has no ${tree%%:*}/ tree directory; skipping the host-side tree comparison"
            return 0
        fi
        # xfs shows its on-disk form of ACLs as trusted.SGI_ACL_* to root: not a difference.
        out=$(rsync -n -i -a -c -H -A -X --filter='-x trusted.SGI_ACL_*' --delete "$src/" "$mroot/${tree#*:}/" 2>&1 |
            grep -Ev '^\.d\.\.t\.\.\.\.\.\. (systemd/system/multi-user\.target\.wants|kubernetes/manifests)/$|^[.c]L\.\.t\.\.\.\.\.\. systemd/system/multi-user\.target\.wants/kubelet\.service ' || true)
        if [ -n "$out" ]; then
            echo "FAIL: /${tree#*:} differs from backup $id:" >&2
            head -n 40 <<<"$out" >&2
            bad=1
        else
            vm_log "host: /${tree#*:} equals backup $id (contents, metadata, ACLs, xattrs, hard links)"
        fi
    done
    return $bad
}

# Never leave loop devices or mounts behind, whatever ends the script.
vm_cleanup() { [ ${#VM_MOUNTS[@]} -gt 0 ] && vm_umount_all; return 0; }
trap vm_cleanup EXIT
