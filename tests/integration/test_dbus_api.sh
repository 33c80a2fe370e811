#!/bin/bash
# upgrade-recoveryd end to end over a private system bus, driven with busctl:
# a backup job from start to Succeeded with Progress rising and the Manager States
# in order, ListBackups, a dry-run StartBackup, VerifyBackup, GetRollbackPlan, Arm/Disarm/AbandonRecovery,
# DeleteBackup, a dry-run StartRecovery, and the --request-backup client mode; the store
# watch (also after partition.mount_point changed) and the initramfs warning.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
dbus_setup
require_cmd jq systemctl
dbus_big_tree 3000
# This boot's initramfs mark, asked under the sandbox root too; none yet.
RUN=$T/run-upgrade-recovery
dbus_start_daemon --initrd-run-dir "$RUN"

[ "$(mprop State)" = Idle ] || die "initial State is $(mprop State)"
[ "$(mprop LastBackup)" = "" ] || die "LastBackup before any backup: $(mprop LastBackup)"
[ "$(mprop CurrentJob)" = / ] || die "CurrentJob before any job: $(mprop CurrentJob)"
[ -n "$(mprop Version)" ] || die "no Version"
ok "initial properties"

# Watch every signal from our objects; ready once it has seen our own Ping.
busctl --system monitor --json=short --match="type='signal',sender='$BUS_NAME'" \
    --match="type='method_call',path='$MGR_PATH',interface='org.freedesktop.DBus.Peer'" >"$T/monitor.json" 2>"$T/monitor.err" &
MON_PID=$!
on_exit "kill $MON_PID 2>/dev/null"
for ((i = 0; i < 100; i++)); do
    busctl --system call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Peer Ping
    grep -q '"member":"Ping"' "$T/monitor.json" && break
    sleep 0.1
done
grep -q '"member":"Ping"' "$T/monitor.json" || die "busctl monitor did not start: $(cat "$T/monitor.err")"

