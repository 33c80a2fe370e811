// ostree_state against real libostree sysroots built with the ostree CLI on a
// tmpfs (deploy FIFREEZEs the filesystem holding boot/; on tmpfs that is a
// no-op). The whole binary runs in a private mount namespace, so no tmpfs can
// outlive it, even after a crash.
#include "backup.hpp"
#include "backup_removal.hpp"
#include "ostree_state.hpp"

#include "../unit/plain_store.hpp"
#include "../unit/shell_run.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <ostree.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

// REQUIRE a Result, showing its error when it fails.
#define REQUIRE_OK(r)                                                                                                  \
    do {                                                                                                               \
        INFO(((r) ? std::string() : (r).error().message));                                                             \
        REQUIRE((r));                                                                                                  \
    } while (0)

namespace fs = std::filesystem;
using namespace ur;

namespace
{

const bool environment_ready = [] {
    if (geteuid() != 0) {
        std::fprintf(stderr, "SKIP: needs root (tmpfs mounts)\n");
        std::_Exit(77);
    }
    if (std::system("command -v ostree >/dev/null 2>&1") != 0) {
        std::fprintf(stderr, "SKIP: the ostree CLI is not installed (scripts/install-deps.sh test)\n");
        std::_Exit(77);
    }
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        std::perror("private mount namespace");
        std::_Exit(1);
    }
    return true;
}();

// ---- A booted ostree system, as libostree sees one, without booting.
//
// The binary re-executes itself with UR_OSTREE_CHILD set; before Catch2 starts,
// that child chroots into a deployment directory D with the physical sysroot
// bound at D/sysroot (D/ostree -> sysroot/ostree), /boot bound from it, and a
// persistent directory bound at /run holding ostree-booted. Then "/" is D and
// libostree reports D as booted and reads /run/ostree/staged-deployment, so a
// real staged deployment can be made (ostree_sysroot_stage_tree needs a booted
// system) and the product's live-host path (libostree on "/", /sysroot and
// /boot read-only binds as on RHCOS) runs for real. The host /usr is bound over
// D/usr only so that GLib finds its modules.

std::string getenv_or(const char* n, const char* def = "")
{
    const char* v = std::getenv(n);
    return v ? v : def;
}

nlohmann::json deployment_list_json(const std::vector<DeploymentInfo>& l)
{
    nlohmann::json a = nlohmann::json::array();
    for (const auto& d : l)
        a.push_back({{"id", d.id()}, {"booted", d.booted}, {"staged", d.staged}, {"pinned", d.pinned}});
    return a;
}

nlohmann::json error_json(const Error& e)
{
    return {{"ok", false}, {"kind", std::string(error_kind_name(e.kind))}, {"message", e.message}};
}

int booted_child(const std::string& cmd)
{
    const std::string S = getenv_or("UR_OSTREE_SYSROOT"), D = getenv_or("UR_OSTREE_DEPLOYMENT"),
                      run = getenv_or("UR_OSTREE_RUNDIR"), arg = getenv_or("UR_OSTREE_ARG");
    auto bind = [](const std::string& from, const std::string& to, unsigned long extra) {
        if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) return false;
        return extra == 0 || ::mount(nullptr, to.c_str(), nullptr, MS_REMOUNT | MS_BIND | extra, nullptr) == 0;
    };
    const unsigned long ro = getenv_or("UR_OSTREE_RO") == "1" ? MS_RDONLY : 0;
    if (!bind(S, D + "/sysroot", ro) || !bind(S + "/boot", D + "/boot", ro) || !bind("/usr", D + "/usr", 0) ||
        !bind("/proc", D + "/proc", 0) || !bind("/dev", D + "/dev", 0) || !bind(run, D + "/run", 0) ||
        ::mount("tmpfs", (D + "/tmp").c_str(), "tmpfs", 0, nullptr) != 0 || ::chroot(D.c_str()) != 0 ||
        ::chdir("/") != 0) {
        std::perror("booted child setup");
        return 2;
    }

    Config cfg; // defaults: sysroot /sysroot, no seam: what libostree says is booted
    cfg.ostree_mode = "on";
    OstreeRecord rec;
    rec.present = true;
    rec.osname = "testos";
    rec.checksum = arg;
    rec.serial = 0;

    nlohmann::json out;
    if (cmd == "stage") {
        g_autoptr(OstreeSysroot) sr = ostree_sysroot_new_default();
        g_autoptr(GError) err = nullptr;
        g_autoptr(OstreeDeployment) staged = nullptr;
        bool ok = ostree_sysroot_load(sr, nullptr, &err);
        if (ok) {
            g_autoptr(GKeyFile) origin = ostree_sysroot_origin_new_from_refspec(sr, ("testos/" + arg).c_str());
            g_autofree char* rev = nullptr;
            ok = ostree_repo_resolve_rev(ostree_sysroot_repo(sr), ("testos/" + arg).c_str(), FALSE, &rev, &err) &&
                 ostree_sysroot_stage_tree(sr, "testos", rev, origin, ostree_sysroot_get_booted_deployment(sr), nullptr,
                                           &staged, nullptr, &err);
        }
        out = ok ? nlohmann::json{{"ok", true}} : nlohmann::json{{"ok", false}, {"message", err->message}};
    } else if (cmd == "status") {
        auto l = ostree_list_deployments(cfg, "/");
        out = l ? nlohmann::json{{"ok", true}, {"deployments", deployment_list_json(*l)}} : error_json(l.error());
    } else if (cmd == "prepare") {
        auto r = ostree_prepare_for_backup(cfg, "/");
        out =
            r ? nlohmann::json{{"ok", true}, {"checksum", r->checksum}, {"removed", r->removed}, {"pinned", r->pinned}}
              : error_json(r.error());
    } else if (cmd == "plan") {
        auto p = compute_rollback_plan(cfg, "/", rec);
        out = p ? nlohmann::json{{"ok", true}, {"plan", nlohmann::json::parse(rollback_plan_json(*p))}}
                : error_json(p.error());
    } else if (cmd == "apply") {
        auto r = apply_rollback_plan(cfg, "/", rec);
        out = r ? nlohmann::json{{"ok", true},
                                 {"action", std::string(rollback_action_name(r->plan.action))},
                                 {"removed", r->removed},
                                 {"default", r->default_deployment.id()}}
                : error_json(r.error());
    } else {
        std::fprintf(stderr, "unknown child command %s\n", cmd.c_str());
        return 2;
    }
    struct statvfs a, b;
    out["sysroot_ro"] = ::statvfs("/sysroot", &a) == 0 && (a.f_flag & ST_RDONLY);
    out["boot_ro"] = ::statvfs("/boot", &b) == 0 && (b.f_flag & ST_RDONLY);
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

