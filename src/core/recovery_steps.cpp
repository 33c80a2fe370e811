#include "recovery_steps.hpp"

namespace ur
{

// The containers phase 2 waits for, in order (prior art 1.5, phase 2 step 2).
const std::vector<std::string> kWaitContainers = {"etcd", "etcd-operator", "kube-apiserver-operator",
                                                  "kube-controller-manager-operator",
                                                  "kube-scheduler-operator-container"};
// The static pod operators redeployed, in order (prior art 4.5).
const std::vector<std::string> kRedeploy = {"etcd", "kubeapiserver", "kubecontrollermanager", "kubescheduler"};

namespace
{

std::vector<StepDef> build_steps()
{
    // Names must outlive the table: they are string literals or interned below.
    static std::vector<std::string> names;
    std::vector<StepDef> s = {
        {"verify", "restore-files", 1, false, "verify the backup"},
        {"platform-rollback", "restore-files", 1, false, "platform (ostree) rollback"},
        {"stop-kubelet", "restore-files", 1, true, "stop kubelet.service"},
        {"remove-pods", "restore-files", 1, true, "remove all pods"},
        {"stop-crio", "restore-files", 1, true, "stop crio.service"},
        {"wipe-images", "restore-files", 1, true, "wipe the container storage"},
        {"restore-files", "restore-files", 1, false, "restore the files"},
        {"disable-kubelet", "restore-files", 1, false, "disable kubelet.service"},
        {"enable-phase2", "restore-files", 1, false, "enable upgrade-recovery-phase2.service"},
        {"phase1-done", "restore-files", 1, false, "record that phase 2 is pending"},
        {"start-crio", "restore-cluster", 2, false, "start crio.service"},
        {"record-containers", "restore-cluster", 2, false, "record the current container ids"},
        {"pull-images", "restore-cluster", 2, false, "pull the control-plane images the storage lacks"},
        {"restore-etcd", "restore-cluster", 2, false, "restore etcd with cluster-restore.sh"},
        {"start-kubelet", "restore-cluster", 2, false, "enable and start kubelet.service"},
    };
    names.reserve(kWaitContainers.size() * 2 + kRedeploy.size() * 2);
    for (const auto& c : kWaitContainers) {
        names.push_back("wait-" + c);
        names.push_back("wait for the " + c + " container");
        s.push_back({names[names.size() - 2].c_str(), "restore-cluster", 2, false, names.back().c_str()});
    }
    for (const auto& r : kRedeploy) {
        names.push_back("redeploy-" + r);
        names.push_back("redeploy " + r);
        s.push_back({names[names.size() - 2].c_str(), "redeploy", 2, false, names.back().c_str()});
    }
    s.push_back({"finish", "redeploy", 2, false, "finish the recovery"});
    return s;
}

} // namespace

const std::vector<StepDef>& recovery_steps()
{
    static const std::vector<StepDef> steps = build_steps();
    return steps;
}

const StepDef* find_step_def(const std::string& name)
{
    for (const auto& s : recovery_steps())
        if (name == s.name) return &s;
    return nullptr;
}

} // namespace ur
