#include "unit_enablement.hpp"

#include "process.hpp"
#include "text.hpp"

#include <chrono>

namespace ur
{

namespace
{

bool plain_word(const std::string& w)
{
    if (w.empty()) return false;
    for (char ch : w)
        if (!((ch >= 'a' && ch <= 'z') || ch == '-')) return false;
    return true;
}

// The command a person runs against that root.
std::string systemctl_for(const std::string& root, const std::string& args)
{
    return (root == "/" ? std::string("systemctl ") : "systemctl --root=" + sh_word(root) + " ") + args;
}

std::string enable_cmd(const std::string& root, const std::string& unit)
{
    return "'" + systemctl_for(root, "enable " + unit) + "'";
}

// The state, or the note when it cannot tell.
UnitCheck ask(const std::string& root, const std::string& unit, const std::string& systemctl, UnitState& st)
{
    UnitCheck c;
    c.unit = unit;
    auto r = unit_enablement(root, unit, systemctl);
    if (!r) {
        st = UnitState{UnitEnablement::Other, ""};
        c.note = "cannot tell whether " + unit + " is enabled (" + r.error().message + ")";
        return c;
    }
    st = *r;
    c.state = st.word;
    return c;
}

// The warning for a state that keeps the unit from starting at the next boot;
// `consequence` says what is then lost.
std::string problem(const std::string& root, const std::string& unit, const UnitState& st,
                    const std::string& consequence)
{
    switch (st.kind) {
    case UnitEnablement::Enabled: return {};
    case UnitEnablement::Disabled: return unit + " is not enabled: " + consequence + "; run " + enable_cmd(root, unit);
    case UnitEnablement::Runtime:
        return unit + " is enabled only until the reboot (enabled-runtime): " + consequence + "; run " +
               enable_cmd(root, unit);
    case UnitEnablement::Masked:
        return unit + " is masked: " + consequence + "; run '" + systemctl_for(root, "unmask " + unit) + " && " +
               systemctl_for(root, "enable " + unit) + "'";
    case UnitEnablement::NotFound:
        return unit + " is not installed (no unit file" + (root == "/" ? std::string() : " under " + root) +
               "): " + consequence + "; install the upgrade-recovery package";
    case UnitEnablement::Other: break;
    }
    return unit + " is '" + st.word + "', not enabled: " + consequence + "; check that '" +
           systemctl_for(root, "cat " + unit) + "' has WantedBy=multi-user.target, then run " + enable_cmd(root, unit);
}

} // namespace

Result<UnitState> unit_enablement(const std::string& root, const std::string& unit, const std::string& systemctl)
{
    Command cmd;
    cmd.argv = {systemctl, "--root=" + root, "is-enabled", unit};
    cmd.timeout = std::chrono::seconds(10);
    auto r = run_command(cmd);
    if (!r) return std::unexpected(std::move(r.error()));
    std::string out(trim(r->out));
    if (auto nl = out.find('\n'); nl != std::string::npos) out.resize(nl);
    // systemd 252 prints nothing for a unit without a file ("Failed to get unit file
    // state for UNIT: No such file or directory"); later versions print "not-found".
    // A root it cannot read fails with ENOENT too, but in other words: cannot tell.
    if (out == "not-found" ||
        (out.empty() && r->exit_code != 0 &&
         r->err.find("Failed to get unit file state for " + unit + ": No such file or directory") != std::string::npos))
        return UnitState{UnitEnablement::NotFound, "not-found"};
    if (r->exit_code < 0 || !plain_word(out)) {
        const std::string why = r->exit_code < 0 ? "killed by signal " + std::to_string(r->signal)
                                                 : "exit status " + std::to_string(r->exit_code);
        const std::string err(trim(r->err));
        return fail(ErrorKind::ExternalFailed, sh_command(cmd.argv) + ": " + why + (err.empty() ? "" : ": " + err));
    }
    if (out == "enabled") return UnitState{UnitEnablement::Enabled, out};
    if (out == "enabled-runtime") return UnitState{UnitEnablement::Runtime, out};
    if (out == "disabled") return UnitState{UnitEnablement::Disabled, out};
    if (out == "masked") return UnitState{UnitEnablement::Masked, out};
    return UnitState{UnitEnablement::Other, out};
}

UnitCheck check_phase2_unit(const std::string& root, bool phase1_done, const std::string& systemctl)
{
    UnitState st;
    UnitCheck c = ask(root, kPhase2UnitName, systemctl, st);
    if (c.state.empty()) return c;
    if (!phase1_done) {
        // Phase 1's enable-phase2 step enables it (in /etc, for the next boot): a
        // disabled unit is the normal case there, not a problem.
        if (st.kind == UnitEnablement::Disabled || st.kind == UnitEnablement::Runtime) return c;
        c.warning = problem(root, kPhase2UnitName, st,
                            "phase 1 would restore the files and disable kubelet, and its step enable-phase2 "
                            "cannot make it start after the reboot: nothing would run phase 2");
        return c;
    }
    c.warning = problem(root, kPhase2UnitName, st,
                        "phase 2 is pending and does not run after the reboot, so kubelet stays disabled");
    return c;
}

UnitCheck check_watchdog_unit(const std::string& root, const std::string& systemctl)
{
    UnitState st;
    UnitCheck c = ask(root, kWatchdogUnitName, systemctl, st);
    if (c.state.empty()) return c;
    c.warning = problem(root, kWatchdogUnitName, st,
                        "the watchdog does not run after the upgrade's reboot and never recovers the node");
    return c;
}

std::vector<UnitCheck> check_units_after_arming(const std::string& root, bool watchdog)
{
    std::vector<UnitCheck> checks = {check_phase2_unit(root, false)};
    if (watchdog) checks.push_back(check_watchdog_unit(root));
    return checks;
}

} // namespace ur