# --- a backup job, start to Succeeded ---------------------------------------------
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[[ $J == $MGR_PATH/job/* ]] || die "StartBackup returned '$J'"
S=$(wait_job "$J")
[ "$S" = Succeeded ] || die "backup job ended $S: $(jprop "$J" Message)"
B1=$(jprop "$J" BackupId)
[ "$B1" = "$(latest_id)" ] || die "job BackupId $B1, latest is $(latest_id)"
[ "$(jprop "$J" Progress)" = 100 ] || die "final Progress $(jprop "$J" Progress)"
[ "$(jprop "$J" Error)" = "" ] || die "Error set on success: $(jprop "$J" Error)"
[ "$(jprop "$J" Type)" = backup ] || die "Type $(jprop "$J" Type)"
ok "backup job $J: $(jprop "$J" Message)"
# Warnings: each once (they come live and again with the result); this sandbox has
# no MachineConfig, which the backup warns about.
W=$(busctl --system get-property "$BUS_NAME" "$J" "$JOB_IFACE" Warnings)
grep -qF "no MachineConfig at" <<<"$W" || die "no MachineConfig warning in Warnings: $W"
[ "$(grep -oF '"no MachineConfig at' <<<"$W" | wc -l)" = 1 ] || die "a warning listed twice: $W"
ok "Warnings: $W"

# Signals are delivered in order; give the monitor a moment to write the last ones.
for ((i = 0; i < 50; i++)); do grep -q '"member":"Finished"' "$T/monitor.json" && break; sleep 0.1; done
grep '"member":"Finished"' "$T/monitor.json" | grep -qF "\"path\":\"$J\"" || die "no Finished signal from $J"
grep '"member":"Finished"' "$T/monitor.json" | grep -qF '"Succeeded"' || die "Finished does not say Succeeded"

# Manager State, in the order the PropertiesChanged signals carried it.
states=$(grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -o '"State":{"type":"s","data":"[A-Za-z]*"' |
    sed -E 's/.*"data":"([A-Za-z]*)"/\1/' | tr '\n' ' ')
[ "$states" = "PreparingToStart Starting Active Succeeded " ] || die "Manager States in order: '$states'"
ok "Manager State: $states"

# Job Progress as the signals carried it: rising, several steps, ending at 100.
progress=$(grep -F "\"path\":\"$J\"" "$T/monitor.json" | grep -o '"Progress":{"type":"u","data":[0-9]*' |
    sed -E 's/.*"data"://' | tr '\n' ' ')
prev=-1 n=0
for p in $progress; do
    [ "$p" -ge "$prev" ] || die "Progress went back: $progress"
    [ "$p" -gt "$prev" ] && n=$((n + 1))
    prev=$p
done
[ "$prev" = 100 ] && [ $n -ge 3 ] || die "Progress did not rise in steps to 100: '$progress'"
ok "Progress: $progress"

[ "$(mprop State)" = Succeeded ] || die "State after the job: $(mprop State)"
[ "$(mprop LastBackup)" = "$B1" ] || die "LastBackup $(mprop LastBackup), want $B1"
[ "$(mprop CurrentJob)" = / ] || die "CurrentJob after the job: $(mprop CurrentJob)"
grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -qF "\"LastBackup\":{\"type\":\"s\",\"data\":\"$B1\"" ||
    die "no PropertiesChanged for LastBackup"
busctl --system tree "$BUS_NAME" | grep -qF "$J" || die "job object $J not in the tree"
ok "Manager properties after the backup (LastBackup $B1)"

# --- a second backup with options; ListBackups ------------------------------------
B2=$(date -u -d '+1 hour' +%Y%m%dT%H%M%SZ) # newer than B1; ids more than a day ahead are refused
J2=$(mcall StartBackup 'a{sv}' 2 timeout u 300 id s "$B2" | objpath)
[ "$(wait_job "$J2")" = Succeeded ] || die "second backup: $(jprop "$J2" Message)"
[ "$(latest_id)" = "$B2" ] || die "latest is $(latest_id), want $B2"
[ "${J2##*/}" -gt "${J##*/}" ] || die "job numbers do not rise: $J then $J2"

L=$(mcall ListBackups --json=short)
ids=$(grep -o '"id":{"type":"s","data":"[^"]*"' <<<"$L" | sed -E 's/.*"data":"([^"]*)"/\1/' | tr '\n' ' ')
[ "$ids" = "$B2 $B1 " ] || die "ListBackups ids (newest first): '$ids'"
grep -qF '"latest":{"type":"b","data":true}' <<<"$L" || die "no latest flag in ListBackups"
grep -qF '"metadata_json":' <<<"$L" || die "no metadata_json in ListBackups"
ok "ListBackups: $ids"
# A damaged `latest` marks none as latest, and the list is still there.
mv "$STORE/latest" "$T/latest.saved" && echo damaged >"$STORE/latest"
L=$(mcall ListBackups --json=short) || die "ListBackups with a damaged latest failed"
ids=$(grep -o '"id":{"type":"s","data":"[^"]*"' <<<"$L" | sed -E 's/.*"data":"([^"]*)"/\1/' | tr '\n' ' ')
[ "$ids" = "$B2 $B1 " ] || die "ListBackups ids with a damaged latest: '$ids'"
! grep -qF '"latest":{"type":"b","data":true}' <<<"$L" || die "a latest flag with a damaged latest"
out=$(gcall VerifyBackup "" "{}")
expect_error "$ERR.Corrupt" "$out"
grep -qF "ln -sfn backups/$B2" <<<"$out" || die "VerifyBackup '' with a damaged latest gives no remedy: $out"
mv -f "$T/latest.saved" "$STORE/latest"
ok "ListBackups with a damaged latest: $ids, none latest; VerifyBackup '' is Corrupt"

# --- a dry-run backup: the space check and the checks before a write, nothing written
store_state() { (cd "$STORE" && find . -printf '%p %i %s %T@ %C@\n' | LC_ALL=C sort | md5sum); }
before=$(store_state)
echo "new since $B2" >"$ROOT/usr/local/dry-run-marker"
JD=$(mcall StartBackup 'a{sv}' 1 dry_run b true | objpath)
SD=$(wait_job "$JD")
[ "$SD" = Succeeded ] || die "dry-run backup ended $SD: $(jprop "$JD" Error) $(jprop "$JD" Message)"
msg=$(jprop "$JD" Message)
# This config turns sharing off (share_unchanged = false): every regular file is new.
nfiles=$(find "$ROOT/etc" "$ROOT/usr/local" "$ROOT/var/lib/kubelet" -type f | wc -l)
[[ $msg == "dry run, nothing written: would copy $nfiles files ("* ]] ||
    die "dry-run Message does not count the $nfiles files: $msg"
# Sharing off: not "share 0 B with $B2", nor "(no earlier backup)" with $B2 there.
[[ $msg == *", share nothing (backup.share_unchanged is off); needs "*" free: fits" ]] || die "dry-run Message: $msg"
[ "$(jprop "$JD" BackupId)" = "" ] || die "a dry run has BackupId $(jprop "$JD" BackupId)"
[ "$(store_state)" = "$before" ] || die "a dry-run backup changed the store"
[ "$(mprop LastBackup)" = "$B2" ] || die "LastBackup after a dry run: $(mprop LastBackup)"
ok "StartBackup dry_run: $msg"
# What the backup refuses before its first write, the dry run refuses too, the same way
# (it said "fits" for ostree.mode = "on" without a sysroot, and the backup then failed).
cp "$CFG" "$T/config.ostree-off"
sed -i '/^\[ostree\]$/,/^mode/s/^mode = "off"$/mode = "on"/' "$CFG"
grep -A1 '^\[ostree\]$' "$CFG" | grep -qx 'mode = "on"' || die "cannot set ostree.mode in $CFG"
before=$(store_state)
JD=$(mcall StartBackup 'a{sv}' 1 dry_run b true | objpath)
SD=$(wait_job "$JD")
[ "$SD" = Error ] || die "a dry run with ostree.mode = on and no sysroot ended $SD: $(jprop "$JD" Message)"
[ "$(jprop "$JD" Error)" = "$ERR.NotFound" ] || die "dry run without a sysroot: Error $(jprop "$JD" Error)"
[[ $(jprop "$JD" Message) == *"pin the booted deployment: ostree: no ostree sysroot at $ROOT/sysroot"* ]] ||
    die "dry run without a sysroot: Message $(jprop "$JD" Message)"
[ "$(store_state)" = "$before" ] || die "a dry run that failed changed the store"
[ "$(mprop LastBackup)" = "$B2" ] || die "LastBackup after a failed dry run: $(mprop LastBackup)"
cp "$T/config.ostree-off" "$CFG"
ok "StartBackup dry_run with ostree.mode = on and no sysroot -> NotFound: $(jprop "$JD" Message)"

# --- VerifyBackup ----------------------------------------------------------------
verify_ok
verify_ok "$B1"
JV=$(mcall VerifyBackup 'sa{sv}' "$B1" 0 | objpath)
wait_job "$JV" >/dev/null
[ "$(jprop "$JV" Type)" = verify ] && [ "$(jprop "$JV" BackupId)" = "$B1" ] || die "verify job properties"
ok "VerifyBackup: $(jprop "$JV" Message)"

# --- GetRollbackPlan (ostree.mode = off here: the backup recorded no deployment, so
# the plan is "nothing", as the recovery skips the step) ----------------------------
P=$(mcall GetRollbackPlan --json=short)
grep -qF "\"backup_id\":{\"type\":\"s\",\"data\":\"$B2\"" <<<"$P" || die "plan not for $B2: $P"
action=$(grep -o '"action":{"type":"s","data":"[^"]*"' <<<"$P" | sed -E 's/.*"data":"([^"]*)"/\1/')
[ "$action" = nothing ] || die "plan action '$action', want nothing: $P"
grep -qF '"json":' <<<"$P" && grep -qF '"text":' <<<"$P" || die "plan without text/json: $P"
ok "GetRollbackPlan: action $action"

# --- Arm / Disarm ----------------------------------------------------------------
# initrd_warnings METHOD: how often the daemon logged `arm`'s warning for METHOD.
initrd_warnings() { grep -cF "$1: this boot's initramfs did not run upgrade-recovery (no $RUN/initrd)" "$T/daemon.log" || true; }
mcall ArmRecovery 'sa{sv}' "$B1" 0 || die "ArmRecovery failed"
[ "$(cat "$STORE/recovery/armed")" = "$B1" ] || die "armed marker: $(cat "$STORE/recovery/armed" 2>&1)"
[ "$(initrd_warnings ArmRecovery)" = 1 ] || die "ArmRecovery without the initramfs mark logged no warning: $(cat "$T/daemon.log")"
[ "$(mprop RecoveryState)" = Armed ] || die "RecoveryState after arming: $(mprop RecoveryState)"
# Warnings: what `status` prints after WARNING:, from the same checks. The CLI under
# --root does not ask about this boot's initramfs; the daemon, given --initrd-run-dir, does.
warnings() { busctl --system --json=short get-property "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" Warnings | jq -c .data; }
cli_warnings() { "$UR_BUILD_DIR/src/cli/upgrade-recovery" --root "$ROOT" --config "$CFG" --json status | jq -c .warnings; }
W=$(warnings) CW=$(cli_warnings)
[ "$(jq length <<<"$W")" = 2 ] || die "Warnings while armed without the units and the mark: $W"
jq -e '.[0] | startswith("this boot'"'"'s initramfs did not run upgrade-recovery")' <<<"$W" >/dev/null || die "Warnings[0]: $W"
[ "$(jq -c '.[1:]' <<<"$W")" = "$CW" ] || die "Warnings $W, but status says $CW"
jq -e '.[0] | startswith("upgrade-recovery-phase2.service is not installed")' <<<"$CW" >/dev/null || die "status warnings: $CW"
mkdir -p "$ROOT/boot/loader/entries"
printf 'title test\noptions root=UUID=1 upgrade_recovery=phase1 rw\n' >"$ROOT/boot/loader/entries/ostree-1-test.conf"
sleep 2.1 # re-read at most every 2 s
W=$(warnings) CW=$(cli_warnings)
[ "$(jq length <<<"$W")" = 3 ] && [ "$(jq -c '.[1:]' <<<"$W")" = "$CW" ] || die "Warnings $W with a kept karg; status: $CW"
jq -e '.[1] | contains("/boot/loader/entries/ostree-1-test.conf")' <<<"$W" >/dev/null || die "no kept-karg warning: $W"
rm -r "$ROOT/boot"
# What the earlier tooling left on the partition (earlier_tooling): its recovery in
# progress and its backup, two more lines, as status says them.
mkdir "$STORE/kubelet" && echo started >"$STORE/progress"
sleep 2.1
W=$(warnings) CW=$(cli_warnings)
[ "$(jq length <<<"$W")" = 4 ] && [ "$(jq -c '.[1:]' <<<"$W")" = "$CW" ] || die "Warnings $W with the earlier tooling's files; status: $CW"
jq -e '.[2] | startswith("a recovery by the earlier upgrade-recovery.sh is in progress")' <<<"$W" >/dev/null ||
    die "no earlier recovery warning: $W"
jq -e '.[3] | startswith("the recovery partition holds a backup of the earlier upgrade-recovery.sh (kubelet)")' <<<"$W" >/dev/null ||
    die "no earlier backup warning: $W"
rm -r "$STORE/kubelet" "$STORE/progress"
ok "Warnings: the initramfs, the kept kernel argument, the unit and the earlier tooling's files, as status says them"
expect_error "$ERR.Refused" "$(gcall DeleteBackup "$B1")"
[ -d "$STORE/backups/$B1" ] || die "DeleteBackup removed the armed backup $B1"
mcall DisarmRecovery || die "DisarmRecovery failed"
[ ! -e "$STORE/recovery/armed" ] || die "armed marker still there after DisarmRecovery"
[ "$(mprop RecoveryState)" = None ] || die "RecoveryState after disarming: $(mprop RecoveryState)"
# The earlier tooling's recovery in progress: neither a recovery of ours nor a watchdog starts.
echo started >"$STORE/progress"
out=$(gcall ArmRecovery "$B1" '{}')
expect_error "$ERR.RecoveryInProgress" "$out"
grep -qF "a recovery of upgrade-recovery is refused while it runs" <<<"$out" || die "ArmRecovery during the earlier recovery: $out"
out=$(gcall StartWatchdog "$B1" '{}')
expect_error "$ERR.RecoveryInProgress" "$out"
grep -qF "a watchdog is refused while it runs" <<<"$out" || die "StartWatchdog during the earlier recovery: $out"
[ ! -e "$STORE/recovery/armed" ] && [ ! -e "$STORE/recovery/watchdog" ] || die "a refused call armed or started something"
rm "$STORE/progress"
# unit_warnings METHOD UNIT: how often the daemon logged that UNIT will not act after the reboot.
unit_warnings() { grep -cF "$1: $2 is not installed (no unit file under $ROOT)" "$T/daemon.log" || true; }
P2U=upgrade-recovery-phase2.service WDU=upgrade-recovery-watchdog.service
[ "$(unit_warnings ArmRecovery $P2U)" = 1 ] || die "ArmRecovery without the phase 2 unit logged no warning: $(cat "$T/daemon.log")"
mkdir "$RUN" && echo "upgrade-recovery test" >"$RUN/initrd" # as recover --initrd leaves it
# The units as the package installs them, enabled: nothing more to say.
mkdir -p "$ROOT/usr/lib/systemd/system"
cp "$UR_SOURCE_DIR/units/$P2U.in" "$ROOT/usr/lib/systemd/system/$P2U"
cp "$UR_SOURCE_DIR/units/$WDU.in" "$ROOT/usr/lib/systemd/system/$WDU"
systemctl --root="$ROOT" enable $P2U $WDU >/dev/null 2>&1 || die "systemctl --root enable"
mcall ArmRecovery 'sa{sv}' "" 1 reboot b false || die "ArmRecovery of latest failed"
[ "$(cat "$STORE/recovery/armed")" = "$B2" ] || die "ArmRecovery '' did not arm the latest"
[ "$(initrd_warnings ArmRecovery)" = 1 ] || die "ArmRecovery with the initramfs mark warned: $(cat "$T/daemon.log")"
[ "$(unit_warnings ArmRecovery $P2U)" = 1 ] || die "ArmRecovery with the phase 2 unit enabled warned: $(cat "$T/daemon.log")"
mcall DisarmRecovery || die "DisarmRecovery failed"
sleep 2.1
[ "$(warnings)" = "[]" ] || die "Warnings with the mark and the units enabled, disarmed: $(warnings)"
ok "ArmRecovery / DisarmRecovery; the initramfs and unit warnings only without the mark and the unit"

# --- changes by another process: PropertiesChanged when they happen, unread --------
# The CLI arms and disarms on the same store; the monitor must see RecoveryState
# change with nobody reading a property in between.
CLI=$UR_BUILD_DIR/src/cli/upgrade-recovery
# seen_state N STATE: the monitor has at least N signals of RecoveryState STATE.
seen_state()
{
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" |
            grep -cF "\"RecoveryState\":{\"type\":\"s\",\"data\":\"$2\"")" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
# cli_arm_disarm WHEN: the CLI arms, then disarms; each must bring a RecoveryState signal.
cli_arm_disarm()
{
    local armed_before none_before
    armed_before=$(grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -cF '"RecoveryState":{"type":"s","data":"Armed"')
    none_before=$(grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -cF '"RecoveryState":{"type":"s","data":"None"')
    "$CLI" --root "$ROOT" --config "$CFG" arm "$B1" >/dev/null 2>&1 || die "upgrade-recovery arm"
    seen_state $((armed_before + 1)) Armed || die "no PropertiesChanged RecoveryState Armed after the CLI armed $1"
    "$CLI" --root "$ROOT" --config "$CFG" disarm >/dev/null 2>&1 || die "upgrade-recovery disarm"
    seen_state $((none_before + 1)) None || die "no PropertiesChanged RecoveryState None after the CLI disarmed $1"
}
cli_arm_disarm ""
[ "$(mprop RecoveryState)" = None ] || die "RecoveryState after the CLI disarmed: $(mprop RecoveryState)"
ok "RecoveryState follows the CLI's arm and disarm, signalled unread"

# A damaged armed marker beside a failed recovery's journal: the journal still counts,
# and the summary names the damage (it used to read Unknown, the journal unseen).
# Each file appears whole (a rename), and the properties are polled until both show:
# the daemon may refresh between the two files (or read a marker half written).
mkdir -p "$STORE/recovery"
printf '{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "%s", "state": "failed", "steps": [%s]}\n' \
    "$B1" '{"name": "verify", "state": "done"}, {"name": "restore-files", "state": "failed"},
     {"name": "phase1-done", "state": "pending"}, {"name": "finish", "state": "pending"}' >"$T/journal.new"
printf 'garbage\n' >"$T/armed.new"
mv "$T/armed.new" "$STORE/recovery/armed"
mv "$T/journal.new" "$STORE/recovery/journal"
damaged_marker_seen() {
    [ "$(mprop RecoveryState)" = Failed ] &&
        case "$(mprop RecoverySummary)" in *"unreadable: the marker recovery/armed holds "*garbage*) true ;; *) false ;; esac
}
for _ in $(seq 1 50); do damaged_marker_seen && break; sleep 0.1; done
[ "$(mprop RecoveryState)" = Failed ] || die "RecoveryState with a damaged marker beside a failed journal: $(mprop RecoveryState)"
damaged_marker_seen || die "RecoverySummary does not name the damaged marker: $(mprop RecoverySummary)"
rm -f "$STORE/recovery/journal" "$STORE/recovery/armed"
for _ in $(seq 1 50); do [ "$(mprop RecoveryState)" = None ] && break; sleep 0.1; done
[ "$(mprop RecoveryState)" = None ] || die "RecoveryState after the damage went: $(mprop RecoveryState)"
ok "a damaged armed marker does not hide a failed recovery (RecoveryState Failed, the damage in the summary)"

