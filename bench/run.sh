#!/usr/bin/env bash
# The benchmark: one run that times our backup and restore against cp, rsync
# and tar on the same generated SNO-like tree and the same xfs filesystem (a
# GPT partition on a loop device), checks the results are right, measures our
# peak memory at ~20k and ~200k files, prints a table against the goals of
# issues 2 and 4, and writes it to bench/out/results-<date>.txt.
#
#   sudo bench/run.sh [--quick] [--scale F] [--repeat N] [--mem-scale F] [--seed N]
#                     [--no-prefill] [--no-mem] [--keep]
#
#   --quick       smoke run: scale 0.1, memory check at 0.1 and 1
#   --scale F     tree size (1 = ~3,000 /etc + ~50 binaries (~200 MiB) + ~20,000 kubelet files)
#   --repeat N    time every method N times, interleaved, and report medians (default 1)
#   --mem-scale F the large tree of the memory check (default 10 x scale; data not scaled)
#   --no-prefill  do not fill the partition once before timing (fresh loop-file blocks are slow)
#   --no-mem      skip the large-tree memory check
#   --keep        keep the work directory (the image is detached)
#
# Environment: UR_BUILD_DIR (default build-bench in the source tree, set up and
# built when needed), UR_BENCH_WORK (parent of the work directory, default /var/tmp).
# Needs root (loop devices, partx, mount, drop_caches). Exit 77 when it cannot run.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/lib.sh
. "$src/tests/integration/lib.sh"

scale=1
mem_scale=""
seed=1
quick=0
repeat=1
prefill=1
do_mem=1
keep=0
usage() { echo "usage: $0 [--quick] [--scale F] [--repeat N] [--mem-scale F] [--seed N] [--no-prefill] [--no-mem] [--keep]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 scale=0.1 ;;
    --scale) [ $# -ge 2 ] || usage; scale=$2; shift ;;
    --repeat) [ $# -ge 2 ] || usage; repeat=$2; shift ;;
    --mem-scale) [ $# -ge 2 ] || usage; mem_scale=$2; shift ;;
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift ;;
    --no-prefill) prefill=0 ;;
    --no-mem) do_mem=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
    esac
    shift
done
case $repeat in '' | *[!0-9]* | 0) usage ;; esac
[ -n "$mem_scale" ] || mem_scale=$(awk -v s="$scale" 'BEGIN { print s * 10 }')

