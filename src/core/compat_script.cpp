#include "compat_script.hpp"

#include "fd.hpp"
#include "text.hpp"

namespace ur
{

namespace
{

// POSIX sh only (it may run from a rescue shell or the initramfs). Arguments
// are collected with `set --` so a DIR with spaces stays one argument.
constexpr const char* kBody = R"SH(
prog=${0##*/}

usage()
{
    cat <<EOF
Usage: $prog [--dir DIR] [--take-backup [--force]]
       $prog [--dir DIR] [--resume | --restart] [--step] [--force]

Compatibility entry point of upgrade-recovery(8); it runs $BIN.
  --take-backup  take a backup                      (upgrade-recovery backup)
  (no option)    restore the armed, else the latest backup (upgrade-recovery recover)
  --resume       continue an interrupted recovery   (recover --resume)
  --restart      start the recovery over            (recover --restart)
  --step         stop after each stage              (recover --step)
  --force        backup: allow a possibly dirty etcd snapshot;
                 recover: override the safety checks (--force)
  --dir DIR      the recovery partition's mount point (default /var/recovery)
  -h, --help     this help
EOF
}

die_usage()
{
    echo "$prog: $*" >&2
    usage >&2
    exit 2
}

backup=
resume=
step=
force=
dir=
dir_set=
while [ $# -gt 0 ]; do
    case $1 in
    --take-backup) backup=1 ;;
    --resume | --restart)
        [ -z "$resume" ] || [ "$resume" = "$1" ] || die_usage "--resume and --restart exclude each other"
        resume=$1
        ;;
    --step) step=--step ;;
    --force) force=--force ;;
    --dir)
        [ $# -ge 2 ] || die_usage "--dir needs a directory"
        dir=$2
        dir_set=1
        shift
        ;;
    --dir=*)
        dir=${1#--dir=}
        dir_set=1
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die_usage "unknown option '$1'" ;;
    esac
    shift
done

set --
if [ -n "$dir_set" ]; then
    [ -n "$dir" ] || die_usage "--dir needs a directory"
    set -- --dir "$dir"
fi
if [ -n "$backup" ]; then
    [ -z "$resume$step" ] || die_usage "--take-backup does not take --resume, --restart or --step"
    set -- "$@" backup
else
    set -- "$@" recover
    [ -z "$resume" ] || set -- "$@" "$resume"
    [ -z "$step" ] || set -- "$@" "$step"
fi
[ -z "$force" ] || set -- "$@" "$force"

exec "$BIN" "$@"
echo "$prog: cannot run $BIN" >&2
exit 127
)SH";

} // namespace

Result<std::string> compat_script_text(const std::string& binary_path)
{
    if (binary_path.empty() || binary_path.front() != '/')
        return fail(ErrorKind::InvalidArgs,
                    "compatibility script: binary path must be absolute: '" + binary_path + "'");
    if (binary_path.find('\0') != std::string::npos || binary_path.find('\n') != std::string::npos)
        return fail(ErrorKind::InvalidArgs, "compatibility script: unusable binary path");
    std::string s = std::string("#!/bin/sh\n") + kCompatScriptMarker +
                    "\n"
                    "# It maps the options of the original script onto the upgrade-recovery CLI.\n"
                    "BIN=" +
                    sh_quote(binary_path) + "\n";
    s += kBody;
    return s;
}

Result<> write_compat_script(int store_dir_fd, const std::string& binary_path)
{
    auto text = compat_script_text(binary_path);
    if (!text) return std::unexpected(text.error());
    UR_TRY_CTX(write_file_atomic_at(store_dir_fd, kCompatScriptName, *text, 0700), "write compatibility script");
    return {};
}

} // namespace ur