# --- AbandonRecovery -------------------------------------------------------------------
out=$(mcall AbandonRecovery 'a{sv}' 0) || die "AbandonRecovery with nothing to give up failed"
[ "$out" = 'bsasas false "" 0 0' ] || die "AbandonRecovery with nothing to give up: $out"
expect_error "$ERR.InvalidArgs" "$(gcall AbandonRecovery "{'force': <'yes'>}")"
# A failed recovery is given up: the journal keeps its steps and ends failed, backups are free.
printf '{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "%s", "state": "failed", "steps": [%s]}\n' \
    "$B1" '{"name": "verify", "state": "done"}, {"name": "restore-files", "state": "failed"},
     {"name": "phase1-done", "state": "pending"}, {"name": "finish", "state": "pending"}' >"$T/journal.new"
mv "$T/journal.new" "$STORE/recovery/journal"
printf '%s\n' "$B1" >"$T/armed.new" && mv "$T/armed.new" "$STORE/recovery/armed"
for _ in $(seq 1 50); do [ "$(mprop RecoveryState)" = Failed ] && break; sleep 0.1; done
[ "$(mprop RecoveryState)" = Failed ] || die "RecoveryState of a failed journal: $(mprop RecoveryState)"
out=$(mcall AbandonRecovery 'a{sv}' 0) || die "AbandonRecovery of a failed recovery failed"
[ "$out" = 'bsasas true "" 0 0' ] || die "AbandonRecovery of a failed recovery (nothing left on the host): $out"
[ ! -e "$STORE/recovery/armed" ] || die "armed marker still there after AbandonRecovery"
grep -q '"state": "aborted"' "$STORE/recovery/journal" || die "journal after AbandonRecovery: $(cat "$STORE/recovery/journal")"
grep -q '"name": "restore-files",' "$STORE/recovery/journal" || die "the journal lost its steps"
[ "$(mprop RecoveryState)" = Aborted ] || die "RecoveryState after AbandonRecovery: $(mprop RecoveryState)"
ok "AbandonRecovery of a failed recovery: journal aborted with its steps, marker gone"
# Phase 1 stopped kubelet and crio, then its restore failed: abandoning leaves both
# stopped. The caller gets what `recover --abandon --json` prints, from the same
# builder: left_behind and finish_by_hand (AbandonRecovery used to return neither).
stopped_journal()
{
    printf '{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "%s", "state": "failed", "steps": [%s]}\n' \
        "$B1" '{"name": "verify", "state": "done"}, {"name": "stop-kubelet", "state": "done"},
         {"name": "stop-crio", "state": "done"}, {"name": "restore-files", "state": "failed", "attempts": 1},
         {"name": "disable-kubelet", "state": "pending"}, {"name": "phase1-done", "state": "pending"},
         {"name": "start-crio", "state": "pending"}, {"name": "start-kubelet", "state": "pending"},
         {"name": "finish", "state": "pending"}' >"$T/journal.new"
    mv "$T/journal.new" "$STORE/recovery/journal"
    printf '%s\n' "$B1" >"$T/armed.new" && mv "$T/armed.new" "$STORE/recovery/armed"
}
stopped_journal
out=$(busctl --system --json=short call "$BUS_NAME" "$MGR_PATH" "$MGR_IFACE" AbandonRecovery 'a{sv}' 0) ||
    die "AbandonRecovery of a recovery that stopped kubelet and crio failed"
