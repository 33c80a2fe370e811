#include "store_status.hpp"

#include "earlier_tooling.hpp"

namespace ur
{

const Error* StoreStatus::first_error() const
{
    if (!unreadable.empty()) return &unreadable.front().error;
    for (const auto* e : {&latest_error, &last_attempt_error, &recovery_error, &watchdog_error})
        if (*e) return &**e;
    return nullptr;
}

std::optional<ErrorKind> StoreStatus::problem() const
{
    if (const Error* e = first_error()) return e->kind;
    if (!damaged.empty()) return ErrorKind::Corrupt;
    return std::nullopt;
}

std::string StoreStatus::problem_message() const
{
    if (const Error* e = first_error()) return e->message;
    if (damaged.empty()) return {};
    if (damaged.size() == 1)
        return "backups/" + damaged.front() + " is named like a backup, but is none ('upgrade-recovery list' says why)";
    return "backups/" + damaged.front() + " and " + std::to_string(damaged.size() - 1) +
           " more are named like backups, but are none ('upgrade-recovery list' says why)";
}

Result<StoreStatus> read_store_status(const Store& store, unsigned watchdog_max_boots)
{
    StoreStatus s;
    auto g = scan_generations(store);
    if (!g) return std::unexpected(g.error());
    s.backups = std::move(g->backups);
    s.damaged = std::move(g->damaged);
    s.unreadable = std::move(g->unreadable);
    auto latest = latest_backup(store);
    if (!latest) {
        if (latest.error().kind != ErrorKind::Corrupt) return std::unexpected(latest.error());
        s.latest_error = latest.error(); // a damaged link; the backups are still listed
    } else if (*latest) {
        s.latest_id = *latest;
        if (auto m = read_metadata(store, *s.latest_id); m)
            s.latest = std::move(*m);
        else
            s.latest_error = m.error();
    }
    if (auto a = load_backup_attempt(store.fd.get()); a)
        s.last_attempt = std::move(*a);
    else
        s.last_attempt_error = a.error();
    // Damage in one part (a bad `armed`, a corrupt journal) does not hide the others.
    if (auto rs = read_recovery_status(store); !rs) {
        s.recovery_error = rs.error();
    } else {
        s.armed = std::move(rs->armed);
        s.phase2_pending = std::move(rs->phase2_pending);
        s.journal = std::move(rs->journal);
        s.recovery_error = std::move(rs->unreadable);
    }
    if (auto w = read_watchdog(store); w)
        s.watchdog = std::move(*w);
    else
        s.watchdog_error = w.error();
    if (s.watchdog) s.watchdog_outlook = watchdog_outlook(*s.watchdog, read_boot_clock(), watchdog_max_boots);
    if (auto e = find_earlier_files(store); !e) {
        s.earlier_tooling.push_back("cannot look for the earlier upgrade-recovery.sh's files: " + e.error().message);
    } else {
        s.earlier_recovery = e->progress.has_value();
        if (e->progress) s.earlier_tooling.push_back(earlier_recovery_refusal(store, *e, kEarlierRefusesBoth).message);
        if (!e->backup.empty()) s.earlier_tooling.push_back(earlier_backup_note(store, *e, std::nullopt));
    }
    return s;
}

} // namespace ur
