#include "rollback_plan.hpp"

#include "json_text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ur
{

std::string DeploymentInfo::id() const
{
    return checksum + "." + std::to_string(serial);
}
std::string DeploymentRef::id() const
{
    return checksum + "." + std::to_string(serial);
}

std::string_view rollback_action_name(RollbackAction a)
{
    switch (a) {
    case RollbackAction::Nothing: return "nothing";
    case RollbackAction::Rollback: return "rollback";
    case RollbackAction::UndeployThenRollback: return "undeploy-then-rollback";
    case RollbackAction::Refuse: return "refuse";
    }
    return "refuse";
}

namespace
{

std::string name(const DeploymentInfo& d)
{
    return d.osname + " " + d.id();
}

std::string refuse_blocker(const DeploymentInfo& target, const DeploymentInfo& b)
{
    std::string s = "reaching the recorded deployment (index " + std::to_string(target.index) + ") would remove the ";
    if (b.booted) {
        s += "booted deployment " + name(b) + " (index " + std::to_string(b.index) +
             "), which cannot be removed while it runs; boot another deployment first";
    } else {
        s += "pinned deployment " + name(b) + " (index " + std::to_string(b.index) +
             "); a pin is a request to keep it: unpin it (ostree admin pin --unpin " + std::to_string(b.index) +
             ") if it may go, then ask again";
    }
    return s;
}

} // namespace

bool same_deployment(const DeploymentInfo& d, const DeploymentRef& r)
{
    return d.osname == r.osname && d.checksum == r.checksum && d.serial == r.serial;
}

RollbackPlan plan_rollback(const std::vector<DeploymentInfo>& deployments, const DeploymentRef& recorded)
{
    RollbackPlan p;
    p.recorded = recorded;
    p.deployments = deployments;
    auto refuse = [&](std::string why) {
        p.action = RollbackAction::Refuse;
        p.reason = std::move(why);
        p.drop_staged.reset();
        p.undeploy.clear();
        p.new_order.clear();
        p.reboot_needed = false;
        return p;
    };

    if (recorded.checksum.empty()) return refuse("the backup recorded no ostree deployment");
    if (deployments.empty()) return refuse("the sysroot has no deployments");

    auto it = std::find_if(deployments.begin(), deployments.end(),
                           [&](const DeploymentInfo& d) { return same_deployment(d, recorded); });
    if (it == deployments.end()) {
        std::string why = "the recorded deployment " + recorded.osname + " " + recorded.id() + " is gone";
        // A redeploy of the same commit has a new serial and its own /etc: say so, but do not guess.
        for (const auto& d : deployments)
            if (d.osname == recorded.osname && d.checksum == recorded.checksum)
                why += " (" + name(d) + " at index " + std::to_string(d.index) +
                       " is the same commit deployed again; it is not the one the backup was taken from)";
        return refuse(why);
    }
    p.target = *it;
    if (it->staged)
        return refuse("the recorded deployment " + name(*it) +
                      " is the staged one: it was never booted, so it cannot be what the backup was taken from");

    std::vector<DeploymentInfo> finalized;
    for (const auto& d : deployments) {
        if (d.staged)
            p.drop_staged = d;
        else
            finalized.push_back(d);
    }
    size_t pos = 0;
    while (!same_deployment(finalized[pos], recorded))
        ++pos;
    const DeploymentInfo& target = finalized[pos];

    if (pos == 0) {
        p.action = RollbackAction::Nothing;
        p.reason = "the recorded deployment is already the default";
        p.reason += target.booted ? " and the booted one" : "; the next boot starts it";
    } else if (pos == 1) {
        p.action = RollbackAction::Rollback;
        p.reason = "the recorded deployment is the rollback deployment; it becomes the default";
    } else {
        for (size_t i = 1; i < pos; ++i) {
            if (finalized[i].pinned || finalized[i].booted) return refuse(refuse_blocker(target, finalized[i]));
            p.undeploy.push_back(finalized[i]);
        }
        p.action = RollbackAction::UndeployThenRollback;
        p.reason = "the recorded deployment is at index " + std::to_string(target.index) + "; the " +
                   std::to_string(p.undeploy.size()) +
                   " standby deployment(s) after the default are removed so it becomes the rollback, "
                   "then it becomes the default";
    }
    if (p.drop_staged)
        p.reason += "; the staged deployment " + name(*p.drop_staged) + " is dropped so the reboot cannot finalize it";

    // Resulting order: the target first, then everything kept in its old order.
    p.new_order.push_back(target);
    for (size_t i = 0; i < finalized.size(); ++i)
        if (i != pos && (i == 0 || i > pos)) p.new_order.push_back(finalized[i]);

    p.reboot_needed = !target.booted;
    if (!target.pinned) p.notes.push_back("the recorded deployment is not pinned");
    if (std::none_of(deployments.begin(), deployments.end(), [](const DeploymentInfo& d) { return d.booted; }))
        p.notes.push_back("no deployment is marked booted (not an ostree-booted system?)");
    return p;
}

namespace
{

nlohmann::json deployment_json(const DeploymentInfo& d)
{
    return {{"index", d.index}, {"osname", d.osname}, {"checksum", d.checksum}, {"serial", d.serial},
            {"id", d.id()},     {"pinned", d.pinned}, {"booted", d.booted},     {"staged", d.staged}};
}

std::string flags(const DeploymentInfo& d)
{
    std::string s;
    if (d.booted) s += " booted";
    if (d.pinned) s += " pinned";
    if (d.staged) s += " staged";
    return s;
}

} // namespace

std::string rollback_plan_text(const RollbackPlan& p)
{
    std::string s = "Recorded deployment: " +
                    (p.recorded.checksum.empty() ? std::string("none") : p.recorded.osname + " " + p.recorded.id());
    s += "\nDeployments:\n";
    if (p.deployments.empty()) s += "  (none)\n";
    for (const auto& d : p.deployments) {
        s += "  " + std::to_string(d.index) + " " + name(d) + flags(d);
        if (p.target && d.index == p.target->index) s += "  <- recorded";
        s += "\n";
    }
    s += "Action: " + std::string(rollback_action_name(p.action)) + "\n";
    s += "Reason: " + p.reason + "\n";
    if (p.action != RollbackAction::Refuse && p.changes()) {
        s += "Steps:\n";
        int n = 1;
        if (p.drop_staged)
            s += "  " + std::to_string(n++) + ". drop the staged deployment " + name(*p.drop_staged) + "\n";
        for (const auto& u : p.undeploy)
            s += "  " + std::to_string(n++) + ". undeploy " + name(u) + " (index " + std::to_string(u.index) + ")\n";
        if (p.action != RollbackAction::Nothing)
            s += "  " + std::to_string(n++) + ". make " + name(*p.target) + " the default deployment\n";
    }
    if (p.action != RollbackAction::Refuse)
        s += std::string("Reboot needed: ") + (p.reboot_needed ? "yes" : "no") + "\n";
    for (const auto& note : p.notes)
        s += "Note: " + note + "\n";
    return s;
}

std::string rollback_plan_json(const RollbackPlan& p)
{
    nlohmann::json j;
    j["action"] = std::string(rollback_action_name(p.action));
    j["reason"] = p.reason;
    // None recorded (a backup of a host without ostree): null, as the text says "none".
    j["recorded"] = p.recorded.checksum.empty() ? nlohmann::json(nullptr)
                                                : nlohmann::json{{"osname", p.recorded.osname},
                                                                 {"checksum", p.recorded.checksum},
                                                                 {"serial", p.recorded.serial},
                                                                 {"id", p.recorded.id()}};
    j["target"] = p.target ? deployment_json(*p.target) : nlohmann::json(nullptr);
    j["drop_staged"] = p.drop_staged ? deployment_json(*p.drop_staged) : nlohmann::json(nullptr);
    j["undeploy"] = nlohmann::json::array();
    for (const auto& u : p.undeploy)
        j["undeploy"].push_back(deployment_json(u));
    j["new_order"] = nlohmann::json::array();
    for (const auto& d : p.new_order)
        j["new_order"].push_back(deployment_json(d));
    j["changes"] = p.action != RollbackAction::Refuse && p.changes();
    j["reboot_needed"] = p.reboot_needed;
    j["notes"] = p.notes;
    j["deployments"] = nlohmann::json::array();
    for (const auto& d : p.deployments)
        j["deployments"].push_back(deployment_json(d));
    return json_text(j, 2);
}

} // namespace ur