require_root
require_cmd sgdisk partx losetup mkfs.xfs findmnt rsync tar cp awk du setfattr
[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed (apt-get install time; scripts/install-deps.sh test)"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- build
build=${UR_BUILD_DIR:-$src/build-bench}
if [ ! -f "$build/build.ninja" ]; then
    log "meson setup $build"
    meson setup "$build" "$src" >/dev/null
fi
log "building the benchmark tools in $build"
ninja -C "$build" bench/ur-gen-tree bench/ur-restore-bench src/cli/upgrade-recovery >/dev/null
gen=$build/bench/ur-gen-tree
restore_bench=$build/bench/ur-restore-bench
ur=$build/src/cli/upgrade-recovery

# ---------------------------------------------------------------- work dir, cleanup
work=$(mktemp -d "${UR_BENCH_WORK:-/var/tmp}/ur-bench.XXXXXX")
img=$work/disk.img
label=bench-$$
label_mem=bench-$$-m
cleanup()
{
    local rc=$?
    trap - EXIT INT TERM
    ur_cleanup_image "$img"
    if [ "$keep" = 1 ]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROOT=$work/root   # the host root every method copies and our backup reads
ROOT2=$work/root2 # an identical copy, for the rsync restore
ROOTM=$work/rootm # the large tree of the memory check

drop_caches()
{
    sync
    if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        [ -n "${warned_caches:-}" ] || log "warning: cannot drop the page cache; timings are warm"
        warned_caches=1
    fi
}

# Samples per measurement: wall seconds, CPU seconds (user + sys of all
# processes), peak RSS of the largest process (KiB).
declare -A T C M TM
# timed [--warm-source] NAME 'shell code': cold cache, then the code and a
# final sync, timed together. --warm-source reads the source trees (names,
# metadata and content) into the page cache after the drop, untimed: the
# state of a running node's /etc and kubelet tree; the backup partition stays cold.
timed()
{
    local warm=0
    if [ "$1" = --warm-source ]; then warm=1; shift; fi
    local name=$1 code=$2
    drop_caches
    [ "$warm" = 0 ] || (cd "$ROOT" && tar -cf - $trees | cat >/dev/null)
    local t0 t1 wall rss cpu
    t0=$(date +%s.%N)
    if ! /usr/bin/time -f '%M %U %S' -o "$work/time.$name" bash -c "set -e -o pipefail; $code; sync" >"$work/out.$name" 2>&1; then
        cat "$work/out.$name" >&2
        die "$name failed"
    fi
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    read -r rss cpu < <(tail -n 1 "$work/time.$name" | awk '{ printf "%d %.2f\n", $1, $2 + $3 }')
    T[$name]="${T[$name]:-} $wall"
    C[$name]="${C[$name]:-} $cpu"
    M[$name]="${M[$name]:-} $rss"
    log "$name: $wall s wall, $cpu s CPU, peak RSS $((rss / 1024)) MiB"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n 1; }
spread() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s-%s", lo, hi }'; }

q() { printf '%q' "$1"; }

write_config()
{
    local root=$1 lbl=$2
    mkdir -p "$root/etc/upgrade-recovery"
    cat >"$root/etc/upgrade-recovery/config.toml" <<EOF
# written by bench/run.sh
[partition]
label = "$lbl"

[ostree]
mode = "off"

[etcd]
mode = "off"

[backup]
free_space_margin = "64MiB"
EOF
    setfattr -h -n security.selinux -v system_u:object_r:etc_t:s0 "$root/etc/upgrade-recovery" \
        "$root/etc/upgrade-recovery/config.toml"
    # Fixed times, so two trees made the same way stay identical.
    touch -h -r "$root/etc/hostname" "$root/etc/upgrade-recovery/config.toml" "$root/etc/upgrade-recovery" "$root/etc"
}

# The second tree for rsync: made exactly like the first (the generator is deterministic).
make_root2()
{
    rm -rf "$ROOT2"
    "$gen" generate "$ROOT2" --scale "$scale" --seed "$seed" >/dev/null
    write_config "$ROOT2" "$label"
    "$gen" mutate "$ROOT2" --percent 1 --kind touch --seed "$seed" >/dev/null
    "$gen" mutate "$ROOT2" --percent 1 --kind touch --seed "$((seed + 1))" >/dev/null
    "$gen" mutate "$ROOT2" --percent 5 --kind upgrade --seed "$seed" >/dev/null
}

# ---------------------------------------------------------------- the tree
log "generating the tree (scale $scale, seed $seed)"
"$gen" generate "$ROOT" --scale "$scale" --seed "$seed" | tee "$work/gen.txt" >&2
write_config "$ROOT" "$label"
files=$(awk '/^generated/ { print $3 }' "$work/gen.txt")

# ---------------------------------------------------------------- disk image
# Partition 1 holds our backups and the cp/rsync/tar copies; partition 2 the
# memory check's backup. Sizes follow the tree.
alloc_mb=$(du -smc "$ROOT/etc" "$ROOT/usr/local" "$ROOT/var/lib/kubelet" | tail -n 1 | cut -f1)
app_mb=$(du -smc --apparent-size "$ROOT/etc" "$ROOT/usr/local" "$ROOT/var/lib/kubelet" | tail -n 1 | cut -f1)
small_mb=$(du -smc "$ROOT/etc" "$ROOT/var/lib/kubelet" | tail -n 1 | cut -f1)
data_mb=$(du -sm "$ROOT/usr/local" | cut -f1)
p1_mb=$((768 + 5 * (alloc_mb > app_mb ? alloc_mb : app_mb) + 2 * alloc_mb))
p2_mb=$(awk -v s="$scale" -v m="$mem_scale" -v small="$small_mb" -v data="$data_mb" \
    'BEGIN { printf "%d", 768 + (m / s) * small * 1.6 + data * 1.2 }')
[ "$do_mem" = 1 ] || p2_mb=320
log "disk image: ${p1_mb} MiB '$label' + ${p2_mb} MiB '$label_mem' (sparse)"
ur_gpt_image "$img" "$((p1_mb + p2_mb + 4))M" "$label:${p1_mb}M" "$label_mem:0"
loop=$(ur_loop_attach "$img")
p1=$(ur_loop_partition "$loop" 1)
p2=$(ur_loop_partition "$loop" 2)
ur_mkfs_xfs "$p1"
ur_mkfs_xfs "$p2"
mnt=$ROOT/var/recovery
mkdir -p "$mnt"
mount "$p1" "$mnt"
if [ "$prefill" = 1 ]; then
    # The first write to a block of a sparse loop file is several times slower
    # than a rewrite (test-recipes 1.6): fill the partition once so no method
    # pays that for the others.
    log "prefilling $p1 (${p1_mb} MiB)"
    dd if=/dev/zero of="$mnt/.prefill" bs=4M oflag=direct status=none 2>/dev/null || true
    rm -f "$mnt/.prefill"
    sync
fi

# ---------------------------------------------------------------- copies of the same tree
trees="etc usr/local var/lib/kubelet"
xattr_opts="--xattrs --xattrs-include='*' --acls --selinux"
run_copy()
{
    case $1 in
    ours_full) timed ours_full "$(q "$ur") --root $(q "$ROOT") backup" ;;
    cp_a) timed cp_a "cd $(q "$ROOT") && cp -a $trees $(q "$mnt/bench-cp")/" ;;
    rsync_aAXH) timed rsync_aAXH "cd $(q "$ROOT") && rsync -aAXH $trees $(q "$mnt/bench-rsync")/" ;;
    tar_tar) timed tar_tar "tar -C $(q "$ROOT") $xattr_opts -cf - $trees | tar -C $(q "$mnt/bench-tar") $xattr_opts -xpf -" ;;
    esac
}
methods=(ours_full cp_a rsync_aAXH tar_tar)
log "timing the full backup and the baselines ($files files, $repeat round(s))"
for ((r = 0; r < repeat; r++)); do
    # A fresh target for every method and round (removed untimed); the order rotates.
    rm -rf "$mnt/backups" "$mnt/latest" "$mnt/bench-cp" "$mnt/bench-rsync" "$mnt/bench-tar"
    mkdir "$mnt/bench-cp" "$mnt/bench-rsync" "$mnt/bench-tar"
    for ((i = 0; i < ${#methods[@]}; i++)); do
        run_copy "${methods[(i + r) % ${#methods[@]}]}"
    done
done
id_full=$(readlink "$mnt/latest" | sed 's|^backups/||')

log "mutate --percent 1 --kind touch"
"$gen" mutate "$ROOT" --percent 1 --kind touch --seed "$seed" | tee "$work/touch.txt" >&2
cat >"$work/stat-walk.sh" <<EOF
cd $(q "$ROOT")
{ printf '%s\n' etc usr/local; find var/lib/kubelet -mindepth 2 -maxdepth 2; } |
    xargs -d '\n' -P 8 -n 8 sh -c 'find "\$@" -printf "%s\n"' sh >/dev/null
EOF
for ((r = 0; r < repeat; r++)); do
    if [ "$r" -gt 0 ]; then
        # Back to one generation, so every round does the same work (and no pruning).
        rm -rf "$mnt/backups/$id_repeat"
        ln -sfn "backups/$id_full" "$mnt/latest"
    fi
    # The floor of a generation made of hard links: cp -al of the previous one
    # (directories and symlinks recreated, files linked; no source walk, no
    # manifest, no metadata beyond what cp -a keeps). Alternating order.
    rm -rf "$mnt/bench-cpal"
    timed_cpal() { timed cp_al "cp -al $(q "$mnt/backups/$id_full") $(q "$mnt/bench-cpal")"; }
    if [ $((r % 2)) = 1 ]; then timed_cpal; fi
    # The floor of any repeated backup that looks at every file: finding what
    # changed (a stat of every source name, the previous manifest) and nothing else.
    timed ours_dryrun "$(q "$ur") --root $(q "$ROOT") backup --dry-run"
    # Below any implementation or layout: a stat of every source name, by 8 find
    # processes over the kubelet tree's subtrees (no manifest, no output).
    timed stat_walk "bash $(q "$work/stat-walk.sh")"
    timed ours_repeat "$(q "$ur") --root $(q "$ROOT") backup"
    id_repeat=$(readlink "$mnt/latest" | sed 's|^backups/||')
    [ "$id_repeat" != "$id_full" ] || die "the repeated backup did not publish a new generation"
    if [ $((r % 2)) = 0 ]; then timed_cpal; fi
done
rm -rf "$mnt/bench-cpal"
# Reference (once): the same pair with the source in the page cache. The full
# backup is made with share_unchanged = false next to the full generation
# (then removed); the repeated backup replaces the last cold one.
log "the full and the repeated backup with the source cached"
cp "$ROOT/etc/upgrade-recovery/config.toml" "$work/noshare.toml"
echo "share_unchanged = false # appended to [backup] by bench/run.sh" >>"$work/noshare.toml"
reset_to_full()
{
    rm -rf "$mnt/backups/$(readlink "$mnt/latest" | sed 's|^backups/||')"
    ln -sfn "backups/$id_full" "$mnt/latest"
}
reset_to_full
timed --warm-source ours_full_warm "$(q "$ur") --root $(q "$ROOT") --config $(q "$work/noshare.toml") backup"
reset_to_full
# What any layout pays on a running node before it writes anything (a delta
# layout would add little more than the changed files and a manifest).
timed --warm-source ours_dryrun_warm "$(q "$ur") --root $(q "$ROOT") backup --dry-run"
timed --warm-source ours_repeat_warm "$(q "$ur") --root $(q "$ROOT") backup"
id_repeat=$(readlink "$mnt/latest" | sed 's|^backups/||')
[ "$id_repeat" != "$id_full" ] || die "the repeated backup did not publish a new generation"
# Steady state (once): with backup.retention (2) reached, a backup also prunes the
# oldest generation. Another 1% touched; the restore below uses this generation.
"$gen" mutate "$ROOT" --percent 1 --kind touch --seed "$((seed + 1))" >/dev/null
timed ours_steady "$(q "$ur") --root $(q "$ROOT") backup"
id_steady=$(readlink "$mnt/latest" | sed 's|^backups/||')
[ ! -e "$mnt/backups/$id_full" ] || die "the steady-state backup did not prune the oldest generation"
grep -h -E '^  data:' "$work/out.ours_full" "$work/out.ours_repeat" | sed 's/^ */  /' >"$work/data.txt" || true

# ---------------------------------------------------------------- restore after a failed upgrade
log "digest of the backed-up tree"
"$gen" digest "$ROOT" --list >"$work/want.list"
want=$(tail -n 1 "$work/want.list")
"$gen" digest "$ROOT" --no-hardlinks --list >"$work/want-nolinks.list"
want_nolinks=$(tail -n 1 "$work/want-nolinks.list")
bdir=$mnt/backups/$id_steady
"$restore_bench" --print-etc-excludes "$bdir" >"$work/etc.exclude"
restore_ok=yes
: >"$work/restore.diff"
for ((r = 0; r < repeat; r++)); do
    log "mutate --percent 5 --kind upgrade (and the same on an identical second tree for rsync)"
    "$gen" mutate "$ROOT" --percent 5 --kind upgrade --seed "$seed" | tee "$work/upgrade.txt" >&2
    make_root2
    if [ "$r" = 0 ]; then
        [ "$("$gen" digest "$ROOT")" = "$("$gen" digest "$ROOT2")" ] ||
            die "the two mutated trees differ (the generator is not deterministic)"
    fi
    timed_ours() { timed ours_restore "$(q "$restore_bench") $(q "$bdir") $(q "$ROOT")"; }
    timed_rsync()
    {
        timed rsync_c_delete "rsync -aAXc --delete --exclude-from=$(q "$work/etc.exclude") $(q "$bdir/etc")/ $(q "$ROOT2/etc")/ &&
            rsync -aAXc --delete $(q "$bdir/usrlocal")/ $(q "$ROOT2/usr/local")/ &&
            rsync -aAXc --delete $(q "$bdir/kubelet")/ $(q "$ROOT2/var/lib/kubelet")/"
    }
    if [ $((r % 2)) = 0 ]; then timed_ours; timed_rsync; else timed_rsync; timed_ours; fi
    got=$("$gen" digest "$ROOT")
    if [ "$got" != "$want" ]; then
        restore_ok=no
        "$gen" digest "$ROOT" --list >"$work/got.list"
        diff "$work/want.list" "$work/got.list" | grep '^[<>]' | head -n 40 >"$work/restore.diff" || true
        log "our restore does not equal the backup; first differences (< backup, > restored):"
        cat "$work/restore.diff" >&2
        break
    fi
done
"$gen" digest "$ROOT2" --no-hardlinks --list >"$work/rsync.list"
got2=$(tail -n 1 "$work/rsync.list")
if [ "$got2" = "$want_nolinks" ]; then
    rsync_ok=yes
else
    # rsync -X copies xfs's own view of ACLs (trusted.SGI_ACL_*) from the backup onto the target.
    strip_sgi() { sed -E 's/ trusted\.SGI_ACL_[A-Z]+=[^ ]*//' "$1" | sed '$d'; }
    n=$(diff "$work/want-nolinks.list" "$work/rsync.list" | grep -c '^<' || true)
    if diff -q <(strip_sgi "$work/want-nolinks.list") <(strip_sgi "$work/rsync.list") >/dev/null; then
        rsync_ok="no: $((n - 1)) entries differ, all by trusted.SGI_ACL_* xattrs rsync -X copied from the xfs backup"
    else
        rsync_ok="no: $((n - 1)) entries differ"
    fi
fi

# ---------------------------------------------------------------- memory at ~200k files
mem_files=""
if [ "$do_mem" = 1 ]; then
    log "memory check: generating a tree at scale $mem_scale (large binaries not scaled)"
    "$gen" generate "$ROOTM" --scale "$mem_scale" --scale-data "$(awk -v s="$scale" 'BEGIN { print (s < 1 ? s : 1) }')" \
        --seed "$seed" | tee "$work/genm.txt" >&2
    write_config "$ROOTM" "$label_mem"
    mem_files=$(awk '/^generated/ { print $3 }' "$work/genm.txt")
    mkdir -p "$ROOTM/var/recovery"
    mount "$p2" "$ROOTM/var/recovery"
    timed ours_full_large "$(q "$ur") --root $(q "$ROOTM") backup"
fi

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "inf" }'; }
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r <= g ? "PASS" : "MISS") }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

