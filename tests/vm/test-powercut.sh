#!/bin/bash
# vm-powercut: the recovery cycle with the power cut in the middle of phase 1. Boot 2a
# runs the initrd unit with a failpoint (systemd.setenv=UR_FAILPOINT=... on the kernel
# command line: the CLI SIGKILLs itself there) and qemu is killed the moment the console
# shows it, like pulling the plug. Boot 2b must resume phase 1 at the interrupted step
# and end in the same verified state as an uninterrupted recovery.
. "$(dirname "$0")/lib.sh"
vm_require
vm_new_run powercut
vm_build_image
vm_armed_disk "$VM_RUN/disk.img"

# A failpoint inside phase 1's restore; the first one the binary has wins.
fp=${UR_VM_FAILPOINT:-}
if [ -z "$fp" ]; then
    # restore.file:N: the N-th file phase 1 restores (the failed upgrade left ~60 to fix).
    for cand in restore.file:12; do
        if grep -aq "${cand%%:*}" "$VM_STAGE/usr/bin/upgrade-recovery" 2>/dev/null; then
            fp=$cand
            break
        fi
    done
fi
if [ -n "$fp" ]; then
    vm_log "power cut at failpoint $fp"
    UR_VM_KILL_ON='failpoint reached' vm_boot cut "$VM_RUN/disk.img" 600 -- ur_e2e.stage=recover "systemd.setenv=UR_FAILPOINT=$fp"
else
    # No failpoint in phase 1 yet: cut the power as soon as phase 1 reports work.
    vm_log "no phase-1 failpoint in this build; cutting the power on phase 1's first progress line"
    UR_VM_KILL_ON='upgrade-recovery\[[0-9]+\]: .*(restor|verif)' vm_boot cut "$VM_RUN/disk.img" 600 -- ur_e2e.stage=recover
fi
[ "${VM_KILLED:-0}" = 1 ] || vm_fail_boot "the power cut did not happen (qemu rc $VM_RC)"

# The partition must say "in progress" (armed kept until phase 1 completes).
vm_recovery_marks "$VM_RUN/disk.img"
vm_log "after the power cut: journal state '$VM_J_STATE', armed: $VM_ARMED"
[ "$VM_ARMED" = yes ] || [ "$VM_J_STATE" = running ] ||
    vm_die "after the power cut nothing says phase 1 is unfinished (state '$VM_J_STATE', armed $VM_ARMED)"

vm_boot_retry resume "$VM_RUN/disk.img" 900 -- ur_e2e.stage=recover
[ "$VM_RC" = 0 ] || vm_fail_boot "boot 2b (resume) ended with qemu rc $VM_RC"
vm_expect_pass early
vm_expect_pass recover
vm_host_check_recovered "$VM_RUN/disk.img" "$([ -n "$fp" ] && echo 2 || echo 0)"
vm_finish vm-powercut
