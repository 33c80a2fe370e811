#!/bin/bash
# Bad input for the backup, each with real parts (GPT image, loop, partx, xfs):
#  - malformed options (a --timeout that is not whole seconds, an option given
#    twice, --json usage errors as JSON, recover --initrd/--abandon with other
#    options, --root ''), ids that are not UTC times or lie ahead: exit 2,
#    nothing written;
#  - no partition with the configured GPT name: exit 4, nothing written;
#  - the partition is not mounted: read-only commands exit 4 and say so, backup
#    mounts it itself;
#  - the mount point holds a mount of the wrong device (a tmpfs; another xfs
#    partition): exit 4 naming what was found, nothing written there;
#  - the mount point holding files: exit 4, nothing mounted over them; a backup
#    directory on, inside or above a backed-up tree: exit 3, nothing mounted;
#  - a config with an unknown key or a wrong type: exit 3 naming file:line:column;
#  - backup --dry-run: the space check's numbers, exit 0 or 5, nothing written;
#  - a tiny (300 MiB) partition and a tree larger than its free space: exit 5 with
#    the numbers, and the previous backup is untouched, still latest, still verifies;
#  - the partition filling up during the copy (after the space check): exit 5, the
#    staging directory removed, the previous backup untouched and still verifying;
#  - a flipped byte in a backup file: verify exits 7 and names the file;
#  - names and ids that are not UTF-8: --json output stays valid JSON (no abort);
#  - a truncated manifest: verify exits 7;
#  - a corrupt recovery journal or latest metadata: status shows the rest, names
#    what is unreadable and exits 7; a damaged latest link: list exits 7;
#  - recover --backup naming a backup that does not exist: exit 1, an armed
#    recovery stays armed, no journal;
#  - etcd.mode auto finding nothing to take a snapshot with: a warning, not silence.
#  - names in backups/ that look like ids but are no backups (no metadata, a future id,
#    a copy whose metadata names another): list exits 7 showing them as damaged,
#    retention neither counts nor removes them, new ids ignore them; damaged metadata
#    (a negative size, a tree named manifest, none at all) is exit 7, named.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tools/ur-fixture.sh"
ur_fx_init bi "$@"
t0=$(date +%s)

ur_fx_disk 800M 400M 300M
MAIN=$UR_FX_LABEL-1 TINY=$UR_FX_LABEL-2

small_tree()
{
    mkdir -p "$1/etc/sub" "$1/usr/local/bin" "$1/var/lib/kubelet"
    echo "hello" >"$1/etc/hosts"
    echo "data" >"$1/etc/sub/file"
    head -c 100000 /dev/urandom >"$1/usr/local/bin/tool"
    for i in $(seq 1 50); do echo "pod $i" >"$1/var/lib/kubelet/f$i"; done
}

# --- no partition with that name ---------------------------------------------------
R0=$T/nopart
small_tree "$R0"
ur_fx_config "$R0" "$UR_FX_LABEL-does-not-exist"
check "backup without the partition exits 4" run_rc 4 "$T/np.out" "$T/np.err" cli "$R0" backup
check "the error names the missing GPT name" grep -q "no GPT partition named '$UR_FX_LABEL-does-not-exist'" "$T/np.err"
check "nothing was written (no mount point created)" test ! -e "$R0/var/recovery"
# With partition.allow_plain_directory the backups go to a plain directory. Before
# the first backup it does not exist: readers and the dry run see an empty store
# and create nothing (they used to fail on it, and the dry run made it).
mkdir -p "$R0/etc/upgrade-recovery/config.d"
printf '[partition]\nallow_plain_directory = true\nmount_point = "/srv/backups"\n' \
    >"$R0/etc/upgrade-recovery/config.d/plain.toml"
check "plain directory not made yet: list exits 0" run_rc 0 "$T/pl.json" "$T/pl.err" cli "$R0" --json list
check "... and lists nothing" test "$(json "$T/pl.json" 'len(j)')" = 0
check "... also with TMPDIR unusable (the empty store falls back to /tmp)" \
    run_rc 0 "$T/pt.json" "$T/pt.err" env TMPDIR=/nonexistent "$UR_CLI" --root "$R0" --json list
check "... status exits 0" run_rc 0 "$T/ps.out" "$T/ps.err" cli "$R0" status
check "... and says so" grep -q "^Backups: 0" "$T/ps.out"
check "... verify exits 1: no backup to verify" run_rc 1 "$T/pv.out" "$T/pv.err" cli "$R0" verify
check "... and says so" grep -q "there is no backup to verify" "$T/pv.err"
check "... backup --dry-run exits 0" run_rc 0 "$T/pd.json" "$T/pd.err" cli "$R0" --json backup --dry-run
check "... and it fits, with the free space of the filesystem it will be made on" \
    test "$(json "$T/pd.json" 'j["fits"] and j["free_bytes"] > 0')" = true
check "... disarm exits 0, nothing armed" run_rc 0 "$T/pa.out" "$T/pa.err" cli "$R0" disarm
check "... watchdog stop exits 0" run_rc 0 "$T/pw.out" "$T/pw.err" cli "$R0" watchdog stop
check "... watchdog monitor exits 0 (no watchdog)" run_rc 0 "$T/pm0.out" "$T/pm0.err" cli "$R0" watchdog monitor
check "... watchdog trigger exits 0 (no watchdog: not fired)" run_rc 0 "$T/pt0.out" "$T/pt0.err" cli "$R0" watchdog trigger
check "... recover --abandon exits 0" run_rc 0 "$T/pr.out" "$T/pr.err" cli "$R0" recover --abandon
check "... delete of a backup that is not there exits 1" \
    run_rc 1 "$T/pe.out" "$T/pe.err" cli "$R0" delete 20240101T000000Z
check "... delete of what is no backup id exits 2, as verify does" \
    run_rc 2 "$T/pi.out" "$T/pi.err" cli "$R0" delete badid
check "... saying so" grep -q "'badid' is not a backup id" "$T/pi.err"
check "... none of them created the directory" test ! -e "$R0/srv"
check "... a backup creates it and exits 0" run_rc 0 "$T/pb.json" "$T/pb.err" cli "$R0" --json backup
check "... mode 0700" test "$(stat -c %a "$R0/srv/backups")" = 700
check "... and list shows the backup" test "$(cli "$R0" --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1
rm -r "$R0/etc/upgrade-recovery/config.d" "$R0/srv"
# Malformed options are usage errors (exit 2) before anything is looked at.
for bad in "--timeout abc" "--timeout 10x" "--timeout -1" "--timeout 99999999999" "--timeout" \
    "--id 20240101T000000Z --id 20240102T000000Z"; do
    # shellcheck disable=SC2086 # the options are meant to split
    check "backup $bad exits 2" run_rc 2 "$T/us.out" "$T/us.err" cli "$R0" backup $bad
    check "... and says what is wrong" grep -Eq "wants whole seconds|needs a value|given twice" "$T/us.err"
done
# With --json a usage error is a JSON error too, as every other failure.
check "--json backup --bogus exits 2" run_rc 2 "$T/uj.json" "$T/uj.err" cli "$R0" --json backup --bogus
check "... with the error as JSON on stdout" test "$(json "$T/uj.json" 'j["error"]')" = InvalidArgs
# A subcommand option's value is its own: a global option's name there is the value.
check "backup --timeout --help exits 2" run_rc 2 "$T/uv.out" "$T/uv.err" cli "$R0" backup --timeout --help
check "... for --timeout's value" grep -q -- "wants whole seconds" "$T/uv.err"
check "... without printing the usage" test ! -s "$T/uv.out"
check "backup --id --json exits 2" run_rc 2 "$T/uw.out" "$T/uw.err" cli "$R0" backup --id --json
check "... as an id that is not one, in text (no --json given)" grep -q -- "'--json' is not a valid backup id" "$T/uw.err"
check "... nothing on stdout" test ! -s "$T/uw.out"
# Whole modes take no other option: a --dry-run next to them was silently ignored.
for mode in --initrd --abandon; do
    check "recover $mode --dry-run exits 2" run_rc 2 "$T/um.out" "$T/um.err" cli "$R0" recover $mode --dry-run
    check "... and says $mode takes no other option" grep -q -- "$mode takes no other option" "$T/um.err"
