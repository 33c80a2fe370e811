// The outcome of the last backup that reached the store, in <mount>/last-backup.json
// (W20, prior-art feature 32): a file a hub, an agent or a person can read when
// stdout is gone, a failed attempt included (the journal has it too, but a failed
// backup leaves nothing else on the partition). Written under the store lock:
// "running" when the attempt starts, then "succeeded" or "failed". A "running"
// whose process is gone (killed, power cut) reads as "interrupted".
#pragma once

#include "error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace ur
{

inline constexpr const char* kLastBackupFile = "last-backup.json";

struct BackupAttempt {
    std::string state;     // "running" | "succeeded" | "failed"; readers may see "interrupted"
    std::string backup_id; // once chosen ("" when the attempt failed before)
    std::string started;   // RFC 3339
    std::string finished;  // RFC 3339, "" while running
    double duration_seconds = 0;
    std::string error_kind; // error_kind_name() of the failure ("NoSpace", "Timeout", ...)
    std::string error;      // its message
    int64_t pid = 0;        // of the process taking it, with its boot: tells "interrupted"
    std::string boot_id;
};

std::string backup_attempt_to_json(const BackupAttempt& a);
Result<BackupAttempt> backup_attempt_from_json(std::string_view text);

// Durable (write_file_atomic_at) into the store's mount directory.
Result<> save_backup_attempt(int store_fd, const BackupAttempt& a);
// nullopt when no attempt was recorded; Corrupt when the file is unreadable.
// A "running" attempt whose process no longer runs in this boot comes back as
// "interrupted".
Result<std::optional<BackupAttempt>> load_backup_attempt(int store_fd);

} // namespace ur
