// The files the tooling upgrade-recovery replaces (prior art A1/A2: the launchBackup
// Job and its upgrade-recovery.sh) left on the recovery partition. A node moved over
// with the day-2 MachineConfig keeps its partition, and them:
//   <mount>/progress              the old script's recovery in progress (one stage per line)
//   <mount>/cluster/ etc/ usrlocal/ local/ kubelet/ extras.tgz etc.exclude.list
//                                 the old script's backup (A2 has local/ for usrlocal/)
//   <mount>/upgrade-recovery.sh   the old script, where our compatibility script goes
// They are not ours: never read as a backup and never deleted. The old script's
// recovery in progress refuses a backup, as the old Job's own guard did (a backup now
// would also put our script in place of the one that recovery resumes with), and the
// start of ours (arm, recover, its dry run, watchdog start): two would restore over
// each other; a watchdog that fires meanwhile is removed instead of arming ours. The old
// backup's space is named where space is short. The old script is kept as
// upgrade-recovery.sh.earlier when ours takes its place, so the old backup stays
// restorable by hand.
#pragma once

#include "error.hpp"
#include "store.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

inline constexpr const char* kEarlierProgressFile = "progress";
inline constexpr const char* kEarlierScriptKept = "upgrade-recovery.sh.earlier";

struct EarlierFiles {
    std::vector<std::string> backup;     // the old backup's names present, in the order above
    std::optional<std::string> progress; // the progress file's stages, ", "-joined ("" when empty)
    // The old script's name on the store, looked for only with `progress`: the kept
    // upgrade-recovery.sh.earlier, else upgrade-recovery.sh while it is not ours.
    std::optional<std::string> script;
    bool any() const { return !backup.empty() || progress; }
};

// What of it is on the store; cheap (a few lstat and one small read).
Result<EarlierFiles> find_earlier_files(const Store& store);

// The space the old backup's files hold (allocated blocks; hard links counted once).
Result<uint64_t> earlier_backup_bytes(const Store& store, const EarlierFiles& f);

// The refusal of what `refused` names ("backups are refused while it runs, as ...")
// while the old script's recovery is in progress.
Error earlier_recovery_refusal(const Store& store, const EarlierFiles& f, const std::string& refused);
inline constexpr const char* kEarlierRefusesBackup =
    "backups are refused while it runs, as they would replace the script it resumes with";
inline constexpr const char* kEarlierRefusesRecovery =
    "a recovery of upgrade-recovery is refused while it runs, as it would restore over the one in progress";
inline constexpr const char* kEarlierRefusesWatchdog =
    "a watchdog is refused while it runs, as it would arm a recovery of upgrade-recovery over the one in progress";
inline constexpr const char* kEarlierRefusesBoth = "backups and recoveries of upgrade-recovery are refused while it "
                                                   "runs (a backup would replace the script it resumes with)";
// RecoveryInProgress (earlier_recovery_refusal) while the old script's recovery is in progress.
Result<> check_no_earlier_recovery(const Store& store, const std::string& refused);

// The note that the old backup is there and how to remove it; `bytes` when known.
std::string earlier_backup_note(const Store& store, const EarlierFiles& f, std::optional<uint64_t> bytes);

// Before our compatibility script is written: an upgrade-recovery.sh that is not ours
// is renamed to upgrade-recovery.sh.earlier (once: an existing .earlier is kept).
// Returns whether it renamed one.
Result<bool> keep_earlier_script(const Store& store);

} // namespace ur
