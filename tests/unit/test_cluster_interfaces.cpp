// crictl and oc behind their interfaces, against stand-in scripts at the
// process boundary: JSON parsing, the arguments of every call (kubeconfig and
// request timeout, W8), pod removal with checking (W7), deadlines.
#include "cluster_api.hpp"
#include "container_runtime.hpp"
#include "control_plane_images.hpp"
#include "units.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

struct Dir {
    std::string path;
    Dir()
    {
        char t[] = "/tmp/ur-iface-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~Dir() { fs::remove_all(path); }
    std::string script(const std::string& name, const std::string& body)
    {
        std::string p = path + "/" + name;
        std::ofstream(p) << "#!/bin/bash\nS=" << path << "\n" << body;
        ::chmod(p.c_str(), 0755);
        return p;
    }
    std::string read(const std::string& name) const
    {
        std::ifstream in(path + "/" + name);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    void write(const std::string& name, const std::string& v) const { std::ofstream(path + "/" + name) << v; }
};

std::vector<std::string> lines(const std::string& s)
{
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

const char* kPs = R"({
  "containers": [
    {"id": "aaa111", "podSandboxId": "p1", "metadata": {"name": "etcd", "attempt": 0},
     "state": "CONTAINER_EXITED", "createdAt": "1700000000000000000"},
    {"id": "bbb222", "podSandboxId": "p2", "metadata": {"name": "etcd", "attempt": 1},
     "state": "CONTAINER_RUNNING", "createdAt": "1700000001000000000"},
    {"id": "ccc333", "podSandboxId": "p3", "metadata": {"name": "kube-apiserver-operator"},
     "state": "CONTAINER_EXITED", "createdAt": 1700000002000000000}
  ]
})";

} // namespace

TEST_CASE("crictl ps JSON")
{
    auto all = parse_crictl_ps(kPs);
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK((*all)[1].name == "etcd");
    CHECK((*all)[1].running());
    CHECK((*all)[2].created_ns == 1700000002000000000);
    CHECK(newest_container(*all, "etcd")->id == "bbb222");
    CHECK(newest_container(*all, "kube-apiserver-operator")->id == "ccc333");
    CHECK(newest_container(*all, "nothing") == nullptr);
    CHECK(parse_crictl_ps(R"({"containers": []})")->empty());
    CHECK(parse_crictl_ps(R"({"containers": null})")->empty());
    CHECK_FALSE(parse_crictl_ps("crictl: connection refused"));
    CHECK_FALSE(parse_crictl_ps(R"({"containers": [{"metadata": {"name": "x"}}]})"));
}

TEST_CASE("crictl images JSON")
{
    auto all = parse_crictl_images(R"({"images": [
      {"id": "sha256:aaa", "repoTags": ["quay.io/ocp/etcd:4.15"], "repoDigests": ["quay.io/ocp/etcd@sha256:111"],
       "size": "1000", "pinned": true},
      {"id": "sha256:bbb", "repoTags": [], "repoDigests": ["quay.io/ocp/art@sha256:222", "mirror.local/art@sha256:222"]},
      {"id": "sha256:ccc", "repoTags": null, "repoDigests": null}
    ]})");
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK((*all)[0].tags == std::vector<std::string>{"quay.io/ocp/etcd:4.15"});
    CHECK((*all)[1].digests.size() == 2);
    CHECK((*all)[2].tags.empty());
    CHECK(image_present(*all, "quay.io/ocp/etcd:4.15"));
    CHECK(image_present(*all, "quay.io/ocp/etcd@sha256:111"));
    CHECK(image_present(*all, "mirror.local/art@sha256:222"));
    // Exact references only: another tag, or the same digest in another repository, is not there
    // for CRI-O either.
    CHECK_FALSE(image_present(*all, "quay.io/ocp/etcd:4.16"));
    CHECK_FALSE(image_present(*all, "quay.io/other/etcd@sha256:111"));
    CHECK(missing_images({"quay.io/ocp/etcd@sha256:111", "quay.io/ocp/etcd@sha256:999"}, *all) ==
          std::vector<std::string>{"quay.io/ocp/etcd@sha256:999"});
    auto none = parse_crictl_images(R"({"images": null})");
    REQUIRE(none);
    CHECK(none->empty());
    CHECK_FALSE(parse_crictl_images("crictl: connection refused"));
    CHECK_FALSE(parse_crictl_images(R"({"images": [{"repoTags": ["x:1"]}]})"));
}

