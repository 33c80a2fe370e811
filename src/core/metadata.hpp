// Backup metadata: backups/<id>/metadata.toml, a TOML data file in the spirit
// of RAUC's manifest and fwupd's history: what was backed up, from which host
// and release, and whether it can be trusted.
#pragma once

#include "error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ur
{

// A generation's own names beside its trees (backups/<id>/<tree name>/...).
inline constexpr const char* kMetadataFile = "metadata.toml";
inline constexpr const char* kManifestFile = "manifest";
inline constexpr const char* kClusterDir = "cluster";
// The tree the backup adds for the MachineConfig files outside the others.
inline constexpr const char* kExtrasTree = "extras";
// The OCI image layout of the control-plane images (images.backup), beside the
// trees and in the same manifest, so verify reads it like any tree. Restore
// never writes it to the host: it restores the metadata's trees only.
inline constexpr const char* kImagesDir = "images";

// Why `name` cannot be a tree's directory in a generation ("" when it can): a
// plain name, not hidden (temporaries start with '.'), and none of the names above.
std::string tree_name_problem(std::string_view name);

struct TreeRecord {
    std::string name;                 // "etc"
    std::string path;                 // "/etc"
    uint64_t files = 0;               // entries of all types
    uint64_t bytes = 0;               // logical size of regular files
    std::vector<std::string> exclude; // backup.trees.exclude at backup time: left alone by a restore
};

struct OstreeRecord {
    bool present = false; // false: not an ostree host (or ostree.mode = off)
    std::string osname;   // stateroot
    std::string checksum;
    int serial = 0;
    std::string version; // from the commit metadata, may be empty
    std::string kernel_args;
    bool pinned = false;
    // The pin is ours: this backup (or an earlier one of the same deployment) set
    // it. Released when no backup records the deployment any more; an
    // administrator's own pin is never touched.
    bool pinned_by_backup = false;
    std::vector<std::string> removed; // "<checksum>.<serial>" of standby deployments removed
};

struct ClusterRecord {
    bool present = false;        // false: etcd.mode = off
    std::string method;          // "script" | "etcdctl"
    bool dirty = false;          // taken with --force while the cluster may be progressing (W12)
    std::string snapshot;        // file name inside cluster/
    std::string snapshot_sha256; // of the whole file
    uint64_t snapshot_size = 0;
    uint32_t snapshot_hash = 0; // etcdctl snapshot status "hash"
    int64_t revision = 0;
    int64_t total_keys = 0;
    std::string static_resources; // file name inside cluster/
    std::string static_resources_sha256;
};

struct OpenShiftRecord {
    std::string version;              // empty: unknown
    std::string release_image;        // empty: unknown
    std::string version_source;       // where it was read, or why unknown
    std::string cert_expiry;          // RFC 3339, earliest kubelet client/server NotAfter; empty: unknown
    bool has_cluster_restore = false; // usrlocal/bin/cluster-restore.sh inside the backup (W18)
    bool has_etcd_scripts = false;    // etcd-scripts directory inside the backup
};

// One control-plane image the backup holds in its OCI layout (images/).
struct HeldImage {
    std::string ref;     // as the static pod manifest names it: "quay.io/x/y@sha256:..."
    std::string tag;     // its name in the layout (index.json's ref.name annotation)
    std::string digest;  // its manifest's digest in the layout
    uint64_t bytes = 0;  // its blobs (manifest, config, layers), a layer shared with another counted in both
    bool shared = false; // hard-linked from the previous generation, not copied again
};

// A layout tag as the backup makes them (image_backup.hpp: the sha256 hex of the ref).
bool image_tag_ok(std::string_view tag);

struct ImagesRecord {
    bool present = false;             // images/ exists and is in the manifest
    uint64_t files = 0;               // entries below images/, the directory included
    uint64_t bytes = 0;               // regular file bytes of the layout (each blob once)
    uint64_t copied_bytes = 0;        // of those, written by this backup
    std::vector<HeldImage> held;      // sorted by ref
    std::vector<std::string> missing; // named by the manifests but not held (the warnings say why)
    const HeldImage* find(const std::string& ref) const;
};

// 2: the file ends with a checksum line (below); 1, read for backups made before
// that line existed, has none.
inline constexpr int kMetadataFormat = 2;

struct BackupMetadata {
    int format = kMetadataFormat; // as read: 1 (older, no checksum line) or 2
    std::string id;
    std::string created; // RFC 3339 UTC
    std::string host;
    std::string machine_id; // <root>/etc/machine-id; empty: unknown (not set, or an older backup)
    std::string tool_version;
    double duration_seconds = 0;
    std::string manifest_sha256;
    uint64_t manifest_entries = 0;
    uint64_t total_bytes = 0;  // logical bytes of all regular files
    uint64_t copied_bytes = 0; // bytes written by this backup
    uint64_t shared_bytes = 0; // bytes hard-linked from the previous generation
    uint64_t shared_files = 0;
    std::string previous; // id of the generation files were shared with
    std::vector<TreeRecord> trees;
    std::vector<std::string> warnings;     // vanished / changed-during-copy files, missing MC files
    std::vector<std::string> mc_files;     // MachineConfig paths outside the trees (W19)
    std::vector<std::string> mc_missing;   // of those, missing at backup time
    std::vector<std::string> etc_excludes; // relative to /etc, applied at restore
    OstreeRecord ostree;
    ClusterRecord cluster;
    OpenShiftRecord openshift;
    ImagesRecord images; // absent in older backups: none held
};

// The text ends with a line "# sha256 <hex>" over everything before it; a format 2
// file without it, or any file whose content does not match it, is Corrupt.
std::string metadata_to_toml(const BackupMetadata& m);
// Damage is Corrupt, named with `name` (the file), the line and the key: TOML
// that does not parse, a key of the wrong type, a negative size or count, a tree
// name that is not a directory of its own in the generation (tree_name_problem).
Result<BackupMetadata> metadata_from_toml(std::string_view text, const std::string& name);
// The metadata file of the generation open at `gen_fd`, shown as `name`: absent,
// not a regular file, or too large is Corrupt too (the generation exists).
Result<BackupMetadata> read_metadata_file(int gen_fd, const std::string& name);

// JSON for --json outputs (CLI) and the daemon.
std::string metadata_to_json(const BackupMetadata& m);

} // namespace ur
