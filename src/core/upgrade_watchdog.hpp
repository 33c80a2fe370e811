// The upgrade watchdog (prior art: LCA's init monitor). Started before an
// upgrade with the backup to go back to and a timeout; in every later boot
// (the upgrade reboots the node) upgrade-recovery-watchdog.service waits for
// the upgrade to be declared complete (`watchdog stop`). When the timeout has
// passed since that boot began, or a hook reports a failed unit (`watchdog
// trigger`), the node arms the recovery of that backup and reboots: a node the
// failed upgrade left unreachable comes back without anyone logging in.
//
// A node the upgrade left in a reboot loop (a panic, a hardware watchdog) never
// reaches the timeout: the monitor also records each later boot it sees, and
// fires at the start of one when more than watchdog.max_boots were seen.
//
// State: <mount>/recovery/watchdog, a TOML file written atomically:
//   backup = "<id>", timeout = <s>, started = "<RFC 3339>", boot_id = "<boot it was started in>",
//   later_boots = ["<boot id>", ...] (absent in files written before it: none seen)
// Firing arms first and removes the file second: a crash in between leaves an
// armed recovery, and the next monitor, finding a recovery in progress, only
// removes the file.
#pragma once

#include "error.hpp"
#include "store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
    // The boots the monitor saw after it, oldest first, each once.
    std::vector<std::string> later_boots = {};
};

std::string watchdog_to_toml(const WatchdogState& w);
Result<WatchdogState> watchdog_from_toml(std::string_view text, const std::string& name);

Result<std::optional<WatchdogState>> read_watchdog(const Store& store);

// Start (or replace) the watchdog. The backup must be readable; refused while
// a recovery is armed or in progress (the earlier tooling's too), and while one
// started in an earlier boot counts in this one (Refused); timeout at least 60 s.
Result<WatchdogState> start_watchdog(const Store& store, const std::string& backup_id, unsigned timeout,
                                     const std::string& boot_id);
// The upgrade is complete: remove the watchdog. Returns whether there was one.
Result<bool> stop_watchdog(const Store& store);

// The upgrade is declared complete (`watchdog stop`, StopWatchdog): remove the
// watchdog, and tell whether a recovery is armed all the same (the watchdog fired,
// or one was armed beside it): the next boot restores it, which whoever declares
// the upgrade complete must hear. Holds no lock: the caller holds the store's.
struct WatchdogEnd {
    bool stopped = false;             // a watchdog was running and is removed
    std::optional<std::string> armed; // the backup a recovery is armed with
};
Result<WatchdogEnd> end_watchdog(const Store& store);
// The sentence for an armed recovery after end_watchdog; `disarm` names the way out.
std::string armed_after_watchdog_end(const WatchdogEnd& e, const std::string& disarm);

// Whether the watchdog may fire in the boot `boot_id`: not in the one it was started in.
bool watchdog_applies(const WatchdogState& w, const std::string& boot_id);

// Fire: arm the recovery of the watchdog's backup, then remove the watchdog.
// With a recovery already armed or in progress (ours, or the earlier tooling's:
// earlier_tooling.hpp) only the watchdog goes (RecoveryInProgress). Returns the
// backup id armed. Holds no lock: the caller holds the store's.
Result<std::string> fire_watchdog(const Store& store, const std::string& reason);

// Record `boot_id` among the watchdog's later boots, once per boot, atomically.
// Nothing is written without a watchdog, in the boot it was started in or when
// the boot is recorded already. Returns the watchdog as it is now (nullopt: none).
// Holds no lock: the caller holds the store's, so a concurrent stop is not undone.
Result<std::optional<WatchdogState>> record_watchdog_boot(const Store& store, const std::string& boot_id);

// This boot as the watchdog sees it.
struct BootClock {
    std::string boot_id;
    double uptime = 0; // CLOCK_BOOTTIME: seconds since the boot began, suspend included
    double now = 0;    // CLOCK_REALTIME: seconds since the epoch
};
BootClock read_boot_clock();

// What the watchdog does in the boot `clock`: status, metrics and the monitor agree.
struct WatchdogOutlook {
    bool applies = false;        // a later boot: it may fire here (watchdog_applies)
    unsigned boots = 0;          // later boots recorded so far
    unsigned max_boots = 0;      // watchdog.max_boots
    bool too_many_boots = false; // boots > max_boots: fires at once
    double seconds_left = 0;     // until the timeout in this boot (applies only; 0: passed)
    double deadline = 0;         // the same as seconds since the epoch (applies only)
};
WatchdogOutlook watchdog_outlook(const WatchdogState& w, const BootClock& clock, unsigned max_boots);

// Why the watchdog fires now (the boot count first: it fires at a boot's start),
// empty while it waits or does not apply.
std::string watchdog_fire_reason(const WatchdogState& w, const WatchdogOutlook& o);

} // namespace ur