// Runs in the re-executed child only, after environment_ready made its private namespace.
const bool booted_child_ran = [] {
    if (const char* cmd = std::getenv("UR_OSTREE_CHILD")) {
        int rc = booted_child(cmd);
        std::fflush(stdout);
        std::_Exit(rc);
    }
    return false;
}();

// Run a shell command; fail the test unless it exits 0. Returns stdout.
std::string sh(const std::string& cmd)
{
    std::string full = "set -e; " + cmd;
    FILE* p = ::popen(full.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    int rc = ::pclose(p);
    INFO(cmd << "\n" << out);
    REQUIRE(rc == 0);
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

// (per-mount options, superblock options) of the mount at `target`, from mountinfo.
std::pair<std::string, std::string> mount_options(const std::string& target)
{
    std::ifstream in("/proc/self/mountinfo");
    std::string line, found_vfs, found_sb;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string id, parent, devno, rootf, mnt, vfs;
        ls >> id >> parent >> devno >> rootf >> mnt >> vfs;
        if (mnt != target) continue;
        auto dash = line.find(" - ");
        std::istringstream rest(line.substr(dash + 3));
        std::string fstype, src, sb;
        rest >> fstype >> src >> sb;
        found_vfs = vfs; // the last one is the top mount
        found_sb = sb;
    }
    return {found_vfs, found_sb};
}

bool has_opt(const std::string& opts, const std::string& o)
{
    return ("," + opts + ",").find("," + o + ",") != std::string::npos;
}

// mount(2) remount for the test's own flips. EBUSY is retried: the FIFREEZE
// watchdog the ostree CLI forks keeps the CLI's fds open for a moment after it exits.
void remount(const std::string& target, unsigned long flags)
{
    for (int i = 0; i < 200; ++i) {
        if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | flags, nullptr) == 0) return;
        if (errno != EBUSY) break;
        ::usleep(50000);
    }
    FAIL("remount " << target << ": " << std::strerror(errno));
}

bool read_only(const std::string& path)
{
    struct statvfs sv;
    REQUIRE(::statvfs(path.c_str(), &sv) == 0);
    return sv.f_flag & ST_RDONLY;
}

// A sysroot with three commits on their own refs (testos/v1..v3), none deployed yet.
struct Sandbox {
    fs::path dir;
    std::string root; // --root
    std::string S;    // <root>/sysroot, a tmpfs
    std::string boot; // S/boot, its own tmpfs when separate_boot
    bool separate_boot;
    std::map<int, std::string> csum;