jq -e '.type == "bsasas" and .data[0] == true and .data[1] == ""' <<<"$out" >/dev/null ||
    die "AbandonRecovery of a recovery that stopped kubelet and crio: $out"
jq -e '.data[3] == ["systemctl start crio.service", "systemctl start kubelet.service"]' <<<"$out" >/dev/null ||
    die "finish_by_hand: $out"
jq -e '.data[2] | length == 3 and any(startswith("the restore of the files did not finish"))
    and any(startswith("crio.service stopped by phase 1 (stop-crio)"))
    and any(startswith("kubelet.service stopped by phase 1 (stop-kubelet)"))' <<<"$out" >/dev/null ||
    die "left_behind: $out"
stopped_journal
cli_out=$("$CLI" --root "$ROOT" --config "$CFG" --json recover --abandon) || die "upgrade-recovery recover --abandon: $cli_out"
[ "$(jq -c '.data[2:4]' <<<"$out")" = "$(jq -c '[.left_behind, .finish_by_hand]' <<<"$cli_out")" ] ||
    die "AbandonRecovery and recover --abandon --json differ: $out / $cli_out"
ok "AbandonRecovery returns what phase 1 left and how to finish, as recover --abandon: $(jq -c '.data[3]' <<<"$out")"
# A damaged journal beside an armed marker: refused without force, nothing changed;
# with force the markers go and the journal is kept aside under the name returned.
printf '{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "%s", "state": "runn' "$B1" >"$T/journal.new"
mv "$T/journal.new" "$STORE/recovery/journal"
printf '%s\n' "$B1" >"$T/armed.new" && mv "$T/armed.new" "$STORE/recovery/armed"
expect_error "$ERR.Corrupt" "$(gcall AbandonRecovery "{}")"
[ -e "$STORE/recovery/armed" ] || die "a refused AbandonRecovery removed the armed marker"
cmp -s "$STORE/recovery/journal" <(printf '{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "%s", "state": "runn' "$B1") ||
    die "a refused AbandonRecovery changed the damaged journal"
