// The daemon's small durable record of its current or last job, so a job cut
// short by SIGKILL, a crash or a power cut is reported by the next start
// (LastError + a kJobInterrupted journal event) instead of vanishing, and job
// numbers keep rising across idle exits (a client never sees a reused path).
//
// <root>/var/lib/upgrade-recovery/daemon-state, "key=value" lines, written with
// write_file_atomic_at (temp, fsync, rename, fsync dir).
#pragma once

#include "error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace ur::dbus
{

inline constexpr const char* kStateDir = "/var/lib/upgrade-recovery";
inline constexpr const char* kStateFile = "daemon-state";

struct JobRecord {
    uint32_t id = 0;
    std::string type;       // "backup", "verify", "recovery", "delete"
    std::string state;      // a Manager State value
    std::string backup_id;  // the backup it made or worked on
    std::string error_name; // D-Bus error name when it failed
    std::string message;
    int64_t started = 0; // CLOCK_REALTIME seconds
    int64_t finished = 0;

    bool terminal() const;
};

struct DaemonState {
    uint32_t last_job_id = 0;
    std::optional<JobRecord> job;
    // The Manager's State result and LastError as the last job left them: the job
    // record alone cannot give them (a DeleteBackup is not a State job).
    std::optional<std::string> result; // "Succeeded", "Timeout" or "Error"; none in an older file
    std::string last_error_name;
    std::string last_error;
};

std::string format_state(const DaemonState& s);
Result<DaemonState> parse_state(std::string_view text);

// Missing file: an empty state. `root` is the --root prefix.
Result<DaemonState> load_state(const std::string& root);
Result<> save_state(const std::string& root, const DaemonState& s);

// The last job number to count on from when the record cannot be read (damaged,
// unreadable): above every number an earlier instance may have given out, which a
// client may still hold as a path and the journal names (JOB=). The highest
// number still legible in `text` (what is left of the file), or the clock in
// seconds when that is higher (counting from 1 again could only reach it at more
// than a job a second since the last reset; a clock reset to the past still
// leaves the legible numbers).
uint32_t job_numbers_after_damage(std::string_view text, int64_t now);
// The same, reading what is left of the record under `root` (nothing: the clock).
uint32_t job_numbers_after_damage(const std::string& root, int64_t now);

} // namespace ur::dbus
