#!/bin/sh
# The README's test command: install what the tests need, build from scratch,
# run every suite (unit, integration, vm). Needs root (loop devices, mounts, qemu).
# Usage: sudo scripts/test.sh [meson test args, e.g. --suite unit]
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
build=${UR_TEST_BUILD_DIR:-$src/build-test}

sh scripts/install-deps.sh vm

if [ ! -f "$build/build.ninja" ]; then
  # The layout the product is packaged with (the RPM spec test compares against it).
  meson setup --prefix=/usr "$build" >/dev/null
fi
ninja -C "$build"

# Suites one after another: the vm suite wants both cores to itself.
status=0
logs=""
run() {
  name=$1; shift
  meson test -C "$build" --no-rebuild --print-errorlogs "$@" || status=$?
  cp "$build/meson-logs/testlog.json" "$build/meson-logs/testlog-$name.json" 2>/dev/null && logs="$logs $build/meson-logs/testlog-$name.json"
}
if [ $# -gt 0 ]; then
  run custom "$@"
else
  run main --suite unit --suite integration --num-processes 2
  if meson test -C "$build" --list 2>/dev/null | grep -q ':vm '; then
    run vm --suite vm --num-processes 1
  fi
fi

# One plain summary line: "N passed, N failed, N skipped".
count() { cat $logs 2>/dev/null | grep -o "\"result\": \"$1\"" | wc -l; }
echo "$(count OK) passed, $(( $(count FAIL) + $(count TIMEOUT) + $(count ERROR) )) failed, $(count SKIP) skipped"
exit $status
