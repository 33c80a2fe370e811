#!/bin/bash
# The checked-in units/io.openshift.UpgradeRecovery1.xml equals what the running
# service says in Introspect, for both of our interfaces (comments, whitespace and
# attribute order aside). The XML is the documented contract; this keeps it true.
set -u
. "$UR_SOURCE_DIR/tests/integration/dbus-lib.sh"
require_cmd python3
dbus_setup
dbus_start_daemon
XML=${UR_DBUS_XML:-$UR_SOURCE_DIR/units/io.openshift.UpgradeRecovery1.xml}

introspect()
{
    busctl --system call "$BUS_NAME" "$1" org.freedesktop.DBus.Introspectable Introspect --json=short |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0])'
}

# normalize FILE INTERFACE: one line per element of the interface, in document order,
# attributes sorted; comments and whitespace dropped by the parser.
normalize()
{
    python3 - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ifaces = [i for i in root.findall("interface") if i.get("name") == sys.argv[2]]
if len(ifaces) != 1:
    sys.exit(f"{sys.argv[1]}: {len(ifaces)} interfaces named {sys.argv[2]}")
def walk(e, depth):
    attrs = " ".join(f'{k}="{v}"' for k, v in sorted(e.attrib.items()))
    print("  " * depth + f"<{e.tag} {attrs}>")
    for c in e:
        walk(c, depth + 1)
walk(ifaces[0], 0)
PY
}

introspect "$MGR_PATH" >"$T/manager.xml"
J=$(mcall StartBackup 'a{sv}' 0 | objpath)
[ "$(wait_job "$J")" = Succeeded ] || die "backup job failed: $(jprop "$J" Message)"
introspect "$J" >"$T/job.xml"
# The Manager object lists the job nodes under it.
grep -q '<node name="job"/>' "$T/manager.xml" || die "no job node in the Manager's introspection"

rc=0
for pair in "manager.xml io.openshift.UpgradeRecovery1.Manager" "job.xml io.openshift.UpgradeRecovery1.Job"; do
    set -- $pair
    normalize "$XML" "$2" >"$T/want.$2" || die "cannot parse $XML"
    normalize "$T/$1" "$2" >"$T/live.$2" || die "cannot parse the live introspection of $2"
    if ! diff -u "$T/want.$2" "$T/live.$2"; then
        echo "FAIL: $2 differs between units/io.openshift.UpgradeRecovery1.xml (-) and the live object (+)" >&2
        rc=1
    else
        ok "$2: $(grep -c '<method' "$T/live.$2") methods, $(grep -c '<property' "$T/live.$2") properties, $(grep -c '<signal' "$T/live.$2") signals match"
    fi
done
[ $rc = 0 ] || exit 1
echo "PASS: test_dbus_introspect"
