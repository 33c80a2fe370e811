// The control-plane images in the backup (images.backup) with the real skopeo and a
// real containers-storage (vfs, in a temporary directory, through a private
// storage.conf): no registry and no daemon. The image is built by hand as an OCI
// layout (layer tar, config, manifest, index.json, oci-layout) and copied into the
// storage under the digest reference the static pod manifest names. The crictl
// stand-in lists that storage itself (its vfs-images/images.json), so an image
// skopeo copied back is found by the recovery's own check.
#include "../unit/shell_run.hpp"
#include "../unit/test_skip.hpp"
#include "digest.hpp"
#include "metadata.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace
{

const bool ready = [] {
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root (containers-storage extracts layers with their owners)\n");
        std::_Exit(77);
    }
    if (std::system("command -v skopeo >/dev/null && command -v jq >/dev/null && command -v docker-registry "
                    ">/dev/null") != 0) {
        fprintf(stderr, "SKIP: skopeo, jq or docker-registry is not installed (scripts/install-deps.sh test)\n");
        std::_Exit(77);
    }
    if (!std::getenv("UR_RECOVERY_HELPER") || !std::getenv("UR_CLI")) {
        fprintf(stderr, "SKIP: UR_RECOVERY_HELPER or UR_CLI is not set (run through meson test)\n");
        std::_Exit(77);
    }
    return true;
}();

const char* kId1 = "20240501T100000Z";
const char* kId2 = "20240502T100000Z";

void write(const std::string& p, const std::string& content, mode_t mode = 0644)
{
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::trunc | std::ios::binary) << content;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
}

using ur::test::slurp;
using Run = ur::test::ShellRun;

Run run(const std::string& cmd, const std::string& base)
{
    return ur::test::run_shell("exec " + cmd, base);
}

// A one-layer image as an OCI layout in `dir` (tag "v1"); the manifest's digest
// (hex). The layer is an uncompressed tar: containers-storage keeps layers
// uncompressed, so only such an image leaves it with its digest unchanged.
std::string make_image(const std::string& dir, const std::string& content, bool gzip = false)
{
    const std::string script = R"SH(
set -e
d=$1; content=$2; gz=$3
mkdir -p $d/blobs/sha256 $d/work/rootfs
printf '%s\n' "$content" > $d/work/rootfs/hello.txt
tar -C $d/work/rootfs --mtime=@0 --owner=0 --group=0 --numeric-owner -cf $d/work/layer.tar hello.txt
diffid=$(sha256sum $d/work/layer.tar | cut -d' ' -f1)
if [ "$gz" = 1 ]; then gzip -n -c $d/work/layer.tar > $d/work/layer; lt=application/vnd.oci.image.layer.v1.tar+gzip
else cp $d/work/layer.tar $d/work/layer; lt=application/vnd.oci.image.layer.v1.tar; fi
put() { h=$(sha256sum $1 | cut -d' ' -f1); cp $1 $d/blobs/sha256/$h; echo "$h $(stat -c %s $1)"; }
read ld ls < <(put $d/work/layer)
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $diffid > $d/work/config
read cd cs < <(put $d/work/config)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' $cd $cs $lt $ld $ls > $d/work/manifest
read md ms < <(put $d/work/manifest)
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' $md $ms > $d/index.json
printf '{"imageLayoutVersion":"1.0.0"}' > $d/oci-layout
rm -rf $d/work
echo $md
)SH";
    write(dir + ".sh", script, 0755);
    FILE* f = popen(("bash " + dir + ".sh " + dir + " '" + content + "' " + (gzip ? "1" : "0")).c_str(), "r");
    REQUIRE(f);
    char buf[128] = {};
    REQUIRE(fgets(buf, sizeof buf, f));
    REQUIRE(pclose(f) == 0);
    std::string d(buf);
    while (!d.empty() && d.back() == '\n')
        d.pop_back();
    REQUIRE(d.size() == 64);
    return d;
}

const char* kSystemctl = R"SH(
echo "systemctl $*" >> $S/calls
case "$1" in
  is-active) if [ -f $S/active-$2 ]; then echo active; exit 0; fi; echo inactive; exit 3 ;;
  stop) rm -f $S/active-$2 ;;
  start) touch $S/active-$2 ;;
  enable|disable|reboot) ;;
  *) exit 1 ;;
