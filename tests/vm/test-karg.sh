#!/bin/bash
# vm-karg: the kernel arguments of upgrade-recovery-dracut(7), booted for real.
# Boot 2a: the disk of boot 1 (backup, failed upgrade, armed) booted with
# upgrade_recovery=off: the initrd unit is skipped, phase 1 does not run, the armed
# marker stays, the failed upgrade is still there. The host then removes the marker,
# as for a node that could not boot far enough to run `arm`. Boot 2b with
# upgrade_recovery=phase1 and nothing armed: phase 1 recovers to the latest backup in
# the initramfs, phase 2 follows, and the disk ends as after vm-recovery.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run karg
vm_build_image
vm_armed_disk "$VM_RUN/disk.img"

vm_boot_retry off "$VM_RUN/disk.img" 600 -- ur_e2e.stage=off upgrade_recovery=off
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2a (upgrade_recovery=off) ended with qemu rc $VM_RC"
vm_expect_pass off
echo "boot 2a: $(vm_guest_value fact)"

m=$VM_RUN/mnt-rec
vm_mount_part_rw "$VM_RUN/disk.img" recovery "$m"
armed=$(cat "$m/recovery/armed" 2>/dev/null || true)
journal=$([ -e "$m/recovery/journal" ] && echo yes || echo no)
rm -f "$m/recovery/armed"
sync
vm_umount_all
[ -n "$armed" ] || vm_die "after the boot with upgrade_recovery=off the partition is not armed"
[ "$journal" = no ] || vm_die "a recovery journal appeared in the boot with upgrade_recovery=off"
vm_log "host: still armed with $armed after upgrade_recovery=off; marker removed"

vm_boot_retry phase1 "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover upgrade_recovery=phase1
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2b (upgrade_recovery=phase1) ended with qemu rc $VM_RC"
vm_expect_pass early
vm_expect_pass recover
vm_host_check_recovered "$VM_RUN/disk.img"
vm_finish vm-karg
