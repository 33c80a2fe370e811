#!/bin/bash
# vm-backup: boot 1 of the recovery cycle, on a fresh image. Nothing is armed yet: systemd
# is PID 1, var-recovery.mount mounted the xfs partition after its fsck (and is not
# ordered before local-fs.target), the initrd unit ran and costs under a second. Then a
# backup through the daemon (busctl call StartBackup; the Job reaches Succeeded), which
# `upgrade-recovery verify` accepts; a failed upgrade; `upgrade-recovery arm`; reboot.
# Its disk is what vm-recovery and vm-powercut start from.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run backup
vm_build_image
vm_boot1
vm_check_initrd_cost
echo "boot 1: $(vm_guest_value boot-times); backup through the daemon $(vm_guest_value backup-seconds) s"
vm_finish vm-backup