esac
)SH";

// crictl: the image list is the real storage's; pulls fail (the registry is down).
const char* kCrictl = R"SH(
echo "crictl $*" >> $S/calls
[ -f $S/active-crio.service ] || { echo 'connection refused' >&2; exit 1; }
case "$1" in
  pods) ;;
  stopp) ;;
  rmp) ;;
  ps) echo '{"containers": []}' ;;
  images) f=$GRAPH/vfs-images/images.json
    if [ -f $f ]; then
      jq -c '{images: [.[] | {id: .id, repoTags: [(.names // [])[] | select(contains("@") | not)],
                              repoDigests: [(.names // [])[] | select(contains("@"))]}]}' $f
    else echo '{"images": []}'; fi ;;
  pull) echo "pulling image: dial tcp: lookup $2: no such host" >&2; exit 1 ;;
  *) exit 1 ;;
esac
)SH";

struct Node {
    std::string base, root, graph, config, svc, store;
    std::string cli = std::getenv("UR_CLI");
    std::string helper = std::getenv("UR_RECOVERY_HELPER");
    std::string digest; // of the etcd image in the storage
    std::string ref;    // quay.io/ocp/art@sha256:<digest>
    std::string absent; // a reference the apiserver's manifest names, never in the storage

    explicit Node(bool images = true, bool with_absent = false)
    {
        char t[] = "/tmp/ur-images-XXXXXX";
        REQUIRE(mkdtemp(t));
        base = t;
        root = base + "/root";
        graph = base + "/storage/graph";
        config = base + "/config.toml";
        svc = base + "/svc";
        store = root + "/var/recovery";
        fs::create_directories(svc);
        write(root + "/etc/containers/storage.conf",
              "[storage]\ndriver = \"vfs\"\ngraphroot = \"" + graph + "\"\nrunroot = \"" + base + "/storage/run\"\n");
        digest = make_image(base + "/img", "etcd 4.15");
        ref = "quay.io/ocp/art@sha256:" + digest;
        seed();
        absent = "quay.io/ocp/art@sha256:" + std::string(64, 'a');
        write(root + "/etc/kubernetes/manifests/etcd-pod.yaml",
              R"({"kind":"Pod","spec":{"containers":[{"name":"etcd","image":")" + ref + R"("}]}})");
        if (with_absent)
            write(root + "/etc/kubernetes/manifests/kube-apiserver-pod.yaml",
                  "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    image: " + absent + "\n");
        write(root + "/etc/hostname", "sno\n");
        fs::create_directories(root + "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts");
        write(root + "/usr/local/bin/cluster-restore.sh", "#!/bin/sh\nexit 0\n", 0755);
        fs::create_directories(root + "/var/lib/kubelet");
        write(root + "/usr/lib/systemd/system/upgrade-recovery-phase2.service",
              "[Unit]\nDescription=phase 2\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
              "[Install]\nWantedBy=multi-user.target\n");
        // etcd: the snapshot with its sha256 trailer, as `etcdctl snapshot save` writes it.
        std::string snap = "etcd snapshot data";
        std::string hex = ur::sha256_hex(snap.data(), snap.size());
        for (size_t i = 0; i < 64; i += 2)
            snap += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
        write(base + "/snapshot.db", snap);
        write(base + "/res/static-pod-resources.txt", "resources\n");
        write(root + "/usr/local/bin/cluster-backup.sh",
              "#!/bin/sh\nset -e\ncp " + base +
                  "/snapshot.db \"$1/snapshot_2024-05-01_100000.db\"\ntar -czf "
                  "\"$1/static_kuberesources_2024-05-01_100000.tar.gz\" -C " +
                  base + "/res .\n",
              0755);
        write(root + "/usr/local/bin/etcdctl", "#!/bin/sh\necho '{\"hash\": 1, \"revision\": 2, \"totalKey\": 3}'\n",
              0755);
        // skopeo itself, each call counted; skopeo-args: global options (a registries.conf).
        write(base + "/skopeo",
              "#!/bin/sh\necho \"skopeo $*\" >> " + base + "/skopeo-calls\nexec skopeo $(cat " + base +
                  "/skopeo-args 2>/dev/null) \"$@\"\n",
              0755);
        const std::string env = "#!/bin/bash\nS=" + svc + "\nGRAPH=" + graph + "\n";
        write(svc + "/systemctl", env + kSystemctl, 0755);
        write(svc + "/crictl", env + kCrictl, 0755);
        write(svc + "/boot_id", "boot-1\n");
        write(svc + "/active-kubelet.service", "");
        write(svc + "/active-crio.service", "");
        std::ofstream(config) << "[partition]\nlabel = \"ur-test-no-such-partition\"\nallow_plain_directory = true\n"
                              << "[ostree]\nmode = \"off\"\n"
                              << "[etcd]\nmode = \"script\"\netcdctl = \"/usr/local/bin/etcdctl\"\n"
                              << (images ? "[images]\nbackup = true\nskopeo = \"" + base +
                                               "/skopeo\"\nstorage_conf = \"/etc/containers/storage.conf\"\n"
                                               "timeout = 60\n"
                                         : std::string()) // without: the configuration of today
                              << "[recovery]\nsystemctl = \"offline\"\nstop_timeout = 10\npull_timeout = 5\n"
                              << "poll_interval = 0\ncrictl = \"" << svc << "/crictl\"\noc = \"/bin/false\"\n";
    }
    ~Node() { fs::remove_all(base); }