done
# An unset variable in a script must not turn into the live host.
check "--root '' exits 2" run_rc 2 "$T/ur.out" "$T/ur.err" "$UR_CLI" --root "" status
# Nor may two roots (or configs, or dirs) leave the choice to the order of words.
for o in --root --config --dir; do
    check "$o given twice exits 2" run_rc 2 "$T/u2.out" "$T/u2.err" "$UR_CLI" $o /a $o /b status
    check "... and says so" grep -q -- "$o given twice" "$T/u2.err"
done
check "nothing was written by the usage errors" test ! -e "$R0/var/recovery"
for c in list status verify; do
    check "$c without the partition exits 4" run_rc 4 "$T/np.$c.out" "$T/np.$c.err" cli "$R0" "$c"
done

# --- the partition is not mounted ----------------------------------------------------
R1=$T/main
small_tree "$R1"
ur_fx_config "$R1" "$MAIN"
mkdir -p "$R1/var/recovery"
check "list with the partition not mounted exits 4" run_rc 4 "$T/nm.out" "$T/nm.err" cli "$R1" list
check "... and says it is not mounted there" grep -q "is not mounted at $R1/var/recovery" "$T/nm.err"
check "verify with the partition not mounted exits 4" run_rc 4 "$T/nm2.out" "$T/nm2.err" cli "$R1" verify

# --- a mount of the wrong device at the mount point ---------------------------------
mount -t tmpfs -o size=1m tmpfs "$R1/var/recovery"
check "backup onto a tmpfs at the mount point exits 4" run_rc 4 "$T/tf.out" "$T/tf.err" cli "$R1" backup
check "... and names tmpfs" grep -q "is a mount of tmpfs (tmpfs" "$T/tf.err"
sed 's/^/  /' "$T/tf.err"
check "... and the partition it wanted" grep -q "$PART1" "$T/tf.err"
check "nothing was written to the tmpfs" test -z "$(ls -A "$R1/var/recovery")"
check "status on the wrong mount exits 4" run_rc 4 "$T/tf2.out" "$T/tf2.err" cli "$R1" status
umount "$R1/var/recovery"
mount "$PART2" "$R1/var/recovery"
check "backup onto another xfs partition at the mount point exits 4" \
    run_rc 4 "$T/wx.out" "$T/wx.err" cli "$R1" backup
check "... and names that device ($PART2)" grep -q "is a mount of $PART2 (xfs" "$T/wx.err"
check "nothing was written to the other partition" test -z "$(ls -A "$R1/var/recovery")"
umount "$R1/var/recovery"

# --- where the partition must not be mounted ----------------------------------------
# Over files (they would be hidden), or on or inside a backed-up tree.
echo "left here" >"$R1/var/recovery/note"
check "backup with files in the unmounted mount point exits 4" run_rc 4 "$T/ne.out" "$T/ne.err" cli "$R1" backup
check "... and says the directory is not empty, naming what is there" grep -q "the directory is not empty ('note')" "$T/ne.err"
check "... and mounted nothing over it" test -z "$(findmnt -n -o SOURCE --mountpoint "$R1/var/recovery")"
rm "$R1/var/recovery/note"
check "--dir on a backed-up tree exits 3 (even for --dry-run)" \
    run_rc 3 "$T/od.out" "$T/od.err" cli "$R1" --dir /usr/local backup --dry-run
check "... naming the tree" grep -q "overlaps the backed-up tree 'usrlocal' (/usr/local)" "$T/od.err"
check "... and mounted nothing there" test -z "$(findmnt -n -o SOURCE --mountpoint "$R1/usr/local")"
check "--dir inside a backed-up tree exits 3" run_rc 3 "$T/od2.out" "$T/od2.err" cli "$R1" --dir /etc/store backup
check "--dir holding a backed-up tree exits 3" run_rc 3 "$T/od3.out" "$T/od3.err" cli "$R1" --dir /var/lib status

# --- a dry run on the fresh partition writes nothing on it --------------------------
check "backup --dry-run on the fresh, unmounted partition exits 0" \
    run_rc 0 "$T/fr.json" "$T/fr.err" cli "$R1" --json backup --dry-run
check "... with nothing to compare with" test "$(json "$T/fr.json" '"%r %s" % (j["previous"], j["fits"])')" = "'' True"
mkdir "$T/peek"
if findmnt -n --mountpoint "$R1/var/recovery" >/dev/null; then peek=$R1/var/recovery; else
    mount -o ro "$PART1" "$T/peek" && peek=$T/peek
fi
check "... and left the partition as mkfs made it (no .lock, no backups/)" test -z "$(ls -A "$peek")"
[ "$peek" = "$T/peek" ] && umount "$T/peek"

# --- the partition unmounted: backup mounts it itself -------------------------------
check "backup mounts the partition itself and exits 0" run_rc 0 "$T/ok.json" "$T/ok.err" cli "$R1" --json backup
check "it is mounted now" test "$(findmnt -n -o SOURCE --mountpoint "$R1/var/recovery")" = "$PART1"
ID=$(json "$T/ok.json" 'j["id"]')
B=$R1/var/recovery/backups/$ID
# recover --dry-run mounts it too (what to run first when an upgrade fails), writing nothing.
umount "$R1/var/recovery"
check "recover --dry-run on the unmounted partition exits 0" \
    run_rc 0 "$T/rd.json" "$T/rd.err" cli "$R1" --json recover --dry-run
check "... mounted it" test "$(findmnt -n -o SOURCE --mountpoint "$R1/var/recovery")" = "$PART1"
check "... and planned the recovery to the backup" test "$(json "$T/rd.json" 'j["backup_id"]')" = "$ID"
check "... creating no recovery directory" test ! -e "$R1/var/recovery/recovery"

# Ids are UTC times, and not far ahead of the clock (later ids would sort after them).
for id in 20241340T256199Z 99999999T999999Z; do
    check "backup --id $id exits 2" run_rc 2 "$T/id.out" "$T/id.err" cli "$R1" backup --id "$id"
    check "... not a valid backup id" grep -q "is not a valid backup id" "$T/id.err"
done
check "backup --id of a time years ahead exits 2" run_rc 2 "$T/id.out" "$T/id.err" cli "$R1" backup --id 29991231T000000Z
check "... and says it lies ahead of the clock" grep -q "lies more than a day ahead of the clock" "$T/id.err"
# Nor before the newest backup: ids are the order of the generations.
check "backup --id of a time before the newest backup exits 2" \
    run_rc 2 "$T/id.out" "$T/id.err" cli "$R1" backup --id 20000101T000000Z
check "... and names the newest" grep -q "sorts before the newest backup, $ID" "$T/id.err"
check "... and made nothing" test "$(ls "$R1/var/recovery/backups")" = "$ID"
check "backup --id of the newest backup's own id exits 2" \
    run_rc 2 "$T/id.out" "$T/id.err" cli "$R1" backup --id "$ID"
check "... and says it exists" grep -q "backup '$ID' exists already" "$T/id.err"
# A refused id is no backup attempt: last-backup.json (what an alert reads) still
# names the backup that ran, as StartBackup refuses such an id before any job.
check "... last-backup.json still records backup $ID, succeeded" \
    test "$(json "$R1/var/recovery/last-backup.json" '"%s %s" % (j["state"], j["backup_id"])')" = "succeeded $ID"

# --- backup --dry-run: the space check alone --------------------------------------
echo "changed" >>"$R1/etc/sub/file"
before=$(fx_digest "$R1/var/recovery" --strict)
check "backup --dry-run exits 0 when the backup fits" \
    run_rc 0 "$T/dr.json" "$T/dr.err" cli "$R1" --json backup --dry-run
check "... compares with the latest backup and finds the one changed file" \
    test "$(json "$T/dr.json" '"%s %d %s" % (j["previous"], j["new_files"], j["fits"])')" = "$ID 1 True"
check "... counts the unchanged tool as shared" test "$(json "$T/dr.json" 'str(j["shared_bytes"] >= 100000)')" = True
check "... and the sum it needs" \
    test "$(json "$T/dr.json" 'str(j["need_bytes"] == j["new_bytes"] + j["metadata_bytes"] + j["cluster_bytes"] + j["margin_bytes"])')" = True
check "... wrote nothing (every byte, attribute, inode, ctime)" test "$(fx_digest "$R1/var/recovery" --strict)" = "$before"
check "the text form says what it would copy" run_rc 0 "$T/dt.out" "$T/dt.err" cli "$R1" backup --dry-run
check "... one file" grep -Eq "^  to copy: +1 files" "$T/dt.out"
check "... and that it fits" grep -Eq "^  needed: .* free: fits$" "$T/dt.out"
# Without sharing every file is written again, and the estimate must say so.
mkdir -p "$R1/etc/upgrade-recovery/config.d"
printf '[backup]\nshare_unchanged = false\n' >"$R1/etc/upgrade-recovery/config.d/noshare.toml"
check "backup --dry-run with backup.share_unchanged = false exits 0" \
    run_rc 0 "$T/dn.json" "$T/dn.err" cli "$R1" --json backup --dry-run
