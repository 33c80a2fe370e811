#!/bin/bash
# vm-watchdog: a failed upgrade that nobody recovers by hand. Boot 1's disk (backup,
# failed upgrade) is given, instead of the armed marker, the upgrade watchdog `upgrade-
# recovery watchdog start --timeout 60` would have left in boot 1 (written from the
# host: a start is refused while armed, and boot 1 is shared). Boot 2: the failed
# upgrade comes up; upgrade-recovery-watchdog.service waits until 60 s of the boot
# have passed, arms the backup's recovery and has systemd reboot (the guest driver
# does nothing but wait). Boot 3: phase 1 in the initramfs, phase 2, the trees and
# etcd equal the backup, from the guest and from the host.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run watchdog
vm_build_image
vm_armed_disk "$VM_RUN/disk.img"

m=$VM_RUN/mnt-wd
vm_mount_part_rw "$VM_RUN/disk.img" recovery "$m"
id=$(cat "$m/recovery/armed")
rm "$m/recovery/armed"
cat >"$m/recovery/watchdog" <<TOML
# what 'upgrade-recovery watchdog start --timeout 60' writes (here by the host, test-watchdog.sh)
backup = "$id"
timeout = 60
started = "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
boot_id = "boot-1-of-vm-watchdog"
TOML
vm_umount_all

vm_boot_retry watchdog "$VM_RUN/disk.img" 900 -- ur_e2e.stage=watchdog
grep -q "UR-E2E: FAIL" "$VM_SERIAL" && vm_fail_boot "guest reported: $(grep -m1 'UR-E2E: FAIL' "$VM_SERIAL" | tr -d '\r')"
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2 (the watchdog's) ended with qemu rc $VM_RC, not with its reboot"
grep -aq "Watchdog fired (the upgrade was not declared complete within 60 s of the boot): recovery armed with backup $id; the node reboots now" "$VM_SERIAL" ||
    vm_fail_boot "the console does not show the watchdog firing"
vm_recovery_marks "$VM_RUN/disk.img"
[ "$VM_ARMED" = yes ] || vm_die "the watchdog's boot ended without an armed recovery"
m=$VM_RUN/mnt-wd
vm_mount_part "$VM_RUN/disk.img" recovery "$m"
[ "$(cat "$m/recovery/armed")" = "$id" ] || vm_die "the watchdog armed $(cat "$m/recovery/armed"), not $id"
[ ! -e "$m/recovery/watchdog" ] || vm_die "the watchdog is still there after it fired"
vm_umount_all

vm_boot_retry recover "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 3 (recover) ended with qemu rc $VM_RC"
vm_expect_pass early
vm_expect_pass recover
vm_host_check_recovered "$VM_RUN/disk.img"
vm_finish vm-watchdog