out=$(mcall AbandonRecovery 'a{sv}' 1 force b true) || die "AbandonRecovery force failed"
kept=$(sed -n 's/^bsasas true "\(journal\.damaged-[0-9TZ-]*\)" 1 "what the recovery changed on the host cannot be read from a damaged journal: .*" 0$/\1/p' <<<"$out")
[ -n "$kept" ] || die "AbandonRecovery force: $out"
[ -f "$STORE/recovery/$kept" ] && [ ! -e "$STORE/recovery/journal" ] && [ ! -e "$STORE/recovery/armed" ] ||
    die "after AbandonRecovery force: $(ls -A "$STORE/recovery")"
grep -q '"state": "runn$' "$STORE/recovery/$kept" || die "the kept journal is not the damaged one: $(cat "$STORE/recovery/$kept")"
for _ in $(seq 1 50); do [ "$(mprop RecoveryState)" = None ] && break; sleep 0.1; done
[ "$(mprop RecoveryState)" = None ] || die "RecoveryState after AbandonRecovery force: $(mprop RecoveryState)"
rm -f "$STORE/recovery/$kept"
ok "AbandonRecovery of a damaged journal: Corrupt and unchanged, then with force kept aside as $kept"

# recovery/ replaced by another process in one rename, never missing in between: a new
# inode, so the watch must move to it (StoreWatch re-arms) or the arm and disarm inside
# it go unseen.
find "$STORE/recovery" -mindepth 1 -delete
mkdir "$STORE/recovery.new" && mv -T "$STORE/recovery.new" "$STORE/recovery"
cli_arm_disarm "inside a replaced recovery/ (watch not moved)"
ok "a replaced recovery/ is watched again"

