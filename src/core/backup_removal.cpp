#include "backup_removal.hpp"

#include "log.hpp"
#include "ostree_state.hpp"
#include "recovery_journal.hpp"
#include "upgrade_watchdog.hpp"
#include "walk.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>

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
    auto warn = [&](const std::string& why) {
        if (out.warning.empty()) out.warning = "the ostree pins of the removed backups stay: " + why;
    };
    if (!remaining) {
        warn(remaining.error().message);
        return;
    }
    std::erase_if(candidates, [&](const OstreeRecord& c) {
        return std::any_of(remaining->begin(), remaining->end(),
                           [&](const BackupMetadata& m) { return same_record(m.ostree, c); });
    });
    auto r = ostree_release_pins(cfg, root, candidates);
    if (!r) {
        warn(r.error().message);
        return;
    }
    for (auto& id : *r) {
        log::info("ostree deployment " + id + " unpinned: no backup records it any more");
        out.unpinned.push_back(std::move(id));
    }
}

} // namespace

bool pin_is_ours(const OstreeRecord& now, const std::vector<BackupMetadata>& existing)
{
    if (now.pinned_by_backup) return true;
    return std::any_of(existing.begin(), existing.end(), [&](const BackupMetadata& m) {
        return m.ostree.pinned_by_backup && same_record(m.ostree, now);
    });
}

Result<Removal> remove_leftovers(const Config& cfg, const std::string& root, const Store& store)
{
    Removal out;
    if (!store.backups_fd) return out;
    auto names = list_dir(store.backups_fd.get());
    if (!names) return std::unexpected(names.error());
    std::vector<BackupMetadata> recorded;
    for (const auto& name : *names) {
        if (!name.starts_with(kStagingPrefix)) continue;
        const bool deleted = name.starts_with(kDeletedPrefix);
        const std::string id = name.substr(std::strlen(deleted ? kDeletedPrefix : kStagingPrefix));
        if (deleted) out.finished.push_back(id);
        // Most have none: a backup writes it last, a delete killed while removing the tree
        // had released the pins before. One that names another id is not trusted with a pin.
        auto gen = open_at(store.backups_fd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!gen) continue;
        auto m = read_metadata_file(gen->get(), store.path() + "/" + kBackupsDir + "/" + name + "/" + kMetadataFile);
        if (m && m->id == id) recorded.push_back(std::move(*m));
    }
    // Before the directories go: killed in between, the next clean-up reads them again.
    release(cfg, root, store, recorded, out);
    auto n = remove_stale_staging(store);
    if (!n) return std::unexpected(n.error());
    out.leftovers = *n;
    for (const auto& id : out.finished)
        log::info("finished the interrupted delete of backup " + id);
    return out;
}

Result<Removal> remove_backup(const Config& cfg, const std::string& root, const Store& store, const std::string& id,
                              bool allow_last)
{
    // An administrator repeats a delete that was killed: the backup is gone by then,
    // only its leftover is there, and finishing it is the answer.
    Removal out;
    if (auto left = remove_leftovers(cfg, root, store); !left)
        out.warning = "what an interrupted backup or delete left stays: " + left.error().message;
    else
        out = std::move(*left);
    if (std::find(out.finished.begin(), out.finished.end(), id) != out.finished.end()) {
        auto scan = scan_generations(store);
        if (!scan) return std::unexpected(scan.error());
        if (!scan->has(id)) {
            out.ids.push_back(id);
            return out;
        }
    }
    UR_TRY(check_backup_deletable(store, id));
    auto wd = read_watchdog(store);
    if (!wd) return std::unexpected(wd.error());
    if (*wd && (*wd)->backup_id == id)
        return fail(ErrorKind::Refused, "backup " + id +
                                            " is the one the upgrade watchdog recovers to; 'upgrade-recovery "
                                            "watchdog stop' first");
    // Read before it goes; a backup whose metadata is unreadable can still be deleted.
    auto meta = read_metadata(store, id);
    auto doomed = retire_backup(store, id, allow_last);
    if (!doomed) return std::unexpected(doomed.error());
    out.ids.push_back(id);
    if (meta) release(cfg, root, store, {*meta}, out);
    UR_TRY(remove_retired(store, *doomed));
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
    Removal out;
    // Each one's pins as it is retired, before its tree goes (see remove_backup).
    auto pruned = prune_backups(store, cfg.retention, spare, [&](const std::string& id) {
        if (!before) return;
        for (const auto& m : *before)
            if (m.id == id) release(cfg, root, store, {m}, out);
    });
    if (!pruned) return std::unexpected(pruned.error());
    out.ids = std::move(*pruned);
    if (!before && !out.ids.empty())
        out.warning = "the ostree pins of the removed backups stay: " + before.error().message;
    return out;
}

} // namespace ur
