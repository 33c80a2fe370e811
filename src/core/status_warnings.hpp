// What `status` warns about besides the store's own state: whether this boot's
// initramfs ran our module, boot entries that keep upgrade_recovery=phase1, the units
// that must act after the next boot while something needs them, and what the earlier
// tooling left on the partition (earlier_tooling.hpp). The CLI's
// `status` and the daemon's Manager.Warnings read the same checks, so a busctl user
// sees what an administrator at the console sees.
#pragma once

#include "error.hpp"
#include "store_status.hpp"
#include "unit_enablement.hpp"

#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct StatusChecks {
    std::optional<std::string> initrd_module;   // initrd_module_problem: "" ran, nullopt not asked
    Result<std::vector<std::string>> kept_karg; // boot entries keeping the argument; an error: /boot unreadable
    struct Unit {
        UnitCheck check;
        bool matters = false; // something is set to need it (armed, pending, a watchdog)
    };
    std::vector<Unit> units;                  // upgrade-recovery-phase2.service, then the watchdog's
    std::vector<std::string> earlier_tooling; // StoreStatus's

    // The warnings, in the order `status` prints them after "WARNING: ".
    std::vector<std::string> warnings() const;
};

// `initrd_run_dir`: as initrd_module_problem's (the daemon's --initrd-run-dir).
StatusChecks check_status_host(const std::string& root, const StoreStatus& st,
                               const std::optional<std::string>& initrd_run_dir = std::nullopt);

} // namespace ur
