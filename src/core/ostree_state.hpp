// ostree deployments, through libostree (never by running ostree/rpm-ostree).
//
// Which sysroot: <root><ostree.sysroot> (default /sysroot). On a live
// ostree-booted host (root "/", /run/ostree-booted, and /ostree is that
// sysroot's ostree/) libostree is pointed at "/" instead, the way rpm-ostree
// does it: only then does it see the booted deployment, the staged one
// (/run/ostree/staged-deployment) and the /boot partition.
//
// Which deployment is booted: config ostree.booted ("<checksum>.<serial>", a
// test seam) when set, else what libostree reports.
//
// Read-only mounts: /sysroot (and a separate /boot) are usually read-only
// mounts. Operations that write remount them read-write (only the mount, or
// also the superblock when that is read-only) and put them back on every exit
// path; the restore is checked and reported on the normal path.
#pragma once

#include "config.hpp"
#include "metadata.hpp"
#include "rollback_plan.hpp"

#include <functional>
#include <string>
#include <vector>

namespace ur
{

// Whether ostree handling is on: ostree.mode "on" -> true, "off" -> false,
// "auto" -> <root><sysroot>/ostree/repo exists.
bool ostree_enabled(const Config& cfg, const std::string& root);

// Before a backup: find the booted deployment (not index 0, W4), pin it, drop
// a staged deployment and the unpinned standby deployments; never remove a
// pinned one. The booted deployment keeps its place relative to the kept ones
// (the default may change only because unpinned ones before it go).
// Returns what metadata records. `before_pin`, when set, is called with the
// record of the pin about to be made (only when this call makes one) and must
// make it durable where a clean-up finds it: a process killed right after the
// pin could otherwise leave a pin that no backup records. Its error is returned
// before anything is pinned.
using BeforePin = std::function<Result<>(const OstreeRecord&)>;
Result<OstreeRecord> ostree_prepare_for_backup(const Config& cfg, const std::string& root,
                                               const BeforePin& before_pin = {});

// What ostree_prepare_for_backup refuses before it changes anything (no
// sysroot, no booted deployment), with the same errors. Read-only: no lock, no
// remount (backup --dry-run).
Result<> ostree_check_for_backup(const Config& cfg, const std::string& root);

// Unpin the deployments `released` names (osname, checksum, serial) that are
// still deployed and pinned; the others are skipped. Nothing is undeployed:
// the next backup's prepare (or rpm-ostree's cleanup) removes an unpinned
// standby deployment. Returns "<checksum>.<serial>" of each one unpinned.
Result<std::vector<std::string>> ostree_release_pins(const Config& cfg, const std::string& root,
                                                     const std::vector<OstreeRecord>& released);

// The deployment list as libostree loads it (staged first), booted per the
// rules above. Read-only: no lock, no remount.
Result<std::vector<DeploymentInfo>> ostree_list_deployments(const Config& cfg, const std::string& root);

// The rollback decision (rollback_plan.hpp) for the deployment a backup
// recorded, from the current deployment list. Read-only. A record with
// present == false gives a refused plan, not an error.
Result<RollbackPlan> compute_rollback_plan(const Config& cfg, const std::string& root, const OstreeRecord& recorded);

struct ApplyResult {
    RollbackPlan plan;                 // as recomputed under the sysroot lock
    bool changed = false;              // deployments were written
    std::vector<std::string> removed;  // "<checksum>.<serial>" removed (staged and undeployed)
    DeploymentInfo default_deployment; // index 0 afterwards: what the bootloader starts next
};

// Recompute the plan under the sysroot lock and apply it: drop the staged
// deployment, remove the standby deployments in the way, make the recorded
// deployment the default. Refused (ErrorKind::Refused, the plan's reason) when
// the plan refuses. Applying an applied plan changes nothing.
Result<ApplyResult> apply_rollback_plan(const Config& cfg, const std::string& root, const OstreeRecord& recorded);

} // namespace ur
