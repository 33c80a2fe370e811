// The rollback decision table (prior art 1.6) and its refusals, on plain data.
#include "rollback_plan.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace ur;

namespace
{

// A deployment list in index order; flags: 'p' pinned, 'b' booted, 's' staged.
struct D {
    std::string csum;
    std::string flags;
    std::string os = "rhcos";
};

std::vector<DeploymentInfo> list(std::initializer_list<D> ds)
{
    std::vector<DeploymentInfo> out;
    for (const auto& d : ds) {
        DeploymentInfo i;
        i.osname = d.os;
        i.checksum = d.csum;
        i.serial = 0;
        i.index = static_cast<int>(out.size());
        i.pinned = d.flags.find('p') != std::string::npos;
        i.booted = d.flags.find('b') != std::string::npos;
        i.staged = d.flags.find('s') != std::string::npos;
        out.push_back(i);
    }
    return out;
}

DeploymentRef rec(const std::string& csum, int serial = 0, const std::string& os = "rhcos")
{
    return DeploymentRef{os, csum, serial};
}

std::vector<std::string> ids(const std::vector<DeploymentInfo>& v)
{
    std::vector<std::string> out;
    for (const auto& d : v)
        out.push_back(d.checksum);
    return out;
}

using V = std::vector<std::string>;

} // namespace

