// The recovery journal on the partition (<mount>/recovery/). Every recovery step is
// recorded before it starts and when it ends, written durably, so --resume
// continues after a crash or power cut.
//
//   <mount>/recovery/journal           JSON, replaced atomically (temp, fsync, rename, dir fsync)
//   <mount>/recovery/journal.previous  the journal of the recovery before this one
//   <mount>/recovery/armed             "<backup id>\n": run phase 1 at the next boot (initrd)
//   <mount>/recovery/phase2-pending    "<recovery id>\n": phase 1 done, phase 2 runs after the reboot
#pragma once

#include "error.hpp"
#include "fd.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct Store;

inline constexpr const char* kRecoveryDir = "recovery";
inline constexpr const char* kJournalFile = "journal";
inline constexpr const char* kJournalPrevious = "journal.previous";
// A journal that could not be read, moved aside (never deleted): journal.damaged-<UTC time>[-N].
inline constexpr const char* kJournalDamagedPrefix = "journal.damaged-";
inline constexpr const char* kArmedFile = "armed";
inline constexpr const char* kPhase2PendingFile = "phase2-pending";
// What the cluster looked like when the last live recovery began and ended (for people).
inline constexpr const char* kClusterStatusBefore = "cluster-status.before";
inline constexpr const char* kClusterStatusAfter = "cluster-status.after";

enum class StepState { Pending, Started, Done, Failed, Skipped };
std::string_view step_state_name(StepState s);

// Overall state. Running/Paused/Failed are "in progress" (resumable); Complete
// and Aborted are final results and stay in the journal until the next recovery.
enum class RecoveryState {
    Running,  // a run is at work, or was killed in the middle of a step (resume re-runs it)
    Paused,   // stopped on purpose between steps: --step, or phase 1 done and waiting for the reboot
    Failed,   // the last run stopped at a failed step; --resume retries it
    Complete, // final: phase 2 finished
    Aborted,  // final (result "failed"): refused before any destructive step, or abandoned
};
std::string_view recovery_state_name(RecoveryState s);
bool recovery_state_in_progress(RecoveryState s);

struct JournalStep {
    std::string name;
    StepState state = StepState::Pending;
    std::string started;  // RFC 3339 UTC of the last start
    std::string finished; // RFC 3339 UTC of the last end
    unsigned attempts = 0;
    std::string error;                       // last failure
    std::string note;                        // what it did ("skipped: offline", "412 files changed")
    std::map<std::string, std::string> data; // state a resumed step needs (recorded ids, patch reason)
};

struct RecoveryJournal {
    int format = 1;
    std::string recovery_id; // UTC time "YYYYMMDDTHHMMSSZ" of the start
    std::string backup_id;
    std::string started;
    std::string updated;
    std::string finished;       // set with a final result
    std::string mode;           // phase 1 mode: "live" | "offline" | "initrd"
    std::string root;           // target root of phase 1
    std::string phase1_boot_id; // live phase 1: phase 2 refuses to run in the same boot
    RecoveryState state = RecoveryState::Running;
    // The process that set Running (the CLI, the daemon, phase 2, the initrd) and its boot:
    // recovery_interrupted() tells a run at work from a killed one by them. 0 in older journals.
    int64_t runner_pid = 0;
    std::string runner_boot_id;
    std::string error;                 // the error that failed or aborted it
    bool abandoned = false;            // Aborted by 'recover --abandon' (AbandonRecovery), not refused
    std::vector<std::string> mc_files; // MachineConfig paths on the host before /etc was restored (W19)
    std::vector<JournalStep> steps;    // the whole plan, in order, fixed when the recovery starts

    JournalStep* step(const std::string& name);
    const JournalStep* step(const std::string& name) const;
    // The first step not Done/Skipped, or nullptr when all are.
    const JournalStep* next_step() const;
    // "complete" | "failed" for final states, "" while in progress.
    std::string result() const;
};

// What JournalDir::load() appends to a damaged journal's message: the way out for
// people on the running host. strip_journal_remedy() takes it off again for callers
// that name another (the initramfs, a restart that takes that way itself).
extern const std::string kDamagedJournalRemedy;
std::string strip_journal_remedy(std::string message);

std::string journal_to_json(const RecoveryJournal& j, int indent = 2);
Result<RecoveryJournal> journal_from_json(std::string_view text);

// The <mount>/recovery directory of an open store (or any directory in tests).
class JournalDir
{
  public:
    // `create`: make <mount>/recovery (and fsync <mount>) when missing; without it,
    // a missing directory yields an empty JournalDir whose reads find nothing.
    // `where`: the directory's path, for messages.
    static Result<JournalDir> open(int mount_fd, bool create, std::string where = kRecoveryDir);
    static Result<JournalDir> open(const Store& store, bool create);

    bool exists() const { return static_cast<bool>(fd_); }
    int fd() const { return fd_.get(); }
    // "<mount>/recovery/journal": what a message about the journal names.
    const std::string& path() const { return path_; }
    std::string journal_path() const { return path_ + "/" + kJournalFile; }