# partition.mount_point changed in the configuration: the next call reads it, and the
# watch moves with it, so what another process writes in the new store is signalled
# unread (the watch used to stay on the old store until something re-read the view).
# recovery_signals STATE: how many RecoveryState STATE signals the monitor has seen.
recovery_signals() { grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -cF "\"RecoveryState\":{\"type\":\"s\",\"data\":\"$1\"" || true; }
MOVED=$ROOT/var/recovery-moved
mkdir -p "$MOVED/recovery"
cp "$CFG" "$T/config.unmoved"
sed -i 's|^\[partition\]$|[partition]\nmount_point = "/var/recovery-moved"|' "$CFG"
grep -q '^mount_point = "/var/recovery-moved"$' "$CFG" || die "cannot set mount_point in $CFG"
failed_before=$(recovery_signals Failed)
mcall ListBackups >/dev/null || die "ListBackups with the moved mount point"
printf '{"format": 1, "recovery_id": "20000101T000000Z-m", "backup_id": "%s", "state": "failed", "steps": [%s]}\n' \
    "$B1" '{"name": "verify", "state": "done"}, {"name": "restore-files", "state": "failed"},
     {"name": "phase1-done", "state": "pending"}, {"name": "finish", "state": "pending"}' >"$T/journal.new"
mv "$T/journal.new" "$MOVED/recovery/journal"
seen_state $((failed_before + 1)) Failed ||
    die "no PropertiesChanged RecoveryState Failed for a journal written in the store partition.mount_point moved to"
[ "$(mprop LastBackup)" = "" ] || die "LastBackup of the empty moved store: $(mprop LastBackup)"
# Back to the store before: watched again from the next call on.
cp "$T/config.unmoved" "$CFG"
mcall ListBackups >/dev/null || die "ListBackups with the mount point back"
cli_arm_disarm "after partition.mount_point came back"
[ "$(mprop LastBackup)" = "$B2" ] || die "LastBackup after the mount point came back: $(mprop LastBackup)"
ok "the store watch follows partition.mount_point when the configuration changes"

