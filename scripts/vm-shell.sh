#!/bin/bash
# Boot the VM test guest interactively (serial console on this terminal; log in as
# root without a password; Ctrl-A X quits qemu). For debugging the vm suite.
# Usage: scripts/vm-shell.sh [BUILD_DIR [DISK]] [-- extra kernel arguments]
#   BUILD_DIR  the meson build dir whose vm-cache to use (default: build)
#   DISK       a disk image to boot, e.g. <build>/vm-cache/runs/recovery/disk.img
#              (default: a fresh copy of the cached image)
# Example: scripts/vm-shell.sh build-vm "" -- ur_e2e.stage=smoke
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export UR_SOURCE_DIR=$here
export UR_BUILD_DIR=${1:-build}
disk=${2:-}
shift $(($# < 2 ? $# : 2))
[ "${1:-}" = -- ] && shift
. "$here/tests/vm/lib.sh"
vm_require
vm_build_image
VM_RUN=$VM_CACHE/runs/shell
mkdir -p "$VM_RUN"
if [ -z "$disk" ]; then
    disk=$VM_RUN/disk.img
    vm_copy_disk "$VM_DISK" "$disk"
fi
exec {lockfd}>"$VM_GLOBAL_LOCK"
flock -w 600 "$lockfd" || vm_die "another VM is running ($VM_GLOBAL_LOCK)"
qemu-system-x86_64 -accel tcg -m "$VM_MEM" -smp "$VM_SMP" -nodefaults -nographic -display none \
    -nic none -serial mon:stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
    -append "root=PARTLABEL=root rw console=ttyS0 panic=-1 rd.timeout=60 $*" \
    -drive "file=$disk,format=raw,if=virtio,cache=unsafe"