    // The image into the storage under the digest reference the manifest names.
    void seed() const
    {
        Run r =
            run("env CONTAINERS_STORAGE_CONF=" + root + "/etc/containers/storage.conf skopeo copy --quiet oci:" + base +
                    "/img:v1 containers-storage:" + ref,
                base);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }
    // What a failed upgrade and image garbage collection (or a crio wipe) leave.
    void empty_storage() const { fs::remove_all(base + "/storage"); }
    bool storage_has(const std::string& r) const
    {
        return slurp(graph + "/vfs-images/images.json").find("\"" + r + "\"") != std::string::npos;
    }

    Run cli_run(const std::string& args) const
    {
        return run(cli + " --root " + root + " --config " + config + " --json " + args, base);
    }
    std::string run_list() const { return run(cli + " --root " + root + " --config " + config + " list", base).out; }
    Run backup(const char* id) const { return cli_run(std::string("backup --id ") + id); }
    Run recover(const std::string& args, const std::string& failpoint = "") const
    {
        return run((failpoint.empty() ? "" : "env UR_FAILPOINT=" + failpoint + " ") + helper + " --config " + config +
                       " --root " + root + " " + args,
                   base);
    }
    std::string live() const { return "--systemctl " + svc + "/systemctl --boot-id " + svc + "/boot_id"; }
    std::string gen(const char* id) const { return store + "/backups/" + id; }
    std::string blob(const char* id, const std::string& hex) const { return gen(id) + "/images/blobs/sha256/" + hex; }
    size_t skopeo_copies() const
    {
        std::istringstream in(slurp(base + "/skopeo-calls"));
        size_t n = 0;
        for (std::string l; std::getline(in, l);)
            n += l.rfind("skopeo copy ", 0) == 0;
        return n;
    }
    json journal_step(const std::string& name) const
    {
        auto j = json::parse(slurp(store + "/recovery/journal"));
        for (const auto& s : j["steps"])
            if (s["name"] == name) return s;
        return nullptr;
    }
};

} // namespace

