#!/usr/bin/env python3
"""Check an Ignition config (and its MachineConfig) of upgrade-recovery.

    validate.py [--units-dir DIR] [--units NAME,...] [--config-check PROG] [--day2 DAY2_YAML] [IGN [MC_YAML]]

IGN must be a valid Ignition spec 3.2.0 config in structure: every object has only
the keys the specification defines, with their types and required keys (no Ignition
binary is needed). On top of that it must be the upgrade-recovery config: a GPT
partition named "recovery", an xfs file system on /dev/disk/by-partlabel/recovery at
/var/recovery, /etc/upgrade-recovery/config.toml as a data: URL naming that partition,
and the units; units with an [Install] section enabled or not as the project decides,
units without one never "enabled".

    --units-dir DIR       every embedded unit must be byte-equal to DIR/NAME
    --units A,B,...       exactly these units must be embedded
    --config-check PROG   run PROG --check FILE on the embedded config file (man-config-keys)

MC_YAML must be a MachineConfig for role master whose spec.config is the same config.

DAY2_YAML must be the day-2 MachineConfig, for a node that is already installed: a
MachineConfig for role master whose spec.config passes the same checks except that it
must have no storage.disks, storage.filesystems or storage.raid (the Machine Config
Operator cannot change them on a running node and degrades the pool), and whose name
sorts after the prior tooling's 98-var-recovery-partition, so that its var-recovery.mount
overrides that one's. Given with IGN, its config must be IGN without those sections.
Exit 0 when everything holds; otherwise every problem is printed and the exit is 1.
Needs python3 and python3-yaml.
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

import yaml

# --- Ignition 3.2.0, structurally ---------------------------------------------------
# A schema is: a Python type, ("list", schema), or ("obj", {key: schema}, required keys).
# Transcribed from Ignition's config/v3_2/types/schema.go (keys, types, required keys).

STR, INT, BOOL = str, int, bool


def obj(fields, required=()):
    return ("obj", fields, tuple(required))


def lst(item):
    return ("list", item)


HTTP_HEADER = obj({"name": STR, "value": STR}, ["name"])
RESOURCE = obj({"compression": STR, "httpHeaders": lst(HTTP_HEADER), "source": STR,
                "verification": obj({"hash": STR})})
NODE_USER = obj({"id": INT, "name": STR})
NODE_GROUP = obj({"id": INT, "name": STR})
IGNITION_3_2_0 = obj({
    "ignition": obj({
        "version": STR,
        "config": obj({"merge": lst(RESOURCE), "replace": RESOURCE}),
        "timeouts": obj({"httpResponseHeaders": INT, "httpTotal": INT}),
        "security": obj({"tls": obj({"certificateAuthorities": lst(RESOURCE)})}),
        "proxy": obj({"httpProxy": STR, "httpsProxy": STR, "noProxy": lst(STR)}),
    }, ["version"]),
    "passwd": obj({
        "users": lst(obj({
            "name": STR, "passwordHash": STR, "sshAuthorizedKeys": lst(STR), "uid": INT, "gecos": STR,
            "homeDir": STR, "noCreateHome": BOOL, "primaryGroup": STR, "groups": lst(STR),
            "noUserGroup": BOOL, "noLogInit": BOOL, "shell": STR, "shouldExist": BOOL, "system": BOOL},
            ["name"])),
        "groups": lst(obj({"name": STR, "gid": INT, "passwordHash": STR, "shouldExist": BOOL, "system": BOOL},
                          ["name"])),
    }),
    "storage": obj({
        "disks": lst(obj({
            "device": STR, "wipeTable": BOOL,
            "partitions": lst(obj({
                "label": STR, "number": INT, "sizeMiB": INT, "startMiB": INT, "typeGuid": STR, "guid": STR,
                "wipePartitionEntry": BOOL, "shouldExist": BOOL, "resize": BOOL})),
        }, ["device"])),
        "raid": lst(obj({"name": STR, "level": STR, "devices": lst(STR), "spares": INT, "options": lst(STR)},
                        ["name", "level", "devices"])),
        "filesystems": lst(obj({
            "device": STR, "format": STR, "path": STR, "wipeFilesystem": BOOL, "label": STR, "uuid": STR,
            "options": lst(STR), "mountOptions": lst(STR)}, ["device"])),
        "files": lst(obj({
            "path": STR, "overwrite": BOOL, "user": NODE_USER, "group": NODE_GROUP,
            "append": lst(RESOURCE), "contents": RESOURCE, "mode": INT}, ["path"])),
        "directories": lst(obj({"path": STR, "overwrite": BOOL, "user": NODE_USER, "group": NODE_GROUP,
                                "mode": INT}, ["path"])),
        "links": lst(obj({"path": STR, "overwrite": BOOL, "user": NODE_USER, "group": NODE_GROUP,
                          "target": STR, "hard": BOOL}, ["path", "target"])),
        "luks": lst(obj({
            "name": STR, "device": STR, "keyFile": RESOURCE, "label": STR, "uuid": STR, "options": lst(STR),
            "wipeVolume": BOOL,
            "clevis": obj({"tang": lst(obj({"url": STR, "thumbprint": STR})), "tpm2": BOOL,
                           "threshold": INT,
                           "custom": obj({"pin": STR, "config": STR, "needsNetwork": BOOL}, ["pin", "config"])}),
        }, ["name"])),
    }),
    "systemd": obj({
        "units": lst(obj({
            "name": STR, "enabled": BOOL, "mask": BOOL, "contents": STR,
            "dropins": lst(obj({"name": STR, "contents": STR}, ["name"]))}, ["name"])),
    }),
}, ["ignition"])

UNIT_SUFFIXES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
                 ".timer", ".snapshot", ".slice", ".scope")

# What the project decides about each unit of units/ (the test's "units enabled").
ENABLED = {"var-recovery.mount": True, "upgrade-recovery-phase2.service": True, "upgrade-recovery-watchdog.service": True}

# What the Machine Config Operator cannot change on a running node: its daemon refuses a
# new rendered config whose storage.disks, .filesystems or .raid differ from the current
# one's (reconcilable() in openshift/machine-config-operator pkg/daemon/update.go), and the
# pool degrades. A day-2 MachineConfig must have none of them.
DAY1_ONLY_STORAGE = ("disks", "filesystems", "raid")
# The prior tooling's MachineConfig with its own var-recovery.mount (and the partition). The
# MCO merges MachineConfigs sorted by name, a later one's unit overriding an earlier one's
# unit of the same name, so the day-2 MachineConfig must sort after it.
PRIOR_MACHINECONFIG = "98-var-recovery-partition"

problems = []


def problem(msg):
    problems.append(msg)


def check_schema(value, schema, where):
    if isinstance(schema, type):
        # JSON has no int/bool confusion, but Python does.
        if schema is INT and (isinstance(value, bool) or not isinstance(value, int)):
            problem(f"{where}: must be an integer")
        elif schema is BOOL and not isinstance(value, bool):
            problem(f"{where}: must be true or false")
        elif schema is STR and not isinstance(value, str):
            problem(f"{where}: must be a string")
        return
    if schema[0] == "list":
        if not isinstance(value, list):
            problem(f"{where}: must be a list")
            return
        for i, v in enumerate(value):
            check_schema(v, schema[1], f"{where}[{i}]")
        return
    _, fields, required = schema
    if not isinstance(value, dict):
        problem(f"{where}: must be an object")
        return
    for k, v in value.items():
        if k not in fields:
            problem(f"{where}: unknown key '{k}' (Ignition 3.2.0 has {', '.join(fields)})")
            continue
        check_schema(v, fields[k], f"{where}.{k}" if where else k)
    for k in required:
        if k not in value:
            problem(f"{where or 'config'}: '{k}' is required")


def data_url_bytes(url, where):
    if not url.startswith("data:") or "," not in url:
        problem(f"{where}: not a data: URL")
        return None
    head, data = url[5:].split(",", 1)
    try:
        if head.endswith(";base64"):
            return base64.b64decode(urllib.parse.unquote(data), validate=True)
        return urllib.parse.unquote_to_bytes(data)
    except Exception as e:  # noqa: BLE001 - any decoding error is the finding
        problem(f"{where}: cannot decode the data: URL ({e})")
        return None


def unit_section(text, name):
    """key=value pairs of [name] in a unit file (last one wins, as systemd reads)."""
    out, cur = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            cur = s
            continue
        if cur == f"[{name}]" and "=" in s:
            k, v = s.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def check_semantics(ign, args, day2=False):
    if ign.get("ignition", {}).get("version") != "3.2.0":
        problem(f"ignition.version is {ign.get('ignition', {}).get('version')!r}, not '3.2.0'")
    storage = ign.get("storage", {})
    if day2:
        for k in DAY1_ONLY_STORAGE:
            if k in storage:
                problem(f"storage.{k}: not allowed in a day-2 MachineConfig: the Machine Config Operator "
                        "cannot apply it to an installed node, and the pool degrades")
    else:
        check_partition(storage)
    check_files_and_units(ign, storage, args)


def check_partition(storage):
    # Partitions: unique labels and numbers per disk, sane sizes; exactly one "recovery".
    recovery_parts = []
    devices = set()
    for i, d in enumerate(storage.get("disks", [])):
        w = f"storage.disks[{i}]"
        if not str(d.get("device", "")).startswith("/"):
            problem(f"{w}.device must be an absolute path")
        if d.get("device") in devices:
            problem(f"{w}.device {d.get('device')} appears twice")
        devices.add(d.get("device"))
        if d.get("wipeTable"):
            problem(f"{w}: wipeTable would erase the partition table of the installation disk")
        labels, numbers = set(), set()
        for j, p in enumerate(d.get("partitions", [])):
            pw = f"{w}.partitions[{j}]"
            for k in ("number", "sizeMiB", "startMiB"):
                if isinstance(p.get(k), int) and p[k] < 0:
                    problem(f"{pw}.{k} is negative")
            # 0 means "the largest free block" (start) and "the rest of it" (size) to Ignition:
            # the root file system could not grow, or the partition took the whole disk.
            if p.get("label") == "recovery":
                for k in ("sizeMiB", "startMiB"):
                    if p.get(k) == 0 or k not in p:
                        problem(f"{pw}.{k} of the recovery partition must be set and above 0")
            if p.get("number"):
                if p["number"] in numbers:
                    problem(f"{pw}: partition number {p['number']} appears twice")
                numbers.add(p["number"])
            elif p.get("label") in labels:
                problem(f"{pw}: label {p.get('label')} appears twice without a number")
            labels.add(p.get("label"))
            if p.get("label") == "recovery":
                recovery_parts.append(p)
    if len(recovery_parts) != 1:
        problem(f"storage.disks: {len(recovery_parts)} partitions labelled 'recovery', expected exactly one")
    elif recovery_parts[0].get("shouldExist") is False:
        problem("the 'recovery' partition has shouldExist false")

    fss = storage.get("filesystems", [])
    rec_fs = [f for f in fss if f.get("device") == "/dev/disk/by-partlabel/recovery"]
    if len(rec_fs) != 1:
        problem(f"storage.filesystems: {len(rec_fs)} entries for /dev/disk/by-partlabel/recovery, expected one")
    else:
        f = rec_fs[0]
        if f.get("format") != "xfs":
            problem(f"the recovery file system's format is {f.get('format')!r}, not 'xfs'")
        if f.get("path") != "/var/recovery":
            problem(f"the recovery file system's path is {f.get('path')!r}, not '/var/recovery'")
    if len({f.get("device") for f in fss}) != len(fss):
        problem("storage.filesystems: a device appears twice")


def check_files_and_units(ign, storage, args):
    # Files: absolute, unique paths; modes Ignition 3.2.0 supports; the config file.
    config_text = None
    paths = set()
    for i, f in enumerate(storage.get("files", [])):
        w = f"storage.files[{i}]"
        path = f.get("path", "")
        if not path.startswith("/"):
            problem(f"{w}.path must be absolute")
        if path in paths:
            problem(f"{w}.path {path} appears twice")
        paths.add(path)
        mode = f.get("mode")
        if isinstance(mode, int) and not isinstance(mode, bool) and (mode < 0 or mode > 0o777):
            problem(f"{w}.mode {oct(mode)}: set-uid, set-gid and sticky bits are not supported")
        src = f.get("contents", {}).get("source")
        if src is None:
            problem(f"{w}: no contents.source")
            continue
        data = data_url_bytes(src, f"{w}.contents.source")
        if path == "/etc/upgrade-recovery/config.toml" and data is not None:
            try:
                config_text = data.decode("utf-8")
            except UnicodeDecodeError:
                problem(f"{w}: the config file is not UTF-8")
            if mode != 0o644:
                problem(f"{w}: mode {mode} is not 0644 (420)")
    if config_text is None:
        problem("storage.files: no /etc/upgrade-recovery/config.toml with contents")
    else:
        if not config_text.lstrip().startswith("#"):
            problem("the config file does not start with a comment")
        want = {"label": "recovery", "mount_point": "/var/recovery", "filesystem": "xfs"}
        values, section = {}, None  # (section, key) -> the value as written
        for line in config_text.splitlines():
            s = line.strip()
            if s.startswith("["):
                section = s.strip("[]")
            m = re.match(r'^(\w+)\s*=\s*(.*?)\s*$', s)
            if m and section is not None:
                values[(section, m.group(1))] = m.group(2)
        for k, v in want.items():
            have = values.get(("partition", k))
            if have is not None and have != f'"{v}"':
                problem(f"the config file says partition.{k} = {have}; the Ignition config makes {v!r}")
        # W6: on a node the MCO manages, a backup without the current MachineConfig fails.
        if values.get(("machineconfig", "required")) != "true":
            problem("the config file does not set machineconfig.required = true")
        # A control-plane node always has cluster-backup.sh: without it, fail, never back up without etcd.
        if values.get(("etcd", "mode")) != '"script"':
            problem('the config file does not set etcd.mode = "script"')
        if args.config_check:
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as t:
                t.write(config_text)
            try:
                r = subprocess.run([args.config_check, "--check", t.name], capture_output=True, text=True)
                if r.returncode != 0:
                    problem(f"the config file does not load: {r.stderr.strip()}")
            finally:
                os.unlink(t.name)

    # Units.
    units = ign.get("systemd", {}).get("units", [])
    names = [u.get("name") for u in units]
    if len(set(names)) != len(names):
        problem("systemd.units: a unit appears twice")
    for u in units:
        n = u.get("name", "")
        if not n.endswith(UNIT_SUFFIXES) or "/" in n:
            problem(f"systemd.units: '{n}' is not a unit name")
        text = u.get("contents")
        if text is None:
            problem(f"unit {n}: no contents")
            continue
        has_install = bool(unit_section(text, "Install"))
        if u.get("enabled") is True and not has_install:
            problem(f"unit {n}: enabled, but it has no [Install] section")
        if n in ENABLED and u.get("enabled") is not ENABLED[n]:
            problem(f"unit {n}: enabled is {u.get('enabled')!r}, must be {ENABLED[n]}")
        if n not in ENABLED and "enabled" in u:
            problem(f"unit {n}: 'enabled' set for a unit the project does not enable")
        if args.units_dir:
            p = os.path.join(args.units_dir, n)
            if not os.path.exists(p):
                problem(f"unit {n}: not in {args.units_dir}")
            else:
                with open(p, "rb") as f:
                    want = f.read()
                if text.encode("utf-8") != want:
                    problem(f"unit {n}: differs from {p} (run ignition/generate.py)")
    if args.units is not None:
        want = sorted(x for x in args.units.split(",") if x)
        if sorted(names) != want:
            problem(f"systemd.units are {sorted(names)}, the project installs {want}")
    mount = next((u for u in units if u.get("name") == "var-recovery.mount"), None)
    if mount is None:
        problem("no var-recovery.mount unit")
    elif mount.get("contents"):
        m = unit_section(mount["contents"], "Mount")
        if (m.get("What"), m.get("Where"), m.get("Type")) != ("/dev/disk/by-partlabel/recovery", "/var/recovery",
                                                               "xfs"):
            problem(f"var-recovery.mount mounts {m.get('What')} at {m.get('Where')} as {m.get('Type')}, "
                    "not the partition the config creates")


def check_machineconfig(mc, ign):
    """ign: what spec.config must equal; None: not compared."""
    if not isinstance(mc, dict):
        problem("the MachineConfig is not a mapping")
        return
    for k in mc:
        if k not in ("apiVersion", "kind", "metadata", "spec"):
            problem(f"MachineConfig: unknown top-level key '{k}'")
    if mc.get("apiVersion") != "machineconfiguration.openshift.io/v1":
        problem(f"MachineConfig apiVersion is {mc.get('apiVersion')!r}")
    if mc.get("kind") != "MachineConfig":
        problem(f"MachineConfig kind is {mc.get('kind')!r}")
    meta = mc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
        problem(f"MachineConfig metadata.name {name!r} is not a valid resource name")
    role = (meta.get("labels") or {}).get("machineconfiguration.openshift.io/role")
    if role != "master":
        problem(f"MachineConfig role label is {role!r}, not 'master'")
    spec = mc.get("spec") or {}
    for k in spec:
        if k not in ("config", "kernelArguments", "extensions", "fips", "kernelType", "osImageURL"):
            problem(f"MachineConfig spec: unknown key '{k}'")
    if ign is not None and spec.get("config") != ign:
        problem("MachineConfig spec.config is not the Ignition config")


def check_day2(mc, args, day1_ign):
    """The day-2 MachineConfig; day1_ign (or None) is the installation's Ignition config."""
    check_machineconfig(mc, None)
    if not isinstance(mc, dict):
        return None
    name = (mc.get("metadata") or {}).get("name")
    if isinstance(name, str) and not name > PRIOR_MACHINECONFIG:
        problem(f"MachineConfig metadata.name {name!r} sorts before {PRIOR_MACHINECONFIG!r}: the MCO would "
                "let that MachineConfig's var-recovery.mount override ours")
    ign = (mc.get("spec") or {}).get("config")
    if not isinstance(ign, dict):
        problem("MachineConfig spec.config is not an Ignition config")
        return None
    check_schema(ign, IGNITION_3_2_0, "")
    check_semantics(ign, args, day2=True)
    if day1_ign is not None:
        want = json.loads(json.dumps(day1_ign))
        for k in DAY1_ONLY_STORAGE:
            want.get("storage", {}).pop(k, None)
        if want.get("storage") == {}:
            del want["storage"]
        if ign != want:
            problem("MachineConfig spec.config is not the Ignition config without its disks and file systems")
    return ign


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units-dir")
    ap.add_argument("--units")
    ap.add_argument("--config-check")
    ap.add_argument("--day2")
    ap.add_argument("ignition", nargs="?")
    ap.add_argument("machineconfig", nargs="?")
    args = ap.parse_args()
    if not args.ignition and not args.day2:
        ap.error("give IGN, --day2 DAY2_YAML, or both")
    ign = None
    if args.ignition:
        with open(args.ignition, encoding="utf-8") as f:
            try:
                ign = json.load(f)
            except json.JSONDecodeError as e:
                print(f"FAIL: {args.ignition} is not JSON: {e}")
                return 1
        check_schema(ign, IGNITION_3_2_0, "")
        check_semantics(ign, args)
    if args.machineconfig:
        mc = load_yaml(args.machineconfig)
        if mc is None:
            return 1
        check_machineconfig(mc, ign)
    day2_ign = None
    if args.day2:
        mc = load_yaml(args.day2)
        if mc is None:
            return 1
        first = len(problems)
        day2_ign = check_day2(mc, args, ign)
        problems[first:] = [f"{args.day2}: {p}" for p in problems[first:]]
    for p in problems:
        print(f"FAIL: {p}")
    if problems:
        return 1
    if ign is not None:
        for d in ign.get("storage", {}).get("disks", []):
            if "CHANGE-ME" in str(d.get("device", "")):
                print(f"note: {args.ignition} names the placeholder disk {d['device']}: "
                      "generate a site copy with generate.py --device before using it")
        n = len(ign.get("systemd", {}).get("units", []))
        print(f"ok: {args.ignition} is Ignition 3.2.0 with the recovery partition, its file system, "
              f"the config file and {n} units" + (f"; {args.machineconfig} carries it" if args.machineconfig else ""))
    if day2_ign is not None:
        n = len(day2_ign.get("systemd", {}).get("units", []))
        print(f"ok: {args.day2} is a day-2 MachineConfig: the config file and {n} units, no disks, file systems "
              f"or RAID" + (f"; the same as {args.ignition} otherwise" if ign is not None else ""))
    return 0


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as e:
            print(f"FAIL: {path} is not YAML: {e}")
            return None


if __name__ == "__main__":
    sys.exit(main())
