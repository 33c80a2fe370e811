// systemd unit control behind one narrow interface:
//   - live: org.freedesktop.systemd1 over the system bus (sd-bus), every job
//     waited for with a deadline (W7, W8);
//   - offline: a root without a running systemd (the initrd's /sysroot, a test
//     tree): enable/disable edit the .wants/.requires links under
//     <root>/etc/systemd/system like `systemctl --root` does; start/stop refuse.
//   - command: a systemctl-compatible program (tests and the sandbox point it at
//     a stand-in that plays crio/kubelet); never chosen by the config.
#pragma once

#include "config.hpp"
#include "progress.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace ur
{

class UnitManager
{
  public:
    virtual ~UnitManager() = default;
    virtual std::string mode() const = 0; // "dbus" | "offline" | "command"
    // Whether start/stop/active_state/reboot work (false offline).
    virtual bool can_control() const = 0;

    // "active", "inactive", "failed", "activating", ...; "inactive" for an unknown unit.
    virtual Result<std::string> active_state(const std::string& unit, const CancelToken& cancel) = 0;
    // Each queues a job with mode "replace" and waits until it has finished (or the
    // timeout/cancel passes: Timeout/Cancelled). A job that ends other than "done" is ExternalFailed.
    virtual Result<> start(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) = 0;
    // stop_job(), then the unit must be inactive or failed: a stop job can end "done"
    // while the unit still deactivates with another job queued (W7). For every manager.
    Result<> stop(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel);
    virtual Result<> restart(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) = 0;
    // Enable/disable unit files (and reload the manager when live). Idempotent.
    virtual Result<> enable(const std::string& unit, const CancelToken& cancel) = 0;
    virtual Result<> disable(const std::string& unit, const CancelToken& cancel) = 0;
    virtual Result<bool> is_enabled(const std::string& unit, const CancelToken& cancel) = 0;
    // Queue reboot.target (replace-irreversibly); returns once it is queued.
    virtual Result<> reboot(const CancelToken& cancel) = 0;

  protected:
    // The stop job alone, as start() runs its job.
    virtual Result<> stop_job(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) = 0;
};

// cfg.systemctl_mode: "dbus" (root must be "/"), "offline", or "auto": dbus when
// root is "/" and systemd runs (/run/systemd/system exists), offline otherwise.
Result<std::unique_ptr<UnitManager>> make_unit_manager(const Config& cfg, const std::string& root);

std::unique_ptr<UnitManager> make_offline_units(const std::string& root);
std::unique_ptr<UnitManager> make_dbus_units();
// `argv0 start|stop|restart|enable|disable|is-enabled|is-active|reboot UNIT` with
// systemctl's exit-code conventions, each call bounded by a deadline.
std::unique_ptr<UnitManager> make_command_units(const std::string& systemctl);

// The offline editing, usable directly. Enabling reads the unit's [Install]
// section (WantedBy=, RequiredBy=, UpheldBy=, Alias=, Also=, DefaultInstance=)
// from <root>/{etc,run,usr/lib,lib}/systemd/system and links
// <root>/etc/systemd/system/<target>.wants/<unit> -> /<dir>/<unit file>.
// Returns the links created or removed (paths inside the root); empty when
// nothing had to change. Masked units are refused.
Result<std::vector<std::string>> offline_enable_unit(const std::string& root, const std::string& unit);
// Removes every link to the unit in <root>/etc/systemd/system (wants/requires/
// upholds directories and aliases); the unit file and masks stay.
Result<std::vector<std::string>> offline_disable_unit(const std::string& root, const std::string& unit);
// Enabled: a link for it exists in a .wants/.requires/.upholds directory of
// <root>/etc/systemd/system.
Result<bool> offline_unit_enabled(const std::string& root, const std::string& unit);

} // namespace ur
