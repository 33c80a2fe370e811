// Whether the units that act after the next boot are enabled in a root. Asked of
// systemd's own `systemctl --root=ROOT is-enabled UNIT` (offline on a directory
// tree; on / the running manager), not of our copy of its link rules (units.hpp):
// runtime links, aliases, masks in /run and presets are systemd's to judge.
// `arm` and `watchdog start` succeeded with upgrade-recovery-watchdog.service
// disabled (the watchdog then never runs after the upgrade's reboot) or with the
// phase 2 unit masked (phase 1 disables kubelet, then cannot enable phase 2).
#pragma once

#include "error.hpp"

#include <string>
#include <vector>

namespace ur
{

inline constexpr const char* kPhase2UnitName = "upgrade-recovery-phase2.service";
inline constexpr const char* kWatchdogUnitName = "upgrade-recovery-watchdog.service";

enum class UnitEnablement {
    Enabled,  // "enabled": linked for every boot
    Runtime,  // "enabled-runtime": linked in /run only, gone after the reboot
    Disabled, // "disabled"
    Masked,   // "masked" (in /etc or /usr: "masked-runtime" is Other, it goes at the reboot)
    NotFound, // no unit file: not installed
    Other,    // static, indirect, alias, linked, generated, masked-runtime, ...: see the word
};

struct UnitState {
    UnitEnablement kind = UnitEnablement::Other;
    std::string word; // systemctl's answer ("not-found" for NotFound)
};

// `<systemctl> --root=ROOT is-enabled UNIT`, bounded by 10 s. An error means it
// cannot tell: systemctl missing, killed, timed out, or an answer not understood.
Result<UnitState> unit_enablement(const std::string& root, const std::string& unit,
                                  const std::string& systemctl = "systemctl");

// What a command says of one unit: a warning (it will not do its job after the
// reboot), a note (cannot tell), or neither. `state` is systemctl's word, "" when
// it cannot tell.
struct UnitCheck {
    std::string unit;
    std::string state;
    std::string warning;
    std::string note;
};

// upgrade-recovery-phase2.service. Before phase 1 has run (`phase1_done` false)
// phase 1's own enable-phase2 step enables it, so only a unit that step cannot
// make start at boot is a problem (masked, not installed, other states); once
// phase 2 is pending, anything but enabled is.
UnitCheck check_phase2_unit(const std::string& root, bool phase1_done, const std::string& systemctl = "systemctl");
// upgrade-recovery-watchdog.service: nothing enables it but the package and
// Ignition, and it must start in the boots after this one.
UnitCheck check_watchdog_unit(const std::string& root, const std::string& systemctl = "systemctl");

// What `arm` (and ArmRecovery) checks after arming: the phase 2 unit; with
// `watchdog` (watchdog start, StartWatchdog) its own unit too.
std::vector<UnitCheck> check_units_after_arming(const std::string& root, bool watchdog);

} // namespace ur
