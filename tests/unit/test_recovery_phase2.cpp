// Phase 2 of a recovery against stand-ins at the process boundary: `crictl`,
// `oc`, a systemctl-compatible program (it plays crio.service and
// kubelet.service) and the restored cluster-restore.sh, all bash scripts
// sharing a state directory that plays a cluster coming back. They append every
// call to a log so the order of the steps can be checked. Also: the start/resume
// decisions, the refusals, --step, and resuming a crashed redeploy.
#include "container_runtime.hpp"
#include "fd.hpp"
#include "recovery.hpp"
#include "store.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>

using namespace ur;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace
{

const char* kBackupId = "20240501T100000Z";

const char* kSystemctl = R"SH(
echo "systemctl $*" >> $S/calls
case "$1" in
  is-active) if [ -f $S/active-$2 ]; then echo active; exit 0; fi; echo inactive; exit 3 ;;
  is-enabled) if [ -f $S/enabled-$2 ]; then echo enabled; exit 0; fi; echo disabled; exit 1 ;;
  start)
    touch $S/active-$2
    # kubelet starts the static pods again: new containers, created first, running a poll later.
    if [ "$2" = kubelet.service ] && [ -f $S/restored ]; then
      for f in $S/containers/*; do
        n=$(basename $f)
        grep -qx "$n" $S/never 2>/dev/null && continue
        echo "new-$n-$RANDOM CONTAINER_CREATED $(date +%s%N)" > $f
      done
    fi ;;
  stop) rm -f $S/active-$2 ;;
  enable) touch $S/enabled-$2 ;;
  disable) rm -f $S/enabled-$2 ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
)SH";

const char* kCrictl = R"SH(
echo "crictl $*" >> $S/calls
if [ ! -f $S/active-crio.service ]; then
  echo 'validate service connection: dial unix /var/run/crio/crio.sock: connect: connection refused' >&2; exit 1
fi
case "$1" in
  ps)
    [ "$*" = "ps -a -o json" ] || { echo "bad args: $*" >&2; exit 2; }
    sep=""
    printf '{"containers": ['
    for f in $S/containers/*; do
      read id state created < $f
      printf '%s{"id": "%s", "podSandboxId": "pod-%s", "metadata": {"name": "%s", "attempt": 0}, "state": "%s", "createdAt": "%s"}' \
        "$sep" "$id" "$id" "$(basename $f)" "$state" "$created"
      sep=","
      # a created container is running by the next look
      [ "$state" = CONTAINER_CREATED ] && echo "$id CONTAINER_RUNNING $created" > $f
    done
    printf ']}\n' ;;
  pods) [ "$*" = "pods -q" ] || { echo "bad args: $*" >&2; exit 2; }
    for f in $S/pods/*; do [ -e "$f" ] && basename "$f"; done; true ;;
  stopp) exit 0 ;;
  rmp) [ "$*" = "rmp -fa" ] || { echo "bad args: $*" >&2; exit 2; }
    rm -f $S/pods/* ;;
  images) [ "$*" = "images -o json" ] || { echo "bad args: $*" >&2; exit 2; }
    [ -f $S/images-broken ] && { echo "crictl: unknown output format" >&2; exit 1; }
    printf '{"images": ['; sep=""; n=0
    while read -r ref; do n=$((n+1)); printf '%s{"id": "sha256:%d", "repoDigests": ["%s"]}' "$sep" $n "$ref"; sep=,
    done < $S/images
    echo ']}' ;;
  pull) [ $# = 2 ] || { echo "bad args: $*" >&2; exit 2; }
    # pull-hangs: a registry that never answers (the pull's child outlives a plain kill).
    [ -f $S/pull-hangs ] && { echo started > $S/pull-started; sleep 600 & wait; }
    # pull-fails: how many pulls fail before the registry answers ("always": every one).
    f=$(cat $S/pull-fails 2>/dev/null || echo 0)
    if [ "$f" = always ] || [ "$f" -gt 0 ]; then
      [ "$f" = always ] || echo $((f - 1)) > $S/pull-fails
      # then-hang: the registry stops answering after this refusal.
      [ -f $S/then-hang ] && touch $S/pull-hangs
      echo "pulling image: dial tcp: lookup quay.io: no such host" >&2; exit 1
    fi
    echo "$2" >> $S/images ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
)SH";

// `crio wipe -f`: only with CRI-O stopped, as the real one wants.
const char* kCrio = R"SH(
echo "crio $*" >> $S/calls
[ "$*" = "wipe -f" ] || { echo "unexpected: $*" >&2; exit 1; }
[ -f $S/active-crio.service ] && { echo "crio is running" >&2; exit 1; }
touch $S/wiped
)SH";

const char* kOc = R"SH(
echo "oc $*" >> $S/calls
if [ "$1" != --kubeconfig ] || [ "$2" != "$KC" ] || [[ "$3" != --request-timeout=*s ]]; then
  echo "oc stand-in: missing --kubeconfig $KC or --request-timeout: $*" >&2; exit 99
fi
n=$(( $(cat $S/api-calls 2>/dev/null || echo 0) + 1 )); echo $n > $S/api-calls
if [ $n -le $(cat $S/api-down 2>/dev/null || echo 0) ]; then
  echo 'The connection to the server api-int.sno:6443 was refused - did you specify the right host or port?' >&2; exit 1
fi
case "${*:4}" in # the cluster status at the end (features 15, 27)
  "adm upgrade") [ -f $S/status-down ] && { echo 'Unable to connect to the server: EOF' >&2; exit 1; }
                 echo "Cluster version is 4.14.9" ; exit 0 ;;
  "get clusteroperators") printf 'NAME VERSION AVAILABLE PROGRESSING DEGRADED\netcd 4.14.9 True False False\n'; exit 0 ;;
  "get nodes -o wide") printf 'NAME STATUS ROLES\nsno Ready control-plane,master,worker\n'; exit 0 ;;
  "get machineconfigpools") printf 'NAME CONFIG UPDATED\nmaster rendered-master-0a1b True\n'; exit 0 ;;
esac
verb=$4; res=$5
latest=$(cat $S/latest-$res 2>/dev/null || echo 3)
current=$(cat $S/current-$res 2>/dev/null || echo 3)
case $verb in
  patch)
    [ "$6 $7 $8" = "cluster --type=merge -p" ] || { echo "bad patch: $*" >&2; exit 2; }
    echo "$9" | grep -q '"forceRedeploymentReason":"recovery-' || { echo "bad patch body: $9" >&2; exit 2; }
    echo $((latest + 1)) > $S/latest-$res; echo 0 > $S/polls-$res
    echo "$res.operator.openshift.io/cluster patched" ;;
  get)
    [ "$6 $7 $8" = "cluster -o json" ] || { echo "bad get: $*" >&2; exit 2; }
    deg=False
    if [ -f $S/polls-$res ]; then
      p=$(( $(cat $S/polls-$res) + 1 )); echo $p > $S/polls-$res
      if [ -f $S/degrade-$res ]; then deg=True
      elif [ $p -ge 3 ]; then current=$latest; echo $current > $S/current-$res; fi
    fi
    if [ "$current" = "$latest" ]; then st=False; reason=AllNodesAtLatestRevision; msg="1 nodes are at revision $current"
    else st=True; reason=NodeInstaller; msg="1 nodes are at revision $current; 0 nodes have achieved new revision $latest"; fi
    cat <<JSON
{"kind": "Etcd", "status": {"latestAvailableRevision": $latest,
  "nodeStatuses": [{"nodeName": "sno", "currentRevision": $current}],
  "conditions": [{"type": "NodeInstallerProgressing", "status": "$st", "reason": "$reason", "message": "$msg"},
                 {"type": "NodeInstallerDegraded", "status": "$deg", "reason": "InstallerPodFailed",
                  "message": "1 nodes are failing on revision $latest"}]}}
JSON
    ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
)SH";

const char* kClusterRestore = R"SH(
echo "cluster-restore $*" >> $S/calls
[ -f $S/restore-fails ] && { echo "snapshot integrity check failed" >&2; exit 1; }
[ "$(cat "$1/snapshot_2024-05-01_100000.db")" = snapshot ] || { echo "no snapshot in $1" >&2; exit 2; }
touch $S/restored
echo "SNAPSHOT RESTORE COMPLETED"
)SH";

struct Cluster {
    std::string root; // the node's root
    std::string s;    // stand-in state
    Config cfg;
    std::unique_ptr<UnitManager> units;
    RecoveryBackends be;
    RecoveryOptions opts;

    Cluster()
    {
        char t[] = "/tmp/ur-phase2-XXXXXX";
        REQUIRE(mkdtemp(t));
        root = std::string(t) + "/root";
        s = std::string(t) + "/state";
        fs::create_directories(root + "/usr/local/bin");
        fs::create_directories(s + "/containers");
        cfg.partition_label = "ur-test-no-such-partition";
        cfg.allow_plain_directory = true;
        cfg.crictl = script("crictl", kCrictl);
        cfg.oc = script("oc", kOc);
        cfg.stop_timeout = 5;
        cfg.container_restart_timeout = 5;
        cfg.redeploy_timeout = 10;
        cfg.restore_script_timeout = 5;
        cfg.api_request_timeout = 2;
        cfg.poll_interval = 0; // 100 ms
        std::string kc = root + cfg.kubeconfig;
        fs::create_directories(fs::path(kc).parent_path());
        std::ofstream(kc) << "apiVersion: v1\nkind: Config\n";
        // The stand-ins find their state dir and the kubeconfig they must be given.
        std::ofstream(s + "/env") << "S=" << s << "\nKC=" << kc << "\n";
        units = make_command_units(script("systemctl", kSystemctl));
        be.units = units.get();
        std::string crs = root + cfg.cluster_restore_script;
        std::ofstream(crs) << "#!/bin/bash\nS=" << s << "\n" << kClusterRestore;
        ::chmod(crs.c_str(), 0755);
        // Before the restore: the old containers (etcd even still running).
        put("containers/etcd", "old-etcd CONTAINER_RUNNING 1000");
        put("containers/etcd-operator", "old-etcd-operator CONTAINER_EXITED 1000");
        put("containers/kube-apiserver-operator", "old-kao CONTAINER_EXITED 1000");
        put("containers/kube-controller-manager-operator", "old-kcmo CONTAINER_EXITED 1000");
        put("containers/kube-scheduler-operator-container", "old-kso CONTAINER_EXITED 1000");
        put("boot_id", "boot-2\n");
        opts.root = root;
        opts.resume = true;
        opts.boot_id_path = s + "/boot_id";
        make_backup();
        phase1_done("offline", "");
    }
    ~Cluster() { fs::remove_all(fs::path(root).parent_path()); }

    std::string script(const std::string& name, const char* body)
    {
        std::string p = s + "/" + name;
        std::ofstream(p) << "#!/bin/bash\n. " << s << "/env\n" << body;
        ::chmod(p.c_str(), 0755);
        return p;
    }
    void put(const std::string& name, const std::string& v) const { std::ofstream(s + "/" + name) << v << "\n"; }
    static std::string slurp(const std::string& path)
    {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    std::string get(const std::string& name) const { return slurp(s + "/" + name); }
    bool has(const std::string& name) const { return fs::exists(s + "/" + name); }
    std::vector<std::string> calls() const
    {
        std::vector<std::string> out;
        std::istringstream in(get("calls"));
        for (std::string l; std::getline(in, l);)
            if (!l.empty()) out.push_back(l);
        return out;
    }
    std::string store_path() const { return root + cfg.mount_point; }

    void make_backup()
    {
        std::string dir = store_path() + "/backups/" + kBackupId;
        fs::create_directories(dir + "/cluster");
        BackupMetadata m;
        m.id = kBackupId;
        m.created = "2024-05-01T10:00:00Z";
        m.host = "sno";
        m.cluster.present = true;
        m.cluster.method = "script";
        m.cluster.snapshot = "snapshot_2024-05-01_100000.db";
        m.cluster.static_resources = "static_kuberesources_2024-05-01_100000.tar.gz";
        m.openshift.has_cluster_restore = true;
        m.openshift.has_etcd_scripts = true;
        std::ofstream(dir + "/" + kMetadataFile) << metadata_to_toml(m);
        std::ofstream(dir + "/cluster/" + m.cluster.snapshot) << "snapshot";
        std::ofstream(dir + "/cluster/" + m.cluster.static_resources) << "tar";
    }

    // The backup's /etc names the control plane's images (W11): etcd as JSON, the
    // apiserver as YAML; the runtime holds the etcd one only.
    void control_plane_images()
    {
        std::string dir = store_path() + "/backups/" + kBackupId;
        fs::create_directories(dir + "/etc/kubernetes/manifests");
        std::ofstream(dir + "/etc/kubernetes/manifests/etcd-pod.yaml")
            << R"({"spec":{"containers":[{"name":"etcd","image":"r/etcd@sha256:1"}]}})";
        std::ofstream(dir + "/etc/kubernetes/manifests/kube-apiserver-pod.yaml")
            << "spec:\n  containers:\n  - image: r/kas@sha256:2\n";
        auto m = metadata_from_toml(slurp(dir + "/" + kMetadataFile), kMetadataFile);
        REQUIRE(m);
        m->trees.push_back(TreeRecord{"etc", "/etc", 2, 0, {}});
        std::ofstream(dir + "/" + kMetadataFile, std::ios::trunc) << metadata_to_toml(*m);
        put("images", "r/etcd@sha256:1");
    }

    // The journal as phase 1 leaves it: all phase 1 steps done, paused, phase2-pending.
    // `initrd`: as the initramfs leaves it, the live-only steps skipped as offline.
    void phase1_done(const std::string& mode, const std::string& boot_id, bool initrd = false)
    {
        auto store = open_store(cfg, root, true);
        REQUIRE(store);
        auto dir = JournalDir::open(*store, true);
        REQUIRE(dir);
        RecoveryJournal j;
        j.recovery_id = "20240501T120000Z";
        j.backup_id = kBackupId;
        j.started = "2024-05-01T12:00:00Z";
        j.mode = mode;
        j.root = root;
        j.phase1_boot_id = boot_id;
        j.state = RecoveryState::Paused;
        for (const auto& d : recovery_steps()) {
            JournalStep st;
            st.name = d.name;
            if (d.phase == 1) st.state = StepState::Done;
            if (d.live_only && initrd) {
                st.state = StepState::Skipped;
                st.data["offline"] = "1";
            }
            j.steps.push_back(std::move(st));
        }
        REQUIRE(dir->save(j));
        REQUIRE(dir->set_phase2_pending(j.recovery_id));
    }

    RecoveryJournal journal() const
    {
        auto store = open_store(cfg, root, false);
        REQUIRE(store);
        auto dir = JournalDir::open(*store, false);
        REQUIRE(dir);
        auto j = dir->load();
        REQUIRE(j);
        REQUIRE(*j);
        return **j;
    }

    Result<RecoveryOutcome> run()
    {
        Progress p;
        return run(p);
    }
    Result<RecoveryOutcome> run(Progress& p)
    {
        CancelToken c;
        return run_recovery(cfg, opts, be, p, c);
    }
    Result<RecoveryOutcome> run(const CancelToken& c)
    {
        Progress p;
        return run_recovery(cfg, opts, be, p, c);
    }
};

// Index of the first call starting with `prefix`, or -1.
long first(const std::vector<std::string>& calls, const std::string& prefix)
{
    for (size_t i = 0; i < calls.size(); i++)
        if (calls[i].rfind(prefix, 0) == 0) return static_cast<long>(i);
    return -1;
}
long last(const std::vector<std::string>& calls, const std::string& prefix)
{
    for (size_t i = calls.size(); i-- > 0;)
        if (calls[i].rfind(prefix, 0) == 0) return static_cast<long>(i);
    return -1;
}
size_t count(const std::vector<std::string>& calls, const std::string& needle)
{
    size_t n = 0;
    for (const auto& c : calls)
        if (c.find(needle) != std::string::npos) n++;
    return n;
}

std::string oc_prefix(const Cluster& c, const std::string& rest)
{
    return "oc --kubeconfig " + c.root + c.cfg.kubeconfig + " --request-timeout=2s " + rest;
}

} // namespace

TEST_CASE("phase 2 brings the cluster back, in the right order, through an API that is down at first")
{
    Cluster c;
    c.put("api-down", "4");
    auto t0 = Clock::now();
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(r->state == RecoveryState::Complete);
    CHECK(Clock::now() - t0 < std::chrono::seconds(30));

    auto calls = c.calls();
    // W10: crio, the record, cluster-restore, kubelet enabled before started; crio never restarted.
    long crio_start = first(calls, "systemctl start crio.service");
    long record = first(calls, "crictl ps -a -o json");
    long restore = first(calls, "cluster-restore ");
    long enable_kubelet = first(calls, "systemctl enable kubelet.service");
    long start_kubelet = first(calls, "systemctl start kubelet.service");
    REQUIRE(crio_start >= 0);
    CHECK(first(calls, "systemctl is-active crio.service") < crio_start);
    CHECK(crio_start < record);
    CHECK(record < restore);
    CHECK(restore < enable_kubelet);
    CHECK(enable_kubelet < start_kubelet);
    CHECK(count(calls, "restart") == 0);
    // Phase 1 ran live: its pods and wipe steps are not done again.
    CHECK(count(calls, "crictl pods") == 0);
    CHECK(count(calls, "crio ") == 0);
    CHECK(calls[static_cast<size_t>(restore)] ==
          "cluster-restore " + c.store_path() + "/backups/" + kBackupId + "/cluster");
    // The API is used only after the containers are back, then per operator in order.
    long first_oc = first(calls, "oc ");
    CHECK(start_kubelet < first_oc);
    CHECK(last(calls, "crictl ") < first_oc);
    long prev = -1;
    for (const char* res : {"etcd", "kubeapiserver", "kubecontrollermanager", "kubescheduler"}) {
        long get_before = first(calls, oc_prefix(c, std::string("get ") + res + " cluster -o json"));
        long patch = first(calls, oc_prefix(c, std::string("patch ") + res + " cluster --type=merge -p "));
        long done = last(calls, oc_prefix(c, std::string("get ") + res + " "));
        INFO(res);
        CHECK(prev < get_before);
        CHECK(get_before < patch);
        CHECK(patch < done);
        CHECK(count(calls, std::string("patch ") + res + " cluster") == 1);
        prev = done;
        // W9: done means all nodes at the new latest revision.
        CHECK(c.get("current-" + std::string(res)) == "4\n");
        CHECK(c.get("latest-" + std::string(res)) == "4\n");
    }
    // W8: every oc call had the kubeconfig and the request timeout (the stand-in exits 99 otherwise).
    for (const auto& l : calls)
        if (l.rfind("oc ", 0) == 0) CHECK(l.rfind(oc_prefix(c, ""), 0) == 0);
    CHECK(std::stoi(c.get("api-calls")) > 4); // the first four were refused and retried
    // The end: what the cluster looks like now, kept on the partition (features 15,
    // 27); then, last, the phase 2 unit disabled (a power cut during the slow status
    // calls must find phase 2 still set to resume); kubelet enabled, marker gone.
    long status = first(calls, oc_prefix(c, "adm upgrade"));
    CHECK(status > prev);
    CHECK(first(calls, oc_prefix(c, "get machineconfigpools")) > status);
    CHECK(last(calls, "systemctl disable upgrade-recovery-phase2.service") >
          last(calls, oc_prefix(c, "get machineconfigpools")));
    CHECK(Cluster::slurp(c.store_path() + "/recovery/cluster-status.after") ==
          "$ oc adm upgrade\nCluster version is 4.14.9\n"
          "$ oc get clusteroperators\nNAME VERSION AVAILABLE PROGRESSING DEGRADED\netcd 4.14.9 True False False\n"
          "$ oc get nodes -o wide\nNAME STATUS ROLES\nsno Ready control-plane,master,worker\n"
          "$ oc get machineconfigpools\nNAME CONFIG UPDATED\nmaster rendered-master-0a1b True\n");
    // Phase 2 never looks before: the node was not untouched when it began.
    CHECK_FALSE(fs::exists(c.store_path() + "/recovery/cluster-status.before"));
    CHECK(c.has("enabled-kubelet.service"));
    CHECK_FALSE(fs::exists(c.store_path() + "/recovery/phase2-pending"));
    auto j = c.journal();
    CHECK(j.state == RecoveryState::Complete);
    CHECK(j.result() == "complete");
    CHECK_FALSE(j.finished.empty());
    for (const auto& st : j.steps) {
        INFO(st.name);
        CHECK((st.state == StepState::Done || st.state == StepState::Skipped));
    }
    CHECK(j.step("record-containers")->data.at("etcd") == "old-etcd");
    CHECK(j.step("wait-etcd")->note.find("running as new-etcd-") != std::string::npos);
    CHECK(j.step("redeploy-etcd")->data.at("latest_before") == "3");
    CHECK(j.step("redeploy-etcd")->data.at("reason").rfind("recovery-", 0) == 0);
    CHECK(j.step("redeploy-etcd")->note == "all nodes at revision 4");

    // Finished: a further --resume has nothing to do, and a new start is not refused by it.
    auto again = c.run();
    REQUIRE_FALSE(again);
    CHECK(again.error().kind == ErrorKind::NotFound);
    auto st = open_store(c.cfg, c.root, false);
    CHECK_FALSE(*recovery_in_progress(*st));
}

// The initramfs cannot reach CRI-O: phase 1 there skips removing the pods and the wipe.
// Phase 2 does them after the reboot, before anything starts a container again.
TEST_CASE("after a phase 1 in the initramfs, phase 2 removes the old pods and does the wipe it skipped")
{
    for (bool wipe : {true, false}) {
        Cluster c;
        c.cfg.wipe_images = wipe;
        auto runtime = make_crictl_runtime(c.cfg, c.script("crio", kCrio));
        c.be.runtime = runtime.get();
        c.phase1_done("initrd", "", true);
        fs::create_directories(c.s + "/pods");
        c.put("pods/pod-of-the-failed-upgrade", "");
        c.put("active-crio.service", ""); // started at boot: phase 1 disables only kubelet
        auto r = c.run();
        INFO("wipe_images " << wipe << "\n" << c.get("calls"));
        REQUIRE(r);
        CHECK(r->complete);
        auto calls = c.calls();
        long stop_crio = first(calls, "systemctl stop crio.service");
        long wiped = first(calls, "crio wipe -f");
        long start_crio = first(calls, "systemctl start crio.service");
        long pods = first(calls, "crictl pods -q");
        long rmp = first(calls, "crictl rmp -fa");
        long record = first(calls, "crictl ps -a -o json");
        long start_kubelet = first(calls, "systemctl start kubelet.service");
        CHECK(rmp >= 0);
        CHECK(pods < rmp);
        CHECK(rmp < record);
        CHECK(rmp < start_kubelet);
        CHECK_FALSE(fs::exists(c.s + "/pods/pod-of-the-failed-upgrade"));
        const std::string note = c.journal().step("start-crio")->note;
        CHECK_THAT(note, Catch::Contains("1 pods of the failed upgrade removed (phase 1 ran offline)"));
        if (wipe) {
            REQUIRE(stop_crio >= 0);
            CHECK(stop_crio < wiped);
            CHECK(wiped < start_crio);
            CHECK(start_crio < pods);
            CHECK(c.has("wiped"));
            CHECK_THAT(note, Catch::Contains("container and image storage wiped (phase 1 ran offline)"));
        } else {
            CHECK(wiped == -1);
            CHECK(stop_crio == -1);
            CHECK_THAT(note, Catch::StartsWith("crio.service already active"));
        }
    }
}

TEST_CASE("a container that never comes back times out at its deadline; the journal shows the step")
{
    Cluster c;
    c.cfg.container_restart_timeout = 2;
    c.put("never", "kube-scheduler-operator-container");
    auto t0 = Clock::now();
    auto r = c.run();
    auto took = Clock::now() - t0;
    INFO(c.get("calls"));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(r.error().message.find("kube-scheduler-operator-container") != std::string::npos);
    CHECK(took >= std::chrono::seconds(2));
    CHECK(took < std::chrono::seconds(15));
    auto j = c.journal();
    CHECK(j.state == RecoveryState::Failed);
    CHECK(j.result().empty()); // still in progress: resumable
    CHECK(j.step("wait-kube-controller-manager-operator")->state == StepState::Done);
    const auto* w = j.step("wait-kube-scheduler-operator-container");
    CHECK(w->state == StepState::Failed);
    CHECK(w->error.find("was not recreated and running within 2s") != std::string::npos);
    CHECK(w->error.find("old-kso") != std::string::npos);
    CHECK(j.step("redeploy-etcd")->state == StepState::Pending);
    CHECK(first(c.calls(), "oc ") == -1);
    CHECK(fs::exists(c.store_path() + "/recovery/phase2-pending"));

    // Without --resume the recovery in progress is refused, with a clear message.
    c.opts.resume = false;
    auto refused = c.run();
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::RecoveryInProgress);
    CHECK(refused.error().message.find("--resume") != std::string::npos);
    CHECK(refused.error().message.find("wait-kube-scheduler-operator-container") != std::string::npos);

    // The operator fixes it; --resume retries exactly that step and finishes.
    c.put("containers/kube-scheduler-operator-container", "fixed-kso CONTAINER_RUNNING 5000");
    c.put("calls", "");
    c.opts.resume = true;
    auto r2 = c.run();
    INFO(c.get("calls"));
    REQUIRE(r2);
    CHECK(r2->complete);
    auto j2 = c.journal();
    CHECK(j2.step("wait-kube-scheduler-operator-container")->attempts == 2);
    CHECK(j2.step("wait-etcd")->attempts == 1);
    CHECK(first(c.calls(), "cluster-restore") == -1); // not run again
    CHECK(first(c.calls(), "systemctl start kubelet.service") == -1);
}

TEST_CASE("a degrading installer fails the redeployment early")
{
    Cluster c;
    c.cfg.redeploy_timeout = 60;
    c.put("degrade-kubeapiserver", "1");
    auto t0 = Clock::now();
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE_FALSE(r);
    CHECK(Clock::now() - t0 < std::chrono::seconds(20)); // far below the 60 s deadline
    CHECK(r.error().kind == ErrorKind::ExternalFailed);
    CHECK(r.error().message.find("NodeInstallerDegraded") != std::string::npos);
    auto j = c.journal();
    CHECK(j.state == RecoveryState::Failed);
    CHECK(j.step("redeploy-etcd")->state == StepState::Done);
    CHECK(j.step("redeploy-kubeapiserver")->state == StepState::Failed);
    CHECK(j.step("redeploy-kubeapiserver")->error.find("1 nodes are failing on revision 4") != std::string::npos);
    CHECK(j.step("redeploy-kubecontrollermanager")->state == StepState::Pending);
    CHECK(first(c.calls(), oc_prefix(c, "patch kubecontrollermanager")) == -1);
}

TEST_CASE("an API that stays down ends at the redeploy deadline")
{
    Cluster c;
    c.cfg.redeploy_timeout = 2;
    c.put("api-down", "100000");
    auto t0 = Clock::now();
    auto r = c.run();
    auto took = Clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(r.error().message.find("was refused") != std::string::npos);
    CHECK(took >= std::chrono::seconds(2));
    CHECK(took < std::chrono::seconds(15));
    auto j = c.journal();
    CHECK(j.step("redeploy-etcd")->state == StepState::Failed);
    CHECK(j.step("redeploy-etcd")->data.count("latest_before") == 0);
    CHECK(first(c.calls(), oc_prefix(c, "patch")) == -1);
}

TEST_CASE("the cluster status at the end is best effort: an API gone again does not fail the recovery")
{
    Cluster c;
    c.put("status-down", "");
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(c.journal().state == RecoveryState::Complete);
    // One command tried, the rest skipped; what it said is kept.
    CHECK(count(c.calls(), "adm upgrade") == 1);
    CHECK(count(c.calls(), "get clusteroperators") == 0);
    CHECK(Cluster::slurp(c.store_path() + "/recovery/cluster-status.after") ==
          "$ oc adm upgrade\n(failed: oc adm upgrade: exit 1: Unable to connect to the server: EOF)\n");
}

// Phase 2 is retired (unit disabled, marker removed) after the journal says Complete;
// a power cut in between leaves a finished recovery with its marker, which the next
// boot's `recover --resume` only tidies up.
TEST_CASE("a resume after a cut between Complete and the marker's removal retires phase 2")
{
    Cluster c;
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    REQUIRE(r->complete);
    const std::string marker = c.store_path() + "/recovery/phase2-pending";
    CHECK_FALSE(fs::exists(marker));
    auto j = c.journal();
    REQUIRE(j.state == RecoveryState::Complete);
    // What the cut leaves: the journal Complete, the marker still there.
    std::ofstream(marker) << j.recovery_id << "\n";
    c.put("calls", "");
    auto again = c.run(); // opts.resume, as the unit runs it
    INFO(c.get("calls"));
    REQUIRE(again);
    CHECK(again->complete);
    CHECK(again->recovery_id == j.recovery_id);
    CHECK(again->message.find("was already complete") != std::string::npos);
    CHECK_FALSE(fs::exists(marker));
    CHECK(count(c.calls(), "systemctl disable upgrade-recovery-phase2.service") == 1);
    CHECK(first(c.calls(), "oc ") == -1); // nothing of the recovery ran again
    CHECK(first(c.calls(), "cluster-restore") == -1);
    auto j2 = c.journal();
    CHECK(j2.state == RecoveryState::Complete);
    CHECK(j2.finished == j.finished);
    // With nothing left over, a resume still has nothing to do.
    auto none = c.run();
    REQUIRE_FALSE(none);
    CHECK(none.error().kind == ErrorKind::NotFound);

    // Whether the backup had the unit enabled cannot be read: it is left enabled
    // (harmless, the unit is conditioned on the marker), not disabled unseen.
    std::ofstream(marker) << j.recovery_id << "\n";
    const std::string units_dir = c.store_path() + "/backups/" + j.backup_id + "/etc/systemd/system";
    fs::remove_all(units_dir);
    fs::create_directories(fs::path(units_dir).parent_path());
    std::ofstream(units_dir) << "not a directory\n";
    c.put("calls", "");
    auto unknown = c.run();
    INFO(c.get("calls"));
    REQUIRE(unknown);
    CHECK(unknown->message.find("was already complete") != std::string::npos);
    CHECK_FALSE(fs::exists(marker));
    CHECK(count(c.calls(), "systemctl disable upgrade-recovery-phase2.service") == 0);
}

TEST_CASE("a failing cluster-restore.sh stops phase 2 before kubelet starts")
{
    Cluster c;
    c.put("restore-fails", "1");
    auto r = c.run();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::ExternalFailed);
    CHECK(r.error().message.find("snapshot integrity check failed") != std::string::npos);
    auto j = c.journal();
    CHECK(j.step("restore-etcd")->state == StepState::Failed);
    CHECK(j.step("record-containers")->state == StepState::Done);
    CHECK(first(c.calls(), "systemctl enable kubelet.service") == -1);
    CHECK(first(c.calls(), "systemctl start kubelet.service") == -1);

    // A missing restored script is found before anything runs (W18), not a crash.
    fs::remove(c.root + c.cfg.cluster_restore_script);
    auto r2 = c.run();
    REQUIRE_FALSE(r2);
    CHECK(r2.error().kind == ErrorKind::NotFound);
}

// The unit's --resume used to fail at once (Busy) while a verify held the store, and
// Restart=no left kubelet disabled until someone came: it waits for the lock now.
TEST_CASE("phase 2 waits for a store another operation holds, then runs")
{
    Cluster c;
    const std::string lockfile = c.store_path() + "/.lock";
    UniqueFd held(::open(lockfile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(held);
    REQUIRE(::flock(held.get(), LOCK_EX | LOCK_NB) == 0); // a verify, say
    std::thread other([&] {
        std::this_thread::sleep_for(std::chrono::seconds(3));
        held.reset(); // it finishes
    });
    auto r = c.run();
    other.join();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(c.journal().state == RecoveryState::Complete);
}

TEST_CASE("--step stops after the restore-cluster stage")
{
    Cluster c;
    c.opts.step = true;
    c.opts.resume = false; // --step alone continues a recovery in progress
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK_FALSE(r->complete);
    CHECK(r->state == RecoveryState::Paused);
    CHECK(r->stopped_before == "redeploy-etcd");
    CHECK(r->message.find("--step") != std::string::npos);
    CHECK(first(c.calls(), "oc ") == -1);
    CHECK(c.journal().state == RecoveryState::Paused);
    auto st = open_store(c.cfg, c.root, false);
    CHECK(*recovery_in_progress(*st));

    auto r2 = c.run(); // the redeploy stage, then the end
    REQUIRE(r2);
    CHECK(r2->complete);
}

TEST_CASE("resuming a redeploy that crashed after its patch does not patch again")
{
    Cluster c;
    // Crash state: everything up to redeploy-etcd done, the patch recorded, the process gone.
    auto store = open_store(c.cfg, c.root, true);
    auto dir = JournalDir::open(*store, true);
    auto j = *dir->load();
    for (auto& st : j->steps) {
        if (st.name == "redeploy-etcd") {
            st.state = StepState::Started;
            st.attempts = 1;
            st.data = {{"latest_before", "3"}, {"reason", "recovery-x"}, {"patched", "1"}};
            break;
        }
        st.state = StepState::Done;
    }
    j->step("record-containers")->data = {{"etcd", "old-etcd"}};
    j->state = RecoveryState::Running;
    REQUIRE(dir->save(*j));
    c.put("active-crio.service", "");
    c.put("latest-etcd", "4");
    c.put("polls-etcd", "0");
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    auto calls = c.calls();
    CHECK(count(calls, "patch etcd cluster") == 0);
    CHECK(count(calls, "patch kubeapiserver cluster") == 1);
    CHECK(first(calls, "cluster-restore") == -1);
    CHECK(c.journal().step("redeploy-etcd")->attempts == 2);
}

TEST_CASE("phase 2 refuses to run in the boot in which live phase 1 ran")
{
    Cluster c;
    c.phase1_done("live", "boot-2");
    auto r = c.run();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Refused);
    CHECK(r.error().message.find("reboot") != std::string::npos);
    CHECK(c.calls().empty());
    CHECK(c.journal().state == RecoveryState::Paused); // untouched

    c.put("boot_id", "boot-3"); // after the reboot
    auto r2 = c.run();
    REQUIRE(r2);
    CHECK(r2->complete);
}

TEST_CASE("phase 2 does not run offline")
{
    Cluster c;
    c.be.units = nullptr;
    c.cfg.systemctl_mode = "offline";
    auto r = c.run();
    REQUIRE(r);
    CHECK_FALSE(r->complete);
    CHECK(r->phase1_done);
    CHECK(r->stopped_before == "start-crio");
    CHECK(r->message.find("upgrade-recovery-phase2.service") != std::string::npos);
    CHECK(c.calls().empty());
}

TEST_CASE("start decisions")
{
    RecoveryOptions o;
    std::optional<RecoveryJournal> none;
    CHECK(decide_start(none, o).kind == StartKind::New);
    o.resume = true;
    CHECK(decide_start(none, o).kind == StartKind::NothingToResume);
    o.resume = false;
    o.step = true;
    CHECK(decide_start(none, o).kind == StartKind::New);

    RecoveryJournal j;
    j.recovery_id = "r";
    j.backup_id = "b";
    for (auto st : {RecoveryState::Running, RecoveryState::Paused, RecoveryState::Failed}) {
        j.state = st;
        RecoveryOptions plain;
        auto d = decide_start(j, plain);
        CHECK(d.kind == StartKind::RefuseInProgress);
        CHECK(d.message.find("--restart") != std::string::npos);
        RecoveryOptions res;
        res.resume = true;
        CHECK(decide_start(j, res).kind == StartKind::Resume);
        RecoveryOptions stp;
        stp.step = true;
        CHECK(decide_start(j, stp).kind == StartKind::Resume);
        RecoveryOptions ini;
        ini.initrd = true;
        CHECK(decide_start(j, ini).kind == StartKind::Resume);
        RecoveryOptions rst;
        rst.restart = true;
        CHECK(decide_start(j, rst).kind == StartKind::New);
        RecoveryOptions other;
        other.resume = true;
        other.backup_id = "c";
        CHECK(decide_start(j, other).kind == StartKind::BackupMismatch);
        other.backup_id = "b";
        CHECK(decide_start(j, other).kind == StartKind::Resume);
    }
    for (auto st : {RecoveryState::Complete, RecoveryState::Aborted}) {
        j.state = st;
        RecoveryOptions plain;
        CHECK(decide_start(j, plain).kind == StartKind::New);
        RecoveryOptions res;
        res.resume = true;
        CHECK(decide_start(j, res).kind == StartKind::NothingToResume);
    }
}

TEST_CASE("the step plan")
{
    const auto& steps = recovery_steps();
    std::vector<std::string> names;
    for (const auto& s : steps)
        names.push_back(s.name);
    auto pos = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
    CHECK(names.front() == "verify");
    CHECK(names.back() == "finish");
    CHECK(pos("verify") < pos("platform-rollback"));
    CHECK(pos("platform-rollback") < pos("stop-kubelet"));
    CHECK(pos("stop-kubelet") < pos("remove-pods"));
    CHECK(pos("remove-pods") < pos("stop-crio"));
    CHECK(pos("stop-crio") < pos("restore-files"));
    CHECK(pos("restore-files") < pos("disable-kubelet"));
    CHECK(pos("enable-phase2") < pos("phase1-done"));
    CHECK(pos("phase1-done") < pos("start-crio"));
    CHECK(pos("record-containers") < pos("restore-etcd"));
    CHECK(pos("restore-etcd") < pos("start-kubelet"));
    CHECK(pos("start-kubelet") < pos("wait-etcd"));
    CHECK(pos("wait-kube-scheduler-operator-container") < pos("redeploy-etcd"));
    CHECK(pos("redeploy-etcd") < pos("redeploy-kubeapiserver"));
    CHECK(pos("redeploy-kubeapiserver") < pos("redeploy-kubecontrollermanager"));
    CHECK(pos("redeploy-kubecontrollermanager") < pos("redeploy-kubescheduler"));
    for (const auto& s : steps) {
        CHECK(find_step_def(s.name) == &s);
        if (s.live_only) CHECK(s.phase == 1);
    }
    CHECK(find_step_def("nope") == nullptr);
}

TEST_CASE("a complete recovery warns when a boot entry keeps upgrade_recovery=phase1")
{
    struct Warnings : Progress {
        std::vector<std::string> seen;
        void warning(const std::string& msg) override { seen.push_back(msg); }
    };
    Cluster c;
    fs::create_directories(c.root + "/boot/loader/entries");
    std::ofstream(c.root + "/boot/loader/entries/ostree-1-rhcos.conf") << "options rw upgrade_recovery=phase1\n";
    Warnings w;
    auto r = c.run(w);
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(std::count_if(w.seen.begin(), w.seen.end(), [](const std::string& m) {
              return m.starts_with("the kernel argument upgrade_recovery=phase1 is kept in the boot entry "
                                   "/boot/loader/entries/ostree-1-rhcos.conf:");
          }) == 1);
}

TEST_CASE("phase 2 pulls the control-plane images the storage lacks before cluster-restore.sh (W11)")
{
    Cluster c;
    c.control_plane_images();
    c.put("pull-fails", "2"); // the registry answers on the third try
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    auto calls = c.calls();
    const long list = first(calls, "crictl images -o json"), pull = first(calls, "crictl pull r/kas@sha256:2"),
               restore = first(calls, "cluster-restore");
    CHECK(first(calls, "crictl ps") < list); // CRI-O runs, the containers are recorded
    CHECK(list < pull);
    CHECK(last(calls, "crictl pull") < restore);
    CHECK(count(calls, "crictl pull r/kas@sha256:2") == 3);  // tried again until it came
    CHECK(count(calls, "crictl pull r/etcd@sha256:1") == 0); // there already
    auto j = c.journal();
    CHECK(j.step("pull-images")->state == StepState::Done);
    CHECK(j.step("pull-images")->note == "pulled 1 missing control-plane images: r/kas@sha256:2");
    CHECK(j.step("restore-etcd")->note.find("etcd restored from") == 0);
}

TEST_CASE("an image that cannot be pulled stops phase 2 before cluster-restore.sh; --resume tries again (W11)")
{
    Cluster c;
    c.control_plane_images();
    // Not less: twice in suite runs (never alone) only one pull ran within 2 s and 5 s,
    // and the error lacked the pull's reason; stand-ins stalled by the tests beside it,
    // as far as the calls show. The message is shown when a check fails.
    c.cfg.pull_timeout = 10;
    c.put("pull-fails", "always");
    auto t0 = Clock::now();
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(Clock::now() - t0 >= std::chrono::seconds(10)); // tried until recovery.pull_timeout
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(r.error().message.find("cannot pull r/kas@sha256:2") != std::string::npos);
    CHECK(r.error().message.find("no such host") != std::string::npos);
    CHECK(r.error().message.find("within 10s") != std::string::npos);
    CHECK(r.error().message.find("recover --resume") != std::string::npos);
    CHECK(count(c.calls(), "crictl pull r/kas@sha256:2") >= 2);
    CHECK(first(c.calls(), "cluster-restore") == -1);
    CHECK_FALSE(c.has("restored"));
    CHECK(c.journal().step("pull-images")->state == StepState::Failed);
    CHECK(c.journal().step("restore-etcd")->state == StepState::Pending);

    fs::remove(c.s + "/pull-fails"); // the registry is reachable again
    auto again = c.run();
    INFO(c.get("calls"));
    REQUIRE(again);
    CHECK(again->complete);
    CHECK(c.has("restored"));
}

TEST_CASE("a pull cut short by the deadline keeps the registry's reason in the error (W11)")
{
    // Seen as a flake under load: the last try began at the deadline, and the error said
    // only "timed out after 0.0s" instead of why the registry refused the image.
    Cluster c;
    c.control_plane_images();
    c.cfg.pull_timeout = 3;
    c.put("pull-fails", "1");
    c.put("then-hang", "1"); // the next try hangs until the step's deadline cuts it
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(count(c.calls(), "crictl pull r/kas@sha256:2") == 2);
    CHECK_THAT(r.error().message, Catch::StartsWith("pull-images: cannot pull r/kas@sha256:2 (") &&
                                      Catch::Contains("no such host") && Catch::Contains("within 3s"));
    CHECK(c.journal().step("pull-images")->state == StepState::Failed);
    CHECK(first(c.calls(), "cluster-restore") == -1);
}

TEST_CASE("a container storage that cannot be listed is not checked; phase 2 goes on (W11)")
{
    Cluster c;
    c.control_plane_images();
    c.put("images-broken", "1");
    auto r = c.run();
    INFO(c.get("calls"));
    REQUIRE(r);
    CHECK(r->complete);
    CHECK(count(c.calls(), "crictl images") == 1);
    CHECK(count(c.calls(), "crictl pull") == 0);
    CHECK(c.journal().step("pull-images")->note.find("not checked: cannot list the container images") == 0);
}

TEST_CASE("a cancel during a pull that hangs stops phase 2 at once, and --resume goes on (W11)")
{
    Cluster c;
    c.control_plane_images();
    c.cfg.pull_timeout = 60; // the cancel, not the deadline, must end it
    c.put("pull-hangs", "");
    CancelToken cancel;
    std::thread canceller([&] {
        for (int i = 0; i < 600 && !c.has("pull-started"); i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        cancel.cancel(); // SIGTERM of the unit, as SignalCancel turns it into
    });
    auto t0 = Clock::now();
    auto r = c.run(cancel);
    canceller.join();
    INFO(c.get("calls"));
    REQUIRE(c.has("pull-started"));
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().kind == ErrorKind::Cancelled);
    CHECK(Clock::now() - t0 < std::chrono::seconds(30)); // not the 60 s pull_timeout, nor the 600 s sleep
    CHECK(first(c.calls(), "cluster-restore") == -1);
    CHECK(c.journal().step("pull-images")->state == StepState::Failed);
    CHECK(c.journal().step("restore-etcd")->state == StepState::Pending);
    // The stand-in's process group went with it: no sleep of its pull is left.
    CHECK(std::system("ps -eo args | grep -qx 'sleep 600'") != 0);

    fs::remove(c.s + "/pull-hangs");
    auto again = c.run();
    INFO(c.get("calls"));
    REQUIRE(again);
    CHECK(again->complete);
}

TEST_CASE("pull-images is skipped without an etcd snapshot or named images")
{
    Cluster c; // metadata without /etc: nothing to read the images from
    auto r = c.run();
    REQUIRE(r);
    CHECK(c.journal().step("pull-images")->state == StepState::Skipped);
    CHECK(count(c.calls(), "crictl images") == 0);
}
