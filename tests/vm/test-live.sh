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

vm_live_boot "$VM_RUN/disk.img"
[ "$VM_PENDING" = yes ] || vm_die "the live phase 1 left no phase2-pending marker"

vm_boot_retry phase2 "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover-live
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 3 (phase 2) ended with qemu rc $VM_RC"
vm_expect_pass recover
vm_host_check_recovered "$VM_RUN/disk.img"
vm_finish vm-live