    explicit Sandbox(bool separate_boot_ = false) : separate_boot(separate_boot_)
    {
        char tmpl[] = "/tmp/ur-ostree-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        root = (dir / "root").string();
        S = root + "/sysroot";
        boot = S + "/boot";
        fs::create_directories(S);
        REQUIRE(::mount("tmpfs", S.c_str(), "tmpfs", 0, "mode=0755") == 0);
        sh("ostree admin init-fs --modern " + S + " >/dev/null && ostree admin os-init --sysroot=" + S +
           " testos >/dev/null");
        if (separate_boot) REQUIRE(::mount("tmpfs", boot.c_str(), "tmpfs", 0, "mode=0755") == 0);
        for (int v = 1; v <= 3; ++v) {
            std::string t = (dir / ("tree" + std::to_string(v))).string();
            std::string vs = std::to_string(v);
            sh("mkdir -p " + t + "/usr/lib/modules/6.1.0-test " + t + "/usr/etc && cd " + t +
               " && mkdir sysroot boot proc run dev tmp && ln -s sysroot/ostree ostree && echo kernel" + vs + " >" + t +
               "/usr/lib/modules/6.1.0-test/vmlinuz && echo initrd" + vs + " >" + t +
               "/usr/lib/modules/6.1.0-test/initramfs.img && printf 'ID=testos\\nVERSION_ID=" + vs + "\\n' >" + t +
               "/usr/lib/os-release");
            csum[v] = sh("ostree --repo=" + S + "/ostree/repo commit -b testos/v" + vs +
                         " --add-metadata-string=version=" + vs + " --tree=dir=" + t);
        }
    }
    ~Sandbox()
    {
        if (separate_boot) ::umount2(boot.c_str(), MNT_DETACH);
        ::umount2(S.c_str(), MNT_DETACH);
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    // Deploy version v on top (index 0), keeping everything else.
    void deploy(int v)
    {
        sh("ostree admin deploy --sysroot=" + S + " --os=testos --retain --karg=root=LABEL=root --karg=rw testos/v" +
           std::to_string(v) + " >/dev/null");
    }
    void pin(int index) { sh("ostree admin pin --sysroot=" + S + " " + std::to_string(index) + " >/dev/null"); }
    std::string id(int v) { return csum[v] + ".0"; }

    // Run `cmd` in a child that sees deployment `booted_v` booted (see booted_child); arg: its UR_OSTREE_ARG.
    nlohmann::json booted(int booted_v, const std::string& cmd, const std::string& arg = "", bool ro = false)
    {
        std::string run = (dir / "run").string();
        fs::create_directories(run);
        std::ofstream(run + "/ostree-booted").flush();
        std::string out =
            sh("UR_OSTREE_CHILD=" + cmd + " UR_OSTREE_SYSROOT=" + S + " UR_OSTREE_DEPLOYMENT=" + S +
               "/ostree/deploy/testos/deploy/" + id(booted_v) + " UR_OSTREE_RUNDIR=" + run + " UR_OSTREE_ARG=" + arg +
               " UR_OSTREE_RO=" + (ro ? "1 " : "0 ") + fs::read_symlink("/proc/self/exe").string());
        INFO(cmd << ": " << out);
        auto j = nlohmann::json::parse(out);
        REQUIRE(j["ok"] == true);
        return j;
    }
    bool staged_file_exists() { return fs::exists(dir / "run/ostree/staged-deployment"); }

    Config cfg(int booted_v) const
    {
        Config c;
        c.ostree_mode = "on";
        c.sysroot = "/sysroot";
        if (booted_v) c.ostree_booted = csum.at(booted_v) + ".0";
        return c;
    }

    // The deployment list as a fresh libostree load sees it: versions in index order.
    std::vector<int> versions()
    {
        auto l = ostree_list_deployments(cfg(0), root);
        REQUIRE_OK(l);
        std::vector<int> out;
        for (const auto& d : *l) {
            int v = 0;
            for (const auto& [k, c] : csum)
                if (c == d.checksum) v = k;
            out.push_back(v);
        }
        return out;
    }
    std::vector<bool> pins()
    {
        auto l = ostree_list_deployments(cfg(0), root);
        REQUIRE_OK(l);
        std::vector<bool> out;
        for (const auto& d : *l)
            out.push_back(d.pinned);
        return out;
    }
    bool deploy_dir_exists(int v) { return fs::exists(S + "/ostree/deploy/testos/deploy/" + id(v)); }

    // Independent of our code: what `ostree admin status` lists first is what boots next.
    std::string cli_default_id()
    {
        return sh("ostree admin status --sysroot=" + S + " | awk '$1 == \"testos\" {print $2; exit}'");
    }

    OstreeRecord record_of(int v) const
    {
        OstreeRecord r;
        r.present = true;
        r.osname = "testos";
        r.checksum = csum.at(v);
        r.serial = 0;
        r.pinned = true;
        return r;
    }
};

using VI = std::vector<int>;
using VB = std::vector<bool>;

// A backup of <root>/etc onto a plain-directory store at <root>/store, booted
// into deployment `booted_v`, etcd off; run_backup_in runs it.
Config backup_cfg(Sandbox& sb, int booted_v)
{
    Config c = sb.cfg(booted_v);
    c.partition_label = "urt-no-such-partition-" + std::to_string(getpid());
    c.allow_plain_directory = true;
    c.mount_point = "/store";
    c.trees = {{"etc", "/etc", {}, true}};
    c.etcd_mode = "off";
    fs::create_directories(sb.root + "/etc");
    std::ofstream(sb.root + "/etc/hostname") << "node\n";
    return c;
}
Result<BackupResult> run_backup_in(const Sandbox& sb, const Config& c)
{
    BackupOptions bo;
    bo.root = sb.root;
    Progress p;
    CancelToken cancel;
    return run_backup(c, bo, p, cancel);
}

} // namespace

TEST_CASE("ostree_enabled follows ostree.mode and the repo's presence")
{
    Sandbox sb;
    Config c;
    c.sysroot = "/sysroot";
    c.ostree_mode = "auto";
    CHECK(ostree_enabled(c, sb.root));
    CHECK_FALSE(ostree_enabled(c, (sb.dir / "nothing").string()));
    c.ostree_mode = "off";
    CHECK_FALSE(ostree_enabled(c, sb.root));
    c.ostree_mode = "on";
    CHECK(ostree_enabled(c, (sb.dir / "nothing").string()));
}

TEST_CASE("prepare: the booted deployment (index 1) is pinned, unpinned standby ones removed")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    sb.deploy(3);
    REQUIRE(sb.versions() == VI{3, 2, 1});

    auto rec = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec);
    CHECK(rec->present);
    CHECK(rec->osname == "testos");
    CHECK(rec->checksum == sb.csum[2]);
    CHECK(rec->serial == 0);
    CHECK(rec->version == "2");
    CHECK(rec->kernel_args == "root=LABEL=root rw");
    CHECK(rec->pinned);
    CHECK(rec->pinned_by_backup); // it was not pinned before
    CHECK(rec->removed == std::vector<std::string>{sb.id(3), sb.id(1)});

    CHECK(sb.versions() == VI{2});
    CHECK(sb.pins() == VB{true});
    CHECK_FALSE(sb.deploy_dir_exists(3));
    CHECK_FALSE(sb.deploy_dir_exists(1));
    CHECK(sb.cli_default_id() == sb.id(2));
    CHECK(sh("ostree admin status --sysroot=" + sb.S).find("Pinned: yes") != std::string::npos);
    // Each commit keeps its ref, so nothing a later test deploys was pruned.
    CHECK(sh("ostree --repo=" + sb.S + "/ostree/repo rev-parse testos/v3") == sb.csum[3]);
}

TEST_CASE("prepare: pinned standby deployments stay, the booted one keeps its place")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    sb.deploy(3);
    sb.pin(0); // v3, someone else's pin
    auto rec = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec);
    CHECK(rec->pinned_by_backup);
    CHECK(rec->removed == std::vector<std::string>{sb.id(1)});
    CHECK(sb.versions() == VI{3, 2});
    CHECK(sb.pins() == VB{true, true});

    // Again: nothing left to remove, the record is the same.
    auto again = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(again);
    CHECK(again->removed.empty());
    CHECK(again->checksum == sb.csum[2]);
    CHECK_FALSE(again->pinned_by_backup); // pinned already; pin_is_ours() carries it forward
    CHECK(sb.versions() == VI{3, 2});
}

