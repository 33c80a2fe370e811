#include "store_status.hpp"

#include <algorithm>

namespace ur
{

const Error* StoreStatus::first_error() const
{
    for (const auto* e : {&latest_error, &last_attempt_error, &recovery_error, &watchdog_error})
        if (*e) return &**e;
    return nullptr;
}

Result<StoreStatus> read_store_status(const Store& store)
{
    StoreStatus s;
    auto ids = list_backups(store);
    if (!ids) return std::unexpected(ids.error());
    s.backups = std::move(*ids);
    if (auto gens = list_generations(store); gens)
        for (auto& g : *gens)
            if (!std::binary_search(s.backups.begin(), s.backups.end(), g,
                                    [](const auto& a, const auto& b) { return compare_backup_ids(a, b) < 0; }))
                s.damaged.push_back(std::move(g));
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
    return s;
}

} // namespace ur
