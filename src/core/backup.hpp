// Taking a backup: one new immutable generation on the recovery partition.
//
// Order: lock -> recovery guard -> clean stale staging -> space check (from the
// real copy set, counting what will be shared) -> ostree pin -> etcd snapshot
// into staging -> trees and MachineConfig extras -> manifest + metadata ->
// syncfs -> rename staging to backups/<id> -> switch `latest` -> prune.
// The previous generation is never touched before the new one is published (W2).
// With dry_run it stops after the space check and returns its numbers, a
// result whose estimate may not fit, without the no-space error.
#pragma once

#include "config.hpp"
#include "metadata.hpp"
#include "progress.hpp"

#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct BackupOptions {
    std::string root = "/";
    bool force_dirty = false;      // etcd: pass --force (recorded as dirty, W12)
    std::optional<std::string> id; // fixed id instead of the time (tests)
    bool dry_run = false;          // stop after the space check; write nothing
};

// The space check's numbers (W17): what a backup would write now, from the
// real copy set and excludes, counting what it shares with the latest backup.
struct BackupEstimate {
    std::string store;    // the backup directory (the partition's mount point)
    std::string previous; // the generation compared against ("" for none)
    std::string unshared; // with none: why ("no earlier backup", sharing off, its manifest damaged)
    uint64_t entries = 0; // names in the copy set
    uint64_t total_bytes = 0;
    uint64_t new_files = 0; // regular files to copy (changed or new)
    uint64_t new_bytes = 0; // their allocated size
    uint64_t shared_bytes = 0;
    uint64_t cluster_bytes = 0;  // etcd snapshot and static pod resources
    uint64_t images_bytes = 0;   // control-plane images to copy (images.backup; skopeo inspect sizes)
    uint64_t metadata_bytes = 0; // inodes, directories, manifest
    uint64_t margin_bytes = 0;   // backup.free_space_margin
    uint64_t need_bytes = 0;     // the sum of the five above
    uint64_t free_bytes = 0;     // available on the partition now
    // The earlier tooling's backup on the partition (earlier_tooling.hpp): what it
    // holds and how to remove it, said where space is short; "" when there is none.
    std::string earlier_backup;
    bool fits() const { return need_bytes <= free_bytes; }
};

// The no-space error of a backup that does not fit, with every number (W17).
Error no_space_error(const BackupEstimate& e);

struct BackupResult {
    BackupMetadata meta;
    std::vector<std::string> pruned;   // generations removed by retention
    std::vector<std::string> unpinned; // ostree deployments whose pin went with them
    BackupEstimate estimate;           // dry_run only
};

Result<BackupResult> run_backup(const Config& cfg, const BackupOptions& opts, Progress& progress,
                                const CancelToken& cancel);

} // namespace ur