// A store over a plain directory whose backups are metadata files only.
struct MetaStore {
    std::string dir;
    Store store;
    explicit MetaStore(const std::string& d) : dir(d), store(ur::test::plain_store(d)) {}
    // A backup recording `os` (ours or not); latest follows the newest.
    void add(const std::string& id, OstreeRecord os)
    {
        BackupMetadata m;
        m.id = id;
        m.created = "2024-01-01T00:00:00Z";
        m.ostree = std::move(os);
        fs::create_directories(dir + "/backups/" + id);
        std::ofstream(dir + "/backups/" + id + "/metadata.toml") << metadata_to_toml(m);
        fs::remove(dir + "/latest");
        fs::create_directory_symlink("backups/" + id, dir + "/latest");
    }
    std::vector<BackupMetadata> all()
    {
        auto all = read_all_metadata(store);
        REQUIRE(all);
        return *all;
    }
};

TEST_CASE("removing backups releases only our pins that no remaining backup records")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    sb.deploy(3);
    sb.pin(2); // v1: the administrator's pin
    auto rec2 = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec2);
    REQUIRE(rec2->pinned_by_backup);
    REQUIRE(sb.versions() == VI{2, 1});
    REQUIRE(sb.pins() == VB{true, true});

    MetaStore ms((sb.dir / "store").string());
    OstreeRecord v1 = sb.record_of(1); // recorded by a backup, pinned by someone else
    v1.pinned_by_backup = false;
    ms.add("20240101T000000Z", v1);
    ms.add("20240102T000000Z", *rec2);
    // A second backup of v2: the pin was already there, it is still ours.
    auto again = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(again);
    REQUIRE_FALSE(again->pinned_by_backup);
    CHECK(pin_is_ours(*again, ms.all()));
    CHECK_FALSE(pin_is_ours(*again, {}));
    again->pinned_by_backup = pin_is_ours(*again, ms.all());
    ms.add("20240103T000000Z", *again);
    OstreeRecord none; // a backup of a host without ostree, so the v2 ones are not the newest
    ms.add("20240104T000000Z", none);

    // Not our pin: stays.
    auto r1 = remove_backup(sb.cfg(0), sb.root, ms.store, "20240101T000000Z", false);
    REQUIRE_OK(r1);
    CHECK(r1->unpinned.empty());
    CHECK(r1->warning.empty());
    CHECK(sb.pins() == VB{true, true});
    // Ours, but another backup still records v2: stays.
    auto r2 = remove_backup(sb.cfg(0), sb.root, ms.store, "20240102T000000Z", false);
    REQUIRE_OK(r2);
    CHECK(r2->unpinned.empty());
    CHECK(sb.pins() == VB{true, true});
    // The last backup of v2 goes: our pin goes with it; the deployment stays (the next prepare drops it).
    auto r3 = remove_backup(sb.cfg(0), sb.root, ms.store, "20240103T000000Z", false);
    REQUIRE_OK(r3);
    CHECK(r3->unpinned == std::vector<std::string>{sb.id(2)});
    CHECK(sb.versions() == VI{2, 1});
    CHECK(sb.pins() == VB{false, true});
    CHECK(sh("ostree admin status --sysroot=" + sb.S).find("Pinned: yes") != std::string::npos); // v1's

    // Retention the same way: pin v2 again through a backup, then let retention (1) prune it.
    auto rec3 = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec3);
    REQUIRE(rec3->pinned_by_backup);
    ms.add("20240105T000000Z", *rec3);
    ms.add("20240106T000000Z", none);
    Config keep1 = sb.cfg(0);
    keep1.retention = 1;
    auto pr = prune_and_release(keep1, sb.root, ms.store);
    REQUIRE_OK(pr);
    CHECK(pr->ids == std::vector<std::string>{"20240104T000000Z", "20240105T000000Z"});
    CHECK(pr->unpinned == std::vector<std::string>{sb.id(2)});
    CHECK(sb.pins() == VB{false, true});

    // A remaining backup whose metadata cannot be read: nobody knows what it needs, every pin stays.
    auto rec4 = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec4);
    ms.add("20240107T000000Z", *rec4);
    ms.add("20240108T000000Z", none);
    std::ofstream(ms.dir + "/backups/20240108T000000Z/metadata.toml") << "format = ";
    auto r5 = remove_backup(sb.cfg(0), sb.root, ms.store, "20240107T000000Z", false);
    REQUIRE_OK(r5);
    CHECK(r5->unpinned.empty());
    CHECK(r5->warning.find("pins of the removed backups stay") != std::string::npos);
    CHECK(sb.pins() == VB{true, true});
}

// A backup that fails after pinning releases the pin it made: no backup records
// it, so retention could never release it. A published backup keeps it.
TEST_CASE("a backup that fails after pinning releases its pin; a published one keeps it")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    REQUIRE(sb.pins() == VB{false, false});
    Config c = backup_cfg(sb, 1);
    c.etcd_mode = "script";
    c.cluster_backup_script = "/usr/local/bin/cluster-backup.sh";
    fs::create_directories(sb.root + "/usr/local/bin");
    const std::string script = sb.root + c.cluster_backup_script;
    std::ofstream(script) << "#!/bin/sh\necho 'etcd is not reachable' >&2\nexit 1\n";
    fs::permissions(script, fs::perms::owner_all);

    auto failed = run_backup_in(sb, c);
    REQUIRE_FALSE(failed);
    INFO(failed.error().message);
    CHECK(failed.error().message.find("cluster backup") != std::string::npos);
    CHECK(sb.versions() == VI{1}); // the standby deployment went, as the backup said it would
    CHECK(sb.pins() == VB{false}); // the pin did not stay behind

    c.etcd_mode = "off";
    auto ok = run_backup_in(sb, c);
    REQUIRE_OK(ok);
    CHECK(ok->meta.ostree.pinned_by_backup);
    CHECK(sb.pins() == VB{true});
}

