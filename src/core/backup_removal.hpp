// What goes with a backup: the generation itself and the ostree pins only it
// held. A backup pins the booted deployment (ostree_state); without releasing
// those pins every upgrade would leave one more deployment, with its kernel
// and initramfs, in /boot for good, until an upgrade no longer fits there.
//
// A pin is released only when it is ours (OstreeRecord::pinned_by_backup) and
// no remaining backup records that deployment. Releasing is best effort: the
// generation is gone either way, a failure is a warning.
//
// Order: the generation is renamed away (retire_backup), its pins released, then
// its tree removed. A process killed before the release leaves
// backups/.staging-deleted-<id> with the metadata intact; remove_leftovers
// releases what that records, so a kill cannot leave a pin behind for good.
// A backup records the pin it is about to make in its staging directory's
// metadata first, so a backup killed after pinning leaves such a leftover too.
#pragma once

#include "config.hpp"
#include "error.hpp"
#include "metadata.hpp"
#include "store.hpp"

#include <string>
#include <vector>

namespace ur
{

// Whether the pin on `now`'s deployment is ours: this backup set it, or an
// existing backup of the same deployment recorded that it did.
bool pin_is_ours(const OstreeRecord& now, const std::vector<BackupMetadata>& existing);

struct Removal {
    std::vector<std::string> ids;      // backups removed
    std::vector<std::string> unpinned; // "<checksum>.<serial>" whose pin was released
    std::string warning;               // the pins could not be released (why), else empty
    std::vector<std::string> finished; // backups whose interrupted delete was finished now
    unsigned leftovers = 0;            // staging directories of interrupted runs removed
};

// What interrupted backups and deletes left in backups/ (.staging-*): first the
// pins their metadata records (when it names the leftover's own id) that no
// remaining backup records, then the directories. For a holder of the store lock:
// the next backup, the next delete, the daemon's start after an interrupted job.
Result<Removal> remove_leftovers(const Config& cfg, const std::string& root, const Store& store);

// Delete backup `id` (refused while a recovery needs it, check_backup_deletable;
// the only one only with `allow_last`) and release the pins it alone held. The
// leftovers of interrupted runs go first; when `id` itself was such a delete,
// that is all (`finished` names it).
Result<Removal> remove_backup(const Config& cfg, const std::string& root, const Store& store, const std::string& id,
                              bool allow_last);

// Retention: keep the newest cfg.retention backups (prune_backups) and release
// the pins of those removed.
Result<Removal> prune_and_release(const Config& cfg, const std::string& root, const Store& store);

} // namespace ur