check "... shares nothing and counts every file as new" \
    test "$(json "$T/dn.json" '"%d %s" % (j["shared_bytes"], j["new_files"] >= 53)')" = "0 True"
rm -r "$R1/etc/upgrade-recovery/config.d"

# --- config errors -------------------------------------------------------------------
cfg=$R1/etc/upgrade-recovery/config.toml
cp "$cfg" "$T/config.good"
cat >"$cfg" <<EOF
[partition]
label = "$MAIN"

[backup]
free_space_margin = "1MiB"
retention = 3
  bogus_key = true

[etcd]
mode = "off"
EOF
check "a config with an unknown key exits 3" run_rc 3 "$T/ck.out" "$T/ck.err" cli "$R1" backup
check "... naming file:line:column of the key" grep -qF "$cfg:7:3" "$T/ck.err"
sed 's/^/  /' "$T/ck.err"
check "... and the key" grep -q "bogus_key" "$T/ck.err"
for c in list status verify; do
    check "$c with the bad config exits 3" run_rc 3 "$T/ck.$c.out" "$T/ck.$c.err" cli "$R1" "$c"
done
cat >"$cfg" <<EOF
[partition]
label = "$MAIN"
[backup]
retention = "two"
EOF
check "a config with a wrong type exits 3" run_rc 3 "$T/ct.out" "$T/ct.err" cli "$R1" backup
check "... naming file:line:column of the value" grep -qF "$cfg:4:" "$T/ct.err"
check "... and the key" grep -q "backup.retention" "$T/ct.err"
cat >"$cfg" <<EOF
[partition]
label = "$MAIN"
[unknown_section]
EOF
check "a config with an unknown section exits 3" run_rc 3 "$T/cs.out" "$T/cs.err" cli "$R1" backup
check "... naming file:line:column" grep -qF "$cfg:3:" "$T/cs.err"
printf '[partition\nlabel = 1\n' >"$T/broken.toml"
check "--config with a TOML syntax error exits 3" run_rc 3 "$T/cx.out" "$T/cx.err" cli "$R1" --config "$T/broken.toml" list
check "... naming file:line" grep -qF "$T/broken.toml:1:" "$T/cx.err"
cp "$T/config.good" "$cfg"
check "no backup was started by the bad configs" test "$(ls "$R1/var/recovery/backups")" = "$ID"

# --- a flipped byte in a backup file -----------------------------------------------
check "verify of the fresh backup exits 0" run_rc 0 "$T/v0.out" "$T/v0.err" cli "$R1" verify
f=$B/usrlocal/bin/tool
mt=$(stat -c %y "$f")
b=$(dd if="$f" bs=1 skip=5000 count=1 status=none | od -An -tu1 | tr -d ' ')
printf '%b' "$(printf '\\%03o' $(((b + 1) % 256)))" | dd of="$f" bs=1 seek=5000 conv=notrunc status=none
touch -d "$mt" "$f" # same size, same mtime: only the content says it
check "verify finds the flipped byte: exit 7" run_rc 7 "$T/v1.out" "$T/v1.err" cli "$R1" verify
check "... and names the file" grep -q "^MISMATCH usrlocal/bin/tool: content differs" "$T/v1.out"
check "... and only that file" test "$(grep -c '^MISMATCH' "$T/v1.out")" = 1
check "verify --json says ok=false and names it" \
    test "$(json <(cli "$R1" --json verify) 'str(j["ok"])+" "+j["mismatches"][0].split(":")[0]')" = "False usrlocal/bin/tool"
printf '%b' "$(printf '\\%03o' "$b")" | dd of="$f" bs=1 seek=5000 conv=notrunc status=none
touch -d "$mt" "$f"
check "verify is clean again after flipping it back" run_rc 0 "$T/v2.out" "$T/v2.err" cli "$R1" verify

# --- a file added to / removed from a backup ------------------------------------------
mt_etc=$(stat -c %y "$B/etc")
mt_sub=$(stat -c %y "$B/etc/sub")
echo "planted" >"$B/etc/planted"
check "verify finds a file that is not in the manifest: exit 7" run_rc 7 "$T/va.out" "$T/va.err" cli "$R1" verify
check "... and names it" grep -q "^MISMATCH etc/planted: in the backup but not in the manifest" "$T/va.out"
rm "$B/etc/planted"
# A name that is not UTF-8 (Latin-1 e-acute): JSON cannot carry the byte, which
# becomes U+FFFD; the command must not abort (it did: exit 134).
echo "planted" >"$B/etc/caf"$'\xe9'
check "verify --json with a non-UTF-8 name in a mismatch exits 7" run_rc 7 "$T/vu.json" "$T/vu.err" cli "$R1" --json verify
check "... with valid JSON naming it (U+FFFD for the byte)" \
    test "$(json "$T/vu.json" 'any(m.startswith("etc/caf\ufffd: ") for m in j["mismatches"])')" = true
rm "$B/etc/caf"$'\xe9'
check "an error message holding a non-UTF-8 id, with --json: exit 2" \
    run_rc 2 "$T/vi.json" "$T/vi.err" cli "$R1" --json verify "2024"$'\xff'
check "... and valid JSON" test "$(json "$T/vi.json" 'j["error"]')" = InvalidArgs
mv "$B/etc/sub/file" "$T/file.saved"
check "verify finds a file missing from the backup: exit 7" run_rc 7 "$T/vm.out" "$T/vm.err" cli "$R1" verify
check "... and names it" grep -q "^MISMATCH etc/sub/file: missing from the backup" "$T/vm.out"
mv "$T/file.saved" "$B/etc/sub/file"
touch -d "$mt_etc" "$B/etc"
touch -d "$mt_sub" "$B/etc/sub"
check "verify is clean again with the directories put back" run_rc 0 "$T/vb.out" "$T/vb.err" cli "$R1" verify

# --- a truncated manifest ----------------------------------------------------------
cp -p "$B/manifest" "$T/manifest.good"
size=$(stat -c %s "$B/manifest")
for cut in $((size - 1)) $((size / 2)) 10; do
    truncate -s "$cut" "$B/manifest"
    check "verify with the manifest cut to $cut of $size bytes exits 7" \
        run_rc 7 "$T/tm.out" "$T/tm.err" cli "$R1" verify
    check "... and says the manifest is damaged" grep -q "manifest" "$T/tm.out"
    cp -p "$T/manifest.good" "$B/manifest"
done
# The last line dropped whole (no trailer): still corrupt.
head -n -1 "$T/manifest.good" >"$B/manifest"
check "verify with the end line missing exits 7" run_rc 7 "$T/tm2.out" "$T/tm2.err" cli "$R1" verify
cp -p "$T/manifest.good" "$B/manifest"
check "verify is clean with the manifest put back" run_rc 0 "$T/v3.out" "$T/v3.err" cli "$R1" verify

# --- disk too small --------------------------------------------------------------------
R2=$T/tiny
small_tree "$R2"
ur_fx_config "$R2" "$TINY"
check "a small backup fits on the tiny partition" run_rc 0 "$T/s1.json" "$T/s1.err" cli "$R2" --json backup
SID=$(json "$T/s1.json" 'j["id"]')
SB=$R2/var/recovery/backups/$SID
check "the attempt is recorded as succeeded, with its id" \
    test "$(json "$R2/var/recovery/last-backup.json" 'j["state"]+" "+j["backup_id"]')" = "succeeded $SID"
# The generations (every backup that reaches the store rewrites the attempt record
# at its top, W20; `latest` is checked on its own).
before=$(fx_digest "$R2/var/recovery/backups" --strict)
before_all=$(fx_digest "$R2/var/recovery" --strict)
free=$(($(stat -f -c '%a*%S' "$R2/var/recovery")))
# More than the partition's free space, allocated (not sparse), so the estimate counts it.
fallocate -l $((free + (64 << 20))) "$R2/var/lib/kubelet/big.img"
echo "changed" >>"$R2/etc/hosts"
sleep 1
check "backup --dry-run of a backup that does not fit exits 5" \
    run_rc 5 "$T/d2.json" "$T/d2.err" cli "$R2" --json backup --dry-run
