// cluster_backup against a real etcd 3.4 on loopback: etcdctl mode, script mode
// with a stand-in cluster-backup.sh that uses the same etcd, snapshot restore
// into a second etcd, corruption and deadline handling.
// Run through test-cluster-backup.sh, which skips (77) without etcd/etcdctl.
#include "cluster_backup.hpp"
#include "process.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace ur;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace
{

struct TempDir {
    std::string path;
    TempDir()
    {
        char t[] = "/tmp/ur-test-cluster-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~TempDir() { fs::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

void write_file(const std::string& path, const std::string& text, mode_t mode = 0644)
{
    fs::create_directories(fs::path(path).parent_path());
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << text;
    }
    ::chmod(path.c_str(), mode);
}

int free_port()
{
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(s >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(s);
    return ntohs(a.sin_port);
}

CommandResult run_ok(std::vector<std::string> argv, std::optional<std::string> stdin_data = std::nullopt)
{
    Command c;
    c.argv = std::move(argv);
    c.env_set = {{"ETCDCTL_API", "3"}};
    c.stdin_data = std::move(stdin_data);
    c.timeout = 60s;
    auto r = run_checked(c);
    if (!r) FAIL(r.error().message);
    return *r;
}

std::string sha256sum(const std::string& file)
{
    auto r = run_ok({"sha256sum", file});
    return r.out.substr(0, 64);
}

// A real etcd on free loopback ports with its own data dir. The child dies with
// the test (PDEATHSIG) and is stopped and reaped by the destructor.
class Etcd
{
  public:
    Etcd(const std::string& data_dir, const std::string& name = "ur")
    {
        client_ = "http://127.0.0.1:" + std::to_string(free_port());
        peer_ = "http://127.0.0.1:" + std::to_string(free_port());
        name_ = name;
        data_dir_ = data_dir;
    }
    ~Etcd() { stop(); }
    Etcd(const Etcd&) = delete;
    Etcd& operator=(const Etcd&) = delete;

    const std::string& endpoint() const { return client_; }
    const std::string& peer() const { return peer_; }
    const std::string& name() const { return name_; }

    void start()
    {
        std::vector<std::string> args = {"etcd",
                                         "--name",
                                         name_,
                                         "--data-dir",
                                         data_dir_,
                                         "--listen-client-urls",
                                         client_,
                                         "--advertise-client-urls",
                                         client_,
                                         "--listen-peer-urls",
                                         peer_,
                                         "--initial-advertise-peer-urls",
                                         peer_,
                                         "--initial-cluster",
                                         name_ + "=" + peer_,
                                         "--initial-cluster-state",
                                         "new",
                                         "--logger",
                                         "zap",
                                         "--log-level",
                                         "error",
                                         "--heartbeat-interval=10",
                                         "--election-timeout=100"};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        std::string log = data_dir_ + ".log";
        pid_t parent = ::getpid();
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            ::setpgid(0, 0);
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            ::execvp("etcd", argv.data());
            ::_exit(127);
        }
        auto until = Clock::now() + 30s;
        for (;;) {
            Command c;
            c.argv = {"etcdctl", "--endpoints=" + client_, "--dial-timeout=1s", "endpoint", "health"};
            c.env_set = {{"ETCDCTL_API", "3"}};
            c.timeout = 5s;
            auto r = run_command(c);
            if (r && r->exit_code == 0) break;
            int st;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                FAIL("etcd exited during start-up; see " + log);
            }
            if (Clock::now() > until) FAIL("etcd did not become healthy; see " + log);
            std::this_thread::sleep_for(50ms);
        }
    }

    void stop()
    {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int st;
        for (int i = 0; i < 100; ++i) {
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(50ms);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }

    std::vector<std::string> ctl(std::vector<std::string> args) const
    {
        std::vector<std::string> a = {"etcdctl", "--endpoints=" + client_};
        a.insert(a.end(), args.begin(), args.end());
        return a;
    }

  private:
    std::string client_, peer_, name_, data_dir_;
    pid_t pid_ = -1;
};

// Keys put through `etcdctl txn` batches (stdin), 100 per transaction (max-txn-ops is 128).
void put_keys(const Etcd& e, int n)
{
    for (int base = 0; base < n; base += 100) {
        std::string txn = "\n";
        for (int i = base; i < std::min(n, base + 100); ++i)
            txn += "put key/" + std::to_string(i) + " value-" + std::to_string(i) + "\n";
        txn += "\n\n";
        run_ok(e.ctl({"txn"}), txn);
    }
}

std::map<std::string, std::string> get_all(const Etcd& e)
{
    auto r = run_ok(e.ctl({"get", "--prefix", "key/", "-w", "json"}));
    std::map<std::string, std::string> kv;
    auto j = nlohmann::json::parse(r.out);
    auto b64 = [](const std::string& s) {
        auto d = run_ok({"base64", "-d"}, s);
        return d.out;
    };
    if (j.contains("kvs"))
        for (const auto& x : j["kvs"])
            kv[b64(x["key"].get<std::string>())] = b64(x["value"].get<std::string>());
    return kv;
}

// The shared etcd for the whole run: started once, stopped at exit.
Etcd& shared_etcd()
{
    static TempDir dir;
    static std::unique_ptr<Etcd> e;
    if (!e) {
        e = std::make_unique<Etcd>(dir.path + "/data");
        e->start();
        put_keys(*e, 250);
    }
    return *e;
}

// A host root with the static pod layout of an OpenShift control plane node:
// several revisions, manifests referencing the live ones, and bin/.
struct HostRoot {
    TempDir dir;
    std::string root() const { return dir.path + "/root"; }
    std::string spr() const { return root() + "/etc/kubernetes/static-pod-resources"; }
    std::string cluster_dir() const { return dir.path + "/staging/cluster"; }

    HostRoot(bool layout = true)
    {
        fs::create_directories(spr());
        if (!layout) return;
        for (const char* d : {"kube-apiserver-pod-3", "kube-apiserver-pod-4", "kube-controller-manager-pod-2",
                              "kube-scheduler-pod-5", "etcd-pod-1", "etcd-pod-2"}) {
            write_file(spr() + "/" + d + "/secrets/tls.crt", std::string("cert of ") + d + "\n", 0600);
            std::string pod = d;
            pod = pod.substr(0, pod.rfind('-'));
            write_file(spr() + "/" + d + "/" + pod + ".yaml", "kind: Pod\n");
        }
        write_file(spr() + "/bin/etcdctl", std::string(4096, 'b'), 0755);
        write_file(spr() + "/etcd-certs/configmaps/etcd-scripts/etcd.env", "ETCDCTL_API=3\n");
        // The live apiserver revision is 3 although 4 exists (a rollout that was not finished).
        write_file(root() + "/etc/kubernetes/manifests/kube-apiserver-pod.yaml",
                   "spec:\n  volumes:\n  - hostPath:\n      path: /etc/kubernetes/static-pod-resources/"
                   "kube-apiserver-pod-3\n");
        write_file(root() + "/etc/kubernetes/manifests/etcd-pod.yaml",
                   "spec:\n  volumes:\n  - hostPath:\n      path: /etc/kubernetes/static-pod-resources/etcd-pod-2\n");
    }
};

// The stand-in for oc (the kube-apiserver cannot run here): `get <operator> cluster
// -o json` of a static pod operator, settled unless <root>/oc-state/rolling-<operator>
// exists; <root>/oc-state/down makes the API unreachable. The root is found from
// the --kubeconfig path every call carries. Calls are logged to <root>/oc-state/calls.
const char* kOcStandin = R"SH(#!/bin/sh
[ "$1" = --kubeconfig ] || { echo "oc stand-in: no --kubeconfig: $*" >&2; exit 99; }
case $3 in --request-timeout=*s) ;; *) echo "oc stand-in: no --request-timeout: $*" >&2; exit 99 ;; esac
st=${2%/etc/kubernetes/*}/oc-state
mkdir -p "$st"
echo "$*" >>"$st/calls"
[ -f "$st/down" ] && { echo "The connection to the server localhost:6443 was refused" >&2; exit 1; }
[ "$4 $6 $7 $8" = "get cluster -o json" ] || { echo "oc stand-in: unexpected: $*" >&2; exit 2; }
if [ -f "$st/rolling-$5" ]; then
  cur=2 s=True reason=NodeInstaller msg="1 nodes are at revision 2; 0 nodes have achieved new revision 3"
else
  cur=3 s=False reason=AllNodesAtLatestRevision msg="1 nodes are at revision 3"
fi
printf '{"status": {"latestAvailableRevision": 3, "nodeStatuses": [{"nodeName": "sno", "currentRevision": %s}],
 "conditions": [{"type": "NodeInstallerProgressing", "status": "%s", "reason": "%s", "message": "%s"}]}}\n' \
  "$cur" "$s" "$reason" "$msg"
)SH";

std::string shared_oc()
{
    static TempDir dir;
    static std::string path;
    if (path.empty()) {
        path = dir.path + "/oc";
        write_file(path, kOcStandin, 0755);
    }
    return path;
}

Config etcdctl_config(const Etcd& e)
{
    Config c;
    c.oc = shared_oc();
    c.etcd_mode = "etcdctl";
    c.etcd_endpoints = e.endpoint();
    c.etcd_timeout = 60;
    return c;
}

std::vector<std::string> tar_list(const std::string& file)
{
    auto r = run_ok({"tar", "-tzf", file});
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);)
        out.push_back(l);
    return out;
}

bool contains_prefix(const std::vector<std::string>& v, const std::string& p)
{
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.rfind(p, 0) == 0; });
}

void flip_byte(const std::string& file, off_t off)
{
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekg(off);
    char c;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(off);
    f.write(&c, 1);
}

// The stand-in for cluster-backup.sh: same interface and outputs, using the real etcd.
std::string standin_script(const HostRoot& h, const Etcd& e, const std::string& extra = "")
{
    return "#!/bin/sh\nset -eu\n"
           "dirty=\n"
           "if [ \"${1:-}\" = --force ]; then dirty=__POSSIBLY_DIRTY__; shift; fi\n"
           "dir=$1\n"
           "mkdir -p \"$dir\"\n"
           "ts=$(date +%F_%H%M%S)\n"
           "tar -czf \"$dir/static_kuberesources_${ts}${dirty}.tar.gz\" -C '" +
           h.root() + "/etc/kubernetes' static-pod-resources\n" + "ETCDCTL_API=3 etcdctl --endpoints=" + e.endpoint() +
           " snapshot save \"$dir/snapshot_${ts}${dirty}.db\" >/dev/null\n" + extra +
           "echo \"snapshot db and kube resources are successfully saved to $dir\"\n";
}

} // namespace

TEST_CASE("etcdctl mode: snapshot, static pod tarball, verification, and a restore that brings the keys back")
{
    Etcd& etcd = shared_etcd();
    HostRoot h;
    Config cfg = etcdctl_config(etcd);
    REQUIRE(resolve_etcd_mode(cfg, h.root()) == "etcdctl");
    CancelToken tok;
    auto rec = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
    if (!rec) FAIL(rec.error().message);

    CHECK(rec->present);
    CHECK(rec->method == "etcdctl");
    CHECK_FALSE(rec->dirty);
    CHECK(std::regex_match(rec->snapshot, std::regex(R"(snapshot_\d{4}-\d\d-\d\d_\d{6}\.db)")));
    CHECK(
        std::regex_match(rec->static_resources, std::regex(R"(static_kuberesources_\d{4}-\d\d-\d\d_\d{6}\.tar\.gz)")));
    CHECK(rec->snapshot.substr(9, 17) == rec->static_resources.substr(21, 17)); // one timestamp for both
    CHECK(rec->revision > 1);
    CHECK(rec->total_keys >= 250);
    CHECK(rec->snapshot_hash != 0);

    const std::string snap = h.cluster_dir() + "/" + rec->snapshot;
    const std::string tarball = h.cluster_dir() + "/" + rec->static_resources;
    CHECK(rec->snapshot_sha256 == sha256sum(snap));
    CHECK(rec->snapshot_size == fs::file_size(snap));
    CHECK(rec->static_resources_sha256 == sha256sum(tarball));
    CHECK((fs::status(snap).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    CHECK((fs::status(tarball).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    // Nothing else is left in the directory (no .part file).
    CHECK(std::distance(fs::directory_iterator(h.cluster_dir()), fs::directory_iterator()) == 2);

    // The revisions the manifests reference (or the newest), relative to /etc/kubernetes, no bin/.
    auto members = tar_list(tarball);
    CHECK(contains_prefix(members, "static-pod-resources/kube-apiserver-pod-3/"));
    CHECK_FALSE(contains_prefix(members, "static-pod-resources/kube-apiserver-pod-4"));
    CHECK(contains_prefix(members, "static-pod-resources/etcd-pod-2/"));
    CHECK_FALSE(contains_prefix(members, "static-pod-resources/etcd-pod-1"));
    CHECK(contains_prefix(members, "static-pod-resources/kube-controller-manager-pod-2/"));
    CHECK(contains_prefix(members, "static-pod-resources/kube-scheduler-pod-5/"));
    CHECK_FALSE(contains_prefix(members, "static-pod-resources/bin"));
    CHECK(contains_prefix(members, "static-pod-resources/kube-apiserver-pod-3/kube-apiserver-pod.yaml"));

    // Restore into a new data dir (etcdctl checks the sha256 trailer) and serve it.
    TempDir rdir;
    Etcd restored(rdir.path + "/data", "restored");
    run_ok({"etcdctl", "snapshot", "restore", snap, "--data-dir", rdir.path + "/data", "--name", restored.name(),
            "--initial-cluster", restored.name() + "=" + restored.peer(), "--initial-advertise-peer-urls",
            restored.peer()});
    restored.start();
    auto before = get_all(etcd);
    auto after = get_all(restored);
    CHECK(after.size() == 250);
    CHECK(after == before);
    CHECK(after["key/17"] == "value-17");
    auto st = run_ok(restored.ctl({"endpoint", "status", "-w", "json"}));
    auto j = nlohmann::json::parse(st.out);
    CHECK(j.at(0).at("Status").at("header").at("revision").get<int64_t>() == rec->revision);
    restored.stop();
}

TEST_CASE("etcdctl mode with --force marks the backup dirty")
{
    Etcd& etcd = shared_etcd();
    HostRoot h;
    CancelToken tok;
    auto rec = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), true, tok);
    if (!rec) FAIL(rec.error().message);
    CHECK(rec->dirty);
    CHECK(rec->snapshot.find("__POSSIBLY_DIRTY__.db") != std::string::npos);
    CHECK(rec->static_resources.find("__POSSIBLY_DIRTY__.tar.gz") != std::string::npos);

    // etcd.force in the config does the same.
    HostRoot h2;
    Config cfg = etcdctl_config(etcd);
    cfg.etcd_force = true;
    auto rec2 = backup_cluster(cfg, h2.root(), h2.cluster_dir(), false, tok);
    REQUIRE(rec2);
    CHECK(rec2->dirty);
}

TEST_CASE("etcdctl mode refuses a snapshot while a static pod operator rolls out (W12), unless forced")
{
    Etcd& etcd = shared_etcd();
    CancelToken tok;
    auto snapshots = [](const HostRoot& h) {
        std::error_code ec;
        size_t n = 0;
        for (const auto& e : fs::directory_iterator(h.cluster_dir(), ec))
            n += e.path().filename().string().rfind("snapshot_", 0) == 0;
        return n;
    };
    {
        HostRoot h;
        write_file(h.root() + "/oc-state/rolling-kubeapiserver", "");
        auto r = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Refused);
        CHECK_THAT(r.error().message, Catch::Contains("kubeapiserver is rolling out revision 3") &&
                                          Catch::Contains("1 nodes are at revision 2") &&
                                          Catch::Contains("backup --force"));
        CHECK(snapshots(h) == 0);
        // Every operator before it was asked, each with the kubeconfig under the root.
        std::ifstream calls(h.root() + "/oc-state/calls");
        std::string all((std::istreambuf_iterator<char>(calls)), std::istreambuf_iterator<char>());
        CHECK_THAT(all, Catch::Contains("get etcd cluster -o json") && Catch::Contains("get kubeapiserver cluster") &&
                            Catch::Contains(h.root() + "/etc/kubernetes/static-pod-resources/kube-apiserver-certs"));

        // --force takes it anyway, recorded as possibly dirty; oc is not asked.
        fs::remove(h.root() + "/oc-state/calls");
        auto f = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), true, tok);
        if (!f) FAIL(f.error().message);
        CHECK(f->dirty);
        CHECK_FALSE(fs::exists(h.root() + "/oc-state/calls"));
    }
    {
        // The API does not answer: nothing says the cluster is settled.
        HostRoot h;
        write_file(h.root() + "/oc-state/down", "");
        auto r = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message, Catch::Contains("cannot tell whether etcd is rolling out") &&
                                          Catch::Contains("connection to the server localhost:6443 was refused"));
        CHECK(snapshots(h) == 0);
    }
    {
        // Settled: a clean snapshot.
        HostRoot h;
        auto r = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), false, tok);
        if (!r) FAIL(r.error().message);
        CHECK_FALSE(r->dirty);
        CHECK(snapshots(h) == 1);
    }
}

TEST_CASE("etcdctl mode without the revision layout tars static-pod-resources without bin/")
{
    Etcd& etcd = shared_etcd();
    HostRoot h(false);
    write_file(h.spr() + "/kube-apiserver-certs/secrets/x.crt", "x\n");
    write_file(h.spr() + "/bin/etcdctl", "binary\n", 0755);
    CancelToken tok;
    auto rec = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), false, tok);
    if (!rec) FAIL(rec.error().message);
    auto members = tar_list(h.cluster_dir() + "/" + rec->static_resources);
    CHECK(contains_prefix(members, "static-pod-resources/kube-apiserver-certs/secrets/x.crt"));
    CHECK_FALSE(contains_prefix(members, "static-pod-resources/bin"));
}

TEST_CASE("etcdctl mode fails clearly without static pod resources, with a partial layout, or a dead endpoint")
{
    Etcd& etcd = shared_etcd();
    CancelToken tok;
    {
        TempDir t;
        fs::create_directories(t.path + "/root");
        auto r = backup_cluster(etcdctl_config(etcd), t.path + "/root", t.path + "/cluster", false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::NotFound);
        CHECK_THAT(r.error().message, Catch::Contains("static-pod-resources"));
        CHECK(fs::is_empty(t.path + "/cluster"));
    }
    {
        HostRoot h(false);
        fs::create_directories(h.spr() + "/kube-apiserver-pod-7");
        auto r = backup_cluster(etcdctl_config(etcd), h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::NotFound);
        CHECK_THAT(r.error().message, Catch::Contains("etcd-pod"));
    }
    {
        HostRoot h;
        Config cfg = etcdctl_config(etcd);
        cfg.etcd_endpoints = "http://127.0.0.1:" + std::to_string(free_port());
        cfg.etcd_timeout = 6;
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::ExternalFailed);
        CHECK_THAT(r.error().message, Catch::Contains("snapshot save"));
        // Like cluster-backup.sh's ERR trap: nothing half-made is left.
        CHECK(fs::is_empty(h.cluster_dir()));
    }
}

TEST_CASE("script mode runs the stand-in cluster-backup.sh at the root-prefixed path")
{
    Etcd& etcd = shared_etcd();
    HostRoot h;
    write_file(h.root() + "/usr/local/bin/cluster-backup.sh", standin_script(h, etcd), 0755);
    Config cfg;
    cfg.etcd_mode = "auto";
    cfg.etcd_timeout = 60;
    REQUIRE(resolve_etcd_mode(cfg, h.root()) == "script");
    REQUIRE(cluster_backup_enabled(cfg, h.root()));
    CancelToken tok;
    auto rec = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
    if (!rec) FAIL(rec.error().message);
    CHECK(rec->method == "script");
    CHECK_FALSE(rec->dirty);
    CHECK(rec->snapshot.find("__POSSIBLY_DIRTY__") == std::string::npos);
    CHECK(rec->total_keys >= 250);
    CHECK(rec->revision > 1);
    CHECK(rec->snapshot_sha256 == sha256sum(h.cluster_dir() + "/" + rec->snapshot));
    CHECK(rec->static_resources_sha256 == sha256sum(h.cluster_dir() + "/" + rec->static_resources));

    HostRoot h2;
    write_file(h2.root() + "/usr/local/bin/cluster-backup.sh", standin_script(h2, etcd), 0755);
    auto dirty = backup_cluster(cfg, h2.root(), h2.cluster_dir(), true, tok);
    if (!dirty) FAIL(dirty.error().message);
    CHECK(dirty->dirty);
    CHECK(dirty->snapshot.find("__POSSIBLY_DIRTY__.db") != std::string::npos);
    CHECK(dirty->static_resources.find("__POSSIBLY_DIRTY__.tar.gz") != std::string::npos);
}

TEST_CASE("a snapshot with a flipped byte fails verification")
{
    Etcd& etcd = shared_etcd();
    HostRoot h;
    CancelToken tok;
    Config cfg = etcdctl_config(etcd);
    auto rec = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
    REQUIRE(rec);
    const std::string snap = h.cluster_dir() + "/" + rec->snapshot;
    auto ok = verify_etcd_snapshot(cfg, h.root(), snap, tok);
    REQUIRE(ok);
    CHECK(ok->revision == rec->revision);
    CHECK(ok->sha256 == rec->snapshot_sha256);

    auto size = static_cast<off_t>(fs::file_size(snap));
    for (off_t off : {static_cast<off_t>(100), size / 2, size - 5}) {
        INFO("offset " << off);
        std::string copy = h.dir.path + "/flipped.db";
        fs::copy_file(snap, copy, fs::copy_options::overwrite_existing);
        flip_byte(copy, off);
        auto bad = verify_etcd_snapshot(cfg, h.root(), copy, tok);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().kind == ErrorKind::Corrupt);
        CHECK_THAT(bad.error().message, Catch::Contains("sha256"));
        // etcd agrees: restore refuses the same file.
        Command restore;
        restore.argv = {"etcdctl", "snapshot", "restore", copy, "--data-dir", h.dir.path + "/never"};
        restore.env_set = {{"ETCDCTL_API", "3"}};
        auto rr = run_command(restore);
        REQUIRE(rr);
        CHECK(rr->exit_code != 0);
    }

    // Not a snapshot at all.
    write_file(h.dir.path + "/garbage.db", std::string(4096, 'g'));
    auto g = verify_etcd_snapshot(cfg, h.root(), h.dir.path + "/garbage.db", tok);
    REQUIRE_FALSE(g);
    CHECK(g.error().kind == ErrorKind::Corrupt);
}

TEST_CASE("a script that reports success over a corrupt snapshot is caught (W13)")
{
    Etcd& etcd = shared_etcd();
    HostRoot h;
    // Like the 2022 CEO releases that exited 0 on a failed integrity check.
    std::string corrupt = "for f in \"$dir\"/snapshot_*.db; do printf 'Z' | dd of=\"$f\" bs=1 seek=200 "
                          "conv=notrunc status=none; done\n";
    write_file(h.root() + "/usr/local/bin/cluster-backup.sh", standin_script(h, etcd, corrupt), 0755);
    Config cfg;
    cfg.etcd_mode = "script";
    CancelToken tok;
    auto rec = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
    REQUIRE_FALSE(rec);
    CHECK(rec.error().kind == ErrorKind::Corrupt);
    CHECK(fs::is_empty(h.cluster_dir()));
}

TEST_CASE("script mode: failures, wrong outputs and a hanging script")
{
    Etcd& etcd = shared_etcd();
    CancelToken tok;
    Config cfg;
    cfg.etcd_mode = "script";
    {
        // No script on the host: the error names the setting and what to do.
        HostRoot h;
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().err == ENOENT);
        CHECK_THAT(r.error().message, Catch::Contains("etcd.mode is \"script\"") &&
                                          Catch::Contains("/usr/local/bin/cluster-backup.sh") &&
                                          Catch::Contains("etcd.mode = \"off\""));
    }
    {
        HostRoot h;
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh",
                   "#!/bin/sh\necho 'A reliable backup requires that a rollout is not in progress. Aborting!' >&2\n"
                   "exit 1\n",
                   0755);
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::ExternalFailed);
        CHECK_THAT(r.error().message, Catch::Contains("cluster-backup.sh"));
        CHECK_THAT(r.error().message, Catch::Contains("Aborting!"));
    }
    {
        HostRoot h;
        // Two snapshots: which one would cluster-restore.sh take? Refused.
        std::string twice = "ETCDCTL_API=3 etcdctl --endpoints=" + etcd.endpoint() +
                            " snapshot save \"$dir/snapshot_1999-01-01_000000.db\" >/dev/null\n";
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh", standin_script(h, etcd, twice), 0755);
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::ExternalFailed);
        CHECK_THAT(r.error().message, Catch::Contains("exactly one"));
    }
    {
        HostRoot h;
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::NotFound);
    }
    {
        HostRoot h;
        std::string pidfile = h.dir.path + "/pids";
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh",
                   "#!/bin/sh\nsleep 300 & echo $! > '" + pidfile + "'\nwait\n", 0755);
        cfg.etcd_timeout = 2;
        auto t0 = Clock::now();
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        double took = std::chrono::duration<double>(Clock::now() - t0).count();
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Timeout);
        CHECK_THAT(r.error().message, Catch::Contains("cluster-backup.sh"));
        CHECK(took >= 1.5);
        CHECK(took < 8);
        // The script's child went with it (its own process group was killed).
        pid_t child = 0;
        std::ifstream(pidfile) >> child;
        REQUIRE(child > 0);
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {
            std::ifstream st("/proc/" + std::to_string(child) + "/stat");
            std::string s((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
            auto rp = s.rfind(')');
            gone = !st || s.empty() || (rp != std::string::npos && s[rp + 2] == 'Z');
            if (!gone) std::this_thread::sleep_for(20ms);
        }
        CHECK(gone);
    }
    {
        HostRoot h;
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh", "#!/bin/sh\nsleep 300\n", 0755);
        cfg.etcd_timeout = 600;
        CancelToken cancel;
        std::thread t([&] {
            std::this_thread::sleep_for(300ms);
            cancel.cancel();
        });
        auto r = backup_cluster(cfg, h.root(), h.cluster_dir(), false, cancel);
        t.join();
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Cancelled);
    }
}

TEST_CASE("mode resolution and the size estimate")
{
    HostRoot h;
    Config cfg;
    cfg.etcd_mode = "auto";
    CHECK(resolve_etcd_mode(cfg, h.root()) == "off");
    CHECK_FALSE(cluster_backup_enabled(cfg, h.root()));
    auto none = estimate_cluster_backup(cfg, h.root());
    REQUIRE(none);
    CHECK(*none == 0);

    cfg.etcd_endpoints = "http://127.0.0.1:2379";
    CHECK(resolve_etcd_mode(cfg, h.root()) == "etcdctl");
    write_file(h.root() + "/usr/local/bin/cluster-backup.sh", "#!/bin/sh\n", 0755);
    CHECK(resolve_etcd_mode(cfg, h.root()) == "script");
    cfg.etcd_mode = "off";
    CHECK_FALSE(cluster_backup_enabled(cfg, h.root()));
    cfg.etcd_mode = "etcdctl";
    CHECK(cluster_backup_enabled(cfg, h.root()));
    cfg.etcd_mode = "script";
    CHECK(cluster_backup_enabled(cfg, h.root()));

    // etcd db (sparse: the estimate is its size) + static pod resources without bin/.
    const std::string db = h.root() + "/var/lib/etcd/member/snap/db";
    fs::create_directories(fs::path(db).parent_path());
    {
        std::ofstream(db).close();
    }
    fs::resize_file(db, 64 << 20);
    uint64_t expected = 64 << 20;
    for (auto it = fs::recursive_directory_iterator(h.spr()); it != fs::recursive_directory_iterator(); ++it) {
        if (it.depth() == 0 && it->path().filename() == "bin") {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_regular_file()) expected += it->file_size();
    }
    auto est = estimate_cluster_backup(cfg, h.root());
    REQUIRE(est);
    CHECK(*est == expected);
    CHECK(*est < (64u << 20) + 4096); // bin/etcdctl (4 KiB) is not counted
}

TEST_CASE("check_cluster_backup refuses what backup_cluster refuses first, the same way, and runs nothing")
{
    CancelToken tok;
    auto same_error = [&](const Config& cfg, const HostRoot& h) {
        auto check = check_cluster_backup(cfg, h.root());
        REQUIRE_FALSE(check);
        CHECK_FALSE(fs::exists(h.cluster_dir())); // the check makes nothing
        auto run = backup_cluster(cfg, h.root(), h.cluster_dir(), false, tok);
        REQUIRE_FALSE(run);
        CHECK(check.error().kind == run.error().kind);
        CHECK(check.error().err == run.error().err);
        CHECK(check.error().message == run.error().message);
        return check.error();
    };
    Config cfg;
    cfg.etcd_mode = "script";
    {
        HostRoot h;
        Error e = same_error(cfg, h);
        CHECK(e.kind == ErrorKind::NotFound);
        CHECK_THAT(e.message, Catch::Contains("etcd.mode is \"script\""));
    }
    {
        // There, but not executable.
        HostRoot h;
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh", "#!/bin/sh\nexit 0\n", 0644);
        CHECK(same_error(cfg, h).kind == ErrorKind::PermissionDenied);
    }
    {
        // Executable: the check passes and does not run it.
        HostRoot h;
        const std::string ran = h.root() + "/script-ran";
        write_file(h.root() + "/usr/local/bin/cluster-backup.sh", "#!/bin/sh\ntouch '" + ran + "'\n", 0755);
        REQUIRE(check_cluster_backup(cfg, h.root()));
        CHECK_FALSE(fs::exists(ran));
    }
    cfg.etcd_mode = "etcdctl";
    {
        HostRoot h;
        Error e = same_error(cfg, h);
        CHECK(e.kind == ErrorKind::BadConfig);
        CHECK(e.message == "etcd.mode = etcdctl needs etcd.endpoints");
        // With endpoints the check asks nobody: a dead endpoint passes it.
        cfg.etcd_endpoints = "http://127.0.0.1:" + std::to_string(free_port());
        CHECK(check_cluster_backup(cfg, h.root()));
    }
    for (const char* mode : {"off", "auto"}) {
        HostRoot h;
        cfg.etcd_mode = mode;
        cfg.etcd_endpoints.clear();
        CHECK(check_cluster_backup(cfg, h.root()));
    }
}
