// Taking a backup: one new immutable generation on the recovery partition.
//
// Order: lock -> recovery guard -> clean stale staging -> space check (from the
// real copy set, counting what will be shared) -> ostree pin -> etcd snapshot
// into staging -> trees and MachineConfig extras -> manifest + metadata ->
// syncfs -> rename staging to backups/<id> -> switch `latest` -> prune.
// The previous generation is never touched before the new one is published (W2).
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
};

struct BackupResult {
    BackupMetadata meta;
    std::vector<std::string> pruned; // generations removed by retention
};

Result<BackupResult> run_backup(const Config& cfg, const BackupOptions& opts, Progress& progress,
                                const CancelToken& cancel);

} // namespace ur
