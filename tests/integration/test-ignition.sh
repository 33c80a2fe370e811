#!/bin/bash
# ignition/: the Butane source, the Ignition JSON, the MachineConfig YAML and the day-2
# MachineConfig YAML.
#
# Usage: test-ignition.sh PYTHON IGNITION_SRC_DIR UNITS_DIR UNIT,UNIT,... CONFIG_KEYS
#   UNITS_DIR    the units as the package installs them, configured by meson (ignition/meson.build)
#   UNIT,...     the units units/meson.build installs: exactly these must be embedded
#   CONFIG_KEYS  man-config-keys (its --check loads the embedded config file)
#
# 1. generate.py --check: the .bu's unit blocks, the JSON and both YAMLs are what the
#    generator makes from the .bu and the meson-configured units (byte for byte);
# 2. validate.py: valid Ignition 3.2.0 in structure, the partition, file system, config
#    file and units as the project needs them, units byte-equal to UNITS_DIR, the
#    MachineConfig for role master carrying the same config; the day-2 MachineConfig
#    (--day2) with the same files and units and no disks or file systems;
# 3. a site-specific rendering (--device/--start-mib/--size-mib) validates too, and so
#    does a day-2 rendering (--day2), which needs no site values;
# 4. the validator catches what it must: each broken copy below has to fail (the day-2
#    ones for the reason named).
set -u
[ $# -eq 5 ] || { echo "usage: $0 PYTHON IGNITION_SRC_DIR UNITS_DIR UNITS CONFIG_KEYS" >&2; exit 2; }
py=$1 src=$2 units_dir=$3 units=$4 keys=$5
"$py" -c 'import yaml' 2>/dev/null || { echo "SKIP: $py has no yaml module (python3-yaml; scripts/install-deps.sh test)"; exit 77; }

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ign=$src/upgrade-recovery.ign
mc=$src/98-upgrade-recovery.yaml
day2=$src/99-upgrade-recovery-day2.yaml

echo "--- generate.py --check (units from $units_dir)"
"$py" "$src/generate.py" --check --units-dir "$units_dir" || fail "ignition/ is stale: run python3 ignition/generate.py"

echo "--- validate.py"
"$py" "$src/validate.py" --units-dir "$units_dir" --units "$units" --config-check "$keys" "$ign" "$mc" ||
    fail "the committed Ignition config or MachineConfig is not valid"

echo "--- validate.py --day2"
"$py" "$src/validate.py" --units-dir "$units_dir" --units "$units" --config-check "$keys" --day2 "$day2" "$ign" ||
    fail "the committed day-2 MachineConfig is not valid, or not the Ignition config without disks and file systems"

echo "--- a site-specific rendering"
"$py" "$src/generate.py" --units-dir "$units_dir" --device /dev/disk/by-path/pci-0000:00:1f.2-ata-1 \
    --start-mib 102400 --size-mib 40960 --output-dir "$tmp/site" >/dev/null || fail "generate.py --output-dir failed"
if [ -f "$tmp/site/upgrade-recovery.ign" ]; then
    "$py" "$src/validate.py" --units-dir "$units_dir" --units "$units" --config-check "$keys" \
        "$tmp/site/upgrade-recovery.ign" "$tmp/site/98-upgrade-recovery.yaml" --day2 "$tmp/site/99-upgrade-recovery-day2.yaml" ||
        fail "the site rendering is not valid"
    cmp -s "$tmp/site/99-upgrade-recovery-day2.yaml" "$day2" ||
        fail "the site rendering's day-2 MachineConfig differs from the committed one (it has no site values)"
    "$py" - "$tmp/site/upgrade-recovery.ign" <<'EOF' || fail "the site rendering does not carry the site's values"
import json, sys
d = json.load(open(sys.argv[1]))["storage"]["disks"][0]
p = d["partitions"][0]
sys.exit(0 if (d["device"], p["startMiB"], p["sizeMiB"]) == ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", 102400, 40960) else 1)
EOF
fi

echo "--- a day-2 rendering: no site values, only the day-2 MachineConfig"
if "$py" "$src/generate.py" --units-dir "$units_dir" --day2 --output-dir "$tmp/day2" >/dev/null; then
    [ "$(ls "$tmp/day2")" = 99-upgrade-recovery-day2.yaml ] || fail "generate.py --day2 wrote $(ls "$tmp/day2" | tr '\n' ' ')"
    cmp -s "$tmp/day2/99-upgrade-recovery-day2.yaml" "$day2" || fail "generate.py --day2 wrote another day-2 MachineConfig"
else
    fail "generate.py --day2 --output-dir failed"
fi

echo "--- generate.py refuses site values that cannot be right, writing nothing"
while IFS='|' read -r what args; do
    [ -n "$what" ] || continue
    # shellcheck disable=SC2086 # the arguments' words
    if "$py" "$src/generate.py" --units-dir "$units_dir" $args --output-dir "$tmp/refused" >"$tmp/out" 2>&1; then
        fail "generate.py accepts $what"
    elif [ -e "$tmp/refused" ]; then
        fail "generate.py wrote $tmp/refused for $what"
    else
        echo "refused: $what ($(tail -1 "$tmp/out"))"
    fi
done <<'SITE'
a relative device|--device relative/disk --start-mib 102400 --size-mib 40960
the placeholder device|--device /dev/disk/by-id/CHANGE-ME-installation-disk
no device|--start-mib 102400 --size-mib 40960
a start of 0|--device /dev/disk/by-id/wwn-1 --start-mib 0 --size-mib 40960
a size of 0|--device /dev/disk/by-id/wwn-1 --start-mib 102400 --size-mib 0
a negative start|--device /dev/disk/by-id/wwn-1 --start-mib -5 --size-mib 40960
a day-2 rendering with a device|--day2 --device /dev/disk/by-id/wwn-1
a day-2 rendering with a start and size|--day2 --start-mib 102400 --size-mib 40960
SITE

echo "--- the validator rejects broken copies"
# Each line: a description, then a python expression applied to the parsed config `c`.
while IFS='|' read -r what change; do
    [ -n "$what" ] || continue
    "$py" - "$ign" "$tmp/broken.ign" "$change" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=2)
EOF
    if "$py" "$src/validate.py" --units-dir "$units_dir" --units "$units" --config-check "$keys" \
        "$tmp/broken.ign" >"$tmp/out" 2>&1; then
        fail "the validator accepts a config with $what"
    else
        echo "rejected: $what ($(grep -m1 FAIL "$tmp/out"))"
    fi
done <<'EOF'
an unknown top-level key|c["kernelArguments"] = {"shouldExist": ["x"]}
spec version 3.1.0|c["ignition"]["version"] = "3.1.0"
an unknown partition key|c["storage"]["disks"][0]["partitions"][0]["sizeMB"] = 1
no recovery partition|c["storage"]["disks"][0]["partitions"][0]["label"] = "data"
an ext4 recovery file system|c["storage"]["filesystems"][0]["format"] = "ext4"
the file system elsewhere|c["storage"]["filesystems"][0]["path"] = "/var/lib/recovery"
a recovery partition of size 0 (the rest of the disk)|c["storage"]["disks"][0]["partitions"][0]["sizeMiB"] = 0
a recovery partition at start 0 (root cannot grow)|c["storage"]["disks"][0]["partitions"][0]["startMiB"] = 0
a unit one byte off|c["systemd"]["units"][0]["contents"] += " "
a unit missing|c["systemd"]["units"].pop()
the mount unit not enabled|c["systemd"]["units"][0]["enabled"] = False
the D-Bus service enabled|[u.update(enabled=True) for u in c["systemd"]["units"] if u["name"] == "upgrade-recoveryd.service"]
a mode given as a string|c["storage"]["files"][0]["mode"] = "0644"
a config naming another partition|c["storage"]["files"][0]["contents"]["source"] = c["storage"]["files"][0]["contents"]["source"].replace("label%20=%20%22recovery%22", "label%20=%20%22other%22")
machineconfig.required off|c["storage"]["files"][0]["contents"]["source"] = c["storage"]["files"][0]["contents"]["source"].replace("required%20=%20true", "required%20=%20false")
etcd.mode auto|c["storage"]["files"][0]["contents"]["source"] = c["storage"]["files"][0]["contents"]["source"].replace("mode%20=%20%22script%22", "mode%20=%20%22auto%22")
a config file the loader rejects|c["storage"]["files"][0]["contents"]["source"] += "%0A%5Bbackup%5D%0Aretentionn%20%3D%201%0A"
EOF

echo "--- the validator rejects broken day-2 MachineConfigs, for the reason named"
# Each line: a description, a fragment the FAIL output must have, then a python statement
# applied to the parsed day-2 MachineConfig `m` (`c` is the day-1 Ignition config).
while IFS='|' read -r what why change; do
    [ -n "$what" ] || continue
    "$py" - "$day2" "$ign" "$tmp/broken-day2.yaml" "$change" <<'EOF'
import json, sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
exec(sys.argv[4])
yaml.safe_dump(m, open(sys.argv[3], "w"))
EOF
    if "$py" "$src/validate.py" --units-dir "$units_dir" --units "$units" --config-check "$keys" \
        --day2 "$tmp/broken-day2.yaml" >"$tmp/out" 2>&1; then
        fail "the validator accepts a day-2 MachineConfig $what"
    elif ! grep FAIL "$tmp/out" | grep -qF -- "$why"; then
        fail "the validator rejects a day-2 MachineConfig $what, but not with '$why': $(cat "$tmp/out")"
    else
        echo "rejected: day-2 $what ($(grep FAIL "$tmp/out" | grep -m1 -F -- "$why"))"
    fi
done <<'EOF'
with a disks section|storage.disks: not allowed|m["spec"]["config"]["storage"]["disks"] = c["storage"]["disks"]
with a filesystems section|storage.filesystems: not allowed|m["spec"]["config"]["storage"]["filesystems"] = c["storage"]["filesystems"]
with a raid section|storage.raid: not allowed|m["spec"]["config"]["storage"]["raid"] = [{"name": "md0", "level": "raid1", "devices": ["/dev/sda5", "/dev/sdb5"]}]
without the mount unit|no var-recovery.mount unit|m["spec"]["config"]["systemd"]["units"] = [u for u in m["spec"]["config"]["systemd"]["units"] if u["name"] != "var-recovery.mount"]
named to sort before the prior tooling's|sorts before '98-var-recovery-partition'|m["metadata"]["name"] = "98-upgrade-recovery"
for workers|role label is 'worker'|m["metadata"]["labels"]["machineconfiguration.openshift.io/role"] = "worker"
with a unit one byte off|differs from|m["spec"]["config"]["systemd"]["units"][0]["contents"] += " "
without the config file|no /etc/upgrade-recovery/config.toml|m["spec"]["config"]["storage"]["files"] = []
with a key Ignition 3.2.0 does not have|unknown key 'modes'|m["spec"]["config"]["storage"]["files"][0]["modes"] = 420
EOF

echo "--- the MachineConfig must carry the same config"
"$py" - "$mc" "$tmp/broken.yaml" <<'EOF'
import sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
m["spec"]["config"]["storage"]["filesystems"][0]["wipeFilesystem"] = False
m["metadata"]["labels"]["machineconfiguration.openshift.io/role"] = "worker"
yaml.safe_dump(m, open(sys.argv[2], "w"))
EOF
if "$py" "$src/validate.py" "$ign" "$tmp/broken.yaml" >"$tmp/out" 2>&1; then
    fail "the validator accepts a MachineConfig for workers with another config"
else
    grep -c FAIL "$tmp/out" | grep -qx 2 || fail "expected 2 problems with the broken MachineConfig: $(cat "$tmp/out")"
fi

if [ $failures -gt 0 ]; then
    echo "$failures failures"
    exit 1
fi
echo "ok"