check "... fits=false, needing more than is free" \
    test "$(json "$T/d2.json" '"%s %s" % (j["fits"], j["need_bytes"] > j["free_bytes"])')" = "False True"
check "... counting the big file as new data" \
    test "$(json "$T/d2.json" 'str(j["new_bytes"] >= '"$((free + (64 << 20)))"')')" = True
check "... and says what to do" grep -qi "delete older backups" "$T/d2.err"
check "... and wrote nothing, not even the attempt record" test "$(fx_digest "$R2/var/recovery" --strict)" = "$before_all"
check "the backup that does not fit exits 5" run_rc 5 "$T/s2.out" "$T/s2.err" cli "$R2" backup
sed 's/^/  /' "$T/s2.err"
check "... saying how much is free" grep -Eq "[0-9.]+ MiB free" "$T/s2.err"
check "... and how much it needs" grep -Eq "the backup needs [0-9.]+ (MiB|GiB)" "$T/s2.err"
check "... with the part of new file data" grep -Eq "of new file data in [0-9]+ files" "$T/s2.err"
check "the previous backup is untouched (every byte, attribute, inode, ctime)" \
    test "$(fx_digest "$R2/var/recovery/backups" --strict)" = "$before"
check "the failed attempt is recorded, with its error kind and message (W20)" \
    test "$(json "$R2/var/recovery/last-backup.json" 'j["state"]+" "+j["error_kind"]+" "+str("MiB free" in j["error"])')" = "failed NoSpace True"
check "status shows it" run_rc 0 "$T/sa.out" "$T/sa.err" cli "$R2" status
check "... as FAILED with the reason" grep -Eq "^Last backup attempt: FAILED .* NoSpace: not enough space on " "$T/sa.out"
check "status --json has it as last_backup" \
    test "$(json <(cli "$R2" --json status) 'j["last_backup"]["state"]')" = failed
check "no staging directory was left" test "$(ls -A "$R2/var/recovery/backups")" = "$SID"
check "latest still names the previous backup" test "$(readlink "$R2/var/recovery/latest")" = "backups/$SID"
check "the previous backup still verifies" run_rc 0 "$T/s3.out" "$T/s3.err" cli "$R2" verify
check "the previous backup still equals its source tree (but the two changes)" \
    tree_equal "$R2/usr/local" "$SB/usrlocal"
rm "$R2/var/lib/kubelet/big.img"
check "with the big file gone the next backup succeeds" run_rc 0 "$T/s4.out" "$T/s4.err" cli "$R2" backup
check "and the new latest verifies" run_rc 0 "$T/s5.out" "$T/s5.err" cli "$R2" verify

# A backup of $R2 in the background, stopped (SIGSTOP) at a failpoint once its
# staging directory exists; its pid in $pid, its output in $T/NAME.out and .err.
stopped_backup()
{
    stopped_at backup.after-cluster "$T/$1.out" "$T/$1.err" "$R2" backup || true
}

# --- the partition fills up in the middle of the copy -----------------------------------
# The space check passed; then something else takes the space (the backup is
# stopped at a failpoint once its staging directory exists). The copy hits
# ENOSPC: exit 5, the staging directory is gone, the previous backup untouched.
head -c $((40 << 20)) /dev/urandom >"$R2/usr/local/bin/new-40m"
LID=$(readlink "$R2/var/recovery/latest" | sed 's|^backups/||')
gens=$(ls -A "$R2/var/recovery/backups")
# Not --strict: the copy hard-linked unchanged files from it and the cleanup
# unlinked them, which moves those inodes' ctime (and nothing else).
before=$(fx_digest "$R2/var/recovery/backups/$LID")
stopped_backup f
check "the backup stopped at the failpoint with its staging directory made" \
    bash -c "[ \"\$(ps -o state= -p $pid | tr -d ' ')\" = T ] && ls -A '$R2/var/recovery/backups' | grep -q '^\.staging-'"
check "status meanwhile shows the attempt running, with its process" \
    bash -c "'$UR_CLI' --root '$R2' status | grep -qx 'Last backup attempt: running since .* (pid $pid)'"
free=$(($(stat -f -c '%a*%S' "$R2/var/recovery")))
fallocate -l $((free - (1 << 20))) "$R2/var/recovery/filler" # 1 MiB stays free
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
check "the backup that ran out of space during the copy exits 5" test "$rc" = 5
sed 's/^/  /' "$T/f.err" | tail -n 3
check "... and says the partition is full" grep -qi "no space left" "$T/f.err"
rm "$R2/var/recovery/filler"
check "no staging directory was left" test "$(ls -A "$R2/var/recovery/backups")" = "$gens"
check "the previous backup is untouched (every byte and attribute)" \
    test "$(fx_digest "$R2/var/recovery/backups/$LID")" = "$before"
check "latest still names it" test "$(readlink "$R2/var/recovery/latest")" = "backups/$LID"
check "the previous backup still verifies" run_rc 0 "$T/f2.out" "$T/f2.err" cli "$R2" verify
check "the attempt is recorded as failed for want of space" \
    test "$(json "$R2/var/recovery/last-backup.json" 'j["state"]+" "+j["error_kind"]')" = "failed NoSpace"
check "with the space back the next backup succeeds" run_rc 0 "$T/f3.out" "$T/f3.err" cli "$R2" backup
check "and the new latest verifies" run_rc 0 "$T/f4.out" "$T/f4.err" cli "$R2" verify

# --- a backup killed in the middle: the attempt reads as interrupted (W20) ---------------
stopped_backup k
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
check "status after the kill says the attempt was interrupted" \
    bash -c "'$UR_CLI' --root '$R2' status | grep -q '^Last backup attempt: INTERRUPTED: started '"
check "... and so does status --json" test "$(json <(cli "$R2" --json status) 'j["last_backup"]["state"]')" = interrupted
check "the file itself still says running (the reader tells)" \
    test "$(json "$R2/var/recovery/last-backup.json" 'j["state"]')" = running
check "the next backup succeeds and is recorded" run_rc 0 "$T/k2.json" "$T/k2.err" cli "$R2" --json backup
check "... as succeeded, with its id and duration" \
    test "$(json "$R2/var/recovery/last-backup.json" 'j["state"]+" "+j["backup_id"]+" "+str(j["duration_seconds"] > 0)')" = \
    "succeeded $(json "$T/k2.json" 'j["id"]') True"
printf '{"state": "running"' >"$R2/var/recovery/last-backup.json"
check "status with a damaged attempt record exits 7" run_rc 7 "$T/k3.out" "$T/k3.err" cli "$R2" status
check "... and says it is unreadable" grep -q "^Last backup attempt: UNREADABLE: last-backup.json: " "$T/k3.out"
check "a backup replaces the damaged record" run_rc 0 "$T/k4.out" "$T/k4.err" cli "$R2" backup
check "status is clean again" run_rc 0 "$T/k5.out" "$T/k5.err" cli "$R2" status

# --- a corrupt recovery journal and unreadable latest metadata ----------------------
check "status is clean before" run_rc 0 "$T/s0.out" "$T/s0.err" cli "$R2" status
mkdir -p "$R2/var/recovery/recovery"
printf '{"truncated' >"$R2/var/recovery/recovery/journal"
check "status with a corrupt recovery journal exits 7" run_rc 7 "$T/s1.out" "$T/s1.err" cli "$R2" status
check "... shows the rest and says the journal is unreadable" \
    bash -c "grep -q '^Latest: ' '$T/s1.out' && grep -q '^Recovery: UNREADABLE: ' '$T/s1.out'"
check "status --json exits 7 with recovery_error" run_rc 7 "$T/s2.out" "$T/s2.err" cli "$R2" --json status
check "... and says so in the JSON" grep -q '"recovery_error":' "$T/s2.out"
rm -r "$R2/var/recovery/recovery"
LID2=$(readlink "$R2/var/recovery/latest" | sed 's|^backups/||')
mv "$R2/var/recovery/backups/$LID2/metadata.toml" "$T/metadata.toml.saved"
echo 'id = ' >"$R2/var/recovery/backups/$LID2/metadata.toml"
check "status with the latest backup's metadata corrupt exits 7" run_rc 7 "$T/s3.out" "$T/s3.err" cli "$R2" status
check "... and names the backup as unreadable" grep -q "^Latest: $LID2 UNREADABLE: " "$T/s3.out"
mv "$T/metadata.toml.saved" "$R2/var/recovery/backups/$LID2/metadata.toml"
check "status is clean again" run_rc 0 "$T/s4.out" "$T/s4.err" cli "$R2" status
ln -sfn "backups/not-an-id" "$R2/var/recovery/latest.tmp" && mv -T "$R2/var/recovery/latest.tmp" "$R2/var/recovery/latest"
check "list with a damaged latest link exits 7" run_rc 7 "$T/l7.out" "$T/l7.err" cli "$R2" list
check "... naming the link" grep -q "latest' points at 'backups/not-an-id'" "$T/l7.err"
check "... still listing the backups, none as latest" \
    bash -c "grep -q '^$LID2  created' '$T/l7.out' && ! grep -q '(latest)' '$T/l7.out'"
