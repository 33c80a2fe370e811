#include "store_status.hpp"

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
    // Each part as it is read: damage in one (a bad `armed`, a corrupt journal) must
    // not hide the others; the first error is the one reported.
    if (auto jd = JournalDir::open(store, false); !jd) {
        s.recovery_error = jd.error();
    } else {
        auto keep = [&](const Error& e) {
            if (!s.recovery_error) s.recovery_error = e;
        };
        if (auto armed = jd->armed(); armed)
            s.armed = *armed;
        else
            keep(armed.error());
        if (auto pending = jd->phase2_pending(); pending)
            s.phase2_pending = *pending;
        else
            keep(pending.error());
        if (auto journal = jd->load(); journal)
            s.journal = std::move(*journal);
        else
            keep(journal.error());
    }
    if (auto w = read_watchdog(store); w)
        s.watchdog = std::move(*w);
    else
        s.watchdog_error = w.error();
    return s;
}

} // namespace ur
