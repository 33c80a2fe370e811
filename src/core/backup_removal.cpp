#include "backup_removal.hpp"

#include "log.hpp"
#include "ostree_state.hpp"
#include "recovery_journal.hpp"
#include "upgrade_watchdog.hpp"

#include <algorithm>

namespace ur
{

namespace
{

bool same_record(const OstreeRecord& a, const OstreeRecord& b)
{
    return a.present && b.present && a.osname == b.osname && a.checksum == b.checksum && a.serial == b.serial;
}

void release(const Config& cfg, const std::string& root, const Store& store, const std::vector<BackupMetadata>& removed,
             Removal& out)
{
    std::vector<OstreeRecord> candidates;
    for (const auto& m : removed)
        if (m.ostree.present && m.ostree.pinned_by_backup) candidates.push_back(m.ostree);
    if (candidates.empty() || !ostree_enabled(cfg, root)) return;
    // An unreadable backup might still need a deployment: then nothing is released.
    auto remaining = read_all_metadata(store);
    if (!remaining) {
        out.warning = "the ostree pins of the removed backups stay: " + remaining.error().message;
        return;
    }
    std::erase_if(candidates, [&](const OstreeRecord& c) {
        return std::any_of(remaining->begin(), remaining->end(),
                           [&](const BackupMetadata& m) { return same_record(m.ostree, c); });
    });
    auto r = ostree_release_pins(cfg, root, candidates);
    if (!r) {
        out.warning = "the ostree pins of the removed backups stay: " + r.error().message;
        return;
    }
    out.unpinned = std::move(*r);
    for (const auto& id : out.unpinned)
        log::info("ostree deployment " + id + " unpinned: no backup records it any more");
}

} // namespace

bool pin_is_ours(const OstreeRecord& now, const std::vector<BackupMetadata>& existing)
{
    if (now.pinned_by_backup) return true;
    return std::any_of(existing.begin(), existing.end(), [&](const BackupMetadata& m) {
        return m.ostree.pinned_by_backup && same_record(m.ostree, now);
    });
}

Result<Removal> remove_backup(const Config& cfg, const std::string& root, const Store& store, const std::string& id,
                              bool allow_last)
{
    UR_TRY(check_backup_deletable(store, id));
    auto wd = read_watchdog(store);
    if (!wd) return std::unexpected(wd.error());
    if (*wd && (*wd)->backup_id == id)
        return fail(ErrorKind::Refused, "backup " + id +
                                            " is the one the upgrade watchdog recovers to; 'upgrade-recovery "
                                            "watchdog stop' first");
    // Read before it goes; a backup whose metadata is unreadable can still be deleted.
    auto meta = read_metadata(store, id);
    UR_TRY(delete_backup(store, id, allow_last));
    Removal out;
    out.ids.push_back(id);
    if (meta) release(cfg, root, store, {*meta}, out);
    return out;
}

Result<Removal> prune_and_release(const Config& cfg, const std::string& root, const Store& store)
{
    auto before = read_all_metadata(store);
    // The watchdog's backup stays; when nobody can tell which that is, nothing goes.
    auto wd = read_watchdog(store);
    if (!wd) return std::unexpected(wd.error());
    std::vector<std::string> spare;
    if (*wd) spare.push_back((*wd)->backup_id);
    auto pruned = prune_backups(store, cfg.retention, spare);
    if (!pruned) return std::unexpected(pruned.error());
    Removal out;
    out.ids = std::move(*pruned);
    if (!before) {
        if (!out.ids.empty()) out.warning = "the ostree pins of the removed backups stay: " + before.error().message;
        return out;
    }
    std::vector<BackupMetadata> removed;
    for (const auto& m : *before)
        if (std::find(out.ids.begin(), out.ids.end(), m.id) != out.ids.end()) removed.push_back(m);
    release(cfg, root, store, removed, out);
    return out;
}

} // namespace ur