check "... and saying how to set it again" grep -qF "ln -sfn backups/$LID2 $R2/var/recovery/latest" "$T/l7.err"
ln -sfn "backups/$LID2" "$R2/var/recovery/latest.tmp" && mv -T "$R2/var/recovery/latest.tmp" "$R2/var/recovery/latest"
check "list is clean again" run_rc 0 "$T/l8.out" "$T/l8.err" cli "$R2" list

# --- a damaged latest link: shown, refused with the remedy, set again by a backup -----
# Publishing renames the generation before it switches `latest`, and a delete moves
# `latest` before the generation goes, so only a hand can damage it; the
# generations are the truth. Two kinds: a regular file, and a link to nothing.
n=0
for damage in "file" "dangling"; do
    n=$((n + 1))
    L=$R2/var/recovery/latest
    PREV=$(readlink "$L" | sed 's|^backups/||')
    rm "$L"
    if [ "$damage" = file ]; then
        echo "backups/$PREV" >"$L"
        what="is not a symbolic link"
    else
        ln -s "backups/20000101T000000Z" "$L"
        what="names backup 20000101T000000Z, which does not exist"
    fi
    check "$damage: status exits 7" run_rc 7 "$T/dl$n.s.out" "$T/dl$n.s.err" cli "$R2" status
    check "... and shows the link as damaged, with the remedy" \
        grep -qF "Latest: DAMAGED: '$L' $what (take a new backup, which sets it again, or point it at the newest backup: ln -sfn backups/$PREV $L)" "$T/dl$n.s.out"
    check "... and the rest" grep -q "^Backups: " "$T/dl$n.s.out"
    check "... and says why on stderr" grep -qF "upgrade-recovery status: '$L' $what" "$T/dl$n.s.err"
    check "$damage: status --json exits 7 with latest null and latest_error" \
        run_rc 7 "$T/dl$n.sj.out" "$T/dl$n.sj.err" cli "$R2" --json status
    check "... says so" test "$(json "$T/dl$n.sj.out" '"%s %s" % (j["latest"], "latest_error" in j)')" = "None True"
    for c in verify "recover --dry-run" "watchdog start"; do
        # shellcheck disable=SC2086 # the command's words
        check "$damage: $c without an id exits 7" run_rc 7 "$T/dl$n.c.out" "$T/dl$n.c.err" cli "$R2" $c
        check "... with the remedy" grep -qF "ln -sfn backups/$PREV" "$T/dl$n.c.err"
    done
    check "$damage: verify of a named backup still works" run_rc 0 "$T/dl$n.v.out" "$T/dl$n.v.err" cli "$R2" verify "$PREV"
    OLDEST=$(ls "$R2/var/recovery/backups" | head -n1)
    if [ "$OLDEST" != "$PREV" ]; then
        check "$damage: delete of a named older backup still works" \
            run_rc 0 "$T/dl$n.x.out" "$T/dl$n.x.err" cli "$R2" delete "$OLDEST"
        check "... it is gone" test ! -e "$R2/var/recovery/backups/$OLDEST"
    fi
    check "$damage: backup --dry-run exits 0" run_rc 0 "$T/dl$n.d.json" "$T/dl$n.d.err" cli "$R2" --json backup --dry-run
    check "... estimating against the newest backup" test "$(json "$T/dl$n.d.json" 'j["previous"]')" = "$PREV"
    check "... and leaves the link as it was" test "$(stat -c %F "$L")" = "$([ "$damage" = file ] && echo "regular file" || echo "symbolic link")"
    check "$damage: a backup exits 0" run_rc 0 "$T/dl$n.b.json" "$T/dl$n.b.err" cli "$R2" --json backup
    NEW=$(json "$T/dl$n.b.json" 'j["id"]')
    check "... warning that the link was damaged" \
        test "$(json "$T/dl$n.b.json" 'sum(w.startswith("\x27'"$L"'\x27 '"$what"'; this backup will set it again and share files with the newest backup, '"$PREV"'") for w in j["warnings"])')" = 1
    check "... sharing with the newest backup" \
        test "$(json "$T/dl$n.b.json" '"%s %s" % (j["previous"], j["sizes"]["shared_files"] > 0)')" = "$PREV True"
    check "... and latest names it again" test "$(readlink "$L")" = "backups/$NEW"
    check "... status is clean" run_rc 0 "$T/dl$n.s2.out" "$T/dl$n.s2.err" cli "$R2" status
done
LID2=$(readlink "$R2/var/recovery/latest" | sed 's|^backups/||')
# A directory where the link belongs: nothing can rename over it, so a backup is
# refused before it writes anything, with a remedy that works.
L=$R2/var/recovery/latest
mv "$L" "$T/latest.link" && mkdir "$L"
before=$(ls "$R2/var/recovery/backups")
check "latest a directory: backup exits 7" run_rc 7 "$T/dd.b.out" "$T/dd.b.err" cli "$R2" backup
check "... before it wrote a backup" test "$(ls "$R2/var/recovery/backups")" = "$before"
check "... saying to move it away" grep -qF "move it away (mv $L $L.damaged)" "$T/dd.b.err"
check "... backup --dry-run exits 7 too" run_rc 7 "$T/dd.d.out" "$T/dd.d.err" cli "$R2" backup --dry-run
check "... delete of the newest exits 7, deleting nothing" run_rc 7 "$T/dd.x.out" "$T/dd.x.err" cli "$R2" delete "$LID2"
check "... (still there)" test -d "$R2/var/recovery/backups/$LID2"
rmdir "$L" && mv "$T/latest.link" "$L"
check "... status is clean again" run_rc 0 "$T/dd.s.out" "$T/dd.s.err" cli "$R2" status
# Deleting the newest backup under a damaged link sets it to the next newest, as a
# good link naming the newest would be.
L=$R2/var/recovery/latest
NEWEST=$(readlink "$L" | sed 's|^backups/||')
NEXT=$(ls "$R2/var/recovery/backups" | grep -vx "$NEWEST" | tail -n1)
rm "$L" && ln -s backups/20000101T000000Z "$L"
check "a damaged link: delete of the newest backup exits 0" run_rc 0 "$T/dn.out" "$T/dn.err" cli "$R2" delete "$NEWEST"
check "... and latest names the next newest ($NEXT)" test "$(readlink "$L")" = "backups/$NEXT"
check "... status is clean" run_rc 0 "$T/dn.s.out" "$T/dn.s.err" cli "$R2" status
LID2=$(readlink "$R2/var/recovery/latest" | sed 's|^backups/||')

# --- a damaged armed marker: damage, not a path; disarm or abandon removes it --------
mkdir -p "$R2/var/recovery/recovery"
for undo in disarm "recover --abandon"; do
    printf '../../etc\n' >"$R2/var/recovery/recovery/armed"
    check "armed holding a path: status exits 7" run_rc 7 "$T/am.out" "$T/am.err" cli "$R2" status
    check "... shows the marker as damaged, not as armed" \
        bash -c "grep -qF \"Recovery: UNREADABLE: the marker recovery/armed holds '../../etc', not a backup id ('upgrade-recovery disarm' removes it)\" '$T/am.out' && ! grep -q ARMED '$T/am.out'"
    check "... recover exits 7" run_rc 7 "$T/am.r.out" "$T/am.r.err" cli "$R2" recover --dry-run
    check "... backup exits 7 and names the remedy" run_rc 7 "$T/am.b.out" "$T/am.b.err" cli "$R2" backup
    check "... (the remedy)" grep -qF "'upgrade-recovery disarm' removes it" "$T/am.b.err"
    # shellcheck disable=SC2086 # the command's words
    check "... $undo exits 0" run_rc 0 "$T/am.d.out" "$T/am.d.err" cli "$R2" $undo
    [ "$undo" = disarm ] && check "... saying it removed a damaged marker" \
        grep -q "^Removed a damaged armed marker: the marker recovery/armed holds '../../etc'" "$T/am.d.out"
    check "... and removed the marker" test ! -e "$R2/var/recovery/recovery/armed"
    check "... status is clean again" run_rc 0 "$T/am.s.out" "$T/am.s.err" cli "$R2" status