TEST_CASE("a backup holds the control-plane image in its OCI layout, and verify reads it")
{
    Node n;
    auto b = n.backup(kId1);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    const json im = b.json()["images"];
    CHECK(im["present"] == true);
    CHECK(im["count"] == 1);
    CHECK(im["held"][0]["ref"] == n.ref);
    CHECK(im["held"][0]["digest"] == "sha256:" + n.digest);
    CHECK(im["held"][0]["shared"] == false);
    CHECK(im["bytes"].get<uint64_t>() > 0);
    CHECK(im["missing"].empty());
    // The layout: the manifest blob under its digest, named by the recorded tag.
    CHECK(fs::is_regular_file(n.blob(kId1, n.digest)));
    CHECK(slurp(n.gen(kId1) + "/images/index.json").find(im["held"][0]["tag"].get<std::string>()) != std::string::npos);
    // In the manifest, so verify reads every blob.
    CHECK(slurp(n.gen(kId1) + "/manifest").find("images/blobs/sha256/" + n.digest + " f ") != std::string::npos);
    auto v = n.cli_run(std::string("verify ") + kId1);
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
    CHECK(v.json()["ok"] == true);
    // list and status say it.
    auto l = n.run_list();
    CHECK(l.find("control-plane images: 1 held") != std::string::npos);
    auto st = n.cli_run("status");
    INFO(st.out);
    CHECK(st.json()["latest"]["images"]["count"] == 1);

    // A flipped byte in a blob is found like any damaged file.
    const std::string blob = n.blob(kId1, n.digest);
    std::string data = slurp(blob);
    data[data.size() / 2] ^= 1;
    struct stat before {
    };
    REQUIRE(::stat(blob.c_str(), &before) == 0);
    write(blob, data);
    const struct timespec times[2] = {before.st_atim, before.st_mtim}; // only the content differs
    REQUIRE(::utimensat(AT_FDCWD, blob.c_str(), times, 0) == 0);
    auto bad = n.cli_run(std::string("verify ") + kId1);
    INFO(bad.out << bad.err);
    CHECK(bad.exit_code == 7);
    CHECK(bad.json()["ok"] == false);
    CHECK(bad.out.find("images/blobs/sha256/" + n.digest + ": content differs") != std::string::npos);
}

TEST_CASE("a repeated backup shares the image with the previous one and does not copy it again")
{
    Node n;
    // The space check counts the image's blobs (skopeo inspect), then nothing once shared.
    auto dry = n.cli_run("backup --dry-run");
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    uint64_t blobs = 0;
    for (const auto& e : fs::directory_iterator(n.base + "/img/blobs/sha256"))
        blobs += fs::file_size(e.path());
    CHECK(dry.json()["images_bytes"] == blobs);
    REQUIRE(n.backup(kId1).exit_code == 0);
    const size_t copies = n.skopeo_copies();
    CHECK(copies == 1);
    auto dry2 = n.cli_run("backup --dry-run");
    CHECK(dry2.json()["images_bytes"] == 0);
    auto b = n.backup(kId2);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    CHECK(n.skopeo_copies() == copies); // no skopeo copy for the second backup
    CHECK(b.json()["images"]["held"][0]["shared"] == true);
    CHECK(b.json()["images"]["copied_bytes"].get<uint64_t>() < b.json()["images"]["bytes"].get<uint64_t>());
    struct stat a {
    }, c{};
    REQUIRE(::stat(n.blob(kId1, n.digest).c_str(), &a) == 0);
    REQUIRE(::stat(n.blob(kId2, n.digest).c_str(), &c) == 0);
    CHECK(a.st_ino == c.st_ino); // one inode: hard-linked
    // index.json is the new backup's own file: skopeo rewrites it in place.
    REQUIRE(::stat((n.gen(kId1) + "/images/index.json").c_str(), &a) == 0);
    REQUIRE(::stat((n.gen(kId2) + "/images/index.json").c_str(), &c) == 0);
    CHECK(a.st_ino != c.st_ino);
    for (const char* id : {kId1, kId2}) {
        auto v = n.cli_run(std::string("verify ") + id);
        INFO(id << v.out << v.err);
        CHECK(v.exit_code == 0);
    }
}

TEST_CASE("an image missing from the container storage at backup time is a warning naming it")
{
    Node n(true, true);
    auto b = n.backup(kId1);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    CHECK(b.err.find("control-plane image " + n.absent + " is not in the container storage") != std::string::npos);
    CHECK(b.json()["images"]["count"] == 1);
    CHECK(b.json()["images"]["missing"][0] == n.absent);
    CHECK(n.cli_run(std::string("verify ") + kId1).exit_code == 0);
}