// The preparation fails after the pin, while dropping the standby deployment
// (a full /boot: ostree writes the new boot entries there): the pin goes too.
TEST_CASE("a backup whose ostree preparation fails after pinning releases the pin")
{
    Sandbox sb(true);
    sb.deploy(1);
    sb.deploy(2);
    REQUIRE(sb.pins() == VB{false, false});
    // /boot full: the tmpfs shrunk to what it holds plus a little, then filled.
    struct statvfs vfs;
    REQUIRE(::statvfs(sb.boot.c_str(), &vfs) == 0);
    const uint64_t used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    const std::string size = "size=" + std::to_string(used + (256u << 10));
    REQUIRE(::mount(nullptr, sb.boot.c_str(), nullptr, MS_REMOUNT, size.c_str()) == 0);
    sh("dd if=/dev/zero of=" + sb.boot + "/filler bs=4k 2>/dev/null || true");
    REQUIRE(::statvfs(sb.boot.c_str(), &vfs) == 0);
    REQUIRE(vfs.f_bavail == 0);

    auto failed = run_backup_in(sb, backup_cfg(sb, 1));
    REQUIRE_FALSE(failed);
    INFO(failed.error().message);
    CHECK(failed.error().message.find("ostree") != std::string::npos);
    CHECK(sb.versions() == VI{2, 1});     // nothing dropped
    CHECK(sb.pins() == VB{false, false}); // and the pin made before did not stay
    for (const auto& e : fs::directory_iterator(sb.root + "/store/backups"))
        CHECK(e.path().filename().string().rfind(".staging", 0) != 0); // the failed run's staging is gone
}

// The CLI on a plain-directory store at <root>/store with ostree on; `env` goes before
// it (a failpoint); `more_config` follows the [ostree] table's keys. Returns (exit status,
// stdout and stderr).
std::pair<int, std::string> run_cli(const Sandbox& sb, const std::string& env, const std::string& args,
                                    const std::string& more_config = "")
{
    const std::string cfg = (sb.dir / "config.toml").string();
    std::ofstream(cfg) << "[partition]\nlabel = \"urt-no-such-partition-" << getpid()
                       << "\"\nallow_plain_directory = true\nmount_point = \"/store\"\n"
                       << "[ostree]\nmode = \"on\"\nsysroot = \"/sysroot\"\n"
                       << more_config;
    auto r = ur::test::run_shell(
        env + " exec " + getenv_or("UR_CLI") + " --root " + sb.root + " --config " + cfg + " " + args, sb.dir.string());
    // As a shell reports it: 128 + the signal for a process killed by one.
    return {r.exit_code >= 0 ? r.exit_code : 128 + r.signal, r.out + r.err};
}

// A backup killed right after it pinned the booted deployment, before its
// metadata: the staging directory already records the pin, so the next run's
// clean-up releases it, and the next backup pins again and owns the pin. Without
// the record that backup would find the deployment pinned, take the pin for an
// administrator's and never release it.
TEST_CASE("a backup killed after pinning: the clean-up releases the pin, the next backup owns it")
{
    REQUIRE_FALSE(getenv_or("UR_CLI").empty()); // set by meson test
    Sandbox sb;
    sb.deploy(1);
    REQUIRE(sb.pins() == VB{false});
    fs::create_directories(sb.root + "/etc");
    std::ofstream(sb.root + "/etc/hostname") << "node\n";
    const std::string more = "booted_deployment = \"" + sb.id(1) +
                             "\"\n[etcd]\nmode = \"off\"\n[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n";
    const std::string backups = sb.root + "/store/backups";

    auto [killed, kout] = run_cli(sb, "UR_FAILPOINT=backup.after-ostree", "backup --id 20240101T000000Z", more);
    INFO(kout);
    REQUIRE(killed == 128 + SIGKILL);
    REQUIRE(sb.pins() == VB{true}); // pinned, and nothing published records it
    CHECK(fs::exists(backups + "/.staging-20240101T000000Z/metadata.toml"));

    auto [rc, out] = run_cli(sb, "", "backup --id 20240102T000000Z", more);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK_FALSE(fs::exists(backups + "/.staging-20240101T000000Z"));
    CHECK(sb.pins() == VB{true});
    std::ifstream meta(backups + "/20240102T000000Z/metadata.toml");
    const std::string text((std::istreambuf_iterator<char>(meta)), std::istreambuf_iterator<char>());
    CHECK(text.find("pinned_by_backup = true") != std::string::npos);

    // The proof that the pin is ours: deleting the only backup that records it releases it.
    auto [drc, dout] = run_cli(sb, "", "delete --force 20240102T000000Z", more);
    INFO(dout);
    CHECK(drc == 0);
    CHECK(sb.pins() == VB{false});
}

// A delete killed after the rename (the backup is gone, its tree not yet) leaves
// backups/.staging-deleted-<id>; the pin it alone held must not stay for good.
TEST_CASE("a delete killed half way: the next delete, or the same one again, releases its pin")
{
    REQUIRE_FALSE(getenv_or("UR_CLI").empty()); // set by meson test
    for (const bool same_again : {true, false}) {
        DYNAMIC_SECTION((same_again ? "delete of the same id again" : "delete of another backup"))
        {
            Sandbox sb;
            sb.deploy(1);
            sb.deploy(2);
            auto rec = ostree_prepare_for_backup(sb.cfg(2), sb.root);
            REQUIRE_OK(rec);
            REQUIRE(rec->pinned_by_backup);
            REQUIRE(sb.pins() == VB{true});
            MetaStore ms(sb.root + "/store");
            OstreeRecord none;
            ms.add("20240101T000000Z", *rec);
            ms.add("20240102T000000Z", none);
            ms.add("20240103T000000Z", none);

            auto [killed, kout] = run_cli(sb, "UR_FAILPOINT=delete.retired", "delete 20240101T000000Z");
            INFO(kout);
            REQUIRE(killed == 128 + SIGKILL); // the shell's status for a child killed by SIGKILL
            const std::string leftover = ms.dir + "/backups/.staging-deleted-20240101T000000Z";
            REQUIRE(fs::exists(leftover + "/metadata.toml"));
            REQUIRE(sb.pins() == VB{true}); // the leak: nothing has released it yet

            auto [rc, out] = run_cli(sb, "", same_again ? "delete 20240101T000000Z" : "delete 20240102T000000Z");
            INFO(out);
            CHECK(rc == 0);
            CHECK_FALSE(fs::exists(leftover));
            CHECK(sb.pins() == VB{false});
            CHECK(out.find("Unpinned ostree deployment " + sb.id(2)) != std::string::npos);
            if (same_again) CHECK(out.find("interrupted") != std::string::npos);
            CHECK(fs::exists(ms.dir + "/backups/20240103T000000Z"));
        }
    }
}

