// etcd snapshot and static pod resources, into backups/<id>/cluster/.
#pragma once

#include "config.hpp"
#include "metadata.hpp"
#include "progress.hpp"

#include <string>

namespace ur {

// Whether etcd.mode (after resolving "auto") asks for a cluster backup.
bool cluster_backup_enabled(const Config& cfg, const std::string& root);

// Bytes the cluster backup will need (etcd db size + static pod resources).
Result<uint64_t> estimate_cluster_backup(const Config& cfg, const std::string& root);

// Take and independently verify the snapshot (W13). `cluster_dir` is an absolute path.
Result<ClusterRecord> backup_cluster(const Config& cfg, const std::string& root, const std::string& cluster_dir,
                                     bool force_dirty, const CancelToken& cancel);

} // namespace ur
