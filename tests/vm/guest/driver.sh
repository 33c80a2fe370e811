#!/bin/bash
# The guest side of the VM end-to-end test (/usr/lib/ur-e2e/driver.sh).
#   driver.sh main    ur-e2e.service: the stage named by ur_e2e.stage= on the kernel
#                     command line, after the node is up (phase 2 included)
#   driver.sh early   ur-e2e-early.service (stage "recover" only): after phase 1 ran in
#                     the initramfs, before phase 2 and kubelet
# Stages:
#   smoke    nothing armed: the partition is mounted, the initrd unit ran (its cost is
#            judged by the host), the stand-ins run
#   backup   boot 1: the smoke checks; a backup through the daemon (busctl), verified;
#            then a failed upgrade is played, recovery is armed and the guest reboots
#   recover  boot 2: phase 1 ran in the initrd (early), phase 2 ran, etcd is the
#            backup's, kubelet runs, the trees equal the backup's
#   noop     boot 3: nothing armed, nothing changes (trees, partition), the initrd unit ran
#   off      armed, but booted with upgrade_recovery=off: the initrd unit was skipped,
#            phase 1 did not run, the marker stays, the failed upgrade is still there
#   live     armed disk booted with upgrade_recovery=off, the failed upgrade running
#            (kubelet, etcd, crio up): DisarmRecovery, then StartRecovery with reboot
#            through the daemon; live phase 1 stops the real units, restores the running
#            system and asks systemd to reboot
#   recover-live  the boot after "live": like "recover", without the initrd checks
#   rollback (ostree variant) the upgraded deployment, armed: phase 1's platform rollback
#            reboots in the initramfs, so this stage must never run
# On an ostree boot, "backup" also stages urvm/v2 after the failed upgrade, and "early"
# checks that the booted deployment is the backup's again.
# Every verdict is an "UR-E2E: PASS <stage>" / "UR-E2E: FAIL <stage>: why" line on the
# serial console; a failure also ends qemu through isa-debug-exit.
. /usr/lib/ur-e2e/lib-guest.sh

BUS_NAME=io.openshift.UpgradeRecovery1
BUS_PATH=/io/openshift/UpgradeRecovery1
BUS_IFACE=io.openshift.UpgradeRecovery1
MSG_PHASE1_DONE=df581197f42a445a835c66cdb1d4c990
MSG_PHASE2_DONE=801d5783118046f499383fdda6a378ee
MSG_BACKUP_SUCCEEDED=85622ca2b66a4d8ab266daa80c34fb03
# Phase 1 disables kubelet and phase 2 enables it again: the .wants link is recreated
# (a new mtime) and its directory's mtime changes. Nothing else may differ.
ALLOW_KUBELET_LINK='/etc/systemd/system/multi-user\.target\.wants(/kubelet\.service)?'
# Phase 1 leaves the static pod manifests to cluster-restore.sh (phase 2), which puts the
# backup's back (same contents and times; their directory gets a new mtime).
ALLOW_MANIFESTS_BEFORE_PHASE2='/etc/kubernetes/manifests(/[^ ]*)?'
ALLOW_MANIFESTS_DIR='/etc/kubernetes/manifests'
E2E_TREE_DIRS="/etc/e2e /usr/local/lib/e2e /var/lib/kubelet/e2e"
# The kube-scheduler image of the backup's manifests (populate.sh): the failed upgrade's
# image garbage collection removes it from the container storage (W11).
GC_IMAGE=quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:$(printf %s kube-scheduler | sha256sum | cut -c1-64)

boot_times() {
    local initrd userspace now
    initrd=$(systemctl show -p InitRDTimestampMonotonic --value)
    userspace=$(systemctl show -p UserspaceTimestampMonotonic --value)
    now=$(awk '{print int($1 * 1000000)}' /proc/uptime)
    say "boot-times kernel=$(awk -v a="$initrd" 'BEGIN{printf "%.1f", a/1e6}')s initrd=$(awk -v a="$initrd" -v b="$userspace" 'BEGIN{printf "%.1f", (b-a)/1e6}')s userspace-until-driver=$(awk -v a="$userspace" -v b="$now" 'BEGIN{printf "%.1f", (b-a)/1e6}')s"
}

# The initrd unit ran in this boot; print what it cost (the host judges it: under TCG
# every instruction is emulated, so the host scales the time by calib-ms, what starting
# the same binary costs here, against what it costs on the host).
initrd_unit_checks() {
    local ms
    journalctl -b -q -u upgrade-recovery-initrd.service -o cat | sed 's/^/UR-E2E: initrd-unit-log: /' | tail -n 40 >/dev/console
    ms=$(unit_runtime_ms upgrade-recovery-initrd.service)
    [ -n "$ms" ] || fail "upgrade-recovery-initrd.service did not run in the initramfs of this boot"
    say "initrd-unit-ms $ms"
    say "calib-ms $(calib_ms)"
}

