#!/bin/bash
# vm-boot: the guest boots with our initramfs module and units and nothing armed:
# systemd is PID 1, var-recovery.mount mounted the xfs partition, the initrd unit ran
# and cost under a second, the stand-ins run. Measures the boot.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run boot
vm_build_image
vm_copy_disk "$VM_DISK" "$VM_RUN/disk.img"
vm_boot smoke "$VM_RUN/disk.img" 400 -- ur_e2e.stage=smoke
[ "$VM_RC" = 0 ] || vm_fail_boot "qemu rc $VM_RC"
vm_expect_pass smoke
vm_check_initrd_cost
echo "boot: $(vm_guest_value boot-times)"
echo "timings:"; sed 's/^/  /' "$VM_TIMINGS"
echo "PASS vm-boot"
