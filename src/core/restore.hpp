// Restore engine: make a tree under a root prefix exactly equal to a backup
// generation's manifest, touching only what differs (delta restore).
// Never follows a symlink out of the target root nor writes through one.
#pragma once

#include "config.hpp"
#include "progress.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ur
{

struct RestoreOptions {
    std::string target_root = "/";             // "/", "/sysroot", or a test directory
    std::vector<std::string> trees;            // tree names to restore (empty = all in the backup)
    std::vector<std::string> etc_excludes;     // relative to the etc tree; honoured when restoring "etc"
    bool checksum = false;                     // compare contents too, not only size+mtime
    bool dry_run = false;                      // report, change nothing
    bool remove_stale_mc_files = true;         // W19: MC files absent at backup time are removed
    std::vector<std::string> current_mc_files; // MC-managed paths now on the host (for W19)
};

struct RestoreChange {
    std::string action; // "create", "update", "metadata", "delete", "replace"
    std::string path;   // absolute path in the target
};

struct RestoreStats {
    uint64_t examined = 0;
    uint64_t created = 0;
    uint64_t updated = 0;  // content rewritten
    uint64_t metadata = 0; // metadata only
    uint64_t deleted = 0;
    uint64_t bytes_written = 0;
    std::vector<RestoreChange> changes; // filled in dry-run mode (and capped otherwise)
};

// `backup_dir` is the absolute path of backups/<id> on the partition.
Result<RestoreStats> restore_backup(const std::string& backup_dir, const RestoreOptions& opts, Progress& progress,
                                    const CancelToken& cancel);

} // namespace ur