done
# A damaged marker next to a readable journal: status shows both (the marker's damage
# used to hide the journal, and metrics its state).
cat >"$R2/var/recovery/recovery/journal" <<EOF
{"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": "$LID2", "state": "failed",
 "error": "restore-files: disk on fire", "steps": [{"name": "verify", "state": "done"},
 {"name": "restore-files", "state": "failed"}, {"name": "phase1-done", "state": "pending"},
 {"name": "finish", "state": "pending"}]}
EOF
printf 'garbage\n' >"$R2/var/recovery/recovery/armed"
check "damaged marker beside a failed recovery: status exits 7" run_rc 7 "$T/aj.out" "$T/aj.err" cli "$R2" status
check "... shows the recovery's journal" grep -q "^Recovery 20000101T000000Z-r: failed" "$T/aj.out"
check "... and the damaged marker" grep -q "^Recovery: UNREADABLE: the marker recovery/armed holds 'garbage'" "$T/aj.out"
check "... status --json has both" run_rc 7 "$T/aj.json" "$T/aj.err" cli "$R2" --json status
check "... (journal and error)" \
    test "$(json "$T/aj.json" 'j["recovery"]["state"] + " " + str("recovery_error" in j)')" = "failed True"
check "... metrics show the failed recovery in progress" \
    bash -c "'$UR_CLI' --root '$R2' metrics | grep -qx 'upgrade_recovery_recovery_in_progress 1'"
rm -f "$R2/var/recovery/recovery/armed"
rm -f "$R2/var/recovery/recovery/journal"

# --- a recovery asked for with a backup that does not exist ---------------------------
# Refused before anything changes: an armed recovery stays armed, no journal is started.
check "arm the latest backup" run_rc 0 "$T/a1.out" "$T/a1.err" cli "$R2" arm
check "recover --backup of a backup that does not exist exits 1" \
    run_rc 1 "$T/r1.out" "$T/r1.err" cli "$R2" recover --backup 20000101T000000Z
check "... and says there is no such backup" grep -q "no backup '20000101T000000Z'" "$T/r1.err"
check "... the recovery is still armed with the latest backup" \
    test "$(cat "$R2/var/recovery/recovery/armed")" = "$LID2"
check "... and no recovery journal was started" test ! -e "$R2/var/recovery/recovery/journal"
check "disarm" run_rc 0 "$T/a2.out" "$T/a2.err" cli "$R2" disarm
check "recover --abandon with nothing to give up exits 0" \
    run_rc 0 "$T/ab.json" "$T/ab.err" cli "$R2" --json recover --abandon
check "... and says it abandoned nothing" test "$(json "$T/ab.json" 'j["abandoned"]')" = false

# --- etcd.mode auto on a host with neither cluster-backup.sh nor endpoints ------------
sed 's/^mode = "off"$/mode = "auto"/' "$R2/etc/upgrade-recovery/config.toml" >"$T/auto.toml"
check "the auto config really says auto" grep -qx 'mode = "auto"' "$T/auto.toml"
check "a backup with etcd.mode auto and nothing to snapshot with exits 0" \
    run_rc 0 "$T/e1.json" "$T/e1.err" cli "$R2" --config "$T/auto.toml" --json backup
check "... and says in its warnings that it has no etcd snapshot" \
    test "$(json "$T/e1.json" 'sum(w.startswith("no etcd snapshot: etcd.mode is auto") for w in j["warnings"])')" = 1
check "... on stderr too" grep -q "no etcd snapshot" "$T/e1.err"
check "with etcd.mode off it does not" run_rc 0 "$T/e2.json" "$T/e2.err" cli "$R2" --json backup
check "... say so" test "$(json "$T/e2.json" 'sum("etcd" in w for w in j["warnings"])')" = 0

# --- a hard-link group whose first name vanishes in the middle of the copy -----------
# The backup is stopped at its first file copy (the group's first name: nothing else
# changed since the last backup), the name is removed, the backup goes on. The next
# name leads the group now: the manifest must say so, or a restore splits it and
# verify does not notice.
mkdir "$R2/etc/links"
echo "one inode, three names" >"$R2/etc/links/a"
ln "$R2/etc/links/a" "$R2/etc/links/b"
ln "$R2/etc/links/a" "$R2/etc/links/c"
check "the backup stopped at its first file copy" \
    stopped_at backup.copy-file:1 "$T/hl.json" "$T/hl.err" "$R2" --json backup
rm "$R2/etc/links/a"
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
check "... exits 0 when it goes on" test "$rc" = 0
check "... and warns that the first name vanished" grep -q "vanished during the backup: etc/links/a" "$T/hl.err"
HB=$R2/var/recovery/backups/$(json "$T/hl.json" 'j["id"]')
check "... b and c are one inode in the backup" test "$(stat -c %i "$HB/etc/links/b")" = "$(stat -c %i "$HB/etc/links/c")"
check "... and it verifies" run_rc 0 "$T/hl.v.out" "$T/hl.v.err" cli "$R2" verify
# Split the group in the backup (same bytes and metadata, a new inode): verify must see it.
touch -r "$HB/etc/links" "$T/links.mtime"
cp -a "$HB/etc/links/c" "$HB/etc/links/c.split" && mv "$HB/etc/links/c.split" "$HB/etc/links/c"
touch -r "$T/links.mtime" "$HB/etc/links"
check "verify finds the split group: exit 7" run_rc 7 "$T/hl.v2.out" "$T/hl.v2.err" cli "$R2" verify
sed 's/^/  /' "$T/hl.v2.out"
check "... naming it" grep -q "etc/links/c: not a hard link of etc/links/b as recorded" "$T/hl.v2.out"

# --- no thread to be had (EAGAIN, as under a unit's TasksMax) -------------------------
# A pids cgroup that allows the main thread only: the backup does its work in it.
CG=/sys/fs/cgroup/pids/urt-badinput-$$
if mkdir "$CG" 2>/dev/null; then
    echo 1 >"$CG/pids.max"
    echo "changed again" >>"$R2/etc/links/b"
    rc=0
    # shellcheck disable=SC2016 # $$ and $1 are the inner shell's
    bash -c 'echo $$ >"$1/cgroup.procs" && exec "${@:2}"' _ "$CG" "$UR_CLI" --root "$R2" --json backup \
        >"$T/pm.json" 2>"$T/pm.err" || rc=$?
    check "the pids limit refused threads" test "$(sed -n 's/^max //p' "$CG/pids.events")" -gt 0
    rmdir "$CG"
    check "a backup that can start no thread exits 0" test "$rc" = 0
    check "... and says so" grep -q "file copy: started 0 of [0-9]* threads (Resource temporarily unavailable)" "$T/pm.err"
    check "... also for the writeback pacing" grep -q "writeback pacing: started 0 of 1 threads" "$T/pm.err"
    check "... with the changed file in it" test "$(json "$T/pm.json" 'j["sizes"]["copied_bytes"] > 0')" = true
    check "... and it verifies" run_rc 0 "$T/pm.v.out" "$T/pm.v.err" cli "$R2" verify
else
    echo "note: no pids cgroup (v1) to limit threads with here; the thread-refusal section did not run"
fi

# --- a deadline that passes: exit 8, naming where the limit came from ----------------
echo "once more" >>"$R2/etc/links/b"
for how in "--timeout 1" config; do
    opt=""
    if [ "$how" = config ]; then
        mkdir -p "$R2/etc/upgrade-recovery/config.d"
        printf '[backup]\ntimeout = 1\n' >"$R2/etc/upgrade-recovery/config.d/t.toml"
    else
        opt=$how
    fi
    # shellcheck disable=SC2086 # the option is meant to split
    check "backup with a 1 s limit ($how) stopped after the cluster part" \
        stopped_at backup.after-cluster "$T/to.out" "$T/to.err" "$R2" backup $opt
    sleep 1.5 # past the deadline while stopped
    kill -CONT "$pid"
    rc=0
    wait "$pid" || rc=$?
    check "backup with a 1 s limit ($how) exits 8" test "$rc" = 8
    want="(--timeout is 1 s)"
    [ "$how" = config ] && want="(backup.timeout is 1 s)"
    check "... and the error says $want" grep -qF "$want; the previous backup is intact" "$T/to.err"
