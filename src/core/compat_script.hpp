// The compatibility entry point on the recovery partition: <mount>/upgrade-recovery.sh,
// so the documented procedure (upgrade-recovery.sh --take-backup / --resume / ...)
// keeps working. It is a small POSIX sh wrapper that maps the old options onto the
// CLI and execs it; all logic stays in the binary.
#pragma once

#include "error.hpp"

#include <string>

namespace ur
{

inline constexpr const char* kCompatScriptName = "upgrade-recovery.sh";
// The script's second line: tells ours from the script of the tooling it replaces.
inline constexpr const char* kCompatScriptMarker =
    "# upgrade-recovery.sh: compatibility entry point written by upgrade-recovery; do not edit.";

// The script text. binary_path must be absolute (the script runs from the
// partition, possibly with a minimal PATH).
Result<std::string> compat_script_text(const std::string& binary_path);

// Write upgrade-recovery.sh (mode 0700) into store_dir_fd atomically (temp + fsync + rename).
//   --take-backup    -> upgrade-recovery backup
//   (no option)      -> upgrade-recovery recover       (the old script's default: restore)
//   --resume         -> recover --resume
//   --restart        -> recover --restart
//   --step           -> adds --step (recover only)
//   --force          -> adds --force (to backup or recover)
//   --dir DIR        -> global option --dir DIR
//   -h, --help       -> usage, exit 0; anything else: usage on stderr, exit 2
// The binary's exit code is the script's (exec).
Result<> write_compat_script(int store_dir_fd, const std::string& binary_path);

} // namespace ur