TEST_CASE("the images a static pod manifest names, JSON as OpenShift writes it or YAML")
{
    auto json = images_in_manifest(R"(
{"kind":"Pod","apiVersion":"v1","metadata":{"name":"etcd"},"spec":{
 "initContainers":[{"name":"setup","image":"quay.io/ocp/art@sha256:e7cd"}],
 "containers":[{"name":"etcdctl","image":"quay.io/ocp/art@sha256:e7cd"},
               {"name":"etcd","image":"quay.io/ocp/art@sha256:e7cd"},
               {"name":"etcd-readyz","image":"quay.io/ocp/art@sha256:0pe7"}]}})");
    REQUIRE(json);
    CHECK(*json == std::vector<std::string>{"quay.io/ocp/art@sha256:0pe7", "quay.io/ocp/art@sha256:e7cd"});

    auto yaml = images_in_manifest("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
                                   "  - name: etcd\n    image: quay.io/ocp/art@sha256:e7cd\n"
                                   "  - image: \"quay.io/ocp/art@sha256:0pe7\"\n    name: readyz\n"
                                   "  - name: metrics\n    image: 'quay.io/ocp/metrics:4.15'   # pinned\n"
                                   "  - name: x\n    image: reg.local/x:1 # comment\n"
                                   "    imagePullPolicy: IfNotPresent\n");
    REQUIRE(yaml);
    CHECK(*yaml == std::vector<std::string>{"quay.io/ocp/art@sha256:0pe7", "quay.io/ocp/art@sha256:e7cd",
                                            "quay.io/ocp/metrics:4.15", "reg.local/x:1"});
    auto plain = images_in_manifest("kind: Pod\nname: etcd\n");
    REQUIRE(plain);
    CHECK(plain->empty());
    auto no_spec = images_in_manifest(R"({"kind":"Pod"})");
    REQUIRE(no_spec);
    CHECK(no_spec->empty());
    auto bad = images_in_manifest(R"({"kind":"Pod", "spec": {)");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::Corrupt);
}

TEST_CASE("the control plane's images are those of the four static pod manifests")
{
    Dir d;
    fs::create_directories(d.path + "/m");
    d.write("m/etcd-pod.yaml", R"({"spec":{"containers":[{"name":"etcd","image":"r/etcd@sha256:1"}]}})");
    d.write("m/kube-apiserver-pod.yaml", "spec:\n  containers:\n  - image: r/kas@sha256:2\n");
    d.write("m/kube-scheduler-pod.yaml", R"({"spec":{"containers":[{"image":"r/etcd@sha256:1"}]}})");
    d.write("m/other-pod.yaml", "spec:\n  containers:\n  - image: r/other:1\n"); // not a control-plane pod
    auto imgs = control_plane_images(AT_FDCWD, d.path + "/m");
    REQUIRE(imgs);
    CHECK(*imgs == std::vector<std::string>{"r/etcd@sha256:1", "r/kas@sha256:2"});
    auto none = control_plane_images(AT_FDCWD, d.path + "/none");
    REQUIRE(none);
    CHECK(none->empty());
    d.write("m/kube-controller-manager-pod.yaml", "{ broken");
    auto bad = control_plane_images(AT_FDCWD, d.path + "/m");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("kube-controller-manager-pod.yaml") != std::string::npos);
}

TEST_CASE("static pod operator status and the W9 criterion")
{
    auto s = parse_operator_status(R"({"status": {"latestAvailableRevision": 7,
        "nodeStatuses": [{"nodeName": "sno", "currentRevision": 7, "targetRevision": 0}],
        "conditions": [{"type": "NodeInstallerProgressing", "status": "False", "reason": "AllNodesAtLatestRevision",
                        "message": "1 nodes are at revision 7"},
                       {"type": "NodeInstallerDegraded", "status": "False"}]}})");
    REQUIRE(s);
    CHECK(s->latest_available_revision == 7);
    CHECK(s->all_nodes_at_latest());
    CHECK(s->degraded().empty());

    // Reason right but a node behind: not done (the old >= check would also be wrong here).
    auto behind = parse_operator_status(R"({"status": {"latestAvailableRevision": 8,
        "nodeStatuses": [{"currentRevision": 7}],
        "conditions": [{"type": "NodeInstallerProgressing", "status": "False", "reason": "AllNodesAtLatestRevision"}]}})");
    REQUIRE(behind);
    CHECK_FALSE(behind->all_nodes_at_latest());
    // Revisions equal but still progressing: not done.
    auto prog = parse_operator_status(R"({"status": {"latestAvailableRevision": 8,
        "nodeStatuses": [{"currentRevision": 8}],
        "conditions": [{"type": "NodeInstallerProgressing", "status": "True", "reason": "NodeInstaller",
                        "message": "1 nodes are at revision 7; 0 nodes have achieved new revision 8"}]}})");
    CHECK_FALSE(prog->all_nodes_at_latest());
    auto deg = parse_operator_status(R"({"status": {"latestAvailableRevision": 8,
        "conditions": [{"type": "NodeInstallerDegraded", "status": "True", "reason": "InstallerPodFailed",
                        "message": "1 nodes are failing on revision 8"}]}})");
    CHECK(deg->degraded().find("NodeInstallerDegraded (InstallerPodFailed): 1 nodes are failing") == 0);
    CHECK_FALSE(parse_operator_status(R"({"status": {}})")->all_nodes_at_latest());
    CHECK_FALSE(parse_operator_status("error: the server doesn't have a resource type"));
}

