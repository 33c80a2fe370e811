#include "cluster_api.hpp"

#include "fd.hpp"
#include "json_text.hpp"
#include "process.hpp"

#include <nlohmann/json.hpp>

namespace ur
{

using nlohmann::json;

const OperatorCondition* StaticPodOperatorStatus::condition(const std::string& type) const
{
    for (const auto& c : conditions)
        if (c.type == type) return &c;
    return nullptr;
}

bool StaticPodOperatorStatus::all_nodes_at_latest() const
{
    const auto* p = condition("NodeInstallerProgressing");
    if (!p || p->reason != "AllNodesAtLatestRevision") return false;
    if (latest_available_revision < 0 || current_revisions.empty()) return false;
    for (auto r : current_revisions)
        if (r != latest_available_revision) return false;
    return true;
}

std::string StaticPodOperatorStatus::degraded() const
{
    for (const char* t : {"NodeInstallerDegraded", "Degraded"}) {
        const auto* c = condition(t);
        if (c && c->status == "True")
            return std::string(t) + " (" + c->reason + ")" + (c->message.empty() ? "" : ": " + c->message);
    }
    return "";
}

Result<StaticPodOperatorStatus> parse_operator_status(std::string_view text)
{
    try {
        json o = json::parse(text);
        StaticPodOperatorStatus s;
        if (!o.contains("status") || !o["status"].is_object()) return s;
        const auto& st = o["status"];
        s.latest_available_revision = st.value("latestAvailableRevision", int64_t{-1});
        if (st.contains("nodeStatuses") && st["nodeStatuses"].is_array())
            for (const auto& n : st["nodeStatuses"])
                s.current_revisions.push_back(n.value("currentRevision", int64_t{0}));
        if (st.contains("conditions") && st["conditions"].is_array())
            for (const auto& c : st["conditions"])
                s.conditions.push_back(
                    {c.value("type", ""), c.value("status", ""), c.value("reason", ""), c.value("message", "")});
        return s;
    } catch (const json::exception& e) {
        return fail(ErrorKind::ExternalFailed, std::string("unreadable operator status JSON: ") + e.what());
    }
}

std::vector<std::string> oc_base_args(const Config& cfg, const std::string& root)
{
    return {cfg.oc, "--kubeconfig", root_path(root, cfg.kubeconfig),
            "--request-timeout=" + std::to_string(cfg.api_request_timeout ? cfg.api_request_timeout : 30) + "s"};
}

std::vector<std::string> force_redeployment_args(const std::string& resource, const std::string& reason)
{
    json patch = {{"spec", {{"forceRedeploymentReason", reason}}}};
    return {"patch", resource, "cluster", "--type=merge", "-p", json_text(patch)};
}

namespace
{

std::string tail(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    if (s.size() > 400) s = "..." + s.substr(s.size() - 400);
    return s;
}

class OcClusterApi final : public ClusterApi
{
  public:
    OcClusterApi(const Config& cfg, const std::string& root)
        : base_(oc_base_args(cfg, root)), request_timeout_(cfg.api_request_timeout ? cfg.api_request_timeout : 30)
    {
    }

    Result<> force_redeployment(const std::string& resource, const std::string& reason,
                                const CancelToken& cancel) override
    {
        auto r = oc(force_redeployment_args(resource, reason), cancel);
        if (!r) return std::unexpected(r.error());
        return {};
    }

    Result<StaticPodOperatorStatus> operator_status(const std::string& resource, const CancelToken& cancel) override
    {
        auto r = oc({"get", resource, "cluster", "-o", "json"}, cancel);
        if (!r) return std::unexpected(r.error());
        auto s = parse_operator_status(*r);
        if (!s) return std::unexpected(std::move(s.error()).context(resource));
        return s;
    }

    ClusterStatusReport status_report(const CancelToken& cancel) override
    {
        static const std::vector<std::vector<std::string>> kCommands = {{"adm", "upgrade"},
                                                                        {"get", "clusteroperators"},
                                                                        {"get", "nodes", "-o", "wide"},
                                                                        {"get", "machineconfigpools"}};
        ClusterStatusReport rep;
        for (const auto& args : kCommands) {
            std::string line = "$ oc";
            for (const auto& a : args)
                line += " " + a;
            rep.text += line + "\n";
            auto r = oc(args, cancel);
            if (!r) {
                rep.error = r.error().message;
                rep.text += "(failed: " + rep.error + ")\n";
                break;
            }
            rep.text += *r;
            if (!r->empty() && r->back() != '\n') rep.text += "\n";
        }
        return rep;
    }

  private:
    Result<std::string> oc(std::vector<std::string> args, const CancelToken& cancel)
    {
        Command c;
        c.argv = base_;
        for (auto& a : args)
            c.argv.push_back(std::move(a));
        // The request timeout bounds each API request; the process gets a margin on top
        // (oc may make more than one request), never unbounded.
        c.timeout = std::chrono::seconds(request_timeout_ + 10);
        std::string what = "oc";
        for (size_t i = base_.size(); i < c.argv.size(); i++)
            what += " " + c.argv[i];
        auto r = run_command(c, &cancel);
        if (!r) return std::unexpected(std::move(r.error()).context(what));
        if (r->exit_code != 0)
            return fail(ErrorKind::ExternalFailed,
                        what + ": exit " + std::to_string(r->exit_code) + (r->err.empty() ? "" : ": " + tail(r->err)));
        return std::move(r->out);
    }

    std::vector<std::string> base_;
    unsigned request_timeout_;
};

} // namespace

std::unique_ptr<ClusterApi> make_oc_cluster_api(const Config& cfg, const std::string& root)
{
    return std::make_unique<OcClusterApi>(cfg, root);
}

} // namespace ur