# --- StartWatchdog / StopWatchdog ----------------------------------------------------
expect_error "$ERR.InvalidArgs" "$(gcall StartWatchdog "$B1" "{'timeout': <uint32 59>}")"
expect_error "$ERR.InvalidArgs" "$(gcall StartWatchdog "$B1" "{'timeout': <'long'>}")"
[ ! -e "$STORE/recovery/watchdog" ] || die "a refused StartWatchdog left a watchdog"
rm "$RUN/initrd"
systemctl --root="$ROOT" mask $WDU >/dev/null 2>&1 || die "systemctl --root mask"
[ "$(mcall StartWatchdog 'sa{sv}' "$B1" 1 timeout u 600)" = "s \"$B1\"" ] || die "StartWatchdog $B1"
[ "$(initrd_warnings StartWatchdog)" = 1 ] || die "StartWatchdog without the initramfs mark logged no warning"
[ "$(grep -cF "StartWatchdog: $WDU is masked" "$T/daemon.log" || true)" = 1 ] ||
    die "StartWatchdog with its unit masked logged no warning: $(cat "$T/daemon.log")"
grep -Eqx "backup = [\"']$B1[\"']" "$STORE/recovery/watchdog" || die "watchdog file: $(cat "$STORE/recovery/watchdog")"
grep -Eqx 'timeout = 600' "$STORE/recovery/watchdog" || die "watchdog timeout: $(cat "$STORE/recovery/watchdog")"
expect_error "$ERR.Refused" "$(gcall DeleteBackup "$B1")"
mcall ArmRecovery 'sa{sv}' "$B2" 0 || die "ArmRecovery failed"
expect_error "$ERR.RecoveryInProgress" "$(gcall StartWatchdog "" '{}')"
# The upgrade declared complete with a recovery armed beside the watchdog: it goes, and
# the caller hears that the next boot restores all the same ('watchdog stop' exits 6).
out=$(gcall StopWatchdog)
expect_error "$ERR.RecoveryInProgress" "$out"
grep -qF "Watchdog stopped, but a recovery of backup $B2 is armed: the next boot restores it. To keep the node as it is, call DisarmRecovery" <<<"$out" ||
    die "StopWatchdog with a recovery armed: $out"
[ ! -e "$STORE/recovery/watchdog" ] || die "StopWatchdog with a recovery armed left the watchdog file"
[ "$(cat "$STORE/recovery/armed")" = "$B2" ] || die "StopWatchdog changed the armed recovery"
expect_error "$ERR.RecoveryInProgress" "$(gcall StopWatchdog)"
mcall DisarmRecovery || die "DisarmRecovery failed"
[ "$(mcall StopWatchdog)" = "b false" ] || die "a StopWatchdog after the disarm found a watchdog"
# Another process holds the store for 3 s: StopWatchdog waits for it, as 'watchdog stop'
# does (the watchdog waits for the store too and would fire after a stop that gave up).
[ "$(mcall StartWatchdog 'sa{sv}' "$B1" 1 timeout u 600)" = "s \"$B1\"" ] || die "StartWatchdog $B1 again"
flock "$STORE/.lock" sleep 3 &
holder=$!
sleep 0.5
t1=$(date +%s)
out=$(mcall StopWatchdog 2>&1) || die "StopWatchdog on a busy store failed: $out"
[ "$out" = "b true" ] || die "StopWatchdog on a busy store: $out"
[ $(($(date +%s) - t1)) -ge 2 ] || die "StopWatchdog answered before the store was free"
wait "$holder"
[ ! -e "$STORE/recovery/watchdog" ] || die "StopWatchdog on a busy store left the watchdog file"
grep -qF "StopWatchdog: another upgrade-recovery operation" "$T/daemon.log" || die "no waiting message: $(cat "$T/daemon.log")"
ok "StartWatchdog / StopWatchdog; StopWatchdog waits for a busy store"

# --- a dry-run recovery job (offline against the sandbox root: changes nothing) ---
before=$(find "$ROOT/etc" "$ROOT/usr/local" -newer "$STORE/latest" | wc -l)
JR=$(mcall StartRecovery 'a{sv}' 1 dry_run b true | objpath)
SR=$(wait_job "$JR")
[ "$SR" = Succeeded ] || die "dry-run recovery ended $SR: $(jprop "$JR" Error) $(jprop "$JR" Message)"
[ "$(find "$ROOT/etc" "$ROOT/usr/local" -newer "$STORE/latest" | wc -l)" = "$before" ] ||
    die "a dry run changed the root"
ok "StartRecovery dry_run: $(jprop "$JR" Message)"
# One that finds a recovery now would stop (nothing to resume) ends with that error.
jbefore=$(md5sum <"$STORE/recovery/journal" 2>&1)
JR=$(mcall StartRecovery 'a{sv}' 2 dry_run b true resume b true | objpath)
SR=$(wait_job "$JR")
[ "$SR" = Error ] || die "a dry run with nothing to resume ended $SR: $(jprop "$JR" Message)"
[ "$(jprop "$JR" Error)" = "$ERR.NotFound" ] || die "dry run with nothing to resume: Error $(jprop "$JR" Error)"
[[ $(jprop "$JR" Message) == "dry run: a recovery now would stop: there is no recovery in progress to resume"* ]] ||
    die "dry run with nothing to resume: Message $(jprop "$JR" Message)"
[ "$(md5sum <"$STORE/recovery/journal" 2>&1)" = "$jbefore" ] || die "a dry run changed the journal"
ok "StartRecovery dry_run that would stop -> NotFound: $(jprop "$JR" Message)"