TEST_CASE("every oc call carries the kubeconfig under the root and the request timeout")
{
    Dir d;
    Config cfg;
    cfg.api_request_timeout = 7;
    cfg.kubeconfig = "/etc/kubernetes/localhost.kubeconfig";
    cfg.oc = d.script("oc", R"SH(echo "$@" >> $S/calls
if [ "$(cat $S/down 2>/dev/null)" = 1 ]; then
  echo 'The connection to the server localhost:6443 was refused - did you specify the right host or port?' >&2
  exit 1
fi
case "$4" in
  get) echo '{"status": {"latestAvailableRevision": 3, "nodeStatuses": [{"currentRevision": 3}],
         "conditions": [{"type": "NodeInstallerProgressing", "status": "False", "reason": "AllNodesAtLatestRevision"}]}}' ;;
  patch) echo "$5.operator.openshift.io/cluster patched" ;;
  *) exit 3 ;;
esac
)SH");
    auto base = oc_base_args(cfg, "/tmp/root");
    CHECK(base == std::vector<std::string>{cfg.oc, "--kubeconfig", "/tmp/root/etc/kubernetes/localhost.kubeconfig",
                                           "--request-timeout=7s"});
    auto api = make_oc_cluster_api(cfg, d.path);
    CancelToken tok;
    auto st = api->operator_status("etcd", tok);
    REQUIRE(st);
    CHECK(st->all_nodes_at_latest());
    REQUIRE(api->force_redeployment("kubeapiserver", "recovery-2024-05-01T12:00:00.000000001Z", tok));
    d.write("down", "1");
    auto down = api->operator_status("etcd", tok);
    REQUIRE_FALSE(down);
    CHECK(down.error().kind == ErrorKind::ExternalFailed);
    CHECK(down.error().message.find("was refused") != std::string::npos);

    auto calls = lines(d.read("calls"));
    REQUIRE(calls.size() == 3);
    std::string prefix = "--kubeconfig " + d.path + "/etc/kubernetes/localhost.kubeconfig --request-timeout=7s ";
    for (const auto& c : calls)
        CHECK(c.rfind(prefix, 0) == 0);
    CHECK(calls[0] == prefix + "get etcd cluster -o json");
    CHECK(calls[1] == prefix + "patch kubeapiserver cluster --type=merge -p "
                               R"({"spec":{"forceRedeploymentReason":"recovery-2024-05-01T12:00:00.000000001Z"}})");
}

TEST_CASE("an oc that hangs is killed at its deadline")
{
    Dir d;
    Config cfg;
    cfg.api_request_timeout = 1; // the process gets the request timeout plus a margin
    cfg.oc = d.script("oc", "exec sleep 60\n");
    auto api = make_oc_cluster_api(cfg, d.path);
    CancelToken tok;
    tok.set_timeout(std::chrono::seconds(2)); // the step deadline is tighter still
    auto t0 = std::chrono::steady_clock::now();
    auto r = api->operator_status("etcd", tok);
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(took < std::chrono::seconds(8));
}

TEST_CASE("the runtime's pods, containers and images through crictl")
{
    Dir d;
    d.write("pods", "p1\np2\np3\n");
    Config cfg;
    cfg.crictl = d.script("crictl", R"SH(echo "$@" >> $S/calls
case "$1" in
  pods) cat $S/pods ;;
  stopp) shift; for p in "$@"; do echo "$p" >> $S/stopped; done ;;
  rmp) if [ -f $S/stuck ]; then echo p9 > $S/pods; else : > $S/pods; fi ;;
  ps) cat $S/ps.json ;;
  images) cat $S/images.json ;;
  pull) [ "$2" = r/gone:1 ] && { echo "r/gone:1: not found" >&2; exit 1; }; true ;;
