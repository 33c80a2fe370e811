// Client mode of upgrade-recoveryd: ask the service (D-Bus activating it when
// needed) to take a backup and wait for the job, printing its progress.
// upgrade-recovery-backup.service runs this, so `systemctl start
// upgrade-recovery-backup` goes through the daemon and its lock, like rauc's
// `rauc install` talks to `rauc service`.
#pragma once

#include <optional>
#include <string>

namespace ur::dbus
{

struct ClientArgs {
    std::optional<unsigned> timeout; // seconds; unset: the daemon's backup.timeout
    bool force = false;
    std::optional<std::string> id;
};

// Returns the process exit code (0, or the CLI's code for the error kind).
int request_backup(const ClientArgs& args);

} // namespace ur::dbus