# Nothing armed: the initrd unit read the partition's marker and touched nothing of the
# real root (initrd_peek.hpp): no /var mount, no fallback to the long way.
unarmed_initrd_checks() {
    local log
    log=$(journalctl -b -q -u upgrade-recovery-initrd.service -o cat)
    grep -q 'mounted the real /var' <<<"$log" && fail "the initrd unit mounted /var although nothing was armed"
    grep -q 'could not look at the recovery partition' <<<"$log" && fail "the initrd unit could not peek at the partition: $log"
    return 0
}

# Milliseconds of one `upgrade-recovery --version` (mean of 5): loading the binary and
# its libraries, which is most of what the initrd unit does when nothing is armed.
calib_ms() {
    local t0 t1 i
    upgrade-recovery --version >/dev/null
    t0=$(date +%s%N)
    for i in 1 2 3 4 5; do upgrade-recovery --version >/dev/null; done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 5000000))
}

# Milestones of this boot (monotonic seconds), for the record.
boot_profile() {
    journalctl -b -q -o short-monotonic --no-pager 2>/dev/null |
        grep -E 'Linux version|Run /init|Reached target (initrd-root-device|initrd-root-fs|initrd-fs|initrd|local-fs|multi-user)|upgrade-recovery-initrd|Switching root|Mounted sysroot|upgrade-recovery-phase2|Started kubelet' |
        sed 's/^/UR-E2E: profile: /' >/dev/console
}

journal_has() { [ -n "$(journalctl -b -q -o cat "MESSAGE_ID=$1" 2>/dev/null | head -n1)" ]; }

label_and_acl() {
    local t
    find /var/lib/kubelet -xdev -exec setfattr -h -n security.selinux -v system_u:object_r:container_var_lib_t:s0 {} + 2>/dev/null
    setfattr -n security.selinux -v system_u:object_r:kubelet_exec_t:s0 /var/lib/kubelet/config.yaml
    for t in $E2E_TREE_DIRS; do
        setfattr -n security.selinux -v system_u:object_r:etc_t:s0 "$t/hl1"
        setfattr -n security.selinux -v system_u:object_r:bin_t:s0 "$t/setuid-file"
        setfattr -h -n security.selinux -v system_u:object_r:etc_t:s0 "$t/rel-link"
        setfattr -n security.selinux -v system_u:object_r:container_file_t:s0:c1,c2 "$t/deep/a/b/c/file"
        setfacl -m u:1234:rw,g:5678:r,m::rw "$t/owned-file"
        setfacl -d -m u:1234:rwx "$t/dir with space"
        setfattr -n user.e2e -v "user xattr" "$t/change-me"
        setfattr -n trusted.e2e -v trusted "$t/deep/a/b/c/file"
        setfacl -m u:4321:r "$t/acl-then-removed"
    done
}

