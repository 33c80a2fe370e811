#!/bin/bash
# vm-recovery: the whole cycle. Boot 1 (vm-backup's disk, or run now): a backup through
# the daemon, verified; a failed upgrade; arm; reboot. Boot 2: phase 1 in the initramfs against /sysroot,
# kubelet stays down, phase 2 restores etcd and starts kubelet; the trees equal the
# backup. The disk is then checked from the host. Boot 3: nothing armed changes nothing
# and the initrd unit costs under a second.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run recovery
vm_build_image
vm_armed_disk "$VM_RUN/disk.img"
vm_boot_retry recover "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2 (recover) ended with qemu rc $VM_RC"
vm_expect_pass early
vm_expect_pass recover
echo "boot 2: initrd unit (phase 1) $(vm_guest_value initrd-unit-ms) ms, phase 2 $(vm_guest_value phase2-ms) ms"
vm_host_check_recovered "$VM_RUN/disk.img"
vm_boot_retry noop "$VM_RUN/disk.img" 400 -- ur_e2e.stage=noop
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 3 (noop) ended with qemu rc $VM_RC"
vm_expect_pass noop
vm_check_initrd_cost
echo "boot 3: $(vm_guest_value boot-times)"
vm_finish vm-recovery
