#!/usr/bin/env python3
"""The RPM spec's %files names exactly what `meson install` installs.

Usage: check-spec-files.py SPEC BUILD_DIR MACRO=VALUE...

The install paths come from `meson introspect --installed` (nothing is installed).
Directory macros are given by the caller as this build resolved them (the unit
directory is /lib/systemd/system on Debian, /usr/lib/systemd/system on Fedora), so
the comparison holds on any distribution. rpmbuild fails on both kinds of mismatch:
a %files entry that matches nothing, and an installed file no entry names.
"""
import fnmatch
import json
import re
import subprocess
import sys


def main():
    spec, build = sys.argv[1], sys.argv[2]
    macros = dict(a.split("=", 1) for a in sys.argv[3:])
    installed = json.loads(subprocess.check_output(["meson", "introspect", build, "--installed"]))
    paths = sorted(set(installed.values()))

    text = open(spec).read()
    for m in re.finditer(r"^(Name|Version):\s*(\S+)", text, re.M):
        macros.setdefault(m.group(1).lower(), m.group(2))
    files = re.search(r"^%files\s*$(.*?)^%changelog", text, re.M | re.S)
    if not files:
        sys.exit("FAIL: no %files section")

    def expand(s):
        for _ in range(5):
            s = re.sub(r"%\{\??([A-Za-z0-9_]+)\}", lambda m: macros.get(m.group(1), m.group(0)), s)
        if "%{" in s:
            sys.exit("FAIL: unknown macro in %r (pass it as MACRO=VALUE)" % s)
        return s

    entries, failures = [], 0
    for line in files.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("%doc", "%license")):
            continue
        is_dir = line.startswith("%dir ")
        line = re.sub(r"^(%(dir|config\([^)]*\)|config|ghost|attr\([^)]*\))\s+)+", "", line)
        pattern = expand(line)
        entries.append(pattern)
        if is_dir:
            if not any(p.startswith(pattern.rstrip("/") + "/") for p in paths):
                print("FAIL: %%dir %s holds nothing that is installed" % pattern)
                failures += 1
        elif not any(fnmatch.fnmatchcase(p, pattern) for p in paths):
            print("FAIL: %%files names %s, which meson does not install" % pattern)
            failures += 1
    for p in paths:
        if not any(fnmatch.fnmatchcase(p, e) for e in entries):
            print("FAIL: meson installs %s, which %%files does not name" % p)
            failures += 1
    if failures:
        return 1
    print("ok: %d installed files, all named by %%files" % len(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
