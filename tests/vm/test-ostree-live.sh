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
v1=$(cat "$VM_IMG/commit-v1")
v2=$(cat "$VM_IMG/commit-v2")
vm_armed_disk "$disk"

vm_ostree_boot_entry "$disk"
[ "$VM_BOOT_COMMIT" = "$v2" ] || vm_die "after the upgrade the boot entry starts $VM_BOOT_COMMIT, not v2 $v2"
vm_boot_retry live "$disk" 900 -- ur_e2e.stage=live upgrade_recovery=off
grep -q "UR-E2E: FAIL" "$VM_SERIAL" && vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
vm_expect_pass live-started
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2 (live recovery on v2) ended with qemu rc $VM_RC, not with the reboot"
vm_recovery_marks "$disk"
vm_log "after boot 2: journal mode '$VM_J_MODE' state '$VM_J_STATE', armed: $VM_ARMED"
[ "$VM_J_MODE" = live ] && [ "$VM_J_STATE" = paused ] && [ "$VM_ARMED" = yes ] ||
    vm_die "after the live platform rollback: journal $VM_J_MODE/$VM_J_STATE, armed $VM_ARMED (want live/paused, yes)"

vm_ostree_boot_entry "$disk"
[ "$VM_BOOT_COMMIT" = "$v1" ] ||
    vm_die "after the live platform rollback the boot entry starts $VM_BOOT_COMMIT, not v1 $v1"
vm_boot_retry recover "$disk" 900 -- ur_e2e.stage=recover
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 3 (v1, rest of phase 1 and phase 2) ended with qemu rc $VM_RC"
vm_expect_pass early
vm_expect_pass recover
VM_TREE_MAP="etc:ostree/deploy/urvm/deploy/$v1.0/etc usrlocal:ostree/deploy/urvm/var/usrlocal kubelet:ostree/deploy/urvm/var/lib/kubelet"
vm_host_check_recovered "$disk"
vm_finish vm-ostree-live