for k in "${!T[@]}"; do
    TM[$k]=$(median "${T[$k]}")
done
r_full=$(ratio "${TM[ours_full]}" "${TM[cp_a]}")
r_repeat=$(ratio "${TM[ours_repeat]}" "${TM[ours_full]}")
r_cpal=$(ratio "${TM[cp_al]}" "${TM[ours_full]}")
r_steady=$(ratio "${TM[ours_steady]}" "${TM[ours_full]}")
r_dryrun=$(ratio "${TM[ours_dryrun]}" "${TM[ours_full]}")
r_statwalk=$(ratio "${TM[stat_walk]}" "${TM[ours_full]}")
r_warm=$(ratio "${TM[ours_repeat_warm]}" "${TM[ours_full_warm]}")
r_dryrun_warm=$(ratio "${TM[ours_dryrun_warm]}" "${TM[ours_full_warm]}")
r_restore=$(ratio "${TM[ours_restore]}" "${TM[rsync_c_delete]}")
v_restore=$(verdict "$r_restore" 0.2)
[ "$restore_ok" = yes ] || v_restore="MISS (wrong result)"
mem_small=$(maximum "${M[ours_full]}")
if [ "$do_mem" = 1 ]; then
    mem_large=$(maximum "${M[ours_full_large]}")
    r_mem=$(ratio "$mem_large" "$mem_small")
    v_mem=$(awk -v a="$mem_small" -v b="$mem_large" -v r="$r_mem" 'BEGIN { print (a < 65536 && b < 65536 && r <= 1.25 ? "PASS" : "MISS") }')
