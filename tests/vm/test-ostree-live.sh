#!/bin/bash
# vm-ostree-live: the live recovery through the daemon on an ostree node. Boot 1 is
# vm-ostree's (v1: backup, failed upgrade, v2 staged, armed). Boot 2 starts v2 with
# upgrade_recovery=off, so the failed upgrade runs; the guest disarms and calls
# StartRecovery (reboot=true): live phase 1 verifies, rolls back with libostree on the
# booted system (the daemon's sandbox, the read-only /sysroot), pauses, stays armed and
# has systemd reboot. Boot 3 starts v1 (the boot entry says so): phase 1 continues in
# its initramfs, phase 2 follows; the trees equal the backup.
. "$(dirname "$0")/lib.sh"
VM_VARIANT=ostree
vm_require
vm_new_run ostree-live
vm_build_image
disk=$VM_RUN/disk.img
v2=$(cat "$VM_IMG/commit-v2")
vm_armed_disk "$disk"

vm_ostree_boot_entry "$disk"
[ "$VM_BOOT_COMMIT" = "$v2" ] || vm_die "after the upgrade the boot entry starts $VM_BOOT_COMMIT, not v2 $v2"
vm_live_boot "$disk"
[ "$VM_J_STATE" = paused ] && [ "$VM_ARMED" = yes ] ||
    vm_die "after the live platform rollback: journal $VM_J_STATE, armed $VM_ARMED (want paused, yes)"
vm_ostree_recover_boot "$disk"
vm_finish vm-ostree-live