# A failed upgrade: files changed, added and deleted in every tree and in the
# MachineConfig files; metadata-only changes too; etcd moved on; the image garbage
# collection removed one of the old control plane's images.
failed_upgrade() {
    local t
    grep -ho 'image: .*' /etc/kubernetes/manifests/*-pod.yaml | cut -d' ' -f2 | sort -u >/var/lib/standin/images
    grep -qxF "$GC_IMAGE" /var/lib/standin/images || fail "the manifests do not name $GC_IMAGE"
    sed -i "\|^$GC_IMAGE\$|d" /var/lib/standin/images
    for t in $E2E_TREE_DIRS; do
        echo "changed by the upgrade" >>"$t/change-me"
        rm -f "$t/delete-me"
        echo "added by the upgrade" >"$t/added-by-upgrade"
        chmod 0600 "$t/chmod-me"
        setfattr -n security.selinux -v system_u:object_r:shadow_t:s0 "$t/hl1"
        setfacl -b "$t/acl-then-removed"
        setfattr -x user.e2e "$t/change-me"
        rm -rf "$t/dir with space"
        ln -sfn change-me "$t/rel-link"
        touch "$t/deep/a/b/c/file"
        rm -f "$t/hl2" && echo "no longer a hard link" >"$t/hl2"
        printf 'filled' | dd of="$t/sparse.img" bs=1 seek=1000 conv=notrunc status=none
        chown 0:0 "$t/owned-file"
        rm -f "$t/fifo" && echo "not a fifo any more" >"$t/fifo"
        mkdir -p "$t/new-dir/sub" && echo new >"$t/new-dir/sub/file"
    done
    sed -i 's/revision: "7"/revision: "8"/' /etc/kubernetes/manifests/kube-apiserver-pod.yaml
    cp -a /etc/kubernetes/static-pod-resources/kube-apiserver-pod-7 /etc/kubernetes/static-pod-resources/kube-apiserver-pod-8
    rm -f /usr/local/etc/e2e.conf
    echo '#!/bin/sh' >/usr/local/bin/upgrade-tool && chmod 755 /usr/local/bin/upgrade-tool
    echo "cgroupDriver: cgroupfs" >>/var/lib/kubelet/config.yaml
    rm -f /var/lib/kubelet/pki/kubelet-server-2025-05-01-10-00-00.pem
    mkdir -p /var/lib/kubelet/pods/ffff-new-pod/volumes && echo x >/var/lib/kubelet/pods/ffff-new-pod/volumes/v
    # MachineConfig: the file outside the trees changes; the new config names a new file
    # outside the trees, which must be gone after the recovery (absent at backup time).
    echo "ovn-ic changed by the upgrade" >/var/lib/ovn-ic/etc/enable-ovn-ic
    mkdir -p /var/lib/mco-new && echo "added by the new MachineConfig" >/var/lib/mco-new/added.conf
    sed -i 's|{"path":"/etc/mco/node.conf","mode":420}|{"path":"/etc/mco/node.conf","mode":420},{"path":"/var/lib/mco-new/added.conf","mode":420}|' \
        /etc/machine-config-daemon/currentconfig
    echo "mco-managed=2" >/etc/mco/node.conf
    etcdctl_local put e2e/after-backup "must vanish" >/dev/null || fail "etcd put after the backup"
    etcdctl_local del e2e/deleted-later >/dev/null || fail "etcd del after the backup"
    sync
}

# ostree variant: the booted deployment ("<checksum>.<serial>") per `ostree admin status`.
ostree_booted() { ostree admin status 2>/dev/null | awk '$1 == "*" {print $3; exit}'; }

# The upgrade on an ostree node, as rpm-ostree does it for the MCO: the backup pinned the
# booted v1; v2 is staged, and ostree-finalize-staged.service deploys it on top at
# shutdown (its /etc merged from v1's, failed-upgrade changes included); the next boot
# starts it.
ostree_upgrade() {
    local booted out
    booted=$(ostree_booted)
    [ -n "$booted" ] || fail "ostree admin status shows no booted deployment"
    grep -q 'release 1' /usr/lib/ur-e2e/release || fail "boot 1 is not v1: $(cat /usr/lib/ur-e2e/release)"
    echo "$booted" >"$E2E_STATE/ostree-booted.backup"
    ostree admin status 2>&1 | sed 's/^/UR-E2E: ostree-before: /' >/dev/console
    ostree admin status 2>&1 | grep -q 'Pinned: yes' || fail "the backup did not pin the booted deployment"
    # RHCOS's sysroot.readonly: the daemon pinned v1 through a read-only /sysroot.
    findmnt -n -o OPTIONS /sysroot | grep -qw ro || fail "/sysroot is not read-only: $(findmnt -n -o OPTIONS /sysroot)"
    out=$(ostree admin deploy --stage --os=urvm urvm/v2 2>&1) || fail "ostree admin deploy --stage urvm/v2: $out"
    ostree admin status 2>&1 | sed 's/^/UR-E2E: ostree-after: /' >/dev/console
    ostree admin status | head -n1 | grep -q '(staged)' || fail "after ostree admin deploy --stage nothing is staged"
    systemctl -q is-active ostree-finalize-staged.service || fail "ostree-finalize-staged.service is not active"
    say "fact ostree upgrade: booted $booted, v2 staged (finalized at shutdown)"
}

# After the recovery: the node runs the backup's deployment again.
ostree_checks() {
    local want booted
    want=$(cat "$E2E_STATE/ostree-booted.backup" 2>/dev/null)
    booted=$(ostree_booted)
    ostree admin status 2>&1 | sed 's/^/UR-E2E: ostree: /' >/dev/console
    [ -n "$want" ] && [ "$booted" = "$want" ] || fail "booted deployment '$booted', the backup was taken in '$want'"
    grep -q 'release 1' /usr/lib/ur-e2e/release || fail "not v1's /usr: $(cat /usr/lib/ur-e2e/release)"
    [ "$(findmnt -n -o FSTYPE /var)" = ext4 ] || fail "/var is not the stateroot's bind mount"
    say "fact ostree booted $booted (the backup's)"
}

wait_job() { # job-path timeout
    local job=$1 deadline=$((SECONDS + $2)) st="" last="" prog msg
    while :; do
        st=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" State 2>/dev/null | awk '{print $2}' | tr -d '"')
        prog=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" Progress 2>/dev/null | awk '{print $2}')
        [ "$st/$prog" != "$last" ] && say "job $job state=$st progress=$prog" && last="$st/$prog"
        case $st in
        Succeeded) return 0 ;;
        Error | Timeout | Cancelled)
            msg=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" Message 2>/dev/null)
            fail "backup job ended in $st: $msg"
            ;;
        "")
            msg=$(busctl get-property "$BUS_NAME" "$BUS_PATH" "$BUS_IFACE.Manager" LastError 2>/dev/null)
            fail "backup job $job vanished (Manager.LastError: $msg)"
            ;;
        esac
        [ $SECONDS -ge "$deadline" ] && fail "backup job still '$st' after $2 s"
        sleep 2
    done
}

mc_checks() { # expect the backup's MachineConfig state
    [ "$(cat /var/lib/ovn-ic/etc/enable-ovn-ic 2>/dev/null)" = "ovn-ic enabled" ] ||
        fail "the MachineConfig file outside the trees was not restored: $(cat /var/lib/ovn-ic/etc/enable-ovn-ic 2>&1)"
    [ -e /var/lib/mco-new/added.conf ] &&
        fail "the file the failed upgrade's MachineConfig added outside the trees is still there"
    return 0
}

# ---------------------------------------------------------------------------------
# A boot with nothing armed: PID 1, the partition, the initrd unit ran (its cost is
# printed for the host to judge), the stand-ins run.
smoke_checks() {
    check "PID 1 is not systemd" test "$(cat /proc/1/comm)" = systemd
    local fstype src
    fstype=$(findmnt -n -o FSTYPE /var/recovery)
    src=$(findmnt -n -o SOURCE /var/recovery)
    say "fact recovery-mount source=$src fstype=$fstype"
    [ "$fstype" = xfs ] || fail "/var/recovery is not the xfs recovery partition (fstype '$fstype', source '$src')"
    # nofail semantics: wanted by local-fs.target but not ordered before it; fsck first.
    local before after
    before=$(systemctl show -p Before --value var-recovery.mount)
    after=$(systemctl show -p After --value var-recovery.mount)
    grep -qw local-fs.target <<<"$before" && fail "var-recovery.mount is ordered before local-fs.target (no nofail semantics)"
    grep -q 'systemd-fsck@dev-disk-by.*partlabel-recovery\.service' <<<"$after" ||
        fail "var-recovery.mount is not ordered after its fsck: $after"
    [ -e /var/recovery/recovery/armed ] && fail "armed before boot 1"
    initrd_unit_checks
    unarmed_initrd_checks
    journal_has "$MSG_PHASE1_DONE" && fail "phase 1 ran although nothing was armed"
    say "fact cli $(upgrade-recovery --version 2>&1 | head -n1)"
    check "kubelet stand-in is not active" systemctl -q is-active kubelet.service
    check "crio stand-in is not active" systemctl -q is-active crio.service
    wait_etcd 180 || fail "etcd (the kubelet stand-in's static pod) is not healthy"
    boot_times
    boot_profile
}

stage_smoke() {
    smoke_checks
    upgrade-recovery status 2>&1 | sed 's/^/UR-E2E: status: /' >/dev/console
    say "PASS smoke"
    systemctl poweroff --no-block
}

# The metrics unit as installed, pointed at /run by a drop-in, started by systemd: it
# writes the textfile (its sandboxing lets it read the store and write there).
metrics_checks() {
    local prom=/run/ur-metrics/upgrade_recovery.prom d=/run/systemd/system/upgrade-recovery-metrics.service.d
    mkdir -p /run/ur-metrics "$d"
    printf '[Service]\nEnvironment=UPGRADE_RECOVERY_TEXTFILE=%s\n' "$prom" >"$d/10-e2e.conf"
    systemctl daemon-reload
    systemctl start upgrade-recovery-metrics.service ||
        fail "upgrade-recovery-metrics.service failed: $(journalctl -b -q -u upgrade-recovery-metrics.service -o cat | tail -n 5)"
    grep -qx 'upgrade_recovery_store_up 1' "$prom" || fail "the metrics textfile does not say the store is up"
    grep -qx 'upgrade_recovery_last_backup_attempt_state{state="succeeded"} 1' "$prom" ||
        fail "the metrics textfile does not show the backup as succeeded"
    say "fact metrics $(grep -c '^upgrade_recovery_' "$prom") samples"
}

stage_backup() {
    smoke_checks
    local i job
    for i in $(seq 1 20); do etcdctl_local put "e2e/key$i" "value $i" >/dev/null || fail "etcd put"; done
    etcdctl_local put e2e/deleted-later "must come back" >/dev/null || fail "etcd put"
    etcdctl_local get --prefix e2e/ --keys-only | sed '/^$/d' | sort >"$E2E_STATE/etcd-keys.backup"
    label_and_acl
    sync
    job=$(busctl --timeout=120 call "$BUS_NAME" "$BUS_PATH" "$BUS_IFACE.Manager" StartBackup 'a{sv}' 0 2>&1) ||
        fail "busctl call StartBackup: $job"
    job=$(awk '{print $2}' <<<"$job" | tr -d '"')
    say "fact backup-job $job"
    local t0=$SECONDS
    wait_job "$job" 1200
    say "backup-seconds $((SECONDS - t0))"
    journal_has "$MSG_BACKUP_SUCCEEDED" || fail "no 'backup succeeded' journal event"
    upgrade-recovery list 2>&1 | sed 's/^/UR-E2E: list: /' >/dev/console
    local out
    out=$(upgrade-recovery verify 2>&1) || fail "upgrade-recovery verify of the new backup: $out"
    say "fact verify ok: $(tail -n1 <<<"$out")"
    metrics_checks
    listing "$E2E_STATE/backup.listing"
    say "fact listing $(wc -l <"$E2E_STATE/backup.listing") lines"
    failed_upgrade
    [ -e /run/ostree-booted ] && ostree_upgrade
    out=$(upgrade-recovery arm 2>&1) || fail "upgrade-recovery arm: $out"
    [ -e /var/recovery/recovery/armed ] || fail "arm wrote no armed marker"
    # The initramfs ran the module in this boot (its mark in /run): arm does not warn.
    [ -e /run/upgrade-recovery/initrd ] || fail "the initramfs left no /run/upgrade-recovery/initrd"
    grep -q "did not run upgrade-recovery" <<<"$out" && fail "arm warns of a missing initramfs module: $out"
    upgrade-recovery status --json | grep -q '"initrd_module_ran": *true' ||
        fail "status --json does not say the initramfs module ran: $(upgrade-recovery status --json | grep initrd)"
    upgrade-recovery status 2>&1 | sed 's/^/UR-E2E: status: /' >/dev/console
    sync
    say "PASS backup"
    systemctl reboot --no-block
}

stage_early() {
    initrd_unit_checks
    [ -e /run/ostree-booted ] && ostree_checks
    journal_has "$MSG_PHASE1_DONE" || fail "no 'phase 1 done' journal event in this boot"
    systemctl -q is-active kubelet.service && fail "kubelet runs before phase 2"
    systemctl -q is-enabled kubelet.service && fail "kubelet is still enabled after phase 1"
    pgrep -x etcd >/dev/null && fail "etcd runs before phase 2"
    [ -e /var/recovery/recovery/phase2-pending ] || fail "phase 1 left no phase2-pending marker"
    [ -e /var/recovery/recovery/armed ] && fail "still armed after phase 1"
    listing "$E2E_STATE/early.listing"
    compare_listings "$E2E_STATE/backup.listing" "$E2E_STATE/early.listing" "$ALLOW_KUBELET_LINK|$ALLOW_MANIFESTS_BEFORE_PHASE2" ||
        fail "after phase 1 the trees differ from the backup"
    mc_checks
    cat /proc/sys/kernel/random/boot_id >"$E2E_STATE/early.ok"
    say "PASS early"
}

stage_recover() {
    if [ "$E2E_STAGE" = recover-live ]; then
        [ -n "$(journalctl -b -1 -q -o cat "MESSAGE_ID=$MSG_PHASE1_DONE" 2>/dev/null | head -n1)" ] ||
            fail "no 'phase 1 done' journal event in the boot before (the live phase 1)"
        journal_has "$MSG_PHASE1_DONE" && fail "phase 1 ran again in this boot"
        journalctl -b -1 -q -u upgrade-recoveryd.service -o cat | tail -n 30 | sed 's/^/UR-E2E: live-log: /' >/dev/console
        local u
        for u in kubelet.service crio.service; do
            journalctl -b -1 -q -u "$u" -o cat | grep -q '^Stopped' ||
                fail "$u was not stopped in the boot of the live phase 1"
        done
    else
        [ "$(cat "$E2E_STATE/early.ok" 2>/dev/null)" = "$(cat /proc/sys/kernel/random/boot_id)" ] ||
            fail "the checks between phase 1 and phase 2 did not pass in this boot"
    fi
    local deadline=$((SECONDS + 1200)) state sub result
    while :; do
        state=$(systemctl show -p ActiveState --value upgrade-recovery-phase2.service)
        sub=$(systemctl show -p SubState --value upgrade-recovery-phase2.service)
        result=$(systemctl show -p Result --value upgrade-recovery-phase2.service)
        [ "$state" = failed ] && fail "upgrade-recovery-phase2.service failed ($result)"
        [ "$state/$sub" = active/exited ] && break
        [ "$state" = inactive ] && fail "upgrade-recovery-phase2.service did not run ($result)"
        [ $SECONDS -ge $deadline ] && fail "phase 2 still $state/$sub after 20 minutes"
        sleep 2
    done
    journalctl -b -q -u upgrade-recovery-phase2.service -o cat | tail -n 30 | sed 's/^/UR-E2E: phase2-log: /' >/dev/console
    say "phase2-ms $(unit_runtime_ms upgrade-recovery-phase2.service)"
    journal_has "$MSG_PHASE2_DONE" || fail "no 'phase 2 done' journal event"
    check "kubelet is not active after phase 2" systemctl -q is-active kubelet.service
    check "kubelet is not enabled after phase 2" systemctl -q is-enabled kubelet.service
    wait_etcd 180 || fail "etcd is not healthy after phase 2"
    etcdctl_local get --prefix e2e/ --keys-only | sed '/^$/d' | sort >"$E2E_STATE/etcd-keys.recovered"
    diff "$E2E_STATE/etcd-keys.backup" "$E2E_STATE/etcd-keys.recovered" >/dev/null ||
        fail "etcd keys differ from the backup: $(diff "$E2E_STATE/etcd-keys.backup" "$E2E_STATE/etcd-keys.recovered" | grep '^[<>]' | tr '\n' ' ')"
    grep -q " restore " /var/lib/standin/cluster-scripts.log || fail "cluster-restore.sh did not run"
    # W11: the image the upgrade's garbage collection removed came back: pulled by a live
    # verify step once the registry answered (vm-live, vm-ostree-live), or else by phase
    # 2's pull-images step after an initramfs phase 1, which cannot ask CRI-O.
    grep -qxF "$GC_IMAGE" /var/lib/standin/images || fail "$GC_IMAGE is not in the container storage after the recovery"
    local p2
    p2=$(journalctl -b -q -u upgrade-recovery-phase2.service -o cat)
    if grep -qF "pull-images: pulled 1 missing control-plane images: $GC_IMAGE" <<<"$p2"; then
        say "fact phase 2 pulled $GC_IMAGE"
    elif grep -qF "pull-images: all 4 present" <<<"$p2" &&
        journalctl -q -u upgrade-recoveryd.service -o cat | grep -qF "control-plane images: pulled 1 of 4: $GC_IMAGE"; then
        say "fact the live verify step pulled $GC_IMAGE"
    else
        fail "neither phase 2 nor a live verify step says it pulled $GC_IMAGE: $(grep -F 'pull-images:' <<<"$p2" | tr '\n' ' ')"
    fi
    if [ "$E2E_STAGE" = recover-live ]; then
        grep -qF "pull-images: all 4 present" <<<"$p2" || fail "phase 2 after the live phase 1 did not find the images present"
    fi
    [ "$(grep -c ' patch ' /var/lib/standin/oc.log)" -ge 4 ] || fail "fewer than 4 forced redeployments (oc patch)"
    [ -e /var/recovery/recovery/phase2-pending ] && fail "phase2-pending is still there"
    # The cluster status shown first and last, kept on the partition: after phase 2
    # always; before from a live phase 1 (the initramfs has no API to ask).
    grep -q '^master rendered-master-standin True$' /var/recovery/recovery/cluster-status.after ||
        fail "no cluster status after the recovery: $(head -c 300 /var/recovery/recovery/cluster-status.after 2>&1)"
    if [ "$E2E_STAGE" = recover-live ]; then
        grep -q '^Cluster version is 4.14.0-standin$' /var/recovery/recovery/cluster-status.before ||
            fail "no cluster status from before the live recovery: $(head -c 300 /var/recovery/recovery/cluster-status.before 2>&1)"
    fi
    local out
    out=$(upgrade-recovery status --json 2>&1)
    echo "$out" | sed 's/^/UR-E2E: status: /' | head -n 40 >/dev/console
    grep -q '"complete"' <<<"$out" || fail "status --json does not say the recovery is complete"
    out=$(upgrade-recovery verify 2>&1) || fail "upgrade-recovery verify after the recovery: $out"
    listing "$E2E_STATE/recovered.listing"
    compare_listings "$E2E_STATE/backup.listing" "$E2E_STATE/recovered.listing" "$ALLOW_KUBELET_LINK|$ALLOW_MANIFESTS_DIR" ||
        fail "after the recovery the trees differ from the backup"
    mc_checks
    partition_state >"$E2E_STATE/partition.recovered"
    sync
    say "PASS recover"
    systemctl poweroff --no-block
}

stage_noop() {
    initrd_unit_checks
    unarmed_initrd_checks
    journal_has "$MSG_PHASE1_DONE" && fail "phase 1 ran although nothing was armed"
    [ "$(systemctl show -p ConditionResult --value upgrade-recovery-phase2.service)" = no ] ||
        fail "upgrade-recovery-phase2.service was not skipped by its condition"
    check "kubelet is not active" systemctl -q is-active kubelet.service
    wait_etcd 180 || fail "etcd is not healthy"
    listing "$E2E_STATE/noop.listing"
    compare_listings "$E2E_STATE/recovered.listing" "$E2E_STATE/noop.listing" "" ||
        fail "a boot with nothing armed changed the trees"
    partition_state >"$E2E_STATE/partition.noop"
    diff "$E2E_STATE/partition.recovered" "$E2E_STATE/partition.noop" | sed 's/^/UR-E2E: diff: /' >/dev/console
    cmp -s "$E2E_STATE/partition.recovered" "$E2E_STATE/partition.noop" ||
        fail "a boot with nothing armed changed the recovery partition"
    boot_times
    boot_profile
    say "PASS noop"
    systemctl poweroff --no-block
}

# The recovery an administrator starts on the running node (docs/dbus.md): the failed
# upgrade runs; the daemon's live phase 1 stops kubelet, the pods and CRI-O through
# systemd, restores the files under the running system, disables kubelet, and asks
# systemd to reboot; phase 2 runs in the next boot.
stage_live() {
    [ -z "$(unit_runtime_ms upgrade-recovery-initrd.service)" ] || fail "the initrd unit ran (upgrade_recovery=off)"
    [ -e /var/recovery/recovery/armed ] || fail "the disk of boot 1 is not armed"
    wait_etcd 180 || fail "etcd (the failed upgrade's cluster) is not up"
    check "kubelet is not active before the live recovery" systemctl -q is-active kubelet.service
    check "crio is not active before the live recovery" systemctl -q is-active crio.service
    local out job st="" prog msg last="" deadline=$((SECONDS + 900))
    out=$(busctl --timeout=60 call "$BUS_NAME" "$BUS_PATH" "$BUS_IFACE.Manager" DisarmRecovery 2>&1) ||
        fail "busctl call DisarmRecovery: $out"
    [ -e /var/recovery/recovery/armed ] && fail "DisarmRecovery left the armed marker"
    # W11: an image the backup's control plane needs is gone and its registry cannot be
    # reached: refused before anything stops. Then the registry is back: the recovery pulls it.
    touch /var/lib/standin/registry-down
    job=$(busctl --timeout=120 call "$BUS_NAME" "$BUS_PATH" "$BUS_IFACE.Manager" StartRecovery 'a{sv}' 1 reboot b true 2>&1) ||
        fail "busctl call StartRecovery: $job"
    job=$(awk '{print $2}' <<<"$job" | tr -d '"')
    while [ $SECONDS -lt $deadline ]; do
        st=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" State 2>/dev/null | awk '{print $2}' | tr -d '"')
        case $st in Error | Timeout | Cancelled | Succeeded) break ;; esac
        sleep 1
    done
    msg=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" Message 2>/dev/null)
    [ "$st" = Error ] || fail "the recovery with $GC_IMAGE missing ended in '$st', not refused: $msg"
    grep -qF "which the container storage lacks: $GC_IMAGE" <<<"$msg" || fail "the refusal does not name the missing image: $msg"
    check "kubelet is not active after the refused recovery" systemctl -q is-active kubelet.service
    check "crio is not active after the refused recovery" systemctl -q is-active crio.service
    say "fact refused while $GC_IMAGE was missing: $msg"
    rm /var/lib/standin/registry-down
    job=$(busctl --timeout=120 call "$BUS_NAME" "$BUS_PATH" "$BUS_IFACE.Manager" StartRecovery 'a{sv}' 1 reboot b true 2>&1) ||
        fail "busctl call StartRecovery: $job"
    job=$(awk '{print $2}' <<<"$job" | tr -d '"')
    say "fact recovery-job $job"
    say "PASS live-started"
    # The job ends with phase 1 and the daemon asks for the reboot: this script is
    # stopped by the shutdown. Anything else is a failure.
    while [ $SECONDS -lt $deadline ]; do
        st=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" State 2>/dev/null | awk '{print $2}' | tr -d '"')
        prog=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" Progress 2>/dev/null | awk '{print $2}')
        [ "$st/$prog" != "$last" ] && say "job $job state=$st progress=$prog" && last="$st/$prog"
        case $st in
        Error | Timeout | Cancelled)
            msg=$(busctl get-property "$BUS_NAME" "$job" "$BUS_IFACE.Job" Message 2>/dev/null)
            fail "recovery job ended in $st: $msg"
            ;;
        esac
        sleep 1
    done
    fail "no reboot 15 minutes after StartRecovery (job state '$st')"
}

# The watchdog's boot: nobody does anything; the watchdog must fire 60 s into the boot
# and reboot. The console shows the unit's output; the host checks the rest.
stage_watchdog() {
    [ -z "$(unit_runtime_ms upgrade-recovery-initrd.service)" ] || note "the initrd unit ran (found nothing armed)"
    journal_has "$MSG_PHASE1_DONE" && fail "phase 1 ran although only a watchdog was started"
    local deadline=$((SECONDS + 600)) st
    while [ $SECONDS -lt $deadline ]; do
        st=$(systemctl show -p ActiveState --value upgrade-recovery-watchdog.service)
        [ "$st" = failed ] && fail "upgrade-recovery-watchdog.service failed: $(journalctl -b -q -u upgrade-recovery-watchdog.service -o cat | tail -n 5 | tr '\n' ' ')"
        sleep 2
    done
    fail "no reboot 10 minutes into the boot (watchdog unit: $st, uptime $(cut -d' ' -f1 /proc/uptime) s)"
}

stage_off() {
    grep -qw upgrade_recovery=off /proc/cmdline || fail "booted without upgrade_recovery=off"
    [ -z "$(unit_runtime_ms upgrade-recovery-initrd.service)" ] ||
        fail "upgrade-recovery-initrd.service ran although the command line says upgrade_recovery=off"
    journalctl -b -q -u upgrade-recovery-initrd.service -o cat | sed 's/^/UR-E2E: initrd-unit-log: /' >/dev/console
    journal_has "$MSG_PHASE1_DONE" && fail "phase 1 ran with upgrade_recovery=off"
    [ -e /var/recovery/recovery/armed ] || fail "the armed marker is gone after a boot with upgrade_recovery=off"
    [ -e /var/recovery/recovery/phase2-pending ] && fail "phase2-pending after a boot with upgrade_recovery=off"
    # Armed, and the module did not run in this boot: status says so (as arm would).
    [ -e /run/upgrade-recovery/initrd ] && fail "a mark of the initramfs module although its unit did not run"
    local st
    st=$(upgrade-recovery status 2>&1)
    grep -q "^WARNING: this boot's initramfs did not run upgrade-recovery" <<<"$st" ||
        fail "status does not warn that the initramfs module did not run: $st"
    [ "$(systemctl show -p ConditionResult --value upgrade-recovery-phase2.service)" = no ] ||
        fail "upgrade-recovery-phase2.service was not skipped by its condition"
    listing "$E2E_STATE/off.listing"
    # The failed upgrade must still be there: the trees differ from the backup.
    local n
    n=$(diff "$E2E_STATE/backup.listing" "$E2E_STATE/off.listing" | grep -c '^[<>]')
    [ "$n" -gt 0 ] || fail "the trees equal the backup after a boot with upgrade_recovery=off: something restored them"
    say "fact off: $n listing lines differ from the backup"
    sync
    say "PASS off"
    systemctl poweroff --no-block
}

E2E_STAGE=$(stage_from_cmdline)
case ${1:-main} in
early) E2E_STAGE=early; stage_early ;;
main)
    say "stage $E2E_STAGE starts at uptime $(cut -d' ' -f1 /proc/uptime)s"
    case $E2E_STAGE in
    smoke) stage_smoke ;;
    backup) stage_backup ;;
    recover | recover-live) stage_recover ;;
    live) stage_live ;;
    watchdog) stage_watchdog ;;
    noop) stage_noop ;;
    off) stage_off ;;
    rollback) fail "the upgraded deployment reached user space: phase 1 in its initramfs did not roll back and reboot" ;;
    *) fail "unknown stage '$E2E_STAGE'" ;;
    esac
    ;;
esac
exit 0
