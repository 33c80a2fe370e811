// etcd snapshot and static pod resources, into backups/<id>/cluster/.
#pragma once

#include "config.hpp"
#include "metadata.hpp"
#include "progress.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace ur
{

// The static pods whose revision directories cluster-backup.sh puts into its
// tarball, and that cluster-restore.sh takes the manifests from.
inline constexpr std::array<const char*, 4> kStaticPods = {"kube-apiserver-pod", "kube-controller-manager-pod",
                                                           "kube-scheduler-pod", "etcd-pod"};

// etcd.mode with "auto" resolved against the host: "script" when the
// cluster-backup script exists under root, else "etcdctl" when endpoints are
// configured, else "off". An unknown mode resolves to "off".
std::string resolve_etcd_mode(const Config& cfg, const std::string& root);

// Whether etcd.mode (after resolving "auto") asks for a cluster backup.
bool cluster_backup_enabled(const Config& cfg, const std::string& root);

// Bytes the cluster backup will need (etcd db size + static pod resources).
Result<uint64_t> estimate_cluster_backup(const Config& cfg, const std::string& root);

// What backup_cluster refuses before it runs anything, with the same errors: an
// unknown etcd.mode, the script mode without an executable script, the etcdctl
// mode without etcd.endpoints. Writes nothing, asks no cluster (backup --dry-run).
Result<> check_cluster_backup(const Config& cfg, const std::string& root);

// Take and independently verify the snapshot (W13). `cluster_dir` is an absolute path.
// script mode: <root><cluster_backup_script> [--force] <cluster_dir>, which must leave exactly one
// snapshot_<ts>.db and one static_kuberesources_<ts>.tar.gz. etcdctl mode: `etcdctl snapshot save`
// plus our own tarball of the static pod revisions the manifests reference (as cluster-backup.sh
// does), under the same names so cluster-restore.sh finds them. Both are bounded by etcd.timeout
// and `cancel`. With force_dirty or etcd.force the names get __POSSIBLY_DIRTY__ and dirty=true (W12).
// Verification failures are ErrorKind::Corrupt; files this call created are removed on failure.
Result<ClusterRecord> backup_cluster(const Config& cfg, const std::string& root, const std::string& cluster_dir,
                                     bool force_dirty, const CancelToken& cancel);

struct SnapshotStatus {
    std::string sha256; // of the whole file
    uint64_t size = 0;
    uint32_t hash = 0; // etcdctl snapshot status "hash" (crc32 of the db)
    int64_t revision = 0;
    int64_t total_keys = 0;
};

// Verify an etcd snapshot file independently of whoever wrote it: `etcdctl snapshot status -w json`
// must read it, and its last 32 bytes must be the sha256 of the bytes before them (what
// `etcdctl snapshot restore` checks). Corrupt when either fails. etcdctl is cfg.etcdctl (an absolute
// path is taken under root), else looked up in PATH and <root><static_pod_resources>/bin.
Result<SnapshotStatus> verify_etcd_snapshot(const Config& cfg, const std::string& root, const std::string& file,
                                            const CancelToken& cancel);

} // namespace ur
