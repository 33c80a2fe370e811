#!/bin/bash
# units/upgrade-recovery.catalog: journalctl compiles it (--update-catalog under a
# temporary --root, the way the package's install does), without complaints, and
# every MESSAGE_ID the code logs (src/core/log.hpp, src/daemon/events.hpp) has an
# entry with a Subject; no entry is for an id the code does not have.
set -u
. "$UR_SOURCE_DIR/tests/integration/lib.sh"
require_cmd journalctl
CAT=$UR_SOURCE_DIR/units/upgrade-recovery.catalog
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/usr/lib/systemd/catalog" "$T/var/lib/systemd/catalog"
cp "$CAT" "$T/usr/lib/systemd/catalog/"
journalctl --root="$T" --update-catalog >"$T/update.out" 2>&1 || die "journalctl --update-catalog failed: $(cat "$T/update.out")"
[ -s "$T/update.out" ] && die "journalctl --update-catalog complained: $(cat "$T/update.out")"
[ -s "$T/var/lib/systemd/catalog/database" ] || die "no catalog database written"
journalctl --root="$T" --list-catalog >"$T/list" 2>&1 || die "journalctl --list-catalog failed: $(cat "$T/list")"

ids=$(grep -hoE 'k[A-Za-z0-9]+ = "[0-9a-f]{32}"' "$UR_SOURCE_DIR/src/core/log.hpp" "$UR_SOURCE_DIR/src/daemon/events.hpp" |
    sed -E 's/.*"([0-9a-f]{32})"/\1/' | sort -u)
[ "$(wc -w <<<"$ids")" -ge 11 ] || die "found only $(wc -w <<<"$ids") MESSAGE_IDs in the sources"
for id in $ids; do
    line=$(grep "^$id " "$T/list") || die "MESSAGE_ID $id has no catalog entry"
    journalctl --root="$T" --dump-catalog "$id" 2>/dev/null | grep -q "^Subject: " || die "catalog entry $id has no Subject"
    journalctl --root="$T" --dump-catalog "$id" 2>/dev/null | grep -q "^Documentation: man:" ||
        die "catalog entry $id has no Documentation"
    echo "ok: $line"
done
for id in $(awk '{ print $1 }' "$T/list"); do
    grep -q "^$id\$" <<<"$ids" || die "catalog entry $id is for no MESSAGE_ID in the code"
done
echo "PASS: test_dbus_catalog ($(wc -l <"$T/list") entries)"
