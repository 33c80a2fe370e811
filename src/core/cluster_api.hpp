// The cluster API for phase 2, reached only through `oc` with the node's
// localhost kubeconfig: one narrow interface; on a node the real oc, in tests a
// stand-in script named by cfg.oc. Every call carries
// `--kubeconfig <root>/<kubeconfig>` and `--request-timeout=<N>s` (W8) and is
// killed if it outlives that by a margin.
#pragma once

#include "config.hpp"
#include "progress.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct OperatorCondition {
    std::string type;
    std::string status; // "True" | "False" | "Unknown"
    std::string reason;
    std::string message;
};

// status of an operator.openshift.io static-pod operator resource (etcd, kubeapiserver, ...).
struct StaticPodOperatorStatus {
    int64_t latest_available_revision = -1;
    std::vector<int64_t> current_revisions; // nodeStatuses[*].currentRevision
    std::vector<OperatorCondition> conditions;

    const OperatorCondition* condition(const std::string& type) const;
    // W9: NodeInstallerProgressing reason AllNodesAtLatestRevision and every node's
    // currentRevision == latestAvailableRevision.
    bool all_nodes_at_latest() const;
    // NodeInstallerDegraded=True or Degraded=True: the message, else empty.
    std::string degraded() const;
};

// What the cluster looked like, for people (prior art 1.5: A1's display_current_status).
struct ClusterStatusReport {
    std::string text;  // each command under a "$ oc ..." line, then its output or its error
    std::string error; // the first command that failed (the rest were not run); empty when all answered
};

class ClusterApi
{
  public:
    virtual ~ClusterApi() = default;
    // oc patch <resource> cluster --type=merge -p {"spec":{"forceRedeploymentReason":reason}}
    virtual Result<> force_redeployment(const std::string& resource, const std::string& reason,
                                        const CancelToken& cancel) = 0;
    // oc get <resource> cluster -o json, status part.
    virtual Result<StaticPodOperatorStatus> operator_status(const std::string& resource, const CancelToken& cancel) = 0;
    // oc adm upgrade; oc get clusteroperators; oc get nodes -o wide; oc get
    // machineconfigpools. Best effort and never an error: after the first command
    // that fails the rest are skipped, so an API that is down (typical after a failed
    // upgrade) costs one request timeout, not four.
    virtual ClusterStatusReport status_report(const CancelToken& cancel) = 0;
};

std::unique_ptr<ClusterApi> make_oc_cluster_api(const Config& cfg, const std::string& root);

// The common arguments of every oc call (exposed for tests).
std::vector<std::string> oc_base_args(const Config& cfg, const std::string& root);
// What follows oc_base_args in force_redeployment's call: `recover --abandon` prints
// the same command for people to finish phase 2 by hand.
std::vector<std::string> force_redeployment_args(const std::string& resource, const std::string& reason);

Result<StaticPodOperatorStatus> parse_operator_status(std::string_view json_text);

} // namespace ur
