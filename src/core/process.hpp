// Running external commands (cluster-backup.sh, etcdctl, crictl, oc, ...):
// argv only (no shell), a deadline on every call (W8), the whole process
// group killed when it passes, output captured.
#pragma once

#include "error.hpp"
#include "progress.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct Command {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env_set; // added to / overriding the inherited environment
    std::optional<std::string> cwd;
    std::optional<std::string> stdin_data;
    std::chrono::seconds timeout{60}; // 0 = none (still bounded by the CancelToken)
    bool capture_stdout = true;
    bool capture_stderr = true; // false: inherit (the user sees it)
};

struct CommandResult {
    int exit_code = -1; // -1 when killed by a signal
    int signal = 0;
    bool timed_out = false;
    std::string out;
    std::string err;
    bool truncated = false; // output beyond 256 MiB per stream was discarded
};

// Runs to completion. stdin is /dev/null unless stdin_data is given; the
// command gets its own process group, default signal dispositions and an empty
// signal mask. On the deadline (cmd.timeout or the token's) or a cancel the
// group gets SIGTERM, then SIGKILL after 2 s. Anything of the group still
// holding the output pipes 2 s after the command exited is killed too.
// The Result is an error only when the command could not
// be started or was killed for the deadline/cancel (Timeout/Cancelled); a
// non-zero exit is reported in CommandResult for the caller to judge.
Result<CommandResult> run_command(const Command& cmd, const CancelToken* cancel = nullptr);

// run_command + require exit 0; the error names the command and quotes stderr.
Result<CommandResult> run_checked(const Command& cmd, const CancelToken* cancel = nullptr);

} // namespace ur
