// The upgrade watchdog (prior art: LCA's init monitor). Started before an
// upgrade with the backup to go back to and a timeout; in every later boot
// (the upgrade reboots the node) upgrade-recovery-watchdog.service waits for
// the upgrade to be declared complete (`watchdog stop`). When the timeout has
// passed since that boot began, or a hook reports a failed unit (`watchdog
// trigger`), the node arms the recovery of that backup and reboots: a node the
// failed upgrade left unreachable comes back without anyone logging in.
//
// State: <mount>/recovery/watchdog, a TOML file written atomically:
//   backup = "<id>", timeout = <s>, started = "<RFC 3339>", boot_id = "<boot it was started in>"
// Firing arms first and removes the file second: a crash in between leaves an
// armed recovery, and the next monitor, finding a recovery in progress, only
// removes the file.
#pragma once

#include "error.hpp"
#include "store.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace ur
{

inline constexpr const char* kWatchdogFile = "watchdog";
inline constexpr unsigned kWatchdogDefaultTimeout = 1800; // LCA's init monitor default
inline constexpr unsigned kWatchdogMinTimeout = 60;

struct WatchdogState {
    std::string backup_id;
    unsigned timeout = 0; // seconds from the start of a later boot
    std::string started;  // RFC 3339
    std::string boot_id;  // the boot `watchdog start` ran in: it does not fire there
};

std::string watchdog_to_toml(const WatchdogState& w);
Result<WatchdogState> watchdog_from_toml(std::string_view text, const std::string& name);

Result<std::optional<WatchdogState>> read_watchdog(const Store& store);

// Start (or replace) the watchdog. The backup must be readable; refused while
// a recovery is armed or in progress, and while one started in an earlier boot
// counts in this one (Refused); timeout at least 60 s.
Result<WatchdogState> start_watchdog(const Store& store, const std::string& backup_id, unsigned timeout,
                                     const std::string& boot_id);
// The upgrade is complete: remove the watchdog. Returns whether there was one.
Result<bool> stop_watchdog(const Store& store);

// Whether the watchdog may fire in the boot `boot_id`: not in the one it was started in.
bool watchdog_applies(const WatchdogState& w, const std::string& boot_id);

// Fire: arm the recovery of the watchdog's backup, then remove the watchdog.
// With a recovery already armed or in progress only the watchdog goes
// (RecoveryInProgress). Returns the backup id armed. Holds no lock: the
// caller holds the store's.
Result<std::string> fire_watchdog(const Store& store, const std::string& reason);

} // namespace ur
