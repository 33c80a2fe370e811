// Everything `status` and `metrics` show of a store, read without the lock: every
// file in it is replaced atomically, so a reader sees the old or the new state. A
// part that cannot be read is kept as its error, so the rest is still shown.
#pragma once

#include "backup_attempt.hpp"
#include "error.hpp"
#include "metadata.hpp"
#include "recovery_journal.hpp"
#include "store.hpp"
#include "upgrade_watchdog.hpp"

#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct StoreStatus {
    std::vector<std::string> backups;             // ids, oldest first
    std::vector<std::string> damaged;             // named like backups but none (list_backups): `list` says why
    std::vector<UnreadableGeneration> unreadable; // metadata that cannot be read now (EACCES, EIO)
    std::optional<std::string> latest_id;
    std::optional<BackupMetadata> latest;
    std::optional<Error> latest_error; // `latest` damaged (no latest_id), or its metadata unreadable
    std::optional<BackupAttempt> last_attempt;
    std::optional<Error> last_attempt_error;
    std::optional<RecoveryJournal> journal;    // the current (or last finished) recovery
    std::optional<std::string> armed;          // backup id
    std::optional<std::string> phase2_pending; // recovery id
    std::optional<Error> recovery_error;
    std::optional<WatchdogState> watchdog;
    std::optional<Error> watchdog_error;
    // The watchdog as this boot sees it (read_boot_clock, watchdog_outlook).
    std::optional<WatchdogOutlook> watchdog_outlook;
    // What the earlier tooling left on the partition (earlier_tooling.hpp), as
    // warnings: its recovery in progress, its backup. Files that cannot be looked
    // at are said there too.
    std::vector<std::string> earlier_tooling;
    bool earlier_recovery = false; // its recovery's progress file is there (backups and recoveries refused)

    // The first unreadable part, in the order above.
    const Error* first_error() const;
    // What `status` and `metrics` exit with: first_error's kind, else Corrupt for a
    // directory named like a backup that is none (`list` exits 7 for it too); none
    // when everything reads.
    std::optional<ErrorKind> problem() const;
    // What problem() is about, in words ("" when there is none).
    std::string problem_message() const;
};

// Fails only when the list of backups, or the `latest` link, cannot be read.
// `watchdog_max_boots`: the configured limit the watchdog's outlook counts against.
Result<StoreStatus> read_store_status(const Store& store, unsigned watchdog_max_boots);

} // namespace ur