    // A journal that cannot be read as one is Corrupt, its path and the remedy named.
    Result<std::optional<RecoveryJournal>> load() const;
    // Renames a damaged journal to journal.damaged-<time> (kept for people, never read
    // back); returns that name, empty when there was no journal.
    Result<std::string> move_damaged_aside() const;
    // Stamps `updated` and writes durably.
    Result<> save(RecoveryJournal& j) const;
    // A copy of journal as journal.previous (a new recovery begins; its save replaces journal).
    Result<> keep_as_previous() const;

    Result<std::optional<std::string>> armed() const; // backup id
    Result<> set_armed(const std::string& backup_id) const;
    Result<> clear_armed() const;

    Result<std::optional<std::string>> phase2_pending() const; // recovery id
    Result<> set_phase2_pending(const std::string& recovery_id) const;
    Result<> clear_phase2_pending() const;

  private:
    Result<std::optional<std::string>> read_marker(const char* name) const;
    Result<> remove_marker(const char* name) const;
    UniqueFd fd_;
    std::string path_ = kRecoveryDir;
};

// True while a recovery has started and not finished (complete or abandoned):
// backups are refused then (RecoveryInProgress). `armed` and `phase2-pending`
// count as started: the initrd starts an armed recovery at the next boot, and a
// backup taken now could prune the generation it is armed with.
Result<bool> recovery_in_progress(const Store& store);

// Refused when a recovery still needs backup `id`: it is armed, or it is the
// backup of a recovery in progress (phase 2 reads its cluster artefacts after
// phase 1 has cleared `armed`). remove_backup() (backup_removal), which every
// front end deletes through, checks this, and the upgrade watchdog's backup.
Result<> check_backup_deletable(const Store& store, const std::string& id);

// Arm phase 1 for the next boot (the initrd unit runs it). The backup must exist;
// refused while another backup's recovery is in progress.
Result<> arm_recovery(const Store& store, const std::string& backup_id);
// Remove `armed`, also a damaged one. A recovery already past phase 1 is not affected.
struct Disarmed {
    std::optional<std::string> backup_id; // what was armed
    std::string damaged;                  // or what was wrong with the marker removed
};
Result<Disarmed> disarm_recovery(const Store& store);
// Give up an in-progress recovery: the journal gets the final result "failed"
// (Aborted) and the markers are removed, so backups are possible again.
// A damaged journal (Corrupt) is refused unless `force`: then it is moved aside
// (journal.damaged-<time>) after the markers, since what it was doing cannot be read.
struct Abandoned {
    bool abandoned = false;                 // false: nothing to give up (no recovery in progress, no marker)
    std::string damaged_kept;               // the damaged journal's new name in recovery/, when it was moved aside
    std::optional<RecoveryJournal> journal; // the recovery given up: its steps say what it left on the host
};
Result<Abandoned> abandon_recovery(const Store& store, const std::string& reason, bool force = false);

// Running, but the process that set it is gone (killed, a crash, a power cut: the
// boot changed): nothing works on it until `recover --resume` or the initramfs does.
// A journal that names no runner (written by an older version) cannot tell: false.
bool recovery_interrupted(const RecoveryJournal& j);

// What `upgrade-recovery status`, `metrics` and the daemon's RecoveryState show.
struct RecoveryStatus {
    bool in_progress = false;
    bool interrupted = false;                  // the journal's Running run is gone (recovery_interrupted)
    std::optional<std::string> armed;          // backup id
    std::optional<std::string> phase2_pending; // recovery id
    std::optional<RecoveryJournal> journal;    // the current (or last finished) recovery
    std::string summary;                       // one line: "phase 2 running: wait-etcd (attempt 2)", "complete at ..."
    std::string next;                          // what the operator or the node does next, empty when nothing
    std::optional<Error> unreadable;           // the first part that could not be read (damage); the rest counts
};

// Each part (journal, armed, phase2-pending) read on its own: one that cannot be
// read is named in `unreadable` and the others still count. Fails only when the
// recovery directory itself cannot be opened.
Result<RecoveryStatus> read_recovery_status(const Store& store);
RecoveryStatus make_recovery_status(std::optional<RecoveryJournal> journal, std::optional<std::string> armed,
                                    std::optional<std::string> phase2);
std::string recovery_status_to_json(const RecoveryStatus& s);
std::string recovery_status_to_text(const RecoveryStatus& s);
// The one word for it, as the daemon's RecoveryState property says it: None, Armed,
// Running, Interrupted, Paused, Failed, Phase2Pending, Complete, Aborted; Unknown
// when nothing was readable but something could not be read.
std::string recovery_state_label(const RecoveryStatus& s);

// RFC 3339 UTC "2024-05-01T12:00:00Z"; with `nanos`, "2024-05-01T12:00:00.123456789Z".
std::string rfc3339_now(bool nanos = false);

} // namespace ur