// The next backup cleans up first: the leftover's pin goes, and with it the
// deployment (an unpinned standby one), before the backup pins the booted one.
TEST_CASE("a delete killed half way: the next backup releases its pin")
{
    REQUIRE_FALSE(getenv_or("UR_CLI").empty()); // set by meson test
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    sb.pin(1); // v1: the administrator's
    auto rec = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE_OK(rec);
    REQUIRE(rec->pinned_by_backup);
    REQUIRE(sb.versions() == VI{2, 1});
    MetaStore ms(sb.root + "/store");
    OstreeRecord none;
    ms.add("20240101T000000Z", *rec);
    ms.add("20240102T000000Z", none);
    auto [killed, kout] = run_cli(sb, "UR_FAILPOINT=delete.retired", "delete 20240101T000000Z");
    INFO(kout);
    REQUIRE(killed == 128 + SIGKILL);
    REQUIRE(sb.pins() == VB{true, true});

    auto ok = run_backup_in(sb, backup_cfg(sb, 1)); // the node booted v1 again
    REQUIRE_OK(ok);
    CHECK_FALSE(fs::exists(ms.dir + "/backups/.staging-deleted-20240101T000000Z"));
    CHECK(sb.versions() == VI{1}); // v2 unpinned, then dropped as a standby deployment
    CHECK(sb.pins() == VB{true});
}

// A leftover's pin stays while a remaining backup records the same deployment.
TEST_CASE("the clean-up of a leftover keeps a pin another backup still needs")
{
    REQUIRE_FALSE(getenv_or("UR_CLI").empty()); // set by meson test
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    MetaStore ms(sb.root + "/store");
    ms.add("20240101T000000Z", *rec);
    ms.add("20240102T000000Z", *rec);
    OstreeRecord none;
    ms.add("20240103T000000Z", none);
    auto [killed, kout] = run_cli(sb, "UR_FAILPOINT=delete.retired", "delete 20240101T000000Z");
    INFO(kout);
    REQUIRE(killed == 128 + SIGKILL);
    auto [rc, out] = run_cli(sb, "", "delete 20240103T000000Z");
    INFO(out);
    CHECK(rc == 0);
    CHECK_FALSE(fs::exists(ms.dir + "/backups/.staging-deleted-20240101T000000Z"));
    CHECK(sb.pins() == VB{true}); // 20240102T000000Z records it
}

TEST_CASE("prepare: no booted deployment and no seam is a clear error")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    auto rec = ostree_prepare_for_backup(sb.cfg(0), sb.root);
    REQUIRE_FALSE(rec);
    CHECK(rec.error().kind == ErrorKind::NotFound);
    CHECK(rec.error().message.find("no booted deployment") != std::string::npos);
    CHECK(sb.versions() == VI{2, 1}); // untouched
    CHECK(sb.pins() == VB{false, false});

    Config c = sb.cfg(0);
    c.ostree_booted = sb.id(3); // committed but never deployed
    auto r2 = ostree_prepare_for_backup(c, sb.root);
    REQUIRE_FALSE(r2);
    CHECK(r2.error().kind == ErrorKind::NotFound);
    CHECK(sb.versions() == VI{2, 1});
}

TEST_CASE("read-only bind mount (RHCOS /sysroot) is made writable and put back, also on failure")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2);
    remount(sb.S, MS_BIND | MS_RDONLY | MS_NOSUID);
    REQUIRE(read_only(sb.S));

    // Failure after the remount (the seam names nothing deployed): still read-only afterwards.
    Config bad = sb.cfg(0);
    bad.ostree_booted = sb.id(3);
    auto r = ostree_prepare_for_backup(bad, sb.root);
    REQUIRE_FALSE(r);
    CHECK(read_only(sb.S));

    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    CHECK(rec->removed == std::vector<std::string>{sb.id(2)});
    CHECK(read_only(sb.S));
    auto [vfs, super] = mount_options(sb.S);
    CHECK(has_opt(vfs, "ro"));
    CHECK(has_opt(vfs, "nosuid")); // the other per-mount flags survive the two remounts
    CHECK(has_opt(super, "rw"));   // the superblock was never touched
    CHECK(sb.versions() == VI{1});

    // A refused apply (decided under the lock, after the remount) also puts it back.
    auto refused = apply_rollback_plan(sb.cfg(1), sb.root, sb.record_of(3));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::Refused);
    CHECK(read_only(sb.S));
}

