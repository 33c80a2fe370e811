#!/bin/sh
# Install what building and testing need on Debian 12 (run as root). Idempotent.
# Usage: scripts/install-deps.sh [build|test|vm]   (each includes the ones before it)
set -eu
what=${1:-test}
build="meson ninja-build pkg-config g++ libsystemd-dev libmount-dev libblkid-dev libostree-dev
  libtomlplusplus-dev catch2 libssl-dev nlohmann-json3-dev"
test="gdisk xfsprogs util-linux mount ostree etcd-server etcd-client rsync acl attr systemd dbus
  dbus-daemon man-db groff-base zstd clang-format tar openssl coreutils
  python3 python3-yaml time prometheus-node-exporter jq
  skopeo golang-github-containers-common docker-registry"
# VM suite: qemu (TCG), the guest root (debootstrap), its initramfs (dracut-core: the
# dracut tool without replacing the host's initramfs-tools), the disk (e2fsprogs,
# xfsprogs, gdisk from the lists above). The guest kernel is downloaded into the build
# dir's cache by the harness (apt-get download + dpkg -x), never installed on the host.
# ostree-boot: dracut's ostree module and ostree-prepare-root for vm-ostree's initramfs
# (its dracut.conf.d snippet does not touch the host: initramfs-tools builds the host's).
vm="qemu-system-x86 qemu-utils debootstrap dracut-core cpio kmod ostree-boot"
pkgs=$build
[ "$what" = test ] || [ "$what" = vm ] && pkgs="$pkgs $test"
[ "$what" = vm ] && pkgs="$pkgs $vm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
