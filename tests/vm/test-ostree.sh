#!/bin/bash
# vm-ostree: the recovery on an ostree system, booted for real. The root partition is an
# ostree sysroot (RHCOS's layout: /etc per deployment, /var the stateroot's, /usr/local
# -> var/usrlocal, a read-only /sysroot); the harness boots what the boot entries
# ostree wrote name, as a boot loader would. Boot 1 (v1): a backup through the daemon
# (pins v1), a failed upgrade, `ostree admin deploy --stage urvm/v2` (as rpm-ostree
# stages the MCO's update; finalized at shutdown, its /etc merged from v1's), arm.
# Boot 2a starts v2 and the power is cut as phase 1's platform rollback starts. Boot
# 2b starts v2 again: phase 1 resumes, finds the backup's deployment is not the booted
# one, makes v1 the default again and reboots before the switch root. Boot 3 starts
# v1: phase 1 restores into v1's /etc and the stateroot's /var, phase 2 follows; the
# trees equal the backup, from the guest and from the host.
. "$(dirname "$0")/lib.sh"
VM_VARIANT=ostree
vm_require
vm_new_run ostree
vm_build_image
disk=$VM_RUN/disk.img
v2=$(cat "$VM_IMG/commit-v2")
vm_armed_disk "$disk" # boot 1: v1, backup, failed upgrade, v2 staged, armed

vm_ostree_boot_entry "$disk"
[ "$VM_BOOT_COMMIT" = "$v2" ] || vm_die "after the upgrade the boot entry starts $VM_BOOT_COMMIT, not v2 $v2"
# Boot 2a: the power is cut as the platform rollback step starts (journal: started).
UR_VM_KILL_ON='failpoint reached' vm_boot cut "$disk" 600 -- ur_e2e.stage=rollback \
    systemd.setenv=UR_FAILPOINT=recovery.platform-rollback
[ "${VM_KILLED:-0}" = 1 ] || vm_fail_boot "the power cut at the platform rollback did not happen (qemu rc $VM_RC)"
vm_recovery_marks "$disk"
[ "$VM_J_STATE" = running ] && [ "$VM_ARMED" = yes ] ||
    vm_die "after the power cut the partition says journal '$VM_J_STATE', armed $VM_ARMED (want running, yes)"
vm_ostree_boot_entry "$disk"
[ "$VM_BOOT_COMMIT" = "$v2" ] || vm_die "the power cut before the rollback left the boot entry at $VM_BOOT_COMMIT, not v2"
# Boot 2b: the same deployment again; phase 1 resumes at the rollback and reboots.
vm_boot_retry upgraded "$disk" 900 -- ur_e2e.stage=rollback
grep -q "UR-E2E: FAIL" "$VM_SERIAL" && vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2 (v2, armed) ended with qemu rc $VM_RC"
grep -aq 'platform rollback: ' "$VM_SERIAL" || vm_fail_boot "boot 2 printed no platform rollback"
# The reboot from the initramfs is a planned one: no unit may fail on the way (a queued
# reboot made initrd-cleanup.service fail behind phase 1).
vm_no_failed_units
vm_log "boot 2: $(grep -a -m1 'platform rollback: ' "$VM_SERIAL" | tr -d '\r' | sed 's/.*platform rollback: /platform rollback: /')"

vm_ostree_recover_boot "$disk" 2
vm_finish vm-ostree
