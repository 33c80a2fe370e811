// The platform rollback decision (prior art 1.6, W4) as a pure function: from
// the deployment list and the deployment a backup recorded, decide what makes
// the recorded deployment the one the bootloader starts next. No I/O here;
// ostree_state.hpp loads the list with libostree and applies the plan.
//
// The table, extended:
//   recorded is the default (index 0)        -> Nothing
//   recorded is the rollback (index 1)       -> Rollback: make it the default
//   recorded is further down                 -> UndeployThenRollback: remove the
//                                               standby deployments between the
//                                               default and it, then Rollback
//   recorded is gone / is the staged one     -> Refuse
//   a pinned or the booted deployment lies
//   between the default and the recorded one -> Refuse (see below)
// A staged deployment (an upgrade waiting to be finalized at shutdown) is
// dropped by every plan that is not refused, so the reboot cannot finalize it;
// "Nothing" with a staged deployment therefore still changes something
// (drop_staged is set).
//
// Never removed: pinned deployments (a pin is someone's explicit request to
// keep it; `ostree admin undeploy` ignores pins, we do not) and the booted
// deployment (libostree refuses that anyway). When reaching the recorded
// deployment would need either removed, the plan refuses and names it with
// the command that unblocks it, instead of guessing which pin matters.
// Deployments after the recorded one are left alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ur
{

struct DeploymentInfo {
    std::string osname;
    std::string checksum;
    int serial = 0;
    int index = 0; // position in the list libostree returns (staged first)
    bool pinned = false;
    bool booted = false;
    bool staged = false;

    std::string id() const; // "<checksum>.<serial>", as in ostree/deploy/<os>/deploy/
};

// What a backup recorded (OstreeRecord's identity fields).
struct DeploymentRef {
    std::string osname;
    std::string checksum;
    int serial = 0;

    std::string id() const;
};

// Whether a deployment is the one a backup recorded (osname, checksum and serial).
bool same_deployment(const DeploymentInfo& d, const DeploymentRef& r);

enum class RollbackAction { Nothing, Rollback, UndeployThenRollback, Refuse };

// "nothing", "rollback", "undeploy-then-rollback", "refuse"
std::string_view rollback_action_name(RollbackAction a);

struct RollbackPlan {
    RollbackAction action = RollbackAction::Refuse;
    std::string reason;                        // one sentence: why this action (or why refused)
    DeploymentRef recorded;                    // what the backup recorded
    std::optional<DeploymentInfo> target;      // the recorded deployment as found in the list
    std::optional<DeploymentInfo> drop_staged; // staged deployment to drop first
    std::vector<DeploymentInfo> undeploy;      // standby deployments to remove, index order
    std::vector<DeploymentInfo> new_order;     // the list after applying, old indexes (empty when refused)
    bool reboot_needed = false;                // the recorded deployment is not the booted one
    std::vector<std::string> notes;            // warnings that do not change the decision
    std::vector<DeploymentInfo> deployments;   // the list the plan was computed from

    // True when applying writes anything (a staged deployment counts).
    bool changes() const
    {
        return action == RollbackAction::Rollback || action == RollbackAction::UndeployThenRollback ||
               drop_staged.has_value();
    }
};

// `deployments` in index order as libostree lists them (a staged deployment,
// if any, first).
RollbackPlan plan_rollback(const std::vector<DeploymentInfo>& deployments, const DeploymentRef& recorded);

// Human-readable plan (several lines, ends with a newline), and its JSON form:
// {"action": "nothing"|"rollback"|"undeploy-then-rollback"|"refuse", "reason",
//  "recorded": {osname, checksum, serial, id}, "target": D|null,
//  "drop_staged": D|null, "undeploy": [D], "new_order": [D], "changes",
//  "reboot_needed", "notes": [string], "deployments": [D]}
// where D = {index, osname, checksum, serial, id, pinned, booted, staged}.
std::string rollback_plan_text(const RollbackPlan& plan);
std::string rollback_plan_json(const RollbackPlan& plan);

} // namespace ur