TEST_CASE("read-only superblock and a separate read-only /boot are remounted and put back")
{
    Sandbox sb(true);
    sb.deploy(1);
    sb.deploy(2);
    sb.deploy(3);
    remount(sb.boot, MS_RDONLY);
    remount(sb.S, MS_RDONLY);
    REQUIRE(read_only(sb.S));
    REQUIRE(read_only(sb.boot));

    auto rec = ostree_prepare_for_backup(sb.cfg(3), sb.root);
    REQUIRE_OK(rec);
    CHECK(sb.versions() == VI{3});
    CHECK(read_only(sb.S));
    CHECK(read_only(sb.boot));
    CHECK(has_opt(mount_options(sb.S).second, "ro"));
    CHECK(has_opt(mount_options(sb.boot).second, "ro"));

    // An upgrade deploys v1 on top (made writable by hand, as rpm-ostree would), then the rollback.
    remount(sb.boot, 0);
    remount(sb.S, 0);
    sb.deploy(1);
    remount(sb.boot, MS_RDONLY);
    remount(sb.S, MS_RDONLY);
    auto res = apply_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE_OK(res);
    CHECK(res->plan.action == RollbackAction::Rollback);
    CHECK(sb.versions() == VI{3, 1});
    CHECK(read_only(sb.S));
    CHECK(read_only(sb.boot));
}

TEST_CASE("apply, table row 1: the recorded deployment is the default -> nothing")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    auto plan = compute_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE_OK(plan);
    CHECK(plan->action == RollbackAction::Nothing);
    auto res = apply_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE_OK(res);
    CHECK_FALSE(res->changed);
    CHECK(res->default_deployment.checksum == sb.csum[1]);
    CHECK(sb.versions() == VI{1});
}

TEST_CASE("apply, table row 2: the pinned deployment is the rollback -> rollback")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    sb.deploy(2); // the upgrade; after its reboot v2 is booted
    REQUIRE(sb.versions() == VI{2, 1});

    auto plan = compute_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE_OK(plan);
    CHECK(plan->action == RollbackAction::Rollback);
    CHECK(plan->reboot_needed);
    auto j = nlohmann::json::parse(rollback_plan_json(*plan));
    CHECK(j["target"]["index"] == 1);
    CHECK(rollback_plan_text(*plan).find("Action: rollback") != std::string::npos);

    auto res = apply_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE_OK(res);
    CHECK(res->changed);
    CHECK(res->removed.empty());
    CHECK(res->default_deployment.checksum == sb.csum[1]);
    CHECK(sb.versions() == VI{1, 2});
    CHECK(sb.pins() == VB{true, false});
    CHECK(sb.cli_default_id() == sb.id(1));

    // Applying again changes nothing.
    auto again = apply_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE_OK(again);
    CHECK(again->plan.action == RollbackAction::Nothing);
    CHECK_FALSE(again->changed);
    CHECK(sb.versions() == VI{1, 2});
}

TEST_CASE("apply, table row 3: standby deployments in the way -> undeploy, then rollback")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    sb.deploy(2);
    sb.deploy(3);
    REQUIRE(sb.versions() == VI{3, 2, 1});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_OK(plan);
    CHECK(plan->action == RollbackAction::UndeployThenRollback);
    REQUIRE(plan->undeploy.size() == 1);
    CHECK(plan->undeploy[0].checksum == sb.csum[2]);

    auto res = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_OK(res);
    CHECK(res->removed == std::vector<std::string>{sb.id(2)});
    CHECK(res->default_deployment.checksum == sb.csum[1]);
    CHECK(sb.versions() == VI{1, 3});
    CHECK_FALSE(sb.deploy_dir_exists(2));
    CHECK(sb.cli_default_id() == sb.id(1));
}

TEST_CASE("apply: a pinned deployment in the way is never removed; the attempt is refused")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    sb.deploy(2);
    sb.deploy(3);
    sb.pin(1); // v2
    REQUIRE(sb.pins() == VB{false, true, true});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_OK(plan);
    CHECK(plan->action == RollbackAction::Refuse);
    CHECK(plan->reason.find("pinned") != std::string::npos);

    auto res = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == ErrorKind::Refused);
    CHECK(sb.versions() == VI{3, 2, 1});
    CHECK(sb.deploy_dir_exists(2));

    // Once the pin is lifted the plan goes through.
    sh("ostree admin pin --unpin --sysroot=" + sb.S + " 1 >/dev/null");
    auto ok = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_OK(ok);
    CHECK(sb.versions() == VI{1, 3});
}

TEST_CASE("apply: the recorded deployment is gone -> refused, nothing written")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    sb.deploy(2);
    sb.deploy(3);
    sh("ostree admin pin --unpin --sysroot=" + sb.S + " 2 >/dev/null && ostree admin undeploy --sysroot=" + sb.S +
       " 2 >/dev/null");
    REQUIRE(sb.versions() == VI{3, 2});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_OK(plan);
    CHECK(plan->action == RollbackAction::Refuse);
    CHECK(plan->reason.find("gone") != std::string::npos);
    auto res = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == ErrorKind::Refused);
    CHECK(sb.versions() == VI{3, 2});

    // A backup without an ostree record: nothing to do, as the recovery skips the step.
    OstreeRecord none;
    auto p2 = compute_rollback_plan(sb.cfg(3), sb.root, none);
    REQUIRE_OK(p2);
    CHECK(p2->action == RollbackAction::Nothing);
    CHECK(p2->reason.find("a recovery skips the platform rollback") != std::string::npos);
}

