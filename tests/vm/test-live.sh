#!/bin/bash
# vm-live: the recovery an administrator starts on the running node through the daemon,
# not through the initramfs. Boot 2 takes boot 1's disk (backup, failed upgrade, armed)
# with upgrade_recovery=off, so the failed upgrade comes up with kubelet, etcd and CRI-O
# running; the guest disarms, calls StartRecovery (reboot=true) over the system bus,
# and live phase 1 stops the real units through systemd, restores the running system,
# disables kubelet and has systemd reboot. Boot 3: phase 2 from its unit; the trees
# and etcd equal the backup, from the guest and from the host.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run live
vm_build_image
vm_armed_disk "$VM_RUN/disk.img"

vm_boot_retry live "$VM_RUN/disk.img" 900 -- ur_e2e.stage=live upgrade_recovery=off
grep -q "UR-E2E: FAIL" "$VM_SERIAL" && vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
vm_expect_pass live-started
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2 (live recovery) ended with qemu rc $VM_RC, not with the reboot"

vm_recovery_marks "$VM_RUN/disk.img"
vm_log "after boot 2: journal mode '$VM_J_MODE' state '$VM_J_STATE', phase2-pending: $VM_PENDING"
[ "$VM_PENDING" = yes ] || vm_die "the live phase 1 left no phase2-pending marker"
[ "$VM_J_MODE" = live ] || vm_die "the recovery journal's mode is '$VM_J_MODE', not live"

vm_boot_retry phase2 "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover-live
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 3 (phase 2) ended with qemu rc $VM_RC"
vm_expect_pass recover
vm_host_check_recovered "$VM_RUN/disk.img"
vm_finish vm-live