# --- DeleteBackup -----------------------------------------------------------------
# monitor_barrier: every signal the daemon sent before answering a Ping is in the
# monitor's file (one connection's messages stay in order).
monitor_barrier()
{
    local n i
    n=$(grep -c '"member":"Ping"' "$T/monitor.json")
    busctl --system call "$BUS_NAME" "$MGR_PATH" org.freedesktop.DBus.Peer Ping || die "Ping"
    for ((i = 0; i < 50; i++)); do
        [ "$(grep -c '"member":"Ping"' "$T/monitor.json")" -gt "$n" ] && break
        sleep 0.1
    done
    sleep 0.3
}
current_job_signals() { grep -F "\"path\":\"$MGR_PATH\"" "$T/monitor.json" | grep -cF '"CurrentJob":' || true; }
monitor_barrier
cj_before=$(current_job_signals)
mcall DeleteBackup s "$B1" || die "DeleteBackup $B1 failed"
[ ! -e "$STORE/backups/$B1" ] || die "$B1 still on the store"
out=$(gcall DeleteBackup "$B2")
expect_error "$ERR.Refused" "$out"
out=$(gcall DeleteBackup 20000101T000000Z)
expect_error "$ERR.NotFound" "$out"
# DeleteBackup runs as a hidden job: CurrentJob stays "/", so no PropertiesChanged names it.
monitor_barrier
[ "$(current_job_signals)" = "$cj_before" ] ||
    die "DeleteBackup emitted PropertiesChanged for CurrentJob ($cj_before before, $(current_job_signals) after)"
ok "DeleteBackup"

# --- the client mode upgrade-recovery-backup.service runs -------------------------
"$DAEMON" --request-backup --timeout 300 >"$T/client.log" 2>&1 || die "--request-backup failed: $(cat "$T/client.log")"
grep -q "published" "$T/client.log" || die "client printed no result: $(cat "$T/client.log")"
B3=$(latest_id)
[ "$B3" != "$B2" ] || die "--request-backup made no new backup"
ok "--request-backup: $(tail -n1 "$T/client.log")"

# --- a damaged daemon-state: job numbers still never repeat -----------------------
# A client may hold the path of an earlier job (and the journal names its JOB); a
# record that cannot be read used to start the count at 1 again.
dbus_stop_daemon
STATE=$ROOT/var/lib/upgrade-recovery/daemon-state
highest=$(sed -n 's/^last_job_id=//p' "$STATE")
[ "$highest" -ge "${JR##*/}" ] || die "daemon-state before the damage: $(cat "$STATE")"
printf 'garbage without an equals sign\n' >"$STATE"
dbus_start_daemon
JN=$(mcall VerifyBackup 'sa{sv}' "" 0 | objpath) || die "VerifyBackup after the damage"
wait_job "$JN" >/dev/null
[ "${JN##*/}" -gt "$highest" ] || die "after a damaged daemon-state the job number is ${JN##*/}; $highest was given out before"
grep -q "^last_job_id=${JN##*/}\$" "$STATE" || die "the record was not rewritten: $(cat "$STATE")"
ok "a damaged daemon-state: the next job is ${JN##*/}, above $highest"

# --- a real recovery job: phase 1 offline against the sandbox root ----------------
# Phase 1 enables upgrade-recovery-phase2.service under the root: give it the unit.
mkdir -p "$ROOT/usr/lib/systemd/system"
cp "$UR_SOURCE_DIR/units/upgrade-recovery-phase2.service.in" "$ROOT/usr/lib/systemd/system/upgrade-recovery-phase2.service"
echo "changed by the failed upgrade" >"$ROOT/etc/hostname"
JR=$(mcall StartRecovery 'a{sv}' 1 backup s "$B3" | objpath)
SR=$(wait_job "$JR")
[ "$SR" = Succeeded ] || die "recovery job ended $SR: $(jprop "$JR" Error) $(jprop "$JR" Message)"
[ "$(jprop "$JR" Type)" = recovery ] || die "recovery job Type $(jprop "$JR" Type)"
[ "$(cat "$ROOT/etc/hostname")" = node-0 ] || die "phase 1 did not restore etc/hostname: $(cat "$ROOT/etc/hostname")"
[ "$(mprop RecoveryState)" = Phase2Pending ] || die "RecoveryState after phase 1: $(mprop RecoveryState)"
# Progress as the signals carried it: verify and restore report their own 0..100
# within their step's share; it used to reach 100 in the first step and stay there.
rprogress=$(grep -F "\"path\":\"$JR\"" "$T/monitor.json" | grep -o '"Progress":{"type":"u","data":[0-9]*' |
    sed -E 's/.*"data"://' | tr '\n' ' ')
[ -n "$rprogress" ] || die "no Progress signals from the recovery job"
last=${rprogress% } last=${last##* } body=${rprogress% "$last" }
for p in $body; do [ "$p" -lt 100 ] || die "recovery Progress reached 100 before the end: $rprogress"; done
ok "recovery Progress: $rprogress"
ok "StartRecovery: $(jprop "$JR" Message); RecoverySummary: $(mprop RecoverySummary)"
# No backup while that recovery is in progress.
expect_error "$ERR.RecoveryInProgress" "$(gcall StartBackup '{}')"

daemon_alive
dbus_stop_daemon
echo "PASS: test_dbus_api"