// The initramfs: ostree-prepare-root made /sysroot a bind mount of the booted
// deployment's directory and bound the physical root at /sysroot/sysroot; libostree
// cannot tell which deployment is booted from there, the root's inode can.
TEST_CASE("initramfs layout: the deployment bound at the root is the booted one")
{
    Sandbox sb;
    sb.deploy(1);
    sb.deploy(2); // v2 default, v1 the rollback
    REQUIRE(sb.versions() == VI{2, 1});
    const std::string root = (sb.dir / "initrd-sysroot").string();
    fs::create_directories(root);
    auto boot_into = [&](int v) {
        ::umount2((root + "/sysroot").c_str(), MNT_DETACH);
        ::umount2(root.c_str(), MNT_DETACH);
        const std::string dep = sb.S + "/ostree/deploy/testos/deploy/" + sb.id(v);
        REQUIRE(::mount(dep.c_str(), root.c_str(), nullptr, MS_BIND, nullptr) == 0);
        REQUIRE(::mount(sb.S.c_str(), (root + "/sysroot").c_str(), nullptr, MS_BIND, nullptr) == 0);
    };
    struct Unbind {
        std::string r;
        ~Unbind()
        {
            ::umount2((r + "/sysroot").c_str(), MNT_DETACH);
            ::umount2(r.c_str(), MNT_DETACH);
        }
    } unbind{root};

    SECTION("booted into the upgraded deployment: the rollback needs a reboot")
    {
        boot_into(2);
        auto l = ostree_list_deployments(sb.cfg(0), root);
        REQUIRE_OK(l);
        REQUIRE(l->size() == 2);
        CHECK((*l)[0].booted);
        CHECK_FALSE((*l)[1].booted);
        auto plan = compute_rollback_plan(sb.cfg(0), root, sb.record_of(1));
        REQUIRE_OK(plan);
        CHECK(plan->action == RollbackAction::Rollback);
        CHECK(plan->reboot_needed);
    }
    SECTION("booted into the recorded deployment (chosen in the boot menu): no reboot")
    {
        boot_into(1);
        auto l = ostree_list_deployments(sb.cfg(0), root);
        REQUIRE_OK(l);
        CHECK_FALSE((*l)[0].booted);
        CHECK((*l)[1].booted);
        auto plan = compute_rollback_plan(sb.cfg(0), root, sb.record_of(1));
        REQUIRE_OK(plan);
        CHECK(plan->action == RollbackAction::Rollback);
        CHECK_FALSE(plan->reboot_needed);
        for (const auto& n : plan->notes)
            CHECK(n.find("no deployment is marked booted") == std::string::npos);
    }
    SECTION("a root that is no deployment marks none booted")
    {
        auto l = ostree_list_deployments(sb.cfg(0), sb.root);
        REQUIRE_OK(l);
        for (const auto& d : *l)
            CHECK_FALSE(d.booted);
    }
}

TEST_CASE("compute_rollback_plan on a missing sysroot is a NotFound error")
{
    Sandbox sb;
    Config c = sb.cfg(0);
    c.sysroot = "/nowhere";
    auto p = compute_rollback_plan(c, sb.root, sb.record_of(1));
    REQUIRE_FALSE(p);
    CHECK(p.error().kind == ErrorKind::NotFound);
}

// ---- live-host path: libostree on "/", booted and staged as libostree reports them

std::vector<std::string> list_ids(const nlohmann::json& j, const char* flag = nullptr)
{
    std::vector<std::string> out;
    for (const auto& d : j["deployments"]) {
        std::string id = d["id"];
        if (flag && d[flag] == true) id += std::string(" ") + flag;
        out.push_back(id);
    }
    return out;
}

TEST_CASE("booted host: prepare drops a real staged deployment; read-only /sysroot and /boot binds are restored")
{
    Sandbox sb;
    sb.deploy(1);
    sb.booted(1, "stage", "v2");
    REQUIRE(sb.staged_file_exists());
    auto st = sb.booted(1, "status");
    // libostree lists the staged deployment first, then the booted one; no seam involved.
    REQUIRE(st["deployments"].size() == 2);
    CHECK(st["deployments"][0]["id"] == sb.id(2));
    CHECK(st["deployments"][0]["staged"] == true);
    CHECK(st["deployments"][1]["id"] == sb.id(1));
    CHECK(st["deployments"][1]["booted"] == true);

    auto rec = sb.booted(1, "prepare", "", true);
    CHECK(rec["checksum"] == sb.csum[1]);
    CHECK(rec["pinned"] == true);
    CHECK(rec["removed"] == std::vector<std::string>{sb.id(2)});
    CHECK(rec["sysroot_ro"] == true);
    CHECK(rec["boot_ro"] == true);

    CHECK_FALSE(sb.staged_file_exists()); // the shutdown finalizer has nothing left to finalize
    CHECK_FALSE(sb.deploy_dir_exists(2));
    auto after = sb.booted(1, "status");
    CHECK(list_ids(after, "pinned") == std::vector<std::string>{sb.id(1) + " pinned"});
}

TEST_CASE("booted host: rollback from the upgraded deployment drops the staged one too")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE_OK(rec);
    sb.deploy(2);                // the upgrade, now booted
    sb.booted(2, "stage", "v3"); // and another update staged on top
    REQUIRE(sb.staged_file_exists());

    auto plan = sb.booted(2, "plan", sb.csum[1]);
    CHECK(plan["plan"]["action"] == "rollback");
    CHECK(plan["plan"]["drop_staged"]["id"] == sb.id(3));
    CHECK(plan["plan"]["reboot_needed"] == true);

    auto res = sb.booted(2, "apply", sb.csum[1], true);
    CHECK(res["action"] == "rollback");
    CHECK(res["default"] == sb.id(1));
    CHECK(res["removed"] == std::vector<std::string>{sb.id(3)});
    CHECK(res["sysroot_ro"] == true);
    CHECK(res["boot_ro"] == true);
    CHECK_FALSE(sb.staged_file_exists());
    CHECK_FALSE(sb.deploy_dir_exists(3));
    CHECK(sb.versions() == VI{1, 2});
    CHECK(sb.cli_default_id() == sb.id(1));
}

TEST_CASE("booted host: the recorded deployment is booted and default, only the staged one goes")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = sb.booted(1, "prepare");
    sb.booted(1, "stage", "v2");
    auto res = sb.booted(1, "apply", sb.csum[1]);
    CHECK(res["action"] == "nothing");
    CHECK(res["removed"] == std::vector<std::string>{sb.id(2)});
    CHECK(res["default"] == sb.id(1));
    CHECK_FALSE(sb.staged_file_exists());
    CHECK(sb.versions() == VI{1});
}
