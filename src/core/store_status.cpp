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
    auto read_recovery = [&]() -> Result<> {
        auto jd = JournalDir::open(store, false);
        if (!jd) return std::unexpected(jd.error());
        // Each marker as it is read: a damaged journal must not hide `armed`.
        auto armed = jd->armed();
        if (!armed) return std::unexpected(armed.error());
        s.armed = *armed;
        auto pending = jd->phase2_pending();
        if (!pending) return std::unexpected(pending.error());
        s.phase2_pending = *pending;
        auto journal = jd->load();
        if (!journal) return std::unexpected(journal.error());
        s.journal = std::move(*journal);
        return {};
    };
    if (auto r = read_recovery(); !r) s.recovery_error = r.error();
    if (auto w = read_watchdog(store); w)
        s.watchdog = std::move(*w);
    else
        s.watchdog_error = w.error();
    return s;
}

} // namespace ur