done
rm -r "$R2/etc/upgrade-recovery/config.d"

# --- a deep directory tree ---------------------------------------------------------------
# 500 levels back up under a soft limit of 256 descriptors (the binary raises it
# to the hard limit; the walk holds about two per level); more than kMaxTreeDepth (512)
# is refused with the path named (restore used to overflow its stack on such a
# tree, at ~1,400 levels, while backup took it). The previous backup stays latest.
deep=$R2/etc/deep
mkdir -p "$deep"
(cd "$deep" && for _ in $(seq 1 499); do mkdir d && cd d; done && echo bottom >f)
rc=0
(ulimit -Sn 256 && exec "$UR_CLI" --root "$R2" backup) >"$T/dp.out" 2>"$T/dp.err" || rc=$?
check "a 500-level tree backs up under a soft limit of 256 descriptors" test "$rc" = 0
check "... and verifies" run_rc 0 "$T/dp.v.out" "$T/dp.v.err" cli "$R2" verify
DID=$(readlink "$R2/var/recovery/latest")
(cd "$deep" && for _ in $(seq 1 499); do cd d; done && for _ in $(seq 1 14); do mkdir d && cd d; done)
check "a tree deeper than 512 levels is refused: exit 11" run_rc 11 "$T/dq.out" "$T/dq.err" cli "$R2" backup
check "... naming the path and the limit" grep -q "'etc/deep/d/d/.*' is nested more than 512 directories deep" "$T/dq.err"
check "... latest unchanged" test "$(readlink "$R2/var/recovery/latest")" = "$DID"
check "... and it still verifies" run_rc 0 "$T/dq.v.out" "$T/dq.v.err" cli "$R2" verify
rm -rf "$deep"

# --- a FIFO where the store has a file --------------------------------------------------
# Opened blocking, it hung list, status, disarm, backup and the initrd's look at
# `armed` for good; now it is damage, named, at once.
S2=$R2/var/recovery
mkdir -p "$S2/recovery"
mkfifo "$S2/recovery/armed"
check "armed as a FIFO: status answers (exit 7)" run_rc 7 "$T/ff.out" "$T/ff.err" timeout 30 "$UR_CLI" --root "$R2" status
check "... naming it" grep -q "recovery/armed' is a FIFO, not a regular file\|armed' is a FIFO, not a regular file" "$T/ff.out" "$T/ff.err"
check "... and disarm removes it" run_rc 0 "$T/ffd.out" "$T/ffd.err" timeout 30 "$UR_CLI" --root "$R2" disarm
check "... gone" test ! -e "$S2/recovery/armed"
FL=$(readlink "$S2/latest")
mv "$S2/$FL/manifest" "$T/manifest.kept"
mkfifo "$S2/$FL/manifest"
check "the latest manifest a FIFO: verify exits 7, at once" run_rc 7 "$T/ffv.out" "$T/ffv.err" timeout 30 "$UR_CLI" --root "$R2" verify
rm "$S2/$FL/manifest"
mv "$T/manifest.kept" "$S2/$FL/manifest"
check "... and verifies again with the file back" run_rc 0 "$T/ffv2.out" "$T/ffv2.err" cli "$R2" verify

# --- a store out of inodes at every point of a backup -----------------------------------
# A small ext4 store with its inodes used up, then freed one at a time, a backup
# after each: every backup either fails with the store as it was (no new
# generation, latest unchanged) or succeeds with latest naming it. It used to be
# able to publish the generation and then fail making the new latest link.
R3=$T/inodes
small_tree "$R3"
mkdir -p "$R3/srv/backups" "$R3/etc/upgrade-recovery/config.d"
printf '[partition]\nallow_plain_directory = true\nmount_point = "/srv/backups"\n[backup]\nfree_space_margin = 0\n' \
    >"$R3/etc/upgrade-recovery/config.d/plain.toml"
truncate -s 64M "$T/inodes.img"
mkfs.ext4 -q -N 1024 -F "$T/inodes.img"
mount -o loop "$T/inodes.img" "$R3/srv/backups"
check "first backup onto the ext4 store" run_rc 0 "$T/in0.out" "$T/in0.err" cli "$R3" backup
S3=$R3/srv/backups
mkdir "$S3/filler"
python3 -c 'import os,sys
i=0
while True:
    try: open(os.path.join(sys.argv[1], str(i)), "x").close()
    except OSError: break
    i+=1' "$S3/filler"
n=$(find "$S3/filler" -type f | wc -l)
outcome=none
for k in $(seq 1 60); do
    n=$((n - 1))
    rm "$S3/filler/$n"
    before=$(ls "$S3/backups") latest_before=$(readlink "$S3/latest")
    rc=0
    cli "$R3" backup >"$T/in.out" 2>"$T/in.err" || rc=$?
    if [ "$rc" = 0 ]; then
        new=$(comm -13 <(echo "$before") <(ls "$S3/backups"))
        [ -n "$new" ] && [ "$(readlink "$S3/latest")" = "backups/$new" ] && outcome="ok after freeing $k" ||
            outcome="exit 0 but latest $(readlink "$S3/latest"), new '$new'"
        break
    fi
    if [ "$(ls "$S3/backups")" != "$before" ] || [ "$(readlink "$S3/latest")" != "$latest_before" ]; then
        outcome="exit $rc with freed $k changed the store: $(ls "$S3/backups" | tr '\n' ' ') latest $(readlink "$S3/latest"): $(cat "$T/in.err")"
        break
    fi
done
check "every backup short of inodes left the store as it was, until one succeeded ($outcome)" \
    test "${outcome%% after*}" = ok
rm -rf "$S3/filler"
check "... and the store verifies" run_rc 0 "$T/in.v.out" "$T/in.v.err" cli "$R3" verify

# A hard-link group larger than half of ext4's 65,000 links per inode: the second
# backup shares the group's inode with the first, and the links run out in the
# middle of the group (EMLINK). That used to fail every backup after the first;
# now the name that gets EMLINK is copied and the rest link to the copy.
mkdir "$R3/etc/hl"
echo "one inode, many names" >"$R3/etc/hl/f0"
python3 -c 'import os,sys
d=sys.argv[1]
for i in range(1, 40000): os.link(d + "/f0", d + "/f%d" % i)' "$R3/etc/hl"
check "backup of a 40,000-name hard-link group" run_rc 0 "$T/hl1.out" "$T/hl1.err" cli "$R3" backup
echo "changed" >>"$R3/etc/hosts"
check "the next backup, sharing the group's inode, succeeds" run_rc 0 "$T/hl2.out" "$T/hl2.err" cli "$R3" backup
check "... and verifies" run_rc 0 "$T/hl.v.out" "$T/hl.v.err" cli "$R3" verify
L3=$(readlink "$S3/latest")
check "... with every name of the group in it" test "$(find "$S3/$L3/etc/hl" -type f | wc -l)" = 40000
rm -rf "$R3/etc/hl"

# An xattr larger than ext4 keeps per file (one block; xfs takes 64 KiB), on a tree
# that is an xfs mount: a clear error naming that limit and the xattr, not the
# no-space error (it was "No space left on device", whose remedy does not help).
truncate -s 300M "$T/bigx.img"
mkfs.xfs -q -f "$T/bigx.img"
mount -o loop "$T/bigx.img" "$R3/usr/local"
echo data >"$R3/usr/local/big-xattr"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.big", b"x" * 60000)' "$R3/usr/local/big-xattr"
before=$(ls "$S3/backups") latest_before=$(readlink "$S3/latest")
check "backup of a 60,000-byte xattr onto ext4 fails (exit 1)" run_rc 1 "$T/bx.out" "$T/bx.err" cli "$R3" backup
check "... saying it is too large for the filesystem's xattr space, not that the disk is full" \
    grep -q "set xattr 'user.big' (60000 bytes): too large for this filesystem's xattr space per file" "$T/bx.err"
check "... with the store as it was" \
    test "$(ls "$S3/backups")|$(readlink "$S3/latest")" = "$before|$latest_before"
umount "$R3/usr/local"

# --- the host name recorded is the root's --------------------------------------------
# With /etc an absolute symlink (followed inside the root), and with no name at all:
# never this machine's own, which it used to record for both.
R4=$T/hostname
mkdir -p "$R4/realetc/upgrade-recovery" "$R4/usr/local" "$R4/var/lib/kubelet"
ln -s /realetc "$R4/etc"
echo host-r4 >"$R4/realetc/hostname"
printf '[partition]\nallow_plain_directory = true\nmount_point = "/srv/backups"\n[backup]\nfree_space_margin = 0\n' \
    >"$R4/realetc/upgrade-recovery/config.toml"
