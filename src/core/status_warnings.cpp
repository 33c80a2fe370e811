#include "status_warnings.hpp"

#include "initrd_mark.hpp"
#include "recovery_journal.hpp"
#include "recovery_karg.hpp"

namespace ur
{

StatusChecks check_status_host(const std::string& root, const StoreStatus& st,
                               const std::optional<std::string>& initrd_run_dir)
{
    StatusChecks c;
    c.initrd_module = initrd_module_problem(root, initrd_run_dir);
    c.kept_karg = boot_entries_requesting_recovery(root);
    // A warning only when something is set to need the unit after the next boot.
    const bool recovery_ahead =
        st.armed || st.phase2_pending || st.watchdog || (st.journal && recovery_state_in_progress(st.journal->state));
    c.units.push_back({check_phase2_unit(root, st.phase2_pending.has_value()), recovery_ahead});
    c.units.push_back({check_watchdog_unit(root), st.watchdog.has_value()});
    c.earlier_tooling = st.earlier_tooling;
    return c;
}

std::vector<std::string> StatusChecks::warnings() const
{
    std::vector<std::string> out;
    if (initrd_module && !initrd_module->empty()) out.push_back(*initrd_module);
    if (auto w = persistent_karg_warning(kept_karg); !w.empty()) out.push_back(std::move(w));
    for (const auto& u : units)
        if (u.matters && !u.check.warning.empty()) out.push_back(u.check.warning);
    out.insert(out.end(), earlier_tooling.begin(), earlier_tooling.end());
    return out;
}

} // namespace ur
