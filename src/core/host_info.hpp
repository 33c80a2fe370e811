// Facts about the host recorded with a backup, read without any API.
#pragma once

#include "config.hpp"
#include "metadata.hpp"

#include <ctime>
#include <string>
#include <vector>

namespace ur
{

// The kernel's id of this boot (empty when unreadable); `path` is a test seam.
std::string read_boot_id(const std::string& path = "/proc/sys/kernel/random/boot_id");

// Is `pid` of boot `boot_id` still an upgrade-recovery process (the CLI or the daemon)?
// What a record of a run (last-backup.json, the recovery journal) is checked with to
// tell a run at work from one that was killed: false once the boot or the process is gone
// (a zombie, exited but not yet reaped, counts as gone).
bool upgrade_recovery_process_running(int64_t pid, const std::string& boot_id);

// <root>/etc/machine-id: the installation's identity (systemd writes it at the first
// boot; it stays through upgrades). Empty when missing, unreadable or not yet set.
std::string machine_id_of(const std::string& root);

// Empty when the backup may be restored into `root` as far as its identity goes;
// else why not: it was taken on another installation (both machine-ids known and
// different), so restoring it would give this node another node's /etc
// (certificates, kubelet identity, etcd member).
std::string other_installation_problem(const BackupMetadata& m, const std::string& root);

// OpenShift version and release image (or why unknown), kubelet certificate expiry.
OpenShiftRecord read_openshift_info(const Config& cfg, const std::string& root);

// When the kubelet certificates a backup holds expired before `now` (feature 34: the
// end of its rollback availability), what that means for recovering to it; empty
// otherwise, and when the expiry is unknown.
std::string expired_certificates_warning(const BackupMetadata& m, std::time_t now);

// After the trees were copied: does the backup hold cluster-restore.sh and the etcd scripts (W18)?
void check_backup_tools(OpenShiftRecord& rec, const std::string& staging_dir);

// /etc paths (relative to /etc) named in /etc/tmpfiles.d/*, plus ".updated" and
// "kubernetes/manifests": left alone when /etc is restored.
Result<std::vector<std::string>> compute_etc_excludes(const std::string& root);

} // namespace ur
