#!/bin/bash
# The CLI's text output never passes on terminal controls read from the store: a
# damaged or hostile metadata.toml (host), last-backup.json (error), recovery
# journal (error, a step's error), armed marker, a file name in verify, an error
# message quoting a bad argument. Each shows as \xHH in text and stays exact in
# --json. A plain-directory store in a temporary root: no partition needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
require_root
require_cmd python3
T=$(ur_mktemp)
trap 'rm -rf "$T"' EXIT

ROOT=$T/root
STORE=$ROOT/var/recovery
CFG=$T/config.toml
ur_plain_sandbox "$ROOT" "$CFG" "ur-cli-text-none-$$"
mkdir -p "$STORE"
cli() { "$UR_CLI" --root "$ROOT" --config "$CFG" "$@"; }
# no_controls FILE WHAT: no C0 control but the line feed, no DEL, no C1 (raw or UTF-8).
no_controls()
{
    python3 - "$1" "$2" <<'PY' || exit 1
import re, sys
data = open(sys.argv[1], "rb").read()
m = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\x9b", data)
if m:
    sys.exit("%s passes a terminal control on: %r" % (sys.argv[2], data[max(0, m.start() - 40):m.end() + 20]))
PY
}
has() { grep -qF -- "$2" "$1" || die "$3: '$2' not in: $(cat "$1")"; }

cli backup >"$T/b.out" 2>&1 || die "backup: $(cat "$T/b.out")"
B=$(basename "$(readlink "$STORE/latest")")

# The damage. ESC ] 0 ; ... BEL sets the window title, ESC [ 2 J clears the screen.
sed -i 's/^host = .*/host = "node%1B]0;owned%07%1B[2J"/' "$STORE/backups/$B/metadata.toml"
ur_reseal_metadata "$STORE/backups/$B/metadata.toml"
python3 - "$STORE" "$B" <<'PY'
import json, sys
store, b = sys.argv[1], sys.argv[2]
a = json.load(open(store + "/last-backup.json"))
a.update(state="failed", finished=a["started"], error_kind="Io", error="disk \x1b[2J gone\r\x1b[32mOK")
json.dump(a, open(store + "/last-backup.json", "w"))
import os; os.makedirs(store + "/recovery", exist_ok=True)
j = {"format": 1, "recovery_id": "20000101T000000Z-r", "backup_id": b, "state": "failed",
     "error": "verify: \x1b]0;owned\x07bad \u009b31m", "mode": "offline", "root": "/",
     "steps": [{"name": "verify", "state": "failed", "attempts": 1, "error": "step \x1b[31mred"}] +
              [{"name": n, "state": "pending"} for n in ("restore-files", "phase1-done", "finish")]}
json.dump(j, open(store + "/recovery/journal", "w"))
PY
printf 'x\033[31m\n' >"$STORE/recovery/armed"

rc=0
cli status >"$T/s.out" 2>"$T/s.err" || rc=$?
[ $rc = 7 ] || die "status exit $rc (a damaged armed marker is Corrupt): $(cat "$T/s.err")"
no_controls "$T/s.out" "status"
no_controls "$T/s.err" "status (stderr)"
has "$T/s.out" 'node\x1b]0;owned\x07\x1b[2J' "status: metadata host"
has "$T/s.out" 'disk \x1b[2J gone\x0d\x1b[32mOK' "status: last attempt error"
has "$T/s.out" 'error: verify: \x1b]0;owned\x07bad \xc2\x9b31m' "status: journal error"
has "$T/s.out" 'step \x1b[31mred' "status: step error"
echo "ok: status text"

cli --json status >"$T/s.json" 2>/dev/null || true
python3 - "$T/s.json" <<'PY' || die "status --json is not exact"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["latest"]["host"] == "node%1B]0;owned%07%1B[2J", j["latest"]["host"]  # metadata's %XX, as ever
assert j["last_backup"]["error"] == "disk \x1b[2J gone\r\x1b[32mOK", j["last_backup"]
assert j["recovery"]["error"] == "verify: \x1b]0;owned\x07bad \u009b31m", j["recovery"]["error"]
assert j["recovery"]["steps"][0]["error"] == "step \x1b[31mred", j["recovery"]["steps"]
PY
echo "ok: status --json exact"

cli list >"$T/l.out" 2>&1 || die "list: $(cat "$T/l.out")"
no_controls "$T/l.out" "list"
has "$T/l.out" 'on node\x1b]0;owned\x07\x1b[2J' "list: metadata host"
echo "ok: list text"

# A name planted in the backup: verify names it.
echo planted >"$STORE/backups/$B/etc/evil"$'\e[2J'
rc=0
cli verify "$B" >"$T/v.out" 2>&1 || rc=$?
[ $rc = 7 ] || die "verify exit $rc: $(cat "$T/v.out")"
no_controls "$T/v.out" "verify"
has "$T/v.out" 'MISMATCH etc/evil\x1b[2J' "verify: planted name"
echo "ok: verify text"

# An error message quoting what it was given (stderr via report_error).
rc=0
cli verify "2024"$'\e]0;owned\a' >"$T/e.out" 2>"$T/e.err" || rc=$?
[ $rc != 0 ] || die "verify of a bad id succeeded"
no_controls "$T/e.err" "an error message"
has "$T/e.err" '2024\x1b]0;owned\x07' "error message"
# Usage errors quote the word they stumbled on: an unknown command, an unknown
# option, an argument too many (usage_error, not report_error).
for args in "x"$'\e[2J' "status --x"$'\e[2J' "status x"$'\e[2J'; do
    rc=0
    # shellcheck disable=SC2086 # the words are the arguments
    cli $args >"$T/u.out" 2>"$T/u.err" || rc=$?
    [ $rc = 2 ] || die "'$args': exit $rc, not 2 (usage): $(cat "$T/u.err")"
    no_controls "$T/u.err" "usage error for '$args'"
    has "$T/u.err" 'x\x1b[2J' "usage error for '$args'"
    # With --json the message keeps what was typed; stderr is escaped as above.
    rc=0
    # shellcheck disable=SC2086 # the words are the arguments
    cli --json $args >"$T/u.json" 2>"$T/u.jerr" || rc=$?
    [ $rc = 2 ] || die "'--json $args': exit $rc, not 2 (usage)"
    no_controls "$T/u.jerr" "usage error for '--json $args'"
    python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["message"]; sys.exit(0 if "x\x1b[2J" in m else "not exact: %r" % m)' \
        "$T/u.json" || die "'--json $args': the JSON message is not the exact word"
done
echo "ok: error messages"

echo "PASS: test-cli-text"