C4=(--config "$R4/realetc/upgrade-recovery/config.toml")
check "backup of a root whose /etc is an absolute symlink" run_rc 0 "$T/hn.out" "$T/hn.err" cli "$R4" "${C4[@]}" backup
cli "$R4" "${C4[@]}" --json list >"$T/hn.json"
check "... records the root's host name" test "$(json "$T/hn.json" '[b for b in j if b["latest"]][0]["host"]')" = host-r4
rm "$R4/realetc/hostname"
echo more >"$R4/usr/local/f"
check "a backup of a root without a host name" run_rc 0 "$T/hn2.out" "$T/hn2.err" cli "$R4" "${C4[@]}" backup
cli "$R4" "${C4[@]}" --json list >"$T/hn2.json"
check "... records none, not this machine's" test -z "$(json "$T/hn2.json" '[b for b in j if b["latest"]][0]["host"]')"

# --- names in backups/ that are not backups; damaged metadata ------------------------
# A directory named like a backup id without metadata (made by hand, a future id), or
# with metadata naming another backup (a copy): never counted by retention, which
# pruned the real backups for them (and kept a future one forever), never removed
# by it, never ordering the new ids; list shows them as damaged, delete removes one.
R5=$T/damaged
small_tree "$R5"
mkdir -p "$R5/etc/upgrade-recovery"
printf '[partition]\nallow_plain_directory = true\nmount_point = "/srv/backups"\n[backup]\nretention = 2\nfree_space_margin = 0\n[etcd]\nmode = "off"\n[ostree]\nmode = "off"\n' \
    >"$R5/etc/upgrade-recovery/config.toml"
S5=$R5/srv/backups
check "damaged: a first backup" run_rc 0 "$T/j0.json" "$T/j0.err" cli "$R5" --json backup
J0=$(json "$T/j0.json" 'j["id"]')
mkdir -p "$S5/backups/20990101T000000Z/etc" "$S5/backups/20000101T000000Z"
echo "not ours" >"$S5/backups/20990101T000000Z/etc/precious"
cp -a "$S5/backups/$J0/." "$S5/backups/20000101T000000Z/"
check "damaged: list exits 7" run_rc 7 "$T/j1.out" "$T/j1.err" cli "$R5" list
check "... showing the future one as damaged, its metadata missing" \
    grep -q "^20990101T000000Z  DAMAGED, not counted as a backup.*20990101T000000Z/metadata.toml is missing" "$T/j1.out"
check "... and the copy, naming its id and its directory" \
    grep -q "^20000101T000000Z  DAMAGED.*metadata.toml: id '$J0' does not match its directory, backup 20000101T000000Z" "$T/j1.out"
check "... and the backup, still latest" grep -q "^$J0 (latest)  created" "$T/j1.out"
check "damaged: status exits 7, as list and metrics do" run_rc 7 "$T/j1s.out" "$T/j1s.err" cli "$R5" status
check "... after its whole report: one backup counted, the others named" \
    bash -c "grep -qx 'Backups: 1' '$T/j1s.out' && grep -q '^Damaged .*: 20000101T000000Z 20990101T000000Z$' '$T/j1s.out' && grep -qx 'Recovery: none recorded' '$T/j1s.out'"
check "... and says why on stderr, as list does" \
    grep -qx "upgrade-recovery status: backups/20000101T000000Z and 1 more are named like backups, but are none ('upgrade-recovery list' says why)" "$T/j1s.err"
check "damaged: status --json exits 7 too" run_rc 7 "$T/j1s.json" "$T/j1s.jerr" cli "$R5" --json status
check "... with the same line on stderr" grep -q "^upgrade-recovery status: backups/20000101T000000Z and 1 more" "$T/j1s.jerr"
check "... with the damaged ids and the backup counted" \
    test "$(json "$T/j1s.json" '" ".join(j["damaged"]) + " " + str(j["backups"])')" = "20000101T000000Z 20990101T000000Z 1"
check "damaged: verify of the copy exits 7 naming both ids" run_rc 7 "$T/j1v.out" "$T/j1v.err" cli "$R5" verify 20000101T000000Z
check "... (the mismatch)" grep -q "^MISMATCH metadata.toml: .*id '$J0' does not match its directory, backup 20000101T000000Z" "$T/j1v.out"
ids5=$J0
for n in 1 2 3; do
    echo "change $n" >>"$R5/etc/hosts"
    check "damaged: backup $n of 3 (retention 2)" run_rc 0 "$T/j$n.b.json" "$T/j$n.b.err" cli "$R5" --json backup
    ids5="$ids5 $(json "$T/j$n.b.json" 'j["id"]')"
done
NEWEST5=${ids5##* }
check "... the new ids follow the clock, not the future name ($NEWEST5)" test "${NEWEST5:0:4}" != 2099
check "... latest names the newest backup" test "$(readlink "$S5/latest")" = "backups/$NEWEST5"
check "... two backups are kept, the newest two" \
    test "$(json <(cli "$R5" --json status) 'j["backups"]')" = 2
check "... (the two)" test "$(ls "$S5/backups" | grep -vx '20990101T000000Z\|20000101T000000Z' | tr '\n' ' ')" = "$(echo "$ids5" | cut -d' ' -f3-4) "
check "... and neither damaged one was touched" \
    bash -c "test -f '$S5/backups/20990101T000000Z/etc/precious' && test -f '$S5/backups/20000101T000000Z/metadata.toml'"
check "damaged: delete removes one by its name" run_rc 0 "$T/j5.out" "$T/j5.err" cli "$R5" delete 20990101T000000Z
check "... gone" test ! -e "$S5/backups/20990101T000000Z"
rm -rf "$S5/backups/20000101T000000Z" # old code let the retention take it
check "damaged: list is clean again" run_rc 0 "$T/j6.out" "$T/j6.err" cli "$R5" list
# Damage inside a backup's metadata is Corrupt (exit 7), named with the key: a
# negative size read as 2^64-1, a tree named like the generation's own files.
# Written as a hostile writer would, with a checksum line to match (resealed);
# without it, any edit is refused for the checksum alone.
M5=$S5/backups/$NEWEST5/metadata.toml
cp -p "$M5" "$T/m5.saved"
sed -i 's/^total_bytes = [0-9]*$/total_bytes = -1/' "$M5"
check "an edit without a new checksum line: list exits 7" run_rc 7 "$T/n0.out" "$T/n0.err" cli "$R5" list
check "... saying the content does not match its checksum line" \
    grep -q "$M5: content does not match its checksum line" "$T/n0.err"
ur_reseal_metadata "$M5"
check "negative size: list exits 7" run_rc 7 "$T/n1.out" "$T/n1.err" cli "$R5" list
check "... naming the file, line and key" grep -q "$M5:[0-9]*: sizes.total_bytes = -1 is negative" "$T/n1.err"
check "... never showing 2^64-1" bash -c "! grep -q 18446744073709551615 '$T/n1.out'"
check "negative size: verify exits 7" run_rc 7 "$T/n2.out" "$T/n2.err" cli "$R5" verify
cp -p "$T/m5.saved" "$M5"
sed -i "s/^name = 'etc'$/name = 'manifest'/" "$M5"
ur_reseal_metadata "$M5"
check "a tree named manifest: verify exits 7" run_rc 7 "$T/n3.out" "$T/n3.err" cli "$R5" verify
check "... naming the tree" grep -q "trees\[[0-9]\].name 'manifest' is the name of the generation's own manifest" "$T/n3.out"
check "... recover --dry-run refuses it too (exit 7)" run_rc 7 "$T/n4.out" "$T/n4.err" cli "$R5" recover --dry-run
cp -p "$T/m5.saved" "$M5"
rm "$M5"
check "metadata missing: verify exits 7" run_rc 7 "$T/n5.out" "$T/n5.err" cli "$R5" verify "$NEWEST5"
check "... saying so" grep -q "metadata.toml is missing" "$T/n5.out"
cp -p "$T/m5.saved" "$M5"
check "the backup verifies again" run_rc 0 "$T/n6.out" "$T/n6.err" cli "$R5" verify

echo "test-backup-badinput: $(($(date +%s) - t0)) s"
ur_fx_done