TEST_CASE("images.backup without skopeo: the backup fails, says what to do, and publishes nothing")
{
    Node n(true, false);
    fs::remove(n.base + "/skopeo");
    auto b = n.backup(kId1);
    INFO(b.out << b.err);
    CHECK(b.exit_code == 1);
    CHECK(b.err.find("install skopeo, or set images.backup = false") != std::string::npos);
    CHECK_FALSE(fs::exists(n.gen(kId1)));
}

TEST_CASE("an image whose digest the storage cannot give back is not held: a warning says why")
{
    Node n;
    // A gzip layer, as every registry image has: the storage keeps it uncompressed.
    const std::string gz = make_image(n.base + "/gz", "apiserver", true);
    const std::string gzref = "registry.invalid/ocp/art@sha256:" + gz;
    Run seed =
        run("env CONTAINERS_STORAGE_CONF=" + n.root + "/etc/containers/storage.conf skopeo copy --quiet oci:" + n.base +
                "/gz:v1 containers-storage:" + gzref,
            n.base);
    REQUIRE(seed.exit_code == 0);
    write(n.root + "/etc/kubernetes/manifests/kube-apiserver-pod.yaml",
          "spec:\n  containers:\n  - image: " + gzref + "\n");
    auto b = n.backup(kId1);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    CHECK(b.err.find("control-plane image " + gzref + " cannot be copied into the backup") != std::string::npos);
    CHECK(b.err.find("from its registry") != std::string::npos);
    CHECK(b.json()["images"]["count"] == 1);
    CHECK(b.json()["images"]["missing"][0] == gzref);
    CHECK(n.cli_run(std::string("verify ") + kId1).exit_code == 0); // nothing half-copied stays
}

TEST_CASE("recovery: an image gone from the storage and not pullable is copied back from the backup")
{
    for (bool images : {true, false}) {
        DYNAMIC_SECTION((images ? "with" : "without") << " images.backup")
        {
            Node n(images);
            REQUIRE(n.backup(kId1).exit_code == 0);
            n.empty_storage();
            auto r = n.recover(n.live());
            INFO(r.out << r.err << slurp(n.svc + "/calls"));
            if (!images) { // as before: refused, nothing stopped
                CHECK(r.exit_code == 1);
                CHECK(r.err.find("ERROR Refused: verify: cannot pull 1 of the 1 images") != std::string::npos);
                CHECK(slurp(n.svc + "/calls").find("systemctl stop") == std::string::npos);
                continue;
            }
            REQUIRE(r.exit_code == 0);
            CHECK(r.json()["phase1_done"] == true);
            CHECK(n.storage_has(n.ref));
            CHECK(r.err.find("verify: copying " + n.ref + " from backup " + kId1) != std::string::npos);
            CHECK(n.journal_step("verify")["note"].get<std::string>().find(
                      "control-plane images: copied 1 of 1 from the backup: " + n.ref) != std::string::npos);
            // crictl was asked first, and found it after the copy; no pull needed.
            const std::string calls = slurp(n.svc + "/calls");
            CHECK(calls.find("crictl images -o json\ncrictl images -o json\n") != std::string::npos);
            CHECK(calls.find("crictl pull") == std::string::npos);
        }
    }
}

TEST_CASE("phase 2 after the reboot copies a missing image back from the backup on the partition")
{
    Node n;
    REQUIRE(n.backup(kId1).exit_code == 0);
    // Phase 1 offline (the initramfs' way): the images are not checked there.
    auto p1 = n.recover("");
    INFO(p1.out << p1.err);
    REQUIRE(p1.exit_code == 0);
    REQUIRE(p1.json()["phase1_done"] == true);
    n.empty_storage(); // e.g. recovery.wipe_images, or collected since
    write(n.svc + "/boot_id", "boot-2\n");
    fs::remove(n.svc + "/active-crio.service");
    // Phase 2 until pull-images is done (the steps after it need a cluster).
    auto p2 = n.recover("--resume " + n.live(), "recovery.pull-images.done");
    INFO(p2.out << p2.err << slurp(n.svc + "/calls"));
    CHECK(p2.signal == SIGKILL);
    const json st = n.journal_step("pull-images");
    INFO(st.dump());
    CHECK(st["state"] == "done");
    CHECK(st["note"] == "copied 1 missing control-plane images from the backup: " + n.ref);
    CHECK(n.storage_has(n.ref));
    CHECK(slurp(n.svc + "/calls").find("crictl pull") == std::string::npos);
    CHECK(slurp(n.base + "/skopeo-calls").find("oci:" + n.gen(kId1) + "/images:") != std::string::npos);
}