fi

row()
{
    local title=$1 key=$2
    printf '%-42s %8s %13s %8s %9s\n' "$title" "${TM[$key]}" "$(spread "${T[$key]}")" "$(median "${C[$key]}")" \
        "$(mib "$(maximum "${M[$key]}")")"
}

out_dir=$src/bench/out
mkdir -p "$out_dir"
result=$out_dir/results-$(date +%Y%m%d-%H%M%S).txt
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if git -C "$src" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then dirty=" (+ uncommitted changes in the tree)"; fi
{
    echo "upgrade-recovery benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit $commit$dirty; build $build"
    echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end$([ -r /proc/pressure/cpu ] && echo "; CPU pressure $(head -n 1 /proc/pressure/cpu | cut -d' ' -f2-4)")"
    echo "source tree on $(df --output=source,fstype "$work" | tail -n 1 | tr -s ' '), copies on xfs on $p1 (loop file on the same disk)$([ "$prefill" = 1 ] && echo ", prefilled")"
    echo "tree: scale $scale, seed $seed: $(sed 's/^generated [^:]*: //' "$work/gen.txt")"
    [ "$quick" = 1 ] && echo "QUICK MODE (smoke run): the numbers say nothing about the goals"
    echo "each time: page cache dropped before (\"source cached\": then the source trees read, untimed), final sync included; $repeat round(s), median (range); CPU = user + sys"
    echo
    printf '%-42s %8s %13s %8s %9s\n' "measurement" "wall s" "range" "CPU s" "peak MiB"
    row "our full backup" ours_full
    row "cp -a" cp_a
    row "rsync -aAXH" rsync_aAXH
    row "tar --xattrs --acls --selinux | tar -x" tar_tar
    row "our repeated backup (1% touched)" ours_repeat
    row "cp -al of the previous generation" cp_al
    row "our backup --dry-run (change detection)" ours_dryrun
    row "stat of every source name, 8 x find" stat_walk
    row "our repeated backup + pruning the oldest" ours_steady
    row "our full backup, source cached" ours_full_warm
    row "our repeated backup, source cached" ours_repeat_warm
    row "our backup --dry-run, source cached" ours_dryrun_warm
    row "our restore (5% upgrade)" ours_restore
    row "rsync -aAXc --delete (5% upgrade)" rsync_c_delete
    [ "$do_mem" = 1 ] && row "our full backup, $mem_files files" ours_full_large
    echo
    printf '%-58s %8s %8s  %s\n' "goal" "value" "target" "result"
    printf '%-58s %8s %8s  %s\n' "full backup / cp -a" "$r_full" "<= 0.8" "$(verdict "$r_full" 0.8)"
    printf '%-58s %8s %8s  %s\n' "repeated backup (1% changed) / our full backup" "$r_repeat" "<= 0.15" "$(verdict "$r_repeat" 0.15)"
    printf '%-58s %8s %8s  %s\n' "  reference, not a goal: cp -al of a generation / our full" "$r_cpal" "" ""
    printf '%-58s %8s %8s  %s\n' "  reference: backup --dry-run (change detection) / full" "$r_dryrun" "" ""
    printf '%-58s %8s %8s  %s\n' "  reference: stat of every source name (8 x find) / full" "$r_statwalk" "" ""
    printf '%-58s %8s %8s  %s\n' "  reference: repeated + pruning (retention reached) / full" "$r_steady" "" ""
    printf '%-58s %8s %8s  %s\n' "  reference: both with the source cached: repeated / full" "$r_warm" "" ""
    printf '%-58s %8s %8s  %s\n' "  reference: source cached: backup --dry-run / full" "$r_dryrun_warm" "" ""
    printf '%-58s %8s %8s  %s\n' "restore (5% changed) / rsync -aAXc --delete" "$r_restore" "<= 0.2" "$v_restore"
    printf '%-58s %8s %8s  %s\n' "peak memory, full backup, $files files (MiB)" "$(mib "$mem_small")" "< 64" "$(awk -v k="$mem_small" 'BEGIN { print (k < 65536 ? "PASS" : "MISS") }')"
    if [ "$do_mem" = 1 ]; then
        printf '%-58s %8s %8s  %s\n' "peak memory, full backup, $mem_files files (MiB)" "$(mib "$mem_large")" "< 64" "$(awk -v k="$mem_large" 'BEGIN { print (k < 65536 ? "PASS" : "MISS") }')"
        printf '%-58s %8s %8s  %s\n' "peak memory growth ${files} -> ${mem_files} files (x)" "$r_mem" "<= 1.25" "$v_mem"
    fi
    echo
    echo "checks:"
    echo "  our restore equals the backup (every byte, owner, mode, time, xattr, hard link): $restore_ok"
    echo "  rsync -aAXc --delete result equals the backup (hard links not compared): $rsync_ok"
    echo "  backups: full $id_full, repeated $id_repeat, steady state $id_steady (pruned $id_full; the restore uses it)"
    sed 's/^/  /' "$work/data.txt"
    echo "  dry run before the repeated backup: $(grep -E '^  to copy:' "$work/out.ours_dryrun" | sed 's/^ *//; s/  */ /g')"
    echo "  $(cat "$work/touch.txt")"
    echo "  $(cat "$work/upgrade.txt")"
    echo "  $(tail -n 1 "$work/out.ours_restore")"
    if [ -s "$work/restore.diff" ]; then
        echo "  restore differences (< backup, > restored), first 40:"
        sed 's/^/    /' "$work/restore.diff"
    fi
} | tee "$result"
log "results written to $result"
