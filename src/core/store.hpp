// The backup store on the recovery partition:
//
//   <mount>/.lock                    flock: one writer at a time (CLI and daemon)
//   <mount>/backups/<id>/            published generations, immutable
//   <mount>/backups/.staging-<id>/   a backup being written (deleted on the next run)
//   <mount>/latest -> backups/<id>   switched atomically after publishing
//   <mount>/recovery/                recovery journal (recovery_journal.hpp)
//   <mount>/upgrade-recovery.sh      compatibility entry point
// and, on a node moved over, what the earlier tooling left (earlier_tooling.hpp).
#pragma once

#include "config.hpp"
#include "fd.hpp"
#include "metadata.hpp"
#include "partition.hpp"

#include <chrono>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

inline constexpr const char* kBackupsDir = "backups";
inline constexpr const char* kLatestLink = "latest";
inline constexpr const char* kStagingPrefix = ".staging-";
// A backup being deleted: renamed to this first, so a crash leaves a leftover, never half a backup.
inline constexpr const char* kDeletedPrefix = ".staging-deleted-";
inline constexpr const char* kLockFile = ".lock";

struct Store {
    StoreLocation location;
    UniqueFd fd;         // the mount point directory
    UniqueFd backups_fd; // <mount>/backups
    const std::string& path() const { return location.path; }
};

Result<Store> open_store(const Config& cfg, const std::string& root, StoreAccess access);
// Read or Create (tests make their stores with it; the initramfs opens its root's).
inline Result<Store> open_store(const Config& cfg, const std::string& root, bool writable)
{
    return open_store(cfg, root, writable ? StoreAccess::Create : StoreAccess::Read);
}

// The file system holding the store, as df shows it.
struct StoreUsage {
    uint64_t size_bytes = 0;
    uint64_t free_bytes = 0; // available to an unprivileged writer
};
Result<StoreUsage> store_usage(const Store& store);

// Exclusive lock on the store; Busy when another process holds it. Without
// `create`, a store no writer ever locked (no lock file) gives an unheld lock.
class StoreLock
{
  public:
    StoreLock() = default;
    explicit StoreLock(UniqueFd fd) : fd_(std::move(fd)) {}
    bool held() const { return static_cast<bool>(fd_); }

  private:
    UniqueFd fd_;
};
Result<StoreLock> lock_store(const Store& store, bool create = true);
// The lock, waiting up to `patience` while another operation holds it (Busy after
// that), for what runs unattended and must not give up on a store busy for a while
// (a verify, a backup). `waiting` is called once, when the wait starts.
// How long what runs unattended (phase 2, the initrd) or ends a wait (watchdog stop)
// waits for the store's lock: a verify of a large backup, a backup.
inline constexpr std::chrono::seconds kStoreLockPatience{600};
Result<StoreLock> lock_store_patiently(const Store& store, std::chrono::seconds patience,
                                       const std::function<void()>& waiting = {});

// Every name in backups/ that is a backup id, oldest first (ids sort
// chronologically): the backups, and whatever else carries such a name.
Result<std::vector<std::string>> list_generations(const Store& store);
// Every generation, oldest first, by what its metadata says (read_metadata):
// backups (it reads and names them), damaged (Corrupt: made by hand, left by
// damage) and unreadable (any other error, EACCES or EIO: perhaps a good backup
// that cannot be read now). A generation deleted meanwhile is in none.
struct UnreadableGeneration {
    std::string id;
    Error error;
};
struct Generations {
    std::vector<std::string> backups;
    std::vector<std::string> damaged;
    std::vector<UnreadableGeneration> unreadable;

    // Is `id` taken by a generation of any kind?
    bool has(const std::string& id) const;
    // The unreadable generation `id`, if it is one.
    const UnreadableGeneration* find_unreadable(const std::string& id) const;
};
Result<Generations> scan_generations(const Store& store);
// The backups of scan_generations. The others are never counted or pruned by
// retention, nor shared from; list shows them, delete removes one by name (an
// unreadable one only while another backup is left, or with --force).
Result<std::vector<std::string>> list_backups(const Store& store);
// The backup `latest` names; none when it is absent. A damaged link (not a
// symlink, not naming a published backup) is Corrupt, with the remedy.
Result<std::optional<std::string>> latest_backup(const Store& store);
// `latest` as found: the backup it names, or what is wrong with it.
struct LatestLink {
    std::optional<std::string> id; // a published backup; none when absent or damaged
    std::string damage;            // "" when absent or good
    bool directory = false;        // damaged by being a directory: nothing can rename over it
};
Result<LatestLink> read_latest(const Store& store);
// A damaged `latest` as an error (Corrupt): what is wrong, and how to set it right.
Error latest_error(const Store& store, const LatestLink& l);
// NotFound when there is no such generation; Corrupt when it is damaged: not a
// directory, its metadata unreadable (read_metadata_file) or naming another id.
Result<BackupMetadata> read_metadata(const Store& store, const std::string& id);
// Every generation's metadata, oldest first; one that cannot be read is the error.
Result<std::vector<BackupMetadata>> read_all_metadata(const Store& store);

// `id` when given and not empty, else the latest backup (NotFound when there is none).
Result<std::string> backup_or_latest(const Store& store, const std::optional<std::string>& id);

// A new id: UTC time "YYYYMMDDTHHMMSSZ", with "-N" appended when taken.
std::string make_backup_id(std::time_t now, const std::vector<std::string>& existing);
bool valid_backup_id(const std::string& id);
// Order two ids (by time, then by -N suffix); <0, 0, >0.
int compare_backup_ids(const std::string& a, const std::string& b);
// An id asked for (backup --id, StartBackup's "id") against the generations there
// are: well formed, at most a day ahead of `now`, not taken, not before the newest
// (ids are the generations' order). InvalidArgs naming the rule otherwise.
Result<> check_requested_backup_id(const std::string& id, const std::vector<std::string>& existing, std::time_t now);

// Delete one generation (list_generations). Deleting the latest moves `latest` to the
// next newest backup first; deleting the only backup needs `allow_last`.
// retire_backup + remove_retired.
Result<> delete_backup(const Store& store, const std::string& id, bool allow_last = false);
// The first half: the checks, `latest`, then the generation renamed to kDeletedPrefix<id>
// (durably): no longer a backup, its metadata still readable. Returns that name.
Result<std::string> retire_backup(const Store& store, const std::string& id, bool allow_last = false);
// The second half: the retired generation's tree goes.
Result<> remove_retired(const Store& store, const std::string& name);

// Keep the newest `keep` backups (list_backups: what is not one is neither counted
// nor removed); never the one `latest` names, nor those in `spare` (the watchdog's).
// `retired` is called with each id between retire_backup and remove_retired.
Result<std::vector<std::string>> prune_backups(const Store& store, unsigned keep,
                                               const std::vector<std::string>& spare = {},
                                               const std::function<void(const std::string&)>& retired = {});

// Remove the staging directories left behind by an interrupted backup or delete
// (backup_removal's remove_leftovers first releases the pins they record).
Result<unsigned> remove_stale_staging(const Store& store);
// The temporaries of killed atomic writes (is_atomic_write_temp) in <mount> and
// <mount>/recovery, once older than ten minutes; for a writer that holds the lock.
Result<unsigned> remove_stale_store_temporaries(const Store& store);

} // namespace ur