namespace
{

// A registry on loopback (Debian's docker-registry, plain HTTP), ended by the test.
struct Registry {
    std::string dir, addr;
    pid_t pid = -1;
    explicit Registry(const std::string& base) : dir(base + "/registry")
    {
        addr = "127.0.0.1:" + std::to_string(20000 + getpid() % 20000);
        write(dir + "/config.yml", "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + dir +
                                       "/data\nhttp:\n  addr: " + addr + "\n");
        write(dir + "/registries.conf", "[[registry]]\nlocation = \"" + addr + "\"\ninsecure = true\n");
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // Not meson's pipes: a registry left behind would hold the test open.
            if (!freopen((dir + "/log").c_str(), "w", stdout) || dup2(STDOUT_FILENO, STDERR_FILENO) < 0) _exit(126);
            execlp("docker-registry", "docker-registry", "serve", (dir + "/config.yml").c_str(), nullptr);
            _exit(127);
        }
        const std::string port = addr.substr(addr.find(':') + 1);
        up = std::system(("bash -c 'for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/" + port +
                          ") 2>/dev/null && exit 0; sleep 0.1; done; exit 1'")
                             .c_str()) == 0;
    }
    bool up = false;
    void stop()
    {
        if (pid <= 0) return;
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    ~Registry() { stop(); }
};

} // namespace

// The real case: a registry image has compressed layers, which containers-storage keeps
// uncompressed, so it cannot give the image back with its digest. The backup copies it
// from its registry instead, with the original blobs; the recovery copies it back from
// the backup once the registry is gone, under the digest the manifest names.
TEST_CASE("an image with compressed layers comes from its registry at backup time and back from the backup")
{
    Node n(true);
    Registry reg(n.base);
    INFO(slurp(reg.dir + "/log"));
    REQUIRE(reg.up);
    const std::string gz = make_image(n.base + "/gz", "apiserver", true);
    const std::string gzref = reg.addr + "/ocp/art@sha256:" + gz;
    const std::string conf = "env CONTAINERS_STORAGE_CONF=" + n.root + "/etc/containers/storage.conf skopeo";
    REQUIRE(run(conf + " copy --quiet --dest-tls-verify=false oci:" + n.base + "/gz:v1 docker://" + reg.addr +
                    "/ocp/art:v1",
                n.base)
                .exit_code == 0);
    // As CRI-O pulls it: from the registry, by digest.
    Run pull =
        run(conf + " copy --quiet --src-tls-verify=false docker://" + gzref + " containers-storage:" + gzref, n.base);
    INFO(pull.err);
    REQUIRE(pull.exit_code == 0);
    write(n.root + "/etc/kubernetes/manifests/kube-apiserver-pod.yaml",
          "spec:\n  containers:\n  - image: " + gzref + "\n");
    write(n.base + "/skopeo-args", "--registries-conf " + reg.dir + "/registries.conf\n");
    auto b = n.backup(kId1);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    CHECK(b.err.find("control-plane image") == std::string::npos); // no image warning
    CHECK(b.json()["images"]["count"] == 2);
    CHECK(b.json()["images"]["missing"].empty());
    CHECK(fs::is_regular_file(n.blob(kId1, gz))); // the original manifest, so the digest is kept
    CHECK(slurp(n.base + "/skopeo-calls").find("docker://" + gzref) != std::string::npos);
    CHECK(n.cli_run(std::string("verify ") + kId1).exit_code == 0);

    reg.stop(); // the registry is down at recovery time
    n.empty_storage();
    auto r = n.recover(n.live());
    INFO(r.out << r.err << slurp(n.svc + "/calls"));
    REQUIRE(r.exit_code == 0);
    CHECK(r.json()["phase1_done"] == true);
    CHECK(n.storage_has(gzref));
    CHECK(n.storage_has(n.ref));
    CHECK(slurp(n.svc + "/calls").find("crictl pull") == std::string::npos);
}