esac
)SH");
    auto rt = make_crictl_runtime(cfg, d.path + "/no-crio");
    CancelToken tok;
    auto n = rt->remove_all_pods(std::chrono::seconds(5), tok);
    REQUIRE(n);
    CHECK(*n == 3);
    CHECK(lines(d.read("calls")) == std::vector<std::string>{"pods -q", "stopp p1 p2 p3", "rmp -fa", "pods -q"});
    CHECK(lines(d.read("stopped")).size() == 3);

    // No pods: nothing to stop.
    d.write("calls", "");
    auto zero = rt->remove_all_pods(std::chrono::seconds(5), tok);
    REQUIRE(zero);
    CHECK(*zero == 0);
    CHECK(lines(d.read("calls")) == std::vector<std::string>{"pods -q", "pods -q"});

    // A sandbox that keeps coming back is an error at the deadline, not success (W7).
    d.write("pods", "p1\n");
    d.write("stuck", "1");
    auto stuck = rt->remove_all_pods(std::chrono::seconds(1), tok);
    REQUIRE_FALSE(stuck);
    CHECK(stuck.error().kind == ErrorKind::Timeout);

    // The wipe is a real command whose failure counts.
    auto wipe = rt->wipe_storage(std::chrono::seconds(5), tok);
    REQUIRE_FALSE(wipe);

    d.write("ps.json", kPs);
    auto ps = rt->list_containers(std::chrono::seconds(5), tok);
    REQUIRE(ps);
    CHECK(ps->size() == 3);

    d.write("calls", "");
    d.write("images.json", R"({"images": [{"id": "sha256:a", "repoDigests": ["r/etcd@sha256:1"]}]})");
    auto images = rt->list_images(std::chrono::seconds(5), tok);
    REQUIRE(images);
    CHECK(lines(d.read("calls")) == std::vector<std::string>{"images -o json"});
    CHECK(image_present(*images, "r/etcd@sha256:1"));
    REQUIRE(rt->pull_image("r/kas@sha256:2", std::chrono::seconds(5), tok));
    auto gone = rt->pull_image("r/gone:1", std::chrono::seconds(5), tok);
    REQUIRE_FALSE(gone);
    CHECK(gone.error().message.find("r/gone:1: not found") != std::string::npos);
    CHECK(lines(d.read("calls")) == std::vector<std::string>{"images -o json", "pull r/kas@sha256:2", "pull r/gone:1"});
}

TEST_CASE("crictl failures are reported with their stderr")
{
    Dir d;
    Config cfg;
    cfg.crictl = d.script(
        "crictl", "echo 'connect: connect endpoint unix:///var/run/crio/crio.sock: connection refused' >&2\nexit 1\n");
    auto rt = make_crictl_runtime(cfg);
    CancelToken tok;
    auto r = rt->list_containers(std::chrono::seconds(5), tok);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::ExternalFailed);
    CHECK(r.error().message.find("connection refused") != std::string::npos);
    auto p = rt->remove_all_pods(std::chrono::seconds(5), tok);
    REQUIRE_FALSE(p);
}

TEST_CASE("command unit manager speaks systemctl's conventions")
{
    Dir d;
    std::string sc = d.script("systemctl", R"SH(echo "$@" >> $S/calls
case "$1" in
  is-active) if [ -f $S/active-$2 ]; then echo active; else echo inactive; exit 3; fi ;;
  is-enabled) [ -f $S/enabled-$2 ] || { echo disabled; exit 1; } ; echo enabled ;;
  start) touch $S/active-$2 ;;
  stop) rm -f $S/active-$2 ;;
  enable) touch $S/enabled-$2 ;;
  disable) rm -f $S/enabled-$2 ;;
  restart) echo "Job for $2 failed." >&2; exit 1 ;;
esac
)SH");
    auto u = make_command_units(sc);
    CancelToken tok;
    CHECK(u->can_control());
    CHECK(*u->active_state("crio.service", tok) == "inactive");
    REQUIRE(u->start("crio.service", std::chrono::seconds(5), tok));
    CHECK(*u->active_state("crio.service", tok) == "active");
    REQUIRE(u->enable("kubelet.service", tok));
    CHECK(*u->is_enabled("kubelet.service", tok));
    REQUIRE(u->disable("kubelet.service", tok));
    CHECK_FALSE(*u->is_enabled("kubelet.service", tok));
    auto r = u->restart("crio.service", std::chrono::seconds(5), tok);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("Job for crio.service failed") != std::string::npos);
}