TEST_CASE("table row 1: single pinned deployment -> nothing")
{
    auto p = plan_rollback(list({{"aaa", "pb"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Nothing);
    CHECK_FALSE(p.changes());
    CHECK_FALSE(p.reboot_needed);
    CHECK(p.undeploy.empty());
    CHECK(ids(p.new_order) == V{"aaa"});
    REQUIRE(p.target);
    CHECK(p.target->index == 0);
    CHECK(p.notes.empty());
}

TEST_CASE("recorded is default but not booted (already rolled back) -> nothing, reboot needed")
{
    auto p = plan_rollback(list({{"aaa", "p"}, {"new", "b"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Nothing);
    CHECK_FALSE(p.changes());
    CHECK(p.reboot_needed);
    CHECK(ids(p.new_order) == V{"aaa", "new"});
}

TEST_CASE("table row 2: pinned standby is the rollback -> rollback")
{
    auto p = plan_rollback(list({{"new", "b"}, {"aaa", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Rollback);
    CHECK(p.changes());
    CHECK(p.reboot_needed);
    CHECK(p.undeploy.empty());
    CHECK_FALSE(p.drop_staged);
    // rpm-ostree rollback semantics: the two swap, nothing is removed.
    CHECK(ids(p.new_order) == V{"aaa", "new"});
}

TEST_CASE("rollback keeps deployments after the recorded one in order")
{
    auto p = plan_rollback(list({{"new", "b"}, {"aaa", "p"}, {"old", ""}, {"older", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Rollback);
    CHECK(ids(p.new_order) == V{"aaa", "new", "old", "older"});
}

TEST_CASE("table row 3: several standby deployments, pinned one not the rollback -> undeploy then rollback")
{
    auto p = plan_rollback(list({{"n2", "b"}, {"n1", ""}, {"n0", ""}, {"aaa", "p"}, {"old", ""}}), rec("aaa"));
    CHECK(p.action == RollbackAction::UndeployThenRollback);
    CHECK(p.changes());
    CHECK(ids(p.undeploy) == V{"n1", "n0"});
    CHECK(p.undeploy[0].index == 1);
    CHECK(p.undeploy[1].index == 2);
    // The former default stays as the rollback; deployments after the recorded one are untouched.
    CHECK(ids(p.new_order) == V{"aaa", "n2", "old"});
    CHECK(p.target->index == 3);
}

TEST_CASE("staged deployment on top of the booted recorded one -> nothing, but the staged one is dropped")
{
    auto p = plan_rollback(list({{"stg", "s"}, {"aaa", "pb"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Nothing);
    REQUIRE(p.drop_staged);
    CHECK(p.drop_staged->checksum == "stg");
    CHECK(p.changes());
    CHECK_FALSE(p.reboot_needed);
    CHECK(ids(p.new_order) == V{"aaa"});
    CHECK(p.reason.find("staged") != std::string::npos);
}

TEST_CASE("staged deployment with a rollback: staged dropped, positions counted without it")
{
    auto p = plan_rollback(list({{"stg", "s"}, {"new", "b"}, {"aaa", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Rollback);
    REQUIRE(p.drop_staged);
    CHECK(ids(p.new_order) == V{"aaa", "new"});

    auto q = plan_rollback(list({{"stg", "s"}, {"n1", "b"}, {"n0", ""}, {"aaa", "p"}}), rec("aaa"));
    CHECK(q.action == RollbackAction::UndeployThenRollback);
    REQUIRE(q.drop_staged);
    CHECK(ids(q.undeploy) == V{"n0"});
    CHECK(ids(q.new_order) == V{"aaa", "n1"});
}

TEST_CASE("refuse: the recorded deployment is gone")
{
    auto p = plan_rollback(list({{"new", "b"}, {"other", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Refuse);
    CHECK(p.reason.find("gone") != std::string::npos);
    CHECK_FALSE(p.target);
    CHECK(p.new_order.empty());
    CHECK_FALSE(p.changes());
}

TEST_CASE("refuse: same commit deployed again with another serial is not the recorded deployment")
{
    auto p = plan_rollback(list({{"new", "b"}, {"aaa", ""}}), rec("aaa", 1));
    CHECK(p.action == RollbackAction::Refuse);
    CHECK(p.reason.find("same commit") != std::string::npos);
}

TEST_CASE("refuse: another stateroot with the same checksum is not the recorded deployment")
{
    auto p = plan_rollback(list({{"new", "b"}, {"aaa", "p", "other"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Refuse);
}

TEST_CASE("refuse: a pinned deployment lies between the default and the recorded one")
{
    auto p = plan_rollback(list({{"new", "b"}, {"keep", "p"}, {"aaa", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Refuse);
    CHECK(p.reason.find("pinned deployment rhcos keep.0 (index 1)") != std::string::npos);
    CHECK(p.reason.find("ostree admin pin --unpin 1") != std::string::npos);
    CHECK(p.undeploy.empty());
    CHECK(p.new_order.empty());
    CHECK_FALSE(p.drop_staged);
}

TEST_CASE("refuse: the booted deployment lies between the default and the recorded one")
{
    auto p = plan_rollback(list({{"n2", ""}, {"n1", "b"}, {"aaa", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Refuse);
    CHECK(p.reason.find("booted deployment rhcos n1.0") != std::string::npos);
}

TEST_CASE("refuse: the recorded deployment is the staged one")
{
    auto p = plan_rollback(list({{"aaa", "s"}, {"new", "b"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Refuse);
    CHECK(p.reason.find("staged") != std::string::npos);
    CHECK_FALSE(p.drop_staged);
}

TEST_CASE("refuse: nothing recorded, or no deployments")
{
    CHECK(plan_rollback(list({{"aaa", "pb"}}), DeploymentRef{}).action == RollbackAction::Refuse);
    CHECK(plan_rollback({}, rec("aaa")).action == RollbackAction::Refuse);
}

TEST_CASE("a pinned default or a pinned deployment after the target does not block")
{
    auto p = plan_rollback(list({{"new", "pb"}, {"n0", ""}, {"aaa", "p"}, {"old", "p"}}), rec("aaa"));
    CHECK(p.action == RollbackAction::UndeployThenRollback);
    CHECK(ids(p.undeploy) == V{"n0"});
    CHECK(ids(p.new_order) == V{"aaa", "new", "old"});
}

TEST_CASE("notes: unpinned recorded deployment, unknown booted deployment")
{
    auto p = plan_rollback(list({{"new", ""}, {"aaa", ""}}), rec("aaa"));
    CHECK(p.action == RollbackAction::Rollback);
    CHECK(p.notes.size() == 2);
}

TEST_CASE("text rendering names action, reason, steps")
{
    auto p = plan_rollback(list({{"stg", "s"}, {"n1", "b"}, {"n0", ""}, {"aaa", "p"}}), rec("aaa"));
    auto t = rollback_plan_text(p);
    CHECK(t.find("Action: undeploy-then-rollback") != std::string::npos);
    CHECK(t.find("1. drop the staged deployment rhcos stg.0") != std::string::npos);
    CHECK(t.find("2. undeploy rhcos n0.0 (index 2)") != std::string::npos);
    CHECK(t.find("3. make rhcos aaa.0 the default deployment") != std::string::npos);
    CHECK(t.find("3 rhcos aaa.0 pinned  <- recorded") != std::string::npos);
    CHECK(t.find("Reboot needed: yes") != std::string::npos);

    auto r = rollback_plan_text(plan_rollback(list({{"new", "b"}}), rec("aaa")));
    CHECK(r.find("Action: refuse") != std::string::npos);
    CHECK(r.find("Steps:") == std::string::npos);
}

TEST_CASE("JSON rendering round-trips the decision")
{
    auto p = plan_rollback(list({{"stg", "s"}, {"n1", "b"}, {"n0", ""}, {"aaa", "p"}}), rec("aaa"));
    auto j = nlohmann::json::parse(rollback_plan_json(p));
    CHECK(j["action"] == "undeploy-then-rollback");
    CHECK(j["recorded"]["id"] == "aaa.0");
    CHECK(j["target"]["index"] == 3);
    CHECK(j["target"]["pinned"] == true);
    CHECK(j["drop_staged"]["checksum"] == "stg");
    REQUIRE(j["undeploy"].size() == 1);
    CHECK(j["undeploy"][0]["id"] == "n0.0");
    REQUIRE(j["new_order"].size() == 2);
    CHECK(j["new_order"][0]["checksum"] == "aaa");
    CHECK(j["new_order"][1]["checksum"] == "n1");
    CHECK(j["changes"] == true);
    CHECK(j["reboot_needed"] == true);
    CHECK(j["deployments"].size() == 4);

    // A backup that recorded no deployment: null, not an id made of nothing (".0").
    auto none = nlohmann::json::parse(rollback_plan_json(plan_rollback(list({{"n1", "b"}}), DeploymentRef{})));
    CHECK(none["recorded"].is_null());
    CHECK(none["action"] == "refuse");

    auto r = nlohmann::json::parse(rollback_plan_json(plan_rollback(list({{"new", "b"}}), rec("aaa"))));
    CHECK(r["action"] == "refuse");
    CHECK(r["target"].is_null());
    CHECK(r["changes"] == false);
    CHECK(r["new_order"].empty());
}
