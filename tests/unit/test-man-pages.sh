#!/bin/bash
# The man pages (suite unit): each renders without a warning, and the pages say
# what the code does.
#
# Usage: test-man-pages.sh MAN_DIR CLI_SRC_DIR CONFIG_KEYS VENDOR_CONFIG INSTALLED_PAGE...
#   MAN_DIR        the pages (man/)
#   CLI_SRC_DIR    src/cli: the usage text (main.cpp), parse_flags calls (cmd_*.cpp), commands
#   CONFIG_KEYS    man-config-keys (prints ur::config_keys())
#   VENDOR_CONFIG  packaging/config.toml: every key with its built-in default (a test of its
#                  own checks those against the code), compared with the defaults on the page
#                  ("" when there is none: the comparison is left out)
#   INSTALLED_PAGE the page names man/meson.build installs
#
# Checks:
#   1. every page in MAN_DIR is installed, and every installed page exists;
#   2. every page: .TH names the file's title and section; groff -ww and man --warnings
#      print nothing at several widths; lexgrog finds its NAME section;
#   3. upgrade-recovery.8 names every command and every option the CLI parses;
#   4. upgrade-recovery.conf.5 names every config key, and the default it gives for a
#      key is the one the vendor config documents.
set -u
[ $# -ge 5 ] || { echo "usage: $0 MAN_DIR CLI_SRC_DIR CONFIG_KEYS VENDOR_CONFIG PAGE..." >&2; exit 2; }
man_dir=$1 cli_src=$2 config_keys=$3 vendor=$4
shift 4
installed=("$@")

command -v groff >/dev/null || { echo "SKIP: groff is not installed (scripts/install-deps.sh test)"; exit 77; }
export LC_ALL=C.UTF-8

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. installed pages -------------------------------------------------------------
pages=()
for f in "$man_dir"/*.[1-9]; do
    [ -e "$f" ] || continue
    pages+=("$f")
    n=$(basename "$f")
    printf '%s\n' "${installed[@]}" | grep -qxF -- "$n" || fail "$n is in $man_dir but man/meson.build does not install it"
done
for n in "${installed[@]}"; do
    [ -f "$man_dir/$n" ] || fail "man/meson.build installs $n, which does not exist"
done
[ ${#pages[@]} -gt 0 ] || fail "no pages in $man_dir"

# --- 2. rendering -------------------------------------------------------------------
for f in "${pages[@]}"; do
    n=$(basename "$f")
    sect=${n##*.}
    title=${n%.*}
    th=$(grep -m1 '^\.TH ' "$f" | sed 's/\\-/-/g')
    read -r _ th_title th_sect _ <<<"$th"
    th_title=${th_title//\"/}
    if [ "${th_title,,}" != "${title,,}" ] || [ "$th_sect" != "$sect" ]; then
        fail "$n: .TH says '$th_title' section '$th_sect', the file name says '$title' section '$sect'"
    fi
    out=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
    [ -z "$out" ] || fail "$n: groff -ww warns:"$'\n'"$out"
    if command -v man >/dev/null; then
        for width in 80 66; do
            out=$(MANWIDTH=$width man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
            [ -z "$out" ] || fail "$n: man --warnings at width $width:"$'\n'"$out"
        done
    fi
    if command -v lexgrog >/dev/null; then
        lexgrog "$f" >/dev/null 2>&1 || fail "$n: lexgrog finds no NAME section (whatis/apropos would not list it)"
    fi
    # Plain text, one paragraph per line, for the checks below.
    groff -man -Tascii -P-cbou -rLL=3000n "$f" >"$tmp/$n.txt" 2>/dev/null || fail "$n: does not render"
done

# A whole option/key/command: not part of a longer word (dots allowed inside keys).
has_word() { grep -qP -- "(?<![\\w.-])\\Q$1\\E(?![\\w-]|\\.\\w)" "$2"; }

# --- 3. upgrade-recovery.8: commands and options --------------------------------------
page8=$tmp/upgrade-recovery.8.txt
if [ ! -f "$page8" ]; then
    fail "upgrade-recovery.8 is missing"
else
    [ -f "$cli_src/main.cpp" ] || fail "no $cli_src/main.cpp"
    # Every option string the parser compares against, and every option in the usage text.
    perl -0777 -ne 'while (/"(--?[a-z][a-z0-9-]*)"/g) { print "$1\n" }' "$cli_src/main.cpp" >"$tmp/opts"
    perl -0777 -ne 'if (/kUsage = R"\((.*?)\)"/s) { my $u = $1; while ($u =~ /(?<![\w-])(--?[a-z][a-z0-9-]*)/g) { print "$1\n" } }' \
        "$cli_src/main.cpp" >>"$tmp/opts"
    # Every flag of every parse_flags(params, {booleans}, {with_value}, n) call.
    for c in "$cli_src"/*.cpp; do
        perl -0777 -ne 'while (/parse_flags\s*\((.*?)\);/gs) { my $a = $1; while ($a =~ /"(--?[a-z][a-z0-9-]*)"/g) { print "$1\n" } }' "$c"
    done >>"$tmp/opts"
    sort -u "$tmp/opts" -o "$tmp/opts"
    nopts=$(wc -l <"$tmp/opts")
    [ "$nopts" -ge 20 ] || fail "found only $nopts options in $cli_src: is the extraction broken?"
    while read -r o; do
        has_word "$o" "$page8" || fail "upgrade-recovery.8 does not mention the option $o"
    done <"$tmp/opts"

    # Commands: those run_command dispatches, each in the SYNOPSIS as "[OPTIONS] COMMAND".
    perl -0777 -ne 'while (/\bc == "([a-z][a-z-]*)"/g) { print "$1\n" }' "$cli_src"/*.cpp | sort -u >"$tmp/cmds"
    ncmds=$(wc -l <"$tmp/cmds")
    [ "$ncmds" -ge 9 ] || fail "found only $ncmds commands in $cli_src: is the extraction broken?"
    sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' "$page8" >"$tmp/synopsis"
    while read -r c; do
        grep -qP -- "\\[OPTIONS\\] \\Q$c\\E(?![\\w-])" "$tmp/synopsis" ||
            fail "the SYNOPSIS of upgrade-recovery.8 does not show the command $c"
    done <"$tmp/cmds"
    # Every exit status the CLI defines.
    perl -ne 'print "$1\n" if /kExit\w+ = (\d+);/' "$cli_src/cli.hpp" >"$tmp/codes"
    sed -n '/^EXIT STATUS/,/^FILES/p' "$page8" >"$tmp/exit"
    while read -r code; do
        grep -qP "^\\s+$code\\s" "$tmp/exit" || fail "EXIT STATUS of upgrade-recovery.8 does not list $code"
    done <"$tmp/codes"
    echo "upgrade-recovery.8: $nopts options, $ncmds commands, $(wc -l <"$tmp/codes") exit codes checked"
fi

# --- 4. upgrade-recovery.conf.5: keys and defaults ------------------------------------
page5=$tmp/upgrade-recovery.conf.5.txt
if [ ! -f "$page5" ]; then
    fail "upgrade-recovery.conf.5 is missing"
else
    "$config_keys" >"$tmp/keys" || fail "$config_keys failed"
    nkeys=$(wc -l <"$tmp/keys")
    [ "$nkeys" -ge 40 ] || fail "$config_keys printed only $nkeys keys"
    while read -r k; do
        has_word "$k" "$page5" || fail "upgrade-recovery.conf.5 does not document the key $k"
    done <"$tmp/keys"

    # The vendor file: "#key = value" lines under "[section]" (commented or not).
    [ -n "$vendor" ] && [ -f "$vendor" ] || { echo "no vendor config ('$vendor'): defaults not compared"; vendor=/dev/null; }
    awk '
        /^#?\[\[?[a-z_.]+\]\]?[ \t]*$/ { s = $0; gsub(/[#\[\] \t]/, "", s); next }
        /^#[a-z_]+ = / {
            line = substr($0, 2); k = line; sub(/ = .*/, "", k); v = line; sub(/^[a-z_]+ = /, "", v)
            sub(/[ \t]+#.*$/, "", v)
            print s "." k "\t" v
        }' "$vendor" >"$tmp/vendor"
    checked=0
    while IFS=$'\t' read -r k v; do
        case $k in backup.trees.*) continue ;; esac # the default list of tables is shown as a whole
        grep -qxF -- "$k" "$tmp/keys" || continue
        # The key's heading line, and the paragraph below it, without white space.
        para=$(awk -v k="$k" '
            found && /^       [^ ]/ { exit }
            found { print; next }
            index($0, "       " k " (") == 1 { found = 1; print }' "$page5" | tr -d ' \t\n')
        want=$(printf '%s' "$v" | tr -d ' \t')
        if [[ $para != *"default$want)"* && $para != *"defaultis$want"* ]]; then
            fail "upgrade-recovery.conf.5 does not give $k the default $v (the vendor config's)"
        fi
        checked=$((checked + 1))
    done <"$tmp/vendor"
    [ "$vendor" = /dev/null ] || [ "$checked" -ge 35 ] ||
        fail "compared only $checked defaults with $vendor: is the extraction broken?"
    echo "upgrade-recovery.conf.5: $nkeys keys, $checked defaults checked"

    # partition.mount_point: every setting of a shipped unit that names the mount point
    # or its mount unit is in the list of what to change with it, beside the unit's name
    # (one paragraph is one line here). A sandbox's ReadWritePaths= left out of the list
    # leaves the store read-only for that unit after a move.
    units_dir=$man_dir/../units
    nunit=0
    for u in "$units_dir"/*.service.in "$units_dir"/*.mount; do
        [ -e "$u" ] || continue
        name=$(basename "$u" .in)
        while IFS= read -r d; do
            grep -F -- "$name" "$page5" | grep -qF -- "$d" ||
                fail "upgrade-recovery.conf.5 (partition.mount_point) does not name $d of $name"
            nunit=$((nunit + 1))
        done < <(awk -F= '/^[A-Za-z]+=/ { n = split(substr($0, length($1) + 2), v, " ");
                     for (i = 1; i <= n; i++) if (v[i] ~ /\/var\/recovery($|\/)|^var-recovery\.mount$/) print $1 "=" v[i] }' "$u")
    done
    [ "$nunit" -ge 10 ] || fail "found only $nunit unit settings naming the mount point in $units_dir: is the extraction broken?"
    echo "upgrade-recovery.conf.5: $nunit unit settings naming the mount point checked"
fi

echo "${#pages[@]} pages rendered"
if [ $failures -gt 0 ]; then
    echo "$failures failures"
    exit 1
fi
echo "ok"
