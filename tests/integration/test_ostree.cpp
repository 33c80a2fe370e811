// ostree_state against real libostree sysroots built with the ostree CLI on a
// tmpfs (deploy FIFREEZEs the filesystem holding boot/; on tmpfs that is a
// no-op). The whole binary runs in a private mount namespace, so no tmpfs can
// outlive it, even after a crash.
#include "ostree_state.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

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
            sh("mkdir -p " + t + "/usr/lib/modules/6.1.0-test " + t + "/usr/etc && echo kernel" + vs + " >" + t +
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
        REQUIRE(l);
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
        REQUIRE(l);
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
    REQUIRE(rec);
    CHECK(rec->present);
    CHECK(rec->osname == "testos");
    CHECK(rec->checksum == sb.csum[2]);
    CHECK(rec->serial == 0);
    CHECK(rec->version == "2");
    CHECK(rec->kernel_args == "root=LABEL=root rw");
    CHECK(rec->pinned);
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
    REQUIRE(rec);
    CHECK(rec->removed == std::vector<std::string>{sb.id(1)});
    CHECK(sb.versions() == VI{3, 2});
    CHECK(sb.pins() == VB{true, true});

    // Again: nothing left to remove, the record is the same.
    auto again = ostree_prepare_for_backup(sb.cfg(2), sb.root);
    REQUIRE(again);
    CHECK(again->removed.empty());
    CHECK(again->checksum == sb.csum[2]);
    CHECK(sb.versions() == VI{3, 2});
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
    REQUIRE(::mount(nullptr, sb.S.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr) == 0);
    REQUIRE(read_only(sb.S));

    // Failure after the remount (the seam names nothing deployed): still read-only afterwards.
    Config bad = sb.cfg(0);
    bad.ostree_booted = sb.id(3);
    auto r = ostree_prepare_for_backup(bad, sb.root);
    REQUIRE_FALSE(r);
    CHECK(read_only(sb.S));

    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE(rec);
    CHECK(rec->removed == std::vector<std::string>{sb.id(2)});
    CHECK(read_only(sb.S));
    auto [vfs, super] = mount_options(sb.S);
    CHECK(has_opt(vfs, "ro"));
    CHECK(has_opt(vfs, "nosuid")); // the other per-mount flags survive the two remounts
    CHECK(has_opt(super, "rw"));   // the superblock was never touched
    CHECK(sb.versions() == VI{1});
}

TEST_CASE("read-only superblock and a separate read-only /boot are remounted and put back")
{
    Sandbox sb(true);
    sb.deploy(1);
    sb.deploy(2);
    sb.deploy(3);
    REQUIRE(::mount(nullptr, sb.boot.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
    REQUIRE(::mount(nullptr, sb.S.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
    REQUIRE(read_only(sb.S));
    REQUIRE(read_only(sb.boot));

    auto rec = ostree_prepare_for_backup(sb.cfg(3), sb.root);
    REQUIRE(rec);
    CHECK(sb.versions() == VI{3});
    CHECK(read_only(sb.S));
    CHECK(read_only(sb.boot));
    CHECK(has_opt(mount_options(sb.S).second, "ro"));
    CHECK(has_opt(mount_options(sb.boot).second, "ro"));

    // An upgrade deploys v1 on top (made writable by hand, as rpm-ostree would), then the rollback.
    REQUIRE(::mount(nullptr, sb.boot.c_str(), nullptr, MS_REMOUNT, nullptr) == 0);
    REQUIRE(::mount(nullptr, sb.S.c_str(), nullptr, MS_REMOUNT, nullptr) == 0);
    sb.deploy(1);
    REQUIRE(::mount(nullptr, sb.boot.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
    REQUIRE(::mount(nullptr, sb.S.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
    auto res = apply_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE(res);
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
    REQUIRE(rec);
    auto plan = compute_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE(plan);
    CHECK(plan->action == RollbackAction::Nothing);
    auto res = apply_rollback_plan(sb.cfg(1), sb.root, *rec);
    REQUIRE(res);
    CHECK_FALSE(res->changed);
    CHECK(res->default_deployment.checksum == sb.csum[1]);
    CHECK(sb.versions() == VI{1});
}

TEST_CASE("apply, table row 2: the pinned deployment is the rollback -> rollback")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE(rec);
    sb.deploy(2); // the upgrade; after its reboot v2 is booted
    REQUIRE(sb.versions() == VI{2, 1});

    auto plan = compute_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE(plan);
    CHECK(plan->action == RollbackAction::Rollback);
    CHECK(plan->reboot_needed);
    auto j = nlohmann::json::parse(rollback_plan_json(*plan));
    CHECK(j["target"]["index"] == 1);
    CHECK(rollback_plan_text(*plan).find("Action: rollback") != std::string::npos);

    auto res = apply_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE(res);
    CHECK(res->changed);
    CHECK(res->removed.empty());
    CHECK(res->default_deployment.checksum == sb.csum[1]);
    CHECK(sb.versions() == VI{1, 2});
    CHECK(sb.pins() == VB{true, false});
    CHECK(sb.cli_default_id() == sb.id(1));

    // Applying again changes nothing.
    auto again = apply_rollback_plan(sb.cfg(2), sb.root, *rec);
    REQUIRE(again);
    CHECK(again->plan.action == RollbackAction::Nothing);
    CHECK_FALSE(again->changed);
    CHECK(sb.versions() == VI{1, 2});
}

TEST_CASE("apply, table row 3: standby deployments in the way -> undeploy, then rollback")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE(rec);
    sb.deploy(2);
    sb.deploy(3);
    REQUIRE(sb.versions() == VI{3, 2, 1});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE(plan);
    CHECK(plan->action == RollbackAction::UndeployThenRollback);
    REQUIRE(plan->undeploy.size() == 1);
    CHECK(plan->undeploy[0].checksum == sb.csum[2]);

    auto res = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE(res);
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
    REQUIRE(rec);
    sb.deploy(2);
    sb.deploy(3);
    sb.pin(1); // v2
    REQUIRE(sb.pins() == VB{false, true, true});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE(plan);
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
    REQUIRE(ok);
    CHECK(sb.versions() == VI{1, 3});
}

TEST_CASE("apply: the recorded deployment is gone -> refused, nothing written")
{
    Sandbox sb;
    sb.deploy(1);
    auto rec = ostree_prepare_for_backup(sb.cfg(1), sb.root);
    REQUIRE(rec);
    sb.deploy(2);
    sb.deploy(3);
    sh("ostree admin pin --unpin --sysroot=" + sb.S + " 2 >/dev/null && ostree admin undeploy --sysroot=" + sb.S +
       " 2 >/dev/null");
    REQUIRE(sb.versions() == VI{3, 2});

    auto plan = compute_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE(plan);
    CHECK(plan->action == RollbackAction::Refuse);
    CHECK(plan->reason.find("gone") != std::string::npos);
    auto res = apply_rollback_plan(sb.cfg(3), sb.root, *rec);
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == ErrorKind::Refused);
    CHECK(sb.versions() == VI{3, 2});

    OstreeRecord none;
    auto p2 = compute_rollback_plan(sb.cfg(3), sb.root, none);
    REQUIRE(p2);
    CHECK(p2->action == RollbackAction::Refuse);
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
