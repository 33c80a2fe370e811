// Phase 1 of a recovery on a real SNO-like tree with the real backup and restore
// engines: offline (the initrd's way), SIGKILLed at more than 20 points and
// resumed, through the initrd entry point (armed / kernel argument / power cut),
// refusing a corrupt backup, and live against a systemctl/crictl stand-in.
// Every run is a fresh process (recovery-helper) so failpoints can kill it.
#include "../unit/test_skip.hpp"
#include "backup.hpp"
#include "digest.hpp"
#include "recovery.hpp"
#include "store.hpp"
#include "upgrade_watchdog.hpp"

#include "../unit/shell_run.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <set>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

const bool root_ok = [] {
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root (ownership and trusted xattrs are restored)\n");
        std::_Exit(77);
    }
    // ostree sysroots live on tmpfs mounts that must not outlive the test.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        perror("private mount namespace");
        std::_Exit(1);
    }
    if (!std::getenv("UR_RECOVERY_HELPER")) {
        fprintf(stderr, "SKIP: UR_RECOVERY_HELPER is not set (run through meson test)\n");
        std::_Exit(77);
    }
    return true;
}();

const char* kBackupId = "20240501T100000Z";

void sh(const std::string& cmd)
{
    int rc = std::system(cmd.c_str());
    INFO(cmd);
    REQUIRE(rc == 0);
}

void write(const std::string& p, const std::string& content, mode_t mode = 0644)
{
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::trunc) << content;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
}

using ur::test::slurp;

// Runs the calling test twice: as an ordinary boot, and with upgrade_recovery=phase1
// on the kernel command line (written to `cmdline`). Returns whether this run has it.
bool ordinary_or_karg_boot(const std::string& cmdline)
{
    bool karg = false;
    SECTION("ordinary boot")
    {
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw\n");
    }
    SECTION("upgrade_recovery=phase1")
    {
        karg = true;
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 upgrade_recovery=phase1 rw\n");
    }
    return karg;
}

// Everything that must come back, per path: type, mode, owner, size, mtime,
// links, symlink target, content, every xattr.
using Snapshot = std::map<std::string, std::string>;

std::string describe(const std::string& abs, bool with_dir_mtime)
{
    struct stat st {
    };
    REQUIRE(::lstat(abs.c_str(), &st) == 0);
    std::ostringstream o;
    o << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISREG(st.st_mode)) {
        o << " size=" << st.st_size << " nlink=" << st.st_nlink << " mtime=" << st.st_mtim.tv_sec << "."
          << st.st_mtim.tv_nsec << " data=" << slurp(abs);
    } else if (S_ISLNK(st.st_mode)) {
        o << " -> " << fs::read_symlink(abs).string();
    } else if (S_ISDIR(st.st_mode) && with_dir_mtime) {
        o << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    }
    char names[4096];
    ssize_t n = ::llistxattr(abs.c_str(), names, sizeof names);
    std::set<std::string> keys;
    for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(names + i)) + 1)
        keys.insert(names + i);
    for (const auto& k : keys) {
        char v[4096];
        ssize_t l = ::lgetxattr(abs.c_str(), k.c_str(), v, sizeof v);
        o << " " << k << "=" << (l >= 0 ? std::string(v, static_cast<size_t>(l)) : "?");
    }
    return o.str();
}

struct Host {
    std::string base;   // the test's directory
    std::string root;   // the node's root
    std::string failed; // a copy of the root after the failed upgrade
    std::string config;
    std::string helper = std::getenv("UR_RECOVERY_HELPER");
    Snapshot before; // at backup time
    Snapshot broken; // after the failed upgrade

    std::string ostree_ids[2]; // "<checksum>.0" of v1 (backed up) and v2 (the failed upgrade)

    // With `ostree`: a real sysroot (tmpfs) at <root>/sysroot, v1 deployed and booted at
    // backup time, v2 deployed by the "upgrade" and booted when the recovery starts.
    // `prepare` changes the root before the backup is taken.
    explicit Host(bool ostree = false, const std::function<void(Host&)>& prepare = {})
    {
        char t[] = "/tmp/ur-phase1-XXXXXX";
        REQUIRE(mkdtemp(t));
        base = t;
        root = base + "/root";
        failed = base + "/failed";
        config = base + "/config.toml";
        build();
        if (ostree) ostree_ids[0] = make_sysroot();
        set_config(ostree ? ostree_ids[0] : "");
        if (prepare) prepare(*this);
        before = snapshot();
        Config cfg = *load_config(ConfigSource{root, config});
        BackupOptions bo;
        bo.root = root;
        bo.id = kBackupId;
        Progress p;
        CancelToken c;
        auto b = run_backup(cfg, bo, p, c);
        INFO((b ? "" : b.error().message));
        REQUIRE(b);
        fail_upgrade();
        if (ostree) {
            ostree_ids[1] = ostree_commit_deploy("v2");
            set_config(ostree_ids[1]);
        }
        broken = snapshot();
        sh("mkdir " + failed + " && cd " + root + " && cp -a etc usr opt var " + failed + "/ && rm -rf " + failed +
           "/var/recovery");
    }
    ~Host()
    {
        ::umount2((root + "/sysroot").c_str(), MNT_DETACH);
        fs::remove_all(base);
    }

    // booted: the ostree.booted_deployment seam ("" = ostree off).
    void set_config(const std::string& booted) const
    {
        std::ofstream(config, std::ios::trunc)
            << "[partition]\nlabel = \"ur-test-no-such-partition\"\nallow_plain_directory = true\n"
            << "[ostree]\nmode = \"" << (booted.empty() ? "off" : "on") << "\"\n"
            << (booted.empty() ? "" : "booted_deployment = \"" + booted + "\"\n")
            << "[etcd]\nmode = \"off\"\n[recovery]\nsystemctl = \"offline\"\nstop_timeout = 10\n";
    }

    std::string make_sysroot()
    {
        std::string S = p("sysroot");
        fs::create_directories(S);
        REQUIRE(::mount("tmpfs", S.c_str(), "tmpfs", 0, "mode=0755") == 0);
        sh("ostree admin init-fs --modern " + S + " >/dev/null && ostree admin os-init --sysroot=" + S +
           " testos >/dev/null");
        return ostree_commit_deploy("v1");
    }

    std::string ostree_commit_deploy(const std::string& v)
    {
        std::string S = p("sysroot"), T = base + "/tree-" + v;
        write(T + "/usr/lib/modules/6.1.0-test/vmlinuz", "kernel " + v);
        write(T + "/usr/lib/modules/6.1.0-test/initramfs.img", "initrd " + v);
        write(T + "/usr/lib/os-release", "ID=testos\nVERSION_ID=" + v + "\n");
        write(T + "/usr/etc/motd", v + "\n");
        sh("ostree --repo=" + S + "/ostree/repo commit -b testos/" + v + " --tree=dir=" + T +
           " >/dev/null && ostree admin deploy --sysroot=" + S + " --os=testos testos/" + v + " >/dev/null 2>&1");
        std::string rev = slurp_cmd("ostree --repo=" + S + "/ostree/repo rev-parse testos/" + v);
        while (!rev.empty() && rev.back() == '\n')
            rev.pop_back();
        REQUIRE(rev.size() == 64);
        return rev + ".0";
    }

    static std::string slurp_cmd(const std::string& cmd)
    {
        std::string out;
        FILE* f = popen(cmd.c_str(), "r");
        REQUIRE(f);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            out.append(buf, n);
        pclose(f);
        return out;
    }

    // The deployment the bootloader starts next (index 0).
    std::string default_deployment() const
    {
        std::string st = slurp_cmd("ostree admin status --sysroot=" + root + "/sysroot 2>/dev/null");
        // "  testos <checksum>.<serial>" lines, the first is the default.
        auto pos = st.find("testos ");
        REQUIRE(pos != std::string::npos);
        auto end = st.find_first_of(" \n", pos + 7);
        return st.substr(pos + 7, end - pos - 7);
    }

    std::string p(const std::string& rel) const { return root + "/" + rel; }

    void build()
    {
        write(p("etc/hostname"), "sno-node\n");
        write(p("etc/ssh/sshd_config"), "PermitRootLogin no\n", 0600);
        write(p("etc/crio/crio.conf"), "[crio]\nstorage_driver = \"overlay\"\n");
        write(p("etc/kubernetes/manifests/kube-apiserver-pod.yaml"), "kind: Pod # old\n");
        write(p("etc/nasty/ name with spaces\nand a newline"), "nasty\n");
        write(p("etc/nasty/\xc3\xa9t\xc3\xa9-\x01-bytes"), "bytes\n");
        write(p("etc/hl/a"), "linked\n");
        fs::create_hard_link(p("etc/hl/a"), p("etc/hl/b"));
        fs::create_symlink("../hostname", p("etc/nasty/rel-link"));
        for (int i = 0; i < 120; i++) {
            char n[64];
            snprintf(n, sizeof n, "etc/many/f%03d.conf", i);
            write(p(n), "value " + std::to_string(i) + "\n");
        }
        REQUIRE(::lsetxattr(p("etc/crio/crio.conf").c_str(), "user.origin", "mco", 3, 0) == 0);
        REQUIRE(::lsetxattr(p("etc/hostname").c_str(), "trusted.label", "keep", 4, 0) == 0);
        REQUIRE(::lchown(p("etc/ssh/sshd_config").c_str(), 1000, 1000) == 0);
        // kubelet is enabled before the recovery; the phase 2 unit ships in /usr/lib.
        write(p("etc/systemd/system/kubelet.service"),
              "[Unit]\nDescription=Kubernetes Kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n"
              "[Install]\nWantedBy=multi-user.target\n");
        fs::create_directories(p("etc/systemd/system/multi-user.target.wants"));
        fs::create_symlink("/etc/systemd/system/kubelet.service",
                           p("etc/systemd/system/multi-user.target.wants/kubelet.service"));
        write(p("usr/lib/systemd/system/upgrade-recovery-phase2.service"),
              "[Unit]\nDescription=phase 2\n[Service]\nType=oneshot\nExecStart=/usr/bin/upgrade-recovery recover "
              "--resume\n[Install]\nWantedBy=multi-user.target\n");
        write(p("usr/local/bin/cluster-restore.sh"), "#!/bin/sh\nexit 0\n", 0755);
        write(p("usr/local/bin/tool"), "#!/bin/sh\necho old\n", 0755);
        write(p("var/lib/kubelet/config.json"), "{\"auths\": {}}\n", 0600);
        REQUIRE(::lsetxattr(p("var/lib/kubelet/config.json").c_str(), "user.note", "a", 1, 0) == 0);
        write(p("var/lib/kubelet/pods/uid-1/etc-hosts"), "127.0.0.1 localhost\n");
        write(p("var/lib/kubelet/kubeconfig"), "apiVersion: v1\n", 0600);
        // A MachineConfig file outside the trees (W19), listed in currentconfig.
        write(p("opt/mc/old.conf"), "from the old MachineConfig\n");
        write(p("etc/machine-config-daemon/currentconfig"), mc_json({"/opt/mc/old.conf"}));
    }

    static std::string mc_json(const std::vector<std::string>& files)
    {
        nlohmann::json f = nlohmann::json::array();
        for (const auto& x : files)
            f.push_back({{"path", x}});
        return nlohmann::json({{"spec", {{"config", {{"storage", {{"files", f}}}}}}}}).dump();
    }

    void fail_upgrade()
    {
        write(p("etc/hostname"), "sno-node-upgraded\n");
        write(p("etc/new-from-upgrade.conf"), "new\n");
        fs::remove(p("etc/ssh/sshd_config"));
        REQUIRE(::chmod(p("etc/crio/crio.conf").c_str(), 0600) == 0);
        REQUIRE(::lsetxattr(p("etc/crio/crio.conf").c_str(), "user.origin", "upgrade", 7, 0) == 0);
        write(p("etc/kubernetes/manifests/kube-apiserver-pod.yaml"), "kind: Pod # new, excluded from restore\n");
        write(p("etc/nasty/ name with spaces\nand a newline"), "changed\n");
        fs::remove(p("etc/hl/b"));
        write(p("etc/hl/b"), "linked\n");
        for (int i = 0; i < 120; i += 3) {
            char n[64];
            snprintf(n, sizeof n, "etc/many/f%03d.conf", i);
            write(p(n), "upgraded " + std::to_string(i) + "\n");
        }
        // A file replaced by a symlink out of the root, a directory replaced by a file.
        fs::remove(p("usr/local/bin/tool"));
        fs::create_symlink(base + "/outside-target", p("usr/local/bin/tool"));
        write(base + "/outside-target", "must never be written\n");
        fs::remove_all(p("var/lib/kubelet/pods/uid-1"));
        write(p("var/lib/kubelet/pods/uid-1"), "now a file\n");
        REQUIRE(::lremovexattr(p("var/lib/kubelet/config.json").c_str(), "user.note") == 0);
        // The new MachineConfig adds a file outside the trees.
        write(p("opt/mc/new.conf"), "from the new MachineConfig\n");
        write(p("opt/mc/old.conf"), "rewritten by the new MachineConfig\n");
        write(p("etc/machine-config-daemon/currentconfig"), mc_json({"/opt/mc/old.conf", "/opt/mc/new.conf"}));
    }

    Snapshot snapshot() const
    {
        Snapshot s;
        for (const char* top : {"etc", "usr/local", "var/lib/kubelet", "opt"}) {
            std::string t = root + "/" + top;
            s[top] = describe(t, true);
            for (auto it = fs::recursive_directory_iterator(t); it != fs::recursive_directory_iterator(); ++it) {
                std::string rel = it->path().string().substr(root.size() + 1);
                // Directories whose entries recovery edits on purpose (unit links) or only
                // partly owns (extras parents) keep their own mtime.
                bool dir_mtime = rel != "etc/systemd/system/multi-user.target.wants" && rel != "opt/mc";
                s[rel] = describe(it->path().string(), dir_mtime);
            }
        }
        s["opt"] = describe(root + "/opt", false);
        return s;
    }

    // What phase 1 must leave: the backup, except the excluded /etc paths (left as the
    // upgrade made them), kubelet disabled and the phase 2 unit enabled.
    Snapshot expected() const
    {
        Snapshot e = before;
        for (const char* ex : {"etc/kubernetes/manifests/kube-apiserver-pod.yaml", "etc/kubernetes/manifests"})
            e[ex] = broken.at(ex);
        e.erase("etc/systemd/system/multi-user.target.wants/kubelet.service");
        e["etc/systemd/system/multi-user.target.wants/upgrade-recovery-phase2.service"] =
            "120777 0:0 -> /usr/lib/systemd/system/upgrade-recovery-phase2.service";
        return e;
    }

    void check_recovered() const
    {
        Snapshot now = snapshot();
        Snapshot want = expected();
        std::vector<std::string> diffs;
        for (const auto& [k, v] : want) {
            auto it = now.find(k);
            if (it == now.end())
                diffs.push_back("missing " + k);
            else if (it->second != v)
                diffs.push_back("differs " + k + ":\n    want " + v + "\n    have " + it->second);
        }
        for (const auto& [k, v] : now)
            if (!want.count(k)) diffs.push_back("extra " + k + ": " + v);
        std::string all;
        for (const auto& d : diffs)
            all += d + "\n";
        INFO(all);
        CHECK(diffs.empty());
        CHECK(slurp(base + "/outside-target") == "must never be written\n");
        // Phase 1's markers.
        CHECK(fs::exists(p("var/recovery/recovery/phase2-pending")));
        CHECK_FALSE(fs::exists(p("var/recovery/recovery/armed")));
    }

    // Back to the failed upgrade with no recovery recorded.
    void reset()
    {
        sh("cd " + root +
           " && find . -mindepth 1 -maxdepth 1 ! -name var ! -name sysroot -exec rm -rf {} + && rm -rf var/lib && "
           "cp -a " +
           failed + "/. " + root + "/ && rm -rf " + root + "/var/recovery/recovery");
    }

    using Run = ur::test::ShellRun;

    Run run(const std::string& args, const std::string& failpoint = "") const
    {
        return ur::test::run_shell((failpoint.empty() ? std::string() : "UR_FAILPOINT='" + failpoint + "' ") + "exec " +
                                       helper + " --config " + config + " --root " + root + " " + args,
                                   base);
    }

    // The real CLI on this root (exit codes, messages as an administrator sees them).
    Run cli(const std::string& args) const
    {
        const char* exe = std::getenv("UR_CLI");
        REQUIRE(exe);
        return ur::test::run_shell("exec " + std::string(exe) + " --root " + root + " --config " + config + " " + args,
                                   base);
    }

    RecoveryJournal journal() const
    {
        auto j = journal_from_json(slurp(p("var/recovery/recovery/journal")));
        REQUIRE(j);
        return *j;
    }
};

} // namespace

TEST_CASE("offline phase 1 restores the tree and flips the units")
{
    Host h;
    // A temporary of the restore's own, left by a kill beside a MachineConfig file
    // (extras): removed like the other trees' (check_recovered sees every name).
    write(h.p("opt/mc/.ur-restore-0123456789abcdef"), "half a file\n");
    auto r = h.run("");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto o = r.json();
    CHECK(o["phase1_done"] == true);
    CHECK(o["state"] == "paused");
    CHECK(o["stopped_before"] == "start-crio");
    h.check_recovered();
    auto j = h.journal();
    CHECK(j.mode == "offline");
    CHECK(j.backup_id == kBackupId);
    CHECK(j.state == RecoveryState::Paused);
    for (const char* live : {"stop-kubelet", "remove-pods", "stop-crio", "wipe-images"}) {
        CHECK(j.step(live)->state == StepState::Skipped);
        CHECK(j.step(live)->note.find("offline") != std::string::npos);
    }
    CHECK(j.step("restore-files")->state == StepState::Done);
    CHECK(j.step("platform-rollback")->state == StepState::Skipped);
    CHECK(j.mc_files == std::vector<std::string>{"/opt/mc/new.conf", "/opt/mc/old.conf"});
    CHECK(j.step("start-crio")->state == StepState::Pending);
    // A second run without --resume is refused; --resume stops at the same place offline.
    auto again = h.run("");
    CHECK(again.exit_code == 1);
    CHECK(again.err.find("RecoveryInProgress") != std::string::npos);
    auto resumed = h.run("--resume");
    CHECK(resumed.exit_code == 0);
    CHECK(resumed.json()["stopped_before"] == "start-crio");
}

TEST_CASE("phase 1 killed at any point resumes to a tree equal to the backup")
{
    Host h;
    std::vector<std::string> points = {
        "recovery.verify",
        "recovery.verify.done",
        "recovery.platform-rollback",
        "recovery.platform-rollback.done",
        "recovery.restore-files",
        "restore.file:1",
        "restore.file:2",
        "restore.file:3",
        "restore.file:7",
        "restore.file:10",
        "restore.file:13",
        "restore.file:25",
        "restore.file:30",
        "restore.file:40",
        "recovery.restore-files.done",
        "recovery.disable-kubelet",
        "recovery.disable-kubelet.done",
        "recovery.enable-phase2",
        "recovery.enable-phase2.done",
        "recovery.phase1-done",
        "recovery.phase1-done.done",
    };
    for (const auto& fp : points) {
        DYNAMIC_SECTION("killed at " << fp)
        {
            h.reset();
            auto k = h.run("", fp);
            INFO(k.out << k.err);
            REQUIRE(k.signal == SIGKILL);
            auto j = h.journal();
            CHECK(recovery_state_in_progress(j.state));
            auto r = h.run("--resume");
            INFO(r.out << r.err);
            REQUIRE(r.exit_code == 0);
            CHECK(r.json()["phase1_done"] == true);
            h.check_recovered();
        }
    }
    // Killed twice: during the first run and again during the resume.
    SECTION("killed in the run and again in the resume")
    {
        h.reset();
        REQUIRE(h.run("", "restore.file:20").signal == SIGKILL);
        REQUIRE(h.run("--resume", "restore.file:4").signal == SIGKILL);
        REQUIRE(h.run("--resume", "recovery.disable-kubelet").signal == SIGKILL);
        auto r = h.run("--resume");
        REQUIRE(r.exit_code == 0);
        h.check_recovered();
        CHECK(h.journal().step("restore-files")->attempts == 3);
    }
    SECTION("--restart after a crash starts over and still removes the new MachineConfig file")
    {
        h.reset();
        REQUIRE(h.run("", "recovery.restore-files.done").signal == SIGKILL);
        auto r = h.run("--restart");
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        h.check_recovered();
        CHECK(fs::exists(h.p("var/recovery/recovery/journal.previous")));
        CHECK(h.journal().step("restore-files")->attempts == 1);
    }
}

TEST_CASE("the initrd entry: fast no-op, armed run, power cut, kernel argument")
{
    Host h;
    std::string cmdline = h.base + "/cmdline";
    write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw quiet\n");
    std::string boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    std::string initrd = "--initrd --cmdline " + cmdline + " --boot-id " + boot;

    SECTION("not armed: returns at once and changes nothing")
    {
        auto t0 = std::chrono::steady_clock::now();
        auto r = h.run(initrd);
        auto took = std::chrono::steady_clock::now() - t0;
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(r.json()["reason"] == "not armed");
        CHECK(took < std::chrono::milliseconds(1000)); // process start included
        CHECK(h.snapshot() == h.broken);
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/journal")));
    }
    SECTION("armed: phase 1 runs; a power cut in the middle resumes at the next boot")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        auto k = h.run(initrd, "restore.file:9");
        REQUIRE(k.signal == SIGKILL);
        CHECK(fs::exists(h.p("var/recovery/recovery/armed"))); // still armed
        CHECK(h.journal().mode == "initrd");
        write(boot, "boot-2\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == true);
        CHECK(r.json()["phase1_done"] == true);
        h.check_recovered();
        // The next boot (phase 2 pending) does not run phase 1 again.
        auto again = h.run(initrd);
        CHECK(again.json()["ran"] == false);
        h.check_recovered();
    }
    SECTION("armed: a power cut around phase1-done leaves phase 1 complete after the next boot")
    {
        // `armed` goes only after the journal says phase 1 is done: cut off before
        // that, the next initrd must still find the partition armed and finish it.
        for (const char* fp : {"recovery.phase1-done", "recovery.phase1-done.pending", "recovery.phase1-done.done"}) {
            INFO("killed at " << fp);
            h.reset();
            write(boot, "boot-1\n");
            auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
            REQUIRE(store);
            REQUIRE(arm_recovery(*store, kBackupId));
            auto k = h.run(initrd, fp);
            REQUIRE(k.signal == SIGKILL);
            write(boot, "boot-2\n");
            auto r = h.run(initrd);
            INFO(r.out << r.err);
            REQUIRE(r.exit_code == 0);
            auto j = h.journal();
            CHECK(j.step("phase1-done")->state == StepState::Done);
            REQUIRE(j.next_step());
            CHECK(j.next_step()->name == "start-crio");
            CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
            CHECK(fs::exists(h.p("var/recovery/recovery/phase2-pending")));
            h.check_recovered();
        }
    }
    SECTION("a watchdog left by a cut just after it fired goes when the recovery starts")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(start_watchdog(*store, kBackupId, 600, "boot-0"));
        REQUIRE(arm_recovery(*store, kBackupId)); // fire_watchdog, cut before its stop_watchdog
        REQUIRE(h.run(initrd).exit_code == 0);
        // Left, it would fire once phase 2 finished and restore the node a second time.
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/watchdog")));
        h.check_recovered();
    }
    SECTION("the watchdog goes as soon as the recovery is armed, also when the start fails after that")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(start_watchdog(*store, kBackupId, 600, "boot-0"));
        // The old phase2-pending cannot be removed: the start fails after its journal is saved.
        fs::create_directories(h.p("var/recovery/recovery/phase2-pending/x"));
        auto r = h.run("");
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("phase2-pending") != std::string::npos);
        // Armed and in progress: the next boot resumes it, and the watchdog is gone.
        CHECK(fs::exists(h.p("var/recovery/recovery/armed")));
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/watchdog")));
        fs::remove_all(h.p("var/recovery/recovery/phase2-pending"));
    }
    SECTION("a start that fails before its journal is written leaves nothing armed")
    {
        // journal.previous a directory with something in it: keeping the old journal fails.
        REQUIRE(h.run("", "recovery.verify").signal == SIGKILL); // a journal to keep
        fs::remove(h.p("var/recovery/recovery/armed"));
        fs::create_directories(h.p("var/recovery/recovery/journal.previous/x"));
        auto r = h.run("--restart");
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("journal.previous") != std::string::npos);
        // Before: armed was left with the backup, and the next boot restored it.
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
        fs::remove_all(h.p("var/recovery/recovery/journal.previous"));
    }
    SECTION("--restart cut off before its journal is written: the next boot still has a recovery to go on with")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        REQUIRE(h.run(initrd).exit_code == 0); // phase 1 done: kubelet disabled, phase 2 pending
        REQUIRE(h.journal().next_step()->name == "start-crio");
        REQUIRE(h.run("--restart", "recovery.new.previous-kept").signal == SIGKILL);
        // Before: the journal renamed away and phase2-pending removed first, so nothing
        // resumed and kubelet stayed disabled.
        CHECK(recovery_state_in_progress(h.journal().state));
        CHECK(fs::exists(h.p("var/recovery/recovery/journal.previous")));
        CHECK(fs::exists(h.p("var/recovery/recovery/phase2-pending")));
        write(boot, "boot-2\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(fs::exists(h.p("var/recovery/recovery/phase2-pending"))); // phase 2 goes on in this boot
        CHECK(h.journal().next_step()->name == "start-crio");
        // And a --restart that is not cut off starts the new recovery.
        auto again = h.run("--restart");
        INFO(again.out << again.err);
        REQUIRE(again.exit_code == 0);
        CHECK(h.journal().step("restore-files")->attempts == 1);
        h.check_recovered();
    }
    SECTION("abandoned, and cut off before the journal says so: no restore at the next boot")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        REQUIRE(h.run(initrd, "restore.file:9").signal == SIGKILL); // a recovery in progress, armed
        REQUIRE(h.run("--abandon", "recovery.abandon.markers").signal == SIGKILL);
        write(h.p("etc/hostname"), "fixed by hand\n");
        write(boot, "boot-2\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(slurp(h.p("etc/hostname")) == "fixed by hand\n");
        // Still shown as in progress; abandoning again ends it.
        CHECK(recovery_state_in_progress(h.journal().state));
        auto again = h.run("--abandon");
        INFO(again.out << again.err);
        REQUIRE(again.exit_code == 0);
        CHECK(again.json()["abandoned"] == true);
        CHECK(h.journal().state == RecoveryState::Aborted);
    }
    SECTION("armed with a backup that cannot be read: aborted, and this boot goes on")
    {
        std::string meta = h.p("var/recovery/backups/") + kBackupId + "/metadata.toml";
        std::string good = slurp(meta);
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        write(meta, "id = \"truncated\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        // Nothing changed: the root boots (it stopped in emergency.target, which at a
        // remote site needs hands, for a root that was never touched).
        CHECK(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK_THAT(r.json()["reason"].get<std::string>(), Catch::Contains("aborted before anything changed") &&
                                                              Catch::Contains("metadata.toml") &&
                                                              Catch::Contains("the root boots as it was"));
        CHECK_THAT(r.err, Catch::Contains("aborted before anything changed"));
        CHECK(h.snapshot() == h.broken);
        // Before: `armed` stayed and every boot ended in emergency.target the same way.
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
        CHECK(h.journal().state == RecoveryState::Aborted);
        CHECK(h.journal().error.find("metadata.toml") != std::string::npos);
        write(boot, "boot-2\n");
        auto next = h.run(initrd);
        INFO(next.out << next.err);
        CHECK(next.exit_code == 0);
        CHECK(next.json()["ran"] == false);
        write(meta, good);
    }
    SECTION("armed with a backup id that does not exist: ended the same way")
    {
        fs::create_directories(h.p("var/recovery/recovery"));
        write(h.p("var/recovery/recovery/armed"), "20990101T000000Z\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK_THAT(r.json()["reason"].get<std::string>(), Catch::Contains("aborted before anything changed"));
        CHECK(h.snapshot() == h.broken);
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
        CHECK(h.journal().state == RecoveryState::Aborted);
        auto next = h.run(initrd);
        CHECK(next.exit_code == 0);
        CHECK(next.json()["ran"] == false);
    }
    SECTION("armed with a backup that fails verification: aborted, this boot goes on unchanged")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        std::string f = h.p("var/recovery/backups/") + kBackupId + "/etc/hostname";
        REQUIRE(fs::exists(f));
        struct stat st;
        REQUIRE(::stat(f.c_str(), &st) == 0);
        write(f, "tampered\n"); // same name, other bytes: the digest differs
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK_THAT(r.json()["reason"].get<std::string>(),
                   Catch::Contains("aborted before anything changed") && Catch::Contains("corrupt"));
        CHECK(h.snapshot() == h.broken);
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
        CHECK(h.journal().state == RecoveryState::Aborted);
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/phase2-pending")));
    }
    SECTION("armed on a full partition: the recovery cannot start, the root boots as it was, still armed")
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        // The store on a small tmpfs, filled up: no journal can be written. Before, `armed`
        // was written again first (ENOSPC, exit 5) and every boot stopped the same way.
        const std::string rec = h.p("var/recovery"), copy = h.base + "/store-copy";
        sh("cp -a '" + rec + "' '" + copy + "'");
        REQUIRE(::mount("ur-full", rec.c_str(), "tmpfs", 0, "size=64m,mode=0700") == 0);
        sh("cp -a '" + copy + "/.' '" + rec + "/' && (cat /dev/zero > '" + rec + "/fill' 2>/dev/null; true)");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK_THAT(r.json()["reason"].get<std::string>(),
                   Catch::Contains("could not start") && Catch::Contains("space"));
        CHECK(h.snapshot() == h.broken);
        CHECK(slurp(rec + "/recovery/armed") == std::string(kBackupId) + "\n"); // the next boot tries again
        CHECK_FALSE(fs::exists(rec + "/recovery/journal"));
        REQUIRE(::umount2(rec.c_str(), MNT_DETACH) == 0);
    }
    SECTION("kernel argument: latest backup, and not again once recovered")
    {
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 upgrade_recovery=phase1 rw\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == true);
        h.check_recovered();
        CHECK(h.journal().backup_id == kBackupId);
        auto pending = h.run(initrd);
        CHECK(pending.json()["ran"] == false);
        // Phase 2 done (as phase 2 leaves it): a persistent kernel argument must not restore again.
        auto j = h.journal();
        j.state = RecoveryState::Complete;
        for (auto& st : j.steps)
            st.state = StepState::Done;
        std::ofstream(h.p("var/recovery/recovery/journal")) << journal_to_json(j);
        fs::remove(h.p("var/recovery/recovery/phase2-pending"));
        write(h.p("etc/hostname"), "changed after the recovery\n");
        auto stale = h.run(initrd);
        INFO(stale.out << stale.err);
        CHECK(stale.json()["ran"] == false);
        CHECK(stale.json()["reason"].get<std::string>().find("stale kernel argument") == 0);
        CHECK(slurp(h.p("etc/hostname")) == "changed after the recovery\n");
    }
    SECTION("kernel argument: not again once abandoned; arming restores it after all")
    {
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 upgrade_recovery=phase1 rw\n");
        auto r = h.run(initrd);
        INFO(r.out << r.err);
        REQUIRE(r.json()["ran"] == true);
        h.check_recovered();
        // Phase 2 did not go well; the administrator ends it and fixes the node by hand.
        REQUIRE(h.cli("recover --abandon").exit_code == 0);
        REQUIRE(h.journal().abandoned);
        write(h.p("etc/hostname"), "fixed by hand after the abandon\n");
        auto kept = h.run(initrd);
        INFO(kept.out << kept.err);
        CHECK(kept.exit_code == 0);
        CHECK(kept.json()["ran"] == false);
        CHECK_THAT(kept.json()["reason"].get<std::string>(),
                   Catch::StartsWith("stale kernel argument") && Catch::Contains("abandoned"));
        CHECK_THAT(kept.err, Catch::Contains("upgrade-recovery arm " + std::string(kBackupId)));
        CHECK(slurp(h.p("etc/hostname")) == "fixed by hand after the abandon\n");
        // Asked for on purpose: armed, the same backup is restored again.
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
        auto again = h.run(initrd);
        INFO(again.out << again.err);
        CHECK(again.json()["ran"] == true);
        h.check_recovered();
    }
}

TEST_CASE("the initrd entry restores into the real /var, not the deployment's own")
{
    // In the initramfs <root>/var is not mounted yet: the real one is the ostree
    // stateroot's var (ostree= on the kernel command line), or what the root's
    // fstab or var.mount names. Move the tree's /var there and leave an empty
    // directory, as the initrd sees it.
    Host h;
    std::string cmdline = h.base + "/cmdline", boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        REQUIRE(arm_recovery(*store, kBackupId));
    }
    std::string real = h.p("srv/realvar"), cmd = "BOOT_IMAGE=/vmlinuz root=UUID=1 rw\n";
    bool broken = false, armed = true;
    SECTION("ostree: the stateroot's var")
    {
        real = h.p("sysroot/ostree/deploy/testos/var");
        cmd = "BOOT_IMAGE=(hd0,gpt3)/ostree/testos-abc/vmlinuz ostree=/ostree/boot.1/testos/abc/0 rw\n";
    }
    SECTION("a /var line in /etc/fstab")
    {
        write(h.p("etc/fstab"), "UUID=1 / xfs defaults 0 0\n/srv/realvar /var none bind 0 0\n");
    }
    SECTION("/etc/fstab as an absolute symlink, resolved inside the root")
    {
        write(h.p("usr/etc/fstab"), "/srv/realvar /var none bind 0 0\n");
        fs::create_symlink("/usr/etc/fstab", h.p("etc/fstab"));
    }
    SECTION("/etc/systemd/system/var.mount")
    {
        write(h.p("etc/systemd/system/var.mount"),
              "[Unit]\nBefore=local-fs.target\n\n[Mount]\nWhat=/srv/realvar\nWhere=/var\nOptions=bind\n");
    }
    SECTION("a /var that cannot be mounted stops an armed recovery, not an ordinary boot")
    {
        write(h.p("etc/systemd/system/var.mount"), "[Mount]\nWhat=/srv/gone\nWhere=/var\nOptions=bind\n");
        broken = true;
        SECTION("armed") {}
        SECTION("not armed")
        {
            armed = false;
            fs::remove(h.p("var/recovery/recovery/armed"));
        }
    }
    if (!broken) {
        fs::create_directories(fs::path(real).parent_path());
        fs::rename(h.p("var"), real);
        fs::create_directory(h.p("var"));
    } // else the store stays where the test's plain-directory store can find the armed marker
    write(cmdline, cmd);
    const Snapshot pre = broken ? h.snapshot() : Snapshot{};
    auto r = h.run("--initrd --cmdline " + cmdline + " --boot-id " + boot);
    INFO(r.out << r.err);
    if (broken && armed) {
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("phase 1 cannot run") != std::string::npos);
        CHECK(r.err.find("/srv/gone") != std::string::npos);
    } else if (broken) {
        CHECK(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(r.json()["reason"] == "not armed");
    } else {
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == true);
        CHECK(r.json()["phase1_done"] == true);
    }
    if (broken) {
        CHECK(h.snapshot() == pre); // nothing restored anywhere
        return;
    }
    // The real /var was detached again, and nothing was written into the deployment's own.
    CHECK(fs::is_empty(h.p("var")));
    REQUIRE(::mount(real.c_str(), h.p("var").c_str(), nullptr, MS_BIND, nullptr) == 0);
    h.check_recovered();
    ::umount2(h.p("var").c_str(), MNT_DETACH);
}

TEST_CASE("--dry-run shows the plan and the changes and touches nothing")
{
    Host h;
    auto r = h.run("--dry-run");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto o = r.json();
    CHECK(o["changes"].get<size_t>() >= 40);
    std::string planned = o["planned"].dump();
    CHECK(planned.find("verify: ") != std::string::npos);
    CHECK(planned.find("restore-files: ") != std::string::npos);
    CHECK(planned.find("stop-kubelet") != std::string::npos);
    // Every step once, in the order a run takes them, saying what would be skipped
    // (this run is offline, recovery.wipe_images is off by default).
    std::vector<std::string> lines = o["planned"].get<std::vector<std::string>>();
    REQUIRE(lines.size() == recovery_steps().size());
    for (size_t i = 0; i < lines.size(); i++) {
        INFO(lines[i]);
        const std::string n = recovery_steps()[i].name;
        CHECK(lines[i].find(n + ": ") != std::string::npos);
        CHECK((recovery_steps()[i].phase == 2) == (lines[i].rfind("after the reboot, ", 0) == 0));
        if (recovery_steps()[i].live_only) CHECK(lines[i] == n + ": skipped (offline: nothing runs there)");
    }
    CHECK(h.snapshot() == h.broken);
    CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/journal")));
    CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));

    // A recovery in progress: what is done already says so.
    REQUIRE(h.run("", "recovery.disable-kubelet").signal == SIGKILL);
    auto resumed = h.run("--dry-run --resume");
    INFO(resumed.out << resumed.err);
    REQUIRE(resumed.exit_code == 0);
    auto rl = resumed.json()["planned"].get<std::vector<std::string>>();
    REQUIRE(rl.size() == recovery_steps().size());
    CHECK(rl[0] == "verify: done already");
    CHECK(std::find(rl.begin(), rl.end(), "restore-files: done already") != rl.end());
    CHECK(std::find(rl.begin(), rl.end(), "stop-kubelet: skipped already") != rl.end());
    CHECK(std::find(rl.begin(), rl.end(), "disable-kubelet: disable kubelet.service") != rl.end());
}

// An armed recovery of a backup phase 1 must not use: exit 1 naming `why`, nothing
// touched, a final "failed" result at the verify step, the armed marker gone and
// backups possible again.
void refused_at_verify(const Host& h, const std::string& why)
{
    auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
    REQUIRE(store);
    REQUIRE(arm_recovery(*store, kBackupId));
    auto r = h.run("");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find(why) != std::string::npos);
    CHECK(h.snapshot() == h.broken); // nothing touched
    auto j = h.journal();
    CHECK(j.state == RecoveryState::Aborted);
    CHECK(j.result() == "failed");
    CHECK(j.step("verify")->state == StepState::Failed);
    CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
    CHECK_FALSE(*recovery_in_progress(*store)); // a final result: backups are possible again
}

TEST_CASE("a recovery of the earlier tooling's script in progress refuses the start of ours")
{
    // Its kept script (upgrade-recovery.sh.earlier) run by hand writes progress, as it did.
    Host h;
    {
        std::ofstream(h.p("var/recovery/progress")) << "started\nrestore_files\n";
    }
    auto r = h.run("");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("RecoveryInProgress") != std::string::npos);
    CHECK(r.err.find("a recovery by the earlier upgrade-recovery.sh is in progress") != std::string::npos);
    CHECK(h.snapshot() == h.broken); // nothing touched
    CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/journal")));
    fs::remove(h.p("var/recovery/progress"));
    auto ok = h.run("");
    INFO(ok.out << ok.err);
    CHECK(ok.exit_code == 0);
}

TEST_CASE("a corrupt backup is refused before anything changes, unless forced")
{
    Host h;
    // Damage one file inside the backup.
    std::string victim;
    for (auto& e : fs::recursive_directory_iterator(h.p("var/recovery/backups/") + kBackupId))
        if (e.path().filename() == "f005.conf") victim = e.path();
    REQUIRE_FALSE(victim.empty());
    std::string good = slurp(victim);
    {
        std::ofstream(victim, std::ios::trunc) << "bit rot";
    }
    refused_at_verify(h, "Corrupt");

    auto forced = h.run("--force");
    INFO(forced.out << forced.err);
    CHECK(forced.exit_code == 0);
    CHECK(h.journal().step("verify")->note.find("CORRUPT, forced") == 0);
    {
        std::ofstream(victim, std::ios::trunc) << good;
    }
}

TEST_CASE("a backup of another installation (another machine-id) is refused before anything changes, unless forced")
{
    const std::string mine = "0123456789abcdef0123456789abcdef", other = "fedcba9876543210fedcba9876543210";
    Host h(false, [&](Host& x) { write(x.p("etc/machine-id"), mine + "\n"); });
    const std::string meta = slurp(h.p("var/recovery/backups/") + kBackupId + "/metadata.toml");
    INFO(meta);
    CHECK(meta.find("machine_id = '" + mine + "'") != std::string::npos);
    // The same installation: nothing to say.
    auto same = h.run("--dry-run");
    INFO(same.out << same.err);
    REQUIRE(same.exit_code == 0);
    CHECK(same.json()["planned"][0].get<std::string>().find("REFUSED") == std::string::npos);

    write(h.p("etc/machine-id"), other + "\n");
    h.broken = h.snapshot();
    const std::string why = "backup " + std::string(kBackupId) + " was taken on another installation (its " +
                            "/etc/machine-id is " + mine + ", this root's is " + other + ")";
    auto dry = h.run("--dry-run");
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    CHECK(dry.json()["planned"][0].get<std::string>().find("; REFUSED unless --force: " + why) != std::string::npos);
    refused_at_verify(h, why);

    auto forced = h.run("--force");
    INFO(forced.out << forced.err);
    CHECK(forced.exit_code == 0);
    CHECK(h.journal().step("verify")->note.find("another installation's, forced") != std::string::npos);
    CHECK(slurp(h.p("etc/machine-id")) == mine + "\n"); // the backup's /etc, as forced
}

// Feature 34: past a backup's rollback availability, arming and the recovery say what
// the node will need, and go on: the files and etcd still come back.
TEST_CASE("a backup whose kubelet certificates expired: arm and the recovery warn, and go on")
{
    Host h;
    {
        auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
        REQUIRE(store);
        auto m = read_metadata(*store, kBackupId);
        REQUIRE(m);
        m->openshift.cert_expiry = "2000-01-01T00:00:00Z";
        std::ofstream(h.p("var/recovery/backups/") + kBackupId + "/metadata.toml", std::ios::trunc)
            << metadata_to_toml(*m);
    }
    const std::string said =
        "the kubelet certificates in backup " + std::string(kBackupId) + " expired at 2000-01-01T00:00:00Z";
    auto arm = h.cli(std::string("arm ") + kBackupId);
    INFO(arm.out << arm.err);
    CHECK(arm.exit_code == 0);
    CHECK(arm.err.find(said) != std::string::npos);
    CHECK(arm.err.find("oc adm certificate approve") != std::string::npos);
    REQUIRE(h.cli("disarm").exit_code == 0);

    auto r = h.run("");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find(said) != std::string::npos);
    CHECK(h.journal().step("verify")->note.find("kubelet certificates expired at 2000-01-01T00:00:00Z") !=
          std::string::npos);
    h.check_recovered();
}

// Give the backup an etcd snapshot that verifies (the metadata carries its digests).
void add_cluster_snapshot(const Host& h, bool has_cluster_restore)
{
    const std::string gen = h.p("var/recovery/backups/") + kBackupId;
    fs::create_directories(gen + "/cluster");
    const std::string snap = "snapshot data", tar = "static pod resources";
    std::ofstream(gen + "/cluster/snapshot_2024-05-01_100000.db") << snap;
    std::ofstream(gen + "/cluster/static_kuberesources_2024-05-01_100000.tar.gz") << tar;
    auto meta = metadata_from_toml(slurp(gen + "/metadata.toml"), "metadata.toml");
    REQUIRE(meta);
    meta->cluster.present = true;
    meta->cluster.method = "script";
    meta->cluster.snapshot = "snapshot_2024-05-01_100000.db";
    meta->cluster.snapshot_sha256 = sha256_hex(snap.data(), snap.size());
    meta->cluster.static_resources = "static_kuberesources_2024-05-01_100000.tar.gz";
    meta->cluster.static_resources_sha256 = sha256_hex(tar.data(), tar.size());
    meta->openshift.has_cluster_restore = has_cluster_restore;
    meta->openshift.has_etcd_scripts = true;
    std::ofstream(gen + "/metadata.toml", std::ios::trunc) << metadata_to_toml(*meta);
}

TEST_CASE("a backup without what phase 2 needs is refused before anything changes, unless forced (W18)")
{
    Host h;
    // Recorded from a host that had no cluster-restore.sh: phase 2 could not restore etcd.
    add_cluster_snapshot(h, false);
    auto dry = h.run("--dry-run");
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    CHECK(dry.json()["planned"][0].get<std::string>().find(
              "; REFUSED unless --force: the backup lacks what phase 2 needs: usr/local/bin/cluster-restore.sh") !=
          std::string::npos);
    refused_at_verify(h, "lacks what phase 2 needs: usr/local/bin/cluster-restore.sh");

    auto forced = h.run("--force");
    INFO(forced.out << forced.err);
    CHECK(forced.exit_code == 0);
    CHECK(h.journal().step("verify")->note.find("missing, forced: usr/local/bin/cluster-restore.sh") !=
          std::string::npos);
}

// Phase 2 runs etcd.restore_script, so W18 looks for that one in the backup: it
// used to look for usr/local/bin/cluster-restore.sh alone, and a backup without
// the configured script passed verify, to fail in phase 2 after the point of no return.
TEST_CASE("W18 looks in the backup for the configured etcd.restore_script")
{
    Host h;
    add_cluster_snapshot(h, true); // the default cluster-restore.sh is in the backup
    auto use_script = [&](const std::string& script) {
        std::string cfg = slurp(h.config);
        const std::string etcd = "[etcd]\nmode = \"off\"\n";
        REQUIRE(cfg.find(etcd) != std::string::npos);
        cfg.replace(cfg.find(etcd), etcd.size(), etcd + "restore_script = \"" + script + "\"\n");
        write(h.config, cfg);
    };
    auto refused = [&](const std::string& why) {
        auto dry = h.run("--dry-run");
        INFO(dry.out << dry.err);
        REQUIRE(dry.exit_code == 0);
        CHECK(dry.json()["planned"][0].get<std::string>().find(
                  "; REFUSED unless --force: the backup lacks what phase 2 needs: " + why) != std::string::npos);
        refused_at_verify(h, "lacks what phase 2 needs: " + why);
    };
    SECTION("a script the backup lacks, in a tree")
    {
        // On the failed host now, so only the check on the backup can tell.
        write(h.p("usr/local/bin/site-restore.sh"), "#!/bin/sh\nexit 0\n", 0755);
        h.broken = h.snapshot();
        use_script("/usr/local/bin/site-restore.sh");
        refused("etcd.restore_script /usr/local/bin/site-restore.sh (usrlocal/bin/site-restore.sh: not in the "
                "backup)");
    }
    SECTION("a script outside every tree")
    {
        use_script("/opt/etcd/restore.sh");
        refused("etcd.restore_script /opt/etcd/restore.sh (in none of the backup's trees, nor among its "
                "MachineConfig files)");
    }
    SECTION("a script in the backup that is not executable")
    {
        use_script("/etc/hostname");
        refused("etcd.restore_script /etc/hostname (etc/hostname: not executable)");
    }
    SECTION("a script the backup holds passes; the default's check is not asked")
    {
        // The recorded flag is about cluster-restore.sh only: another script does not need it.
        add_cluster_snapshot(h, false);
        use_script("/usr/local/bin/tool");
        auto dry = h.run("--dry-run");
        INFO(dry.out << dry.err);
        REQUIRE(dry.exit_code == 0);
        CHECK(dry.json()["planned"][0].get<std::string>().find("REFUSED") == std::string::npos);
        auto r = h.run("");
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(h.journal().step("verify")->state == StepState::Done);
        CHECK(h.journal().step("verify")->note.find("missing") == std::string::npos);
    }
}

// A [[backup.trees]] list replaces the default trees whole: a drop-in naming one
// tree used to drop the others from every backup without a word.
TEST_CASE("a backup names the default trees backup.trees leaves out and is still taken")
{
    Host h;
    const std::string base_config = slurp(h.config);
    const std::string said = "backup.trees leaves out ";
    auto warnings = [](const Host::Run& r) {
        std::vector<std::string> w;
        const auto j = r.json(); // kept: a temporary in the range expression dies before the loop
        for (const auto& x : j["warnings"])
            w.push_back(x.get<std::string>());
        return w;
    };
    auto with_said = [&](const std::vector<std::string>& w) {
        return std::count_if(w.begin(), w.end(), [&](const std::string& x) { return x.starts_with(said); });
    };

    // The defaults cover all three: not a word.
    auto plain = h.cli("--json backup");
    INFO(plain.out << plain.err);
    REQUIRE(plain.exit_code == 0);
    CHECK(with_said(warnings(plain)) == 0);

    // /etc alone: both others named, in the json, the text and on stderr; the backup is taken.
    write(h.config, base_config + "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n");
    const std::string both = said +
                             "/usr/local, /var/lib/kubelet: they are not in this backup, and a recovery will not "
                             "restore them (a [[backup.trees]] list replaces the default trees /etc, /usr/local and "
                             "/var/lib/kubelet; list again the ones to keep)";
    auto json = h.cli("--json backup");
    INFO(json.out << json.err);
    REQUIRE(json.exit_code == 0);
    auto w = warnings(json);
    CHECK(std::count(w.begin(), w.end(), both) == 1);
    CHECK(json.err.find("warning: " + both) != std::string::npos);
    auto text = h.cli("backup");
    INFO(text.out << text.err);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find("  warning: " + both) != std::string::npos);

    // A tree above a default one covers it: /usr holds /usr/local.
    write(h.config, base_config + "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n" +
                        "[[backup.trees]]\nname = \"usr\"\npath = \"/usr/\"\n");
    auto above = h.cli("--json backup");
    INFO(above.out << above.err);
    REQUIRE(above.exit_code == 0);
    auto wa = warnings(above);
    CHECK(std::count(wa.begin(), wa.end(),
                     said + "/var/lib/kubelet: it is not in this backup, and a recovery will not restore it (a "
                            "[[backup.trees]] list replaces the default trees /etc, /usr/local and /var/lib/kubelet; "
                            "list again the ones to keep)") == 1);
    CHECK(with_said(wa) == 1);
}

TEST_CASE("a tree where the host really has a default one holds it: /var/usrlocal is /usr/local on RHCOS")
{
    Host h(false, [](Host& x) {
        sh("mv " + x.root + "/usr/local " + x.root + "/var/usrlocal && ln -s ../var/usrlocal " + x.root + "/usr/local");
    });
    const std::string base_config = slurp(h.config);
    auto left_out = [](const Host::Run& r) {
        std::vector<std::string> w;
        const auto j = r.json();
        for (const auto& x : j["warnings"])
            if (x.get<std::string>().starts_with("backup.trees leaves out ")) w.push_back(x.get<std::string>());
        return w;
    };
    write(h.config, base_config + "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n" +
                        "[[backup.trees]]\nname = \"usrlocal\"\npath = \"/var/usrlocal\"\n" +
                        "[[backup.trees]]\nname = \"kubelet\"\npath = \"/var/lib/kubelet\"\n");
    auto held = h.cli("--json backup");
    INFO(held.out << held.err);
    REQUIRE(held.exit_code == 0);
    CHECK(left_out(held).empty());

    // Without it, /usr/local is still named (by the name the default has).
    write(h.config, base_config + "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n" +
                        "[[backup.trees]]\nname = \"kubelet\"\npath = \"/var/lib/kubelet\"\n");
    auto without = h.cli("--json backup");
    INFO(without.out << without.err);
    REQUIRE(without.exit_code == 0);
    auto w = left_out(without);
    REQUIRE(w.size() == 1);
    CHECK(w[0].starts_with("backup.trees leaves out /usr/local: it is not in this backup"));
}

TEST_CASE("backup and status say when a boot entry keeps upgrade_recovery=phase1")
{
    Host h;
    const std::string said = "the kernel argument upgrade_recovery=phase1 is kept in the boot entry "
                             "/boot/loader/entries/ostree-2-rhcos.conf: a boot from it restores the latest backup";
    auto warned = [&](const Host::Run& r) {
        const auto j = r.json();
        for (const auto& x : j["warnings"])
            if (x.get<std::string>().starts_with(said)) return true;
        return false;
    };
    // ostree's layout: /boot/loader -> loader.1; the booted entry has it, the rollback not.
    fs::create_directories(h.root + "/boot/loader.1/entries");
    fs::create_directory_symlink("loader.1", h.root + "/boot/loader");
    write(h.root + "/boot/loader.1/entries/ostree-1-rhcos.conf", "title old\noptions root=UUID=1 rw\n");
    write(h.root + "/boot/loader.1/entries/ostree-2-rhcos.conf", "title new\noptions root=UUID=1 rw\n");

    auto clean = h.cli("--json backup");
    INFO(clean.out << clean.err);
    REQUIRE(clean.exit_code == 0);
    CHECK_FALSE(warned(clean));
    auto clean_status = h.cli("--json status");
    REQUIRE(clean_status.exit_code == 0);
    CHECK(clean_status.json()["kept_recovery_karg"] == nlohmann::json::array());

    write(h.root + "/boot/loader.1/entries/ostree-2-rhcos.conf",
          "title new\noptions root=UUID=1 rw upgrade_recovery=phase1\n");
    auto json = h.cli("--json backup");
    INFO(json.out << json.err);
    REQUIRE(json.exit_code == 0); // taken: the backup before an upgrade is what must not be lost
    CHECK(warned(json));
    CHECK(json.err.find("warning: " + said) != std::string::npos);
    auto st = h.cli("--json status");
    INFO(st.out << st.err);
    REQUIRE(st.exit_code == 0);
    CHECK(st.json()["kept_recovery_karg"] == nlohmann::json::array({"/boot/loader/entries/ostree-2-rhcos.conf"}));
    auto text = h.cli("status");
    INFO(text.out << text.err);
    REQUIRE(text.exit_code == 0);
    CHECK(text.out.find("WARNING: " + said) != std::string::npos);
    CHECK(text.out.find("else from the options line of each entry named") != std::string::npos);
}

// Phase 1 done, then phase 2 failed at restore-etcd, as the unit leaves it after the
// reboot: kubelet disabled (phase 1), the phase 2 unit enabled, phase2-pending there.
void fail_phase2_at_restore_etcd(const Host& h)
{
    add_cluster_snapshot(h, true);
    auto p1 = h.run("--force");
    INFO(p1.out << p1.err);
    REQUIRE(p1.exit_code == 0);
    RecoveryJournal j = h.journal();
    for (const char* s : {"start-crio", "record-containers", "pull-images"})
        j.step(s)->state = StepState::Done;
    JournalStep* etcd = j.step("restore-etcd");
    etcd->state = StepState::Failed;
    etcd->attempts = 1;
    etcd->error = "cluster-restore.sh exited with 1: etcd did not come up";
    j.state = RecoveryState::Failed;
    j.error = "restore-etcd: " + etcd->error;
    write(h.p("var/recovery/recovery/journal"), journal_to_json(j));
    REQUIRE(fs::exists(h.p("var/recovery/recovery/phase2-pending")));
}

// `status` printed the steps and the error but never what to do next; for a failed
// phase 2 only "Phase 2 pending (runs after the reboot ...)", no --resume.
TEST_CASE("status shows the next action of a failed phase 2, in text and JSON")
{
    Host h;
    fail_phase2_at_restore_etcd(h);
    const std::string next = "fix the cause, then 'upgrade-recovery recover --resume' retries restore-etcd; "
                             "'upgrade-recovery recover --restart' starts over";
    auto st = h.cli("status");
    INFO(st.out << st.err);
    CHECK(st.exit_code == 0);
    CHECK(st.out.find("\nNext: " + next + "\n") != std::string::npos);
    auto sj = h.cli("--json status");
    INFO(sj.out << sj.err);
    CHECK(sj.exit_code == 0);
    CHECK(sj.json()["recovery_next"] == next);
    // The keys before it stay as they were.
    CHECK(sj.json()["phase2_pending"] == true);
    CHECK(sj.json()["recovery"]["state"] == "failed");

    // Finished (abandoned): nothing left to do, no Next.
    REQUIRE(h.cli("recover --abandon").exit_code == 0);
    auto after = h.cli("status");
    INFO(after.out << after.err);
    CHECK(after.out.find("Next:") == std::string::npos);
    CHECK(h.cli("--json status").json()["recovery_next"] == "");
}

// Abandon leaves the host alone and said only "Backups are allowed again": after the
// next reboot the node had no kubelet (phase 1 disabled it, phase 2 never enabled it).
TEST_CASE("recover --abandon after a failed phase 2 names what phase 1 left and how to finish by hand")
{
    Host h;
    fail_phase2_at_restore_etcd(h);
    const Snapshot pre = h.snapshot();
    const std::string gen = h.p("var/recovery/backups/") + kBackupId;
    const std::string restore_cmd = h.p("usr/local/bin/cluster-restore.sh") + " " + gen + "/cluster";
    SECTION("--json")
    {
        auto ab = h.cli("--json recover --abandon");
        INFO(ab.out << ab.err);
        REQUIRE(ab.exit_code == 0);
        auto j = ab.json();
        CHECK(j["abandoned"] == true);
        const auto& left = j["left_behind"];
        REQUIRE(left.is_array());
        auto says = [&](const std::string& what) {
            for (const auto& l : left)
                if (l.get<std::string>().find(what) != std::string::npos) return true;
            return false;
        };
        CHECK(says("kubelet.service disabled by phase 1 (disable-kubelet)"));
        CHECK(says("after the next reboot the node runs no kubelet"));
        CHECK(says("etcd not restored from backup " + std::string(kBackupId) + " (restore-etcd failed)"));
        CHECK(says("redeploy-etcd, redeploy-kubeapiserver, redeploy-kubecontrollermanager, redeploy-kubescheduler"));
        CHECK(says("upgrade-recovery-phase2.service enabled by phase 1 (enable-phase2)"));
        // What phase 2 would have run, in its order (crio it had started already).
        const auto& cmds = j["finish_by_hand"];
        REQUIRE(cmds.is_array());
        REQUIRE(cmds.size() == 7);
        CHECK(cmds[0] == restore_cmd);
        CHECK(cmds[1] == "systemctl enable --now kubelet.service");
        const char* res[] = {"etcd", "kubeapiserver", "kubecontrollermanager", "kubescheduler"};
        for (int i = 0; i < 4; i++) {
            const std::string c = cmds[2 + i].get<std::string>();
            CHECK(c.starts_with("oc --kubeconfig " + h.root + "/etc/kubernetes/"));
            CHECK(c.find(std::string(" patch ") + res[i] +
                         " cluster --type=merge -p '{\"spec\":{\"forceRedeploymentReason\":\"recovery-") !=
                  std::string::npos);
        }
        CHECK(cmds[6] == "systemctl disable upgrade-recovery-phase2.service");
    }
    SECTION("text")
    {
        auto ab = h.cli("recover --abandon");
        INFO(ab.out << ab.err);
        REQUIRE(ab.exit_code == 0);
        CHECK(ab.out.find("Recovery abandoned") != std::string::npos);
        CHECK(ab.out.find("WARNING: the host was left as the recovery had made it:\n") != std::string::npos);
        CHECK(ab.out.find("  - kubelet.service disabled by phase 1") != std::string::npos);
        CHECK(ab.out.find("\n  " + restore_cmd + "\n  systemctl enable --now kubelet.service\n") != std::string::npos);
        CHECK(ab.out.find("\"Finishing phase 2 by hand\" in upgrade-recovery(8)") != std::string::npos);
    }
    // Nothing on the host changed: kubelet still disabled, the phase 2 unit still enabled.
    CHECK(h.snapshot() == pre);
    CHECK_FALSE(fs::exists(h.p("etc/systemd/system/multi-user.target.wants/kubelet.service")));
    CHECK(fs::is_symlink(h.p("etc/systemd/system/multi-user.target.wants/upgrade-recovery-phase2.service")));
    CHECK(h.journal().state == RecoveryState::Aborted);
}

// arm --reboot --json printed {"armed": ...} and then, the reboot refused, the error:
// two documents. Now the error alone, saying the recovery is armed.
TEST_CASE("arm --reboot whose reboot fails prints one JSON document, which says the recovery is armed")
{
    Host h; // recovery.systemctl = "offline": a reboot is refused
    auto r = h.cli("--json arm --reboot");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 11);
    auto j = r.json(); // null when stdout is not exactly one document
    REQUIRE(j.is_object());
    CHECK(j["error"] == "Refused");
    CHECK(j["armed"] == kBackupId);
    CHECK_FALSE(j["message"].get<std::string>().empty());
    CHECK(slurp(h.p("var/recovery/recovery/armed")) == std::string(kBackupId) + "\n");

    auto t = h.cli("arm --reboot");
    INFO(t.out << t.err);
    CHECK(t.exit_code == 11);
    CHECK(t.out.find("Recovery armed with backup " + std::string(kBackupId) + ", but the reboot failed") !=
          std::string::npos);
}

// Stand-ins for systemctl and crictl at the process boundary of a live phase 1:
// kubelet and crio active, every call logged to <dir>/calls; a unit with a
// <dir>/stuck-<unit> file "stops" (exit 0) but keeps running; crictl lists
// <dir>/pods and needs crio. The node's crictl is set in the config; boot id "boot-1".
struct LiveStandins {
    std::string dir, systemctl, crictl, oc, boot;
    explicit LiveStandins(const Host& h)
        : dir(h.base + "/svc"), systemctl(dir + "/systemctl"), crictl(dir + "/crictl"), oc(dir + "/oc"),
          boot(h.base + "/boot_id")
    {
        fs::create_directories(dir);
        write(dir + "/active-kubelet.service", "");
        write(dir + "/active-crio.service", "");
        write(dir + "/pods", "");
        write(dir + "/images", "");
        write(systemctl,
              "#!/bin/bash\nS=" + dir +
                  "\necho \"systemctl $*\" >> $S/calls\n"
                  "case \"$1\" in\n"
                  "  is-active) if [ -f $S/active-$2 ]; then echo active; exit 0; fi; echo inactive; exit 3 ;;\n"
                  "  stop) [ -f $S/stuck-$2 ] || rm -f $S/active-$2 ;;\n"
                  "  start) touch $S/active-$2 ;;\n"
                  "  enable|disable|reboot) ;;\n"
                  "  *) exit 1 ;;\n"
                  "esac\n",
              0755);
        write(crictl,
              "#!/bin/bash\nS=" + dir +
                  "\necho \"crictl $*\" >> $S/calls\n"
                  "[ -f $S/active-crio.service ] || { echo 'connection refused' >&2; exit 1; }\n"
                  "case \"$1\" in\n  pods) cat $S/pods ;;\n  stopp) ;;\n  rmp) : > $S/pods ;;\n"
                  // The image store: one reference per line; a pull adds to it unless the
                  // registry is down.
                  "  images) printf '{\"images\": ['; sep=; n=0\n"
                  "    while read -r ref; do n=$((n+1)); printf '%s{\"id\": \"sha256:%d\", \"repoDigests\": "
                  "[\"%s\"]}' \"$sep\" $n \"$ref\"; sep=,; done < $S/images; echo ']}' ;;\n"
                  "  pull) [ -f $S/registry-down ] && { echo \"pulling image: dial tcp: lookup $2: no such host\" >&2; "
                  "exit 1; }\n    [ -f $S/registry-slow ] && sleep 3\n    echo \"$2\" >> $S/images ;;\n"
                  "  *) exit 1 ;;\nesac\n",
              0755);
        // The cluster status commands (features 15, 27); api-down: refused, as after a failed upgrade.
        write(oc,
              "#!/bin/bash\nS=" + dir +
                  "\n[ \"$1\" = --kubeconfig ] && [[ \"$3\" = --request-timeout=*s ]] || exit 99\n"
                  "shift 3\necho \"oc $*\" >> $S/calls\n"
                  "[ -f $S/api-down ] && { echo 'The connection to the server api-int.sno:6443 was refused' >&2; "
                  "exit 1; }\n"
                  "case \"$*\" in\n"
                  "  'adm upgrade') echo 'Cluster version is 4.15.2 (stand-in)' ;;\n"
                  "  'get clusteroperators') printf 'NAME VERSION AVAILABLE\\netcd 4.15.2 True\\n' ;;\n"
                  "  'get nodes -o wide') printf 'NAME STATUS\\nsno NotReady\\n' ;;\n"
                  "  'get machineconfigpools') printf 'NAME CONFIG\\nmaster rendered-master-1f2e\\n' ;;\n"
                  "  *) exit 2 ;;\n"
                  "esac\n",
              0755);
        std::ofstream(h.config, std::ios::app)
            << "crictl = \"" << crictl << "\"\noc = \"" << oc << "\"\napi_request_timeout = 5\n";
        write(boot, "boot-1\n");
    }
};

TEST_CASE("live phase 1 stops the services in order through the stand-ins")
{
    Host h;
    LiveStandins sv(h);
    const std::string &s = sv.dir, &systemctl = sv.systemctl, &boot = sv.boot;
    write(s + "/pods", "pod-a\npod-b\n");
    auto r = h.run("--reboot --systemctl " + systemctl + " --boot-id " + boot);
    INFO(r.out << r.err << slurp(s + "/calls"));
    REQUIRE(r.exit_code == 0);
    CHECK(r.json()["phase1_done"] == true);
    CHECK(r.json()["rebooting"] == true);
    // It reboots by itself: the message must not ask for 'systemctl reboot'.
    CHECK(r.json()["message"].get<std::string>().find("the node reboots now") != std::string::npos);
    std::vector<std::string> calls;
    std::istringstream in(slurp(s + "/calls"));
    for (std::string l; std::getline(in, l);)
        calls.push_back(l);
    // The cluster status first (features 15, 27), then the services in order.
    std::vector<std::string> want = {"oc adm upgrade",
                                     "oc get clusteroperators",
                                     "oc get nodes -o wide",
                                     "oc get machineconfigpools",
                                     "systemctl stop kubelet.service",
                                     "systemctl is-active kubelet.service",
                                     "systemctl is-active crio.service",
                                     "crictl pods -q",
                                     "crictl stopp pod-a pod-b",
                                     "crictl rmp -fa",
                                     "crictl pods -q",
                                     "systemctl stop crio.service",
                                     "systemctl is-active crio.service",
                                     "systemctl disable kubelet.service",
                                     "systemctl enable upgrade-recovery-phase2.service",
                                     "systemctl reboot"};
    CHECK(calls == want);
    auto j = h.journal();
    CHECK(j.mode == "live");
    CHECK(j.phase1_boot_id == "boot-1");
    CHECK(j.step("remove-pods")->note == "2 pods removed");
    CHECK(j.step("wipe-images")->state == StepState::Skipped); // W11: not unless configured
    // What the cluster looked like is kept on the partition, each command under its own line.
    CHECK(slurp(h.p("var/recovery/recovery/cluster-status.before")) ==
          "$ oc adm upgrade\nCluster version is 4.15.2 (stand-in)\n"
          "$ oc get clusteroperators\nNAME VERSION AVAILABLE\netcd 4.15.2 True\n"
          "$ oc get nodes -o wide\nNAME STATUS\nsno NotReady\n"
          "$ oc get machineconfigpools\nNAME CONFIG\nmaster rendered-master-1f2e\n");
    CHECK(r.err.find("cluster status before the recovery:\n$ oc adm upgrade\nCluster version is 4.15.2") !=
          std::string::npos);
    // Phase 2 is refused in the same boot.
    auto same = h.run("--resume --systemctl " + systemctl + " --boot-id " + boot);
    CHECK(same.exit_code == 1);
    CHECK(same.err.find("Refused") != std::string::npos);
}

// The control plane of the backup in its manifests: etcd as JSON (as OpenShift writes
// it), kube-apiserver as YAML.
const std::string kEtcdImage = "quay.io/ocp/art@sha256:e7cd01", kApiImage = "quay.io/ocp/art@sha256:a5a501";
void control_plane_manifests(Host& h)
{
    write(h.p("etc/kubernetes/manifests/etcd-pod.yaml"),
          R"({"kind":"Pod","spec":{"containers":[{"name":"etcdctl","image":")" + kEtcdImage + R"("}]}})");
    write(h.p("etc/kubernetes/manifests/kube-apiserver-pod.yaml"),
          "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    image: " + kApiImage + "\n");
}

void runtime_images(const LiveStandins& sv, const std::vector<std::string>& refs)
{
    std::string lines;
    for (const auto& r : refs)
        lines += r + "\n";
    write(sv.dir + "/images", lines);
}

// W11: phase 2 runs the backup's control plane after the etcd restore; an image gone
// from the container storage must be pullable, found out before anything stops.
TEST_CASE("live: a control-plane image that is gone and cannot be pulled is refused before anything stops (W11)")
{
    Host h(false, control_plane_manifests);
    add_cluster_snapshot(h, true);
    LiveStandins sv(h);
    const std::string live = "--systemctl " + sv.systemctl + " --boot-id " + sv.boot;
    runtime_images(sv, {kEtcdImage, "quay.io/ocp/art@sha256:0ther"}); // the apiserver's is gone
    write(sv.dir + "/registry-down", "");
    // The dry run lists, pulls nothing, and says what the run will do.
    auto dry = h.run("--dry-run " + live);
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    CHECK(dry.json()["planned"][0].get<std::string>().find("; control-plane images: 1 of 2 missing: " + kApiImage +
                                                           " (the verify step pulls them)") != std::string::npos);
    CHECK(slurp(sv.dir + "/calls").find("crictl pull") == std::string::npos);

    auto r = h.run(live);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("ERROR Refused: verify: cannot pull 1 of the 2 images the backup's control plane needs, which the "
                     "container storage lacks: " +
                     kApiImage + " (") != std::string::npos);
    CHECK(r.err.find("crictl pull " + kApiImage + ": exit 1: ") != std::string::npos);
    CHECK(r.err.find("no such host") != std::string::npos);
    CHECK(r.err.find("make their registry reachable") != std::string::npos);
    const std::string calls = slurp(sv.dir + "/calls");
    CHECK(calls.find("crictl images -o json\ncrictl pull " + kApiImage + "\n") != std::string::npos);
    CHECK(calls.find("systemctl stop") == std::string::npos);
    CHECK(h.snapshot() == h.broken); // nothing touched
    CHECK(h.journal().step("verify")->state == StepState::Failed);

    // The registry is back: the verify step pulls it and the recovery goes on.
    fs::remove(sv.dir + "/registry-down");
    auto ok = h.run(live);
    INFO(ok.out << ok.err);
    REQUIRE(ok.exit_code == 0);
    CHECK(ok.json()["phase1_done"] == true);
    CHECK(h.journal().step("verify")->note.find("control-plane images: pulled 1 of 2: " + kApiImage) !=
          std::string::npos);
    CHECK(ok.err.find("warning: cannot") == std::string::npos); // nothing left unchecked
    CHECK(slurp(sv.dir + "/images").find(kApiImage) != std::string::npos);
}

TEST_CASE("control-plane images: all present; forced; crio down; offline; with the wipe (W11)")
{
    {
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        LiveStandins sv(h);
        runtime_images(sv, {kApiImage, kEtcdImage});
        auto r = h.run("--systemctl " + sv.systemctl + " --boot-id " + sv.boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(h.journal().step("verify")->note.find("control-plane images: all 2 present") != std::string::npos);
        CHECK(slurp(sv.dir + "/calls").find("crictl pull") == std::string::npos);
    }
    {
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        LiveStandins sv(h);
        runtime_images(sv, {});
        write(sv.dir + "/registry-down", "");
        auto r = h.run("--force --systemctl " + sv.systemctl + " --boot-id " + sv.boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.err.find("cannot pull 2 of the 2 images") != std::string::npos);
        CHECK(h.journal().step("verify")->note.find("control-plane images: 2 of 2 cannot be pulled: " + kApiImage +
                                                    ", " + kEtcdImage + ", forced") != std::string::npos);
    }
    {
        // A registry too slow for recovery.pull_timeout: the first pull is cut off at the
        // deadline, the second is not started.
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        LiveStandins sv(h);
        runtime_images(sv, {});
        write(sv.dir + "/registry-slow", "");
        std::ofstream(h.config, std::ios::app) << "pull_timeout = 1\n";
        auto r = h.run("--systemctl " + sv.systemctl + " --boot-id " + sv.boot);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("ERROR Refused: verify: cannot pull 2 of the 2 images") != std::string::npos);
        CHECK(r.err.find("timed out after 1") != std::string::npos);
        const std::string calls = slurp(sv.dir + "/calls");
        size_t pulls = 0;
        for (size_t at = calls.find("crictl pull"); at != std::string::npos; at = calls.find("crictl pull", at + 1))
            pulls++;
        CHECK(pulls == 1);
        CHECK(h.snapshot() == h.broken);
    }
    {
        // CRI-O stopped on a live node: nothing to ask.
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        LiveStandins sv(h);
        fs::remove(sv.dir + "/active-crio.service");
        auto r = h.run("--systemctl " + sv.systemctl + " --boot-id " + sv.boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(h.journal().step("verify")->note.find(
                  "control-plane images: 2 not checked (crio.service is inactive; phase 2 pulls what is missing)") !=
              std::string::npos);
        CHECK(slurp(sv.dir + "/calls").find("crictl images") == std::string::npos);
    }
    {
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        auto r = h.run("");
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(h.journal().step("verify")->note.find(
                  "control-plane images: 2 not checked (CRI-O does not run offline; phase 2 pulls what is missing)") !=
              std::string::npos);
    }
    {
        Host h(false, control_plane_manifests);
        add_cluster_snapshot(h, true);
        LiveStandins sv(h);
        std::ofstream(h.config, std::ios::app) << "wipe_images = true\n";
        auto r = h.run("--systemctl " + sv.systemctl + " --boot-id " + sv.boot);
        INFO(r.out << r.err);
        // (No crio on PATH here: the wipe itself fails later; only the check counts.)
        CHECK(h.journal().step("verify")->state == StepState::Done);
        CHECK(r.err.find("recovery.wipe_images = true removes the 2 images") != std::string::npos);
        CHECK(slurp(sv.dir + "/calls").find("crictl images") == std::string::npos);
    }
}

TEST_CASE("live phase 1 with recovery.wipe_images wipes the container storage after CRI-O stopped")
{
    Host h;
    LiveStandins sv(h);
    std::ofstream(h.config, std::ios::app) << "wipe_images = true\n";
    write(sv.dir + "/crio",
          "#!/bin/bash\nS=" + sv.dir +
              "\necho \"crio $*\" >> $S/calls\n"
              "[ -f $S/active-crio.service ] && { echo 'crio is running' >&2; exit 1; }\n"
              "[ \"$*\" = 'wipe -f' ] || exit 2\n",
          0755);
    const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
    REQUIRE(::setenv("PATH", (sv.dir + ":" + old_path).c_str(), 1) == 0);
    auto r = h.run("--systemctl " + sv.systemctl + " --boot-id " + sv.boot);
    ::setenv("PATH", old_path.c_str(), 1);
    INFO(r.out << r.err << slurp(sv.dir + "/calls"));
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> calls;
    std::istringstream in(slurp(sv.dir + "/calls"));
    for (std::string l; std::getline(in, l);)
        calls.push_back(l);
    auto at = [&](const std::string& c) {
        auto it = std::find(calls.begin(), calls.end(), c);
        return it == calls.end() ? -1L : static_cast<long>(it - calls.begin());
    };
    const long stop = at("systemctl stop crio.service"), wipe = at("crio wipe -f"),
               disable = at("systemctl disable kubelet.service");
    REQUIRE(stop >= 0);
    CHECK(stop < wipe);
    CHECK(calls[static_cast<size_t>(stop + 1)] == "systemctl is-active crio.service"); // stopped, checked
    CHECK(wipe < disable);
    auto j = h.journal();
    CHECK(j.step("wipe-images")->state == StepState::Done);
    CHECK(j.step("wipe-images")->note == "container and image storage wiped");
    CHECK(j.step("restore-files")->state == StepState::Done);
}

TEST_CASE("live phase 1 stops at a kubelet that does not stop, changes nothing, and resumes (W7)")
{
    Host h;
    LiveStandins sv(h);
    const std::string &s = sv.dir, &systemctl = sv.systemctl, &boot = sv.boot;
    write(s + "/stuck-kubelet.service", ""); // `systemctl stop` says yes, the unit keeps running
    write(s + "/api-down", "");              // and the API does not answer (best effort: goes on)

    auto r = h.run("--systemctl " + systemctl + " --boot-id " + boot);
    INFO(r.out << r.err << slurp(s + "/calls"));
    CHECK(r.exit_code != 0);
    // One refused status command, the rest skipped; the refusal is kept and shown.
    CHECK(slurp(h.p("var/recovery/recovery/cluster-status.before")) ==
          "$ oc adm upgrade\n(failed: oc adm upgrade: exit 1: The connection to the server api-int.sno:6443 was "
          "refused)\n");
    CHECK(r.err.find("cluster status before the recovery incomplete (best effort): oc adm upgrade: exit 1") !=
          std::string::npos);
    CHECK(slurp(s + "/calls").find("oc get") == std::string::npos);
    CHECK(r.err.find("kubelet.service is still active after its stop job") != std::string::npos);
    CHECK(slurp(s + "/calls").find("crictl") == std::string::npos); // nothing after the failed stop
    CHECK(h.snapshot() == h.broken);                                // nothing restored
    auto j = h.journal();
    CHECK(j.state == RecoveryState::Failed);
    CHECK(j.step("stop-kubelet")->state == StepState::Failed);
    CHECK(j.step("stop-kubelet")->error.find("still active") != std::string::npos);

    // The unit stops now: --resume goes on from the failed step to the end of phase 1.
    fs::remove(s + "/stuck-kubelet.service");
    auto resumed = h.run("--resume --systemctl " + systemctl + " --boot-id " + boot);
    INFO(resumed.out << resumed.err);
    CHECK(resumed.exit_code == 0);
    CHECK(resumed.json()["phase1_done"] == true);
    CHECK(h.journal().step("stop-kubelet")->state == StepState::Done);
    CHECK(h.journal().step("stop-kubelet")->attempts == 2);
    // The status is the one from before anything was stopped: not taken again on resume.
    std::string calls = slurp(s + "/calls");
    CHECK(calls.find("oc adm upgrade") == calls.rfind("oc adm upgrade"));
    CHECK(slurp(h.p("var/recovery/recovery/cluster-status.before")).find("(failed: ") != std::string::npos);
}

TEST_CASE("platform rollback: applied, then phase 1 waits for the reboot into the recorded deployment")
{
    UR_RUN_ONLY_IF(std::system("command -v ostree >/dev/null 2>&1") == 0, "ostree CLI missing: platform rollback");
    Host h(true);
    std::string boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    REQUIRE(h.default_deployment() == h.ostree_ids[1]); // the upgrade is the default

    SECTION("rollback, reboot gate, then the rest of phase 1")
    {
        auto r = h.run("--boot-id " + boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["phase1_done"] == false);
        CHECK(r.json()["stopped_before"] == "stop-kubelet");
        CHECK(r.json()["message"].get<std::string>().find("reboot") != std::string::npos);
        CHECK(h.default_deployment() == h.ostree_ids[0]); // the bootloader starts the recorded one next
        CHECK(h.snapshot() == h.broken);                  // no file touched in the wrong deployment
        auto j = h.journal();
        CHECK(j.step("platform-rollback")->state == StepState::Done);
        CHECK(j.step("platform-rollback")->data.at("reboot_needed") == "1");
        CHECK(j.state == RecoveryState::Paused);
        CHECK(fs::exists(h.p("var/recovery/recovery/armed"))); // the initrd continues after the reboot

        // Not rebooted yet: refused.
        auto same = h.run("--resume --boot-id " + boot);
        CHECK(same.exit_code == 1);
        CHECK(same.err.find("Refused") != std::string::npos);

        // The reboot: a new boot, the recorded deployment booted.
        write(boot, "boot-2\n");
        h.set_config(h.ostree_ids[0]);
        auto r2 = h.run("--resume --boot-id " + boot);
        INFO(r2.out << r2.err);
        REQUIRE(r2.exit_code == 0);
        CHECK(r2.json()["phase1_done"] == true);
        h.check_recovered();
        CHECK(h.journal().step("platform-rollback")->attempts == 1);
    }
    SECTION("the reboot started another deployment: phase 1 waits, restores nothing into it")
    {
        auto r = h.run("--boot-id " + boot);
        REQUIRE(r.exit_code == 0);
        CHECK(h.default_deployment() == h.ostree_ids[0]);

        // A new boot, but the failed upgrade booted again (boot menu, boot loader fallback).
        write(boot, "boot-2\n");
        h.set_config(h.ostree_ids[1]);
        auto wrong = h.run("--resume --boot-id " + boot);
        INFO(wrong.out << wrong.err);
        REQUIRE(wrong.exit_code == 0);
        CHECK(wrong.json()["phase1_done"] == false);
        CHECK(wrong.json()["stopped_before"] == "stop-kubelet");
        CHECK(wrong.json()["message"].get<std::string>().find("started ostree deployment " + h.ostree_ids[1]) !=
              std::string::npos);
        CHECK(h.snapshot() == h.broken);
        CHECK(fs::exists(h.p("var/recovery/recovery/armed")));
        CHECK(h.default_deployment() == h.ostree_ids[0]);

        // The next boot starts the recorded deployment: phase 1 goes on.
        write(boot, "boot-3\n");
        h.set_config(h.ostree_ids[0]);
        auto r3 = h.run("--resume --boot-id " + boot);
        INFO(r3.out << r3.err);
        REQUIRE(r3.exit_code == 0);
        CHECK(r3.json()["phase1_done"] == true);
        h.check_recovered();
    }
    SECTION("after the reboot the deployments cannot be listed: phase 1 waits, restores nothing")
    {
        REQUIRE(h.run("--boot-id " + boot).exit_code == 0);
        write(boot, "boot-2\n");
        h.set_config(h.ostree_ids[0]);
        // Before: a failed listing counted as the right deployment, and the files were restored.
        fs::rename(h.root + "/sysroot/ostree/deploy", h.root + "/sysroot/ostree/deploy.away");
        auto r = h.run("--resume --boot-id " + boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["phase1_done"] == false);
        CHECK(r.json()["message"].get<std::string>().find("cannot tell which ostree deployment") != std::string::npos);
        CHECK(h.snapshot() == h.broken);
        CHECK(fs::exists(h.p("var/recovery/recovery/armed")));
        fs::rename(h.root + "/sysroot/ostree/deploy.away", h.root + "/sysroot/ostree/deploy");
        auto r2 = h.run("--resume --boot-id " + boot);
        INFO(r2.out << r2.err);
        REQUIRE(r2.exit_code == 0);
        CHECK(r2.json()["phase1_done"] == true);
        h.check_recovered();
    }
    SECTION("the recorded deployment is gone: refused before anything changes")
    {
        sh("ostree admin undeploy --sysroot=" + h.root + "/sysroot 1 >/dev/null 2>&1");
        auto r = h.run("--boot-id " + boot);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("Refused") != std::string::npos);
        CHECK(h.snapshot() == h.broken);
        auto j = h.journal();
        CHECK(j.state == RecoveryState::Aborted);
        CHECK(j.step("platform-rollback")->state == StepState::Failed);
        CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
    }
}

// The CLI's own part of the initrd entry: when phase 1's platform rollback made
// another deployment the default, `recover --initrd` must reboot into it, and must
// fail (the unit then fails into emergency.target) when it cannot, instead of letting
// the boot go on into the failed deployment. The CLI runs in a PID namespace without
// CAP_SYS_BOOT: its reboot(2) fallback can only fail, never reboot this machine.
TEST_CASE("recover --initrd reboots into the rolled-back deployment, and fails when it cannot")
{
    UR_RUN_ONLY_IF(std::system("command -v ostree setpriv unshare >/dev/null 2>&1") == 0,
                   "ostree, setpriv or unshare missing: the initrd reboot");
    const char* cli = std::getenv("UR_CLI");
    REQUIRE(cli);
    const std::string sandbox = "unshare --pid --fork setpriv --bounding-set=-sys_boot --inh-caps=-sys_boot ";
    // Never go on unless the sandbox really lacks CAP_SYS_BOOT (bit 22).
    std::string caps = Host::slurp_cmd(sandbox + "awk '/^CapEff:/ { print $2 }' /proc/self/status");
    REQUIRE(!caps.empty());
    REQUIRE((std::stoull(caps, nullptr, 16) & (1ull << 22)) == 0);

    Host h(true);
    REQUIRE(h.default_deployment() == h.ostree_ids[1]); // the failed upgrade is the default
    auto store = open_store(*load_config(ConfigSource{h.root, h.config}), h.root, true);
    REQUIRE(store);
    REQUIRE(arm_recovery(*store, kBackupId));
    const std::string bin = h.base + "/bin", calls = h.base + "/systemctl.calls";
    // The stand-in answers at once; when it "succeeds", the shutdown kills the caller a
    // second later (as systemd-shutdown's SIGTERM to every process does), so a caller
    // that went on instead of waiting exits before it. setsid: run_command kills what
    // is left of the stand-in's process group when it returns.
    write(bin + "/systemctl",
          "#!/bin/sh\necho \"$*\" >>" + calls +
              "\n[ \"$STANDIN_RC\" = 0 ] && setsid sh -c \"sleep 1; kill -TERM $PPID\" >/dev/null 2>&1 &\nexit "
              "\"$STANDIN_RC\"\n",
          0755);
    auto run = [&](int standin_rc, std::string& err) {
        std::string cmd = "cd / && PATH=" + bin + ":$PATH STANDIN_RC=" + std::to_string(standin_rc) + " " + sandbox +
                          // Not as the PID namespace's init, which ignores SIGTERM.
                          "sh -c '\"$0\" \"$@\"; exit $?' " + cli + " --root " + h.root + " --config " + h.config +
                          " recover --initrd >" + h.base + "/out 2>" + h.base + "/err";
        int rc = std::system(cmd.c_str());
        err = slurp(h.base + "/err");
        return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
    };

    SECTION("systemctl reboot works: it waits for the shutdown to end it")
    {
        std::string err;
        int rc = run(0, err);
        INFO(err);
        CHECK(rc == 128 + SIGTERM); // killed while waiting: nothing ordered after the unit started
        CHECK(slurp(calls) == "--force reboot\n");
        CHECK(err.find("rebooting into it") != std::string::npos);

        // The next boot (another boot id, bound over the kernel's in a mount namespace)
        // starts the failed upgrade again: phase 1 pauses, and the unit says so.
        write(h.base + "/boot_id", "boot-2\n");
        std::string cmd = "cd / && unshare --mount sh -c 'mount --bind " + h.base +
                          "/boot_id /proc/sys/kernel/random/boot_id && exec " + cli + " --root " + h.root +
                          " --config " + h.config + " recover --initrd' >" + h.base + "/out 2>" + h.base + "/err";
        int rc2 = std::system(cmd.c_str());
        std::string out = slurp(h.base + "/out");
        INFO(out << slurp(h.base + "/err"));
        REQUIRE(WIFEXITED(rc2));
        CHECK(WEXITSTATUS(rc2) == 0);
        CHECK(out.find("phase 1 paused on") != std::string::npos);
        CHECK(out.find("started ostree deployment " + h.ostree_ids[1]) != std::string::npos);
        CHECK(out.find("finished") == std::string::npos);
        CHECK(slurp(calls) == "--force reboot\n"); // no second reboot
    }
    SECTION("systemctl reboot and reboot(2) both fail: the unit fails")
    {
        std::string err;
        int rc = run(1, err);
        INFO(err);
        CHECK(rc == 1);
        CHECK(slurp(calls) == "--force reboot\n");
        CHECK(err.find("reboot into the rolled-back deployment") != std::string::npos);
    }
    // Either way phase 1 stopped after the platform rollback, before any file.
    CHECK(h.default_deployment() == h.ostree_ids[0]);
    CHECK(h.snapshot() == h.broken);
    CHECK(fs::exists(h.p("var/recovery/recovery/armed"))); // the next initramfs resumes
    CHECK(h.journal().step("platform-rollback")->state == StepState::Done);
}

// MachineConfig files outside the trees live wherever the MachineConfig puts them,
// often below a mount point: on RHCOS /var is a bind mount of the ostree stateroot's
// var, and /var may be a partition of its own. The backup follows their paths across
// mounts; the restore must too (it once stopped at the mount and left the failed
// upgrade's version in place).
TEST_CASE("MachineConfig files below a mount point are restored")
{
    Host h;
    SECTION("a bind mount (same device)")
    {
        REQUIRE(::mount(h.p("opt").c_str(), h.p("opt").c_str(), nullptr, MS_BIND, nullptr) == 0);
    }
    SECTION("another file system")
    {
        sh("cp -a " + h.p("opt") + " " + h.base + "/opt.copy");
        REQUIRE(::mount("ur-opt", h.p("opt").c_str(), "tmpfs", 0, "mode=0755") == 0);
        sh("cp -a " + h.base + "/opt.copy/. " + h.p("opt") + "/");
    }
    REQUIRE(h.snapshot() == h.broken);
    auto r = h.run("");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.json()["phase1_done"] == true);
    CHECK(slurp(h.p("opt/mc/old.conf")) == "from the old MachineConfig\n");
    CHECK_FALSE(fs::exists(h.p("opt/mc/new.conf"))); // added by the failed upgrade
    h.check_recovered();
    ::umount2(h.p("opt").c_str(), MNT_DETACH);
}

// No recovery partition (and no plain-directory store): an ordinary boot ends
// after the partition lookup, without mounting the real /var; with the kernel
// argument it is an error.
TEST_CASE("the initrd entry without a recovery partition leaves the root alone")
{
    Host h;
    std::string cmdline = h.base + "/cmdline", boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    std::ofstream(h.config, std::ios::trunc) << "[partition]\nlabel = \"ur-test-no-such-partition\"\n"
                                             << "[ostree]\nmode = \"off\"\n[etcd]\nmode = \"off\"\n";
    // A /var the long way would try to mount, and warn about when it cannot.
    write(h.p("etc/systemd/system/var.mount"), "[Mount]\nWhat=/srv/gone\nWhere=/var\nOptions=bind\n");
    const Snapshot pre = h.snapshot();
    SECTION("ordinary boot")
    {
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 rw\n");
        auto r = h.run("--initrd --cmdline " + cmdline + " --boot-id " + boot);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(r.json()["reason"] == "no recovery partition: no GPT partition named 'ur-test-no-such-partition'");
        CHECK(r.err.find("/var") == std::string::npos); // the real /var was not even looked at
    }
    SECTION("upgrade_recovery=phase1")
    {
        write(cmdline, "BOOT_IMAGE=/vmlinuz root=UUID=1 upgrade_recovery=phase1 rw\n");
        auto r = h.run("--initrd --cmdline " + cmdline + " --boot-id " + boot);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("ur-test-no-such-partition") != std::string::npos);
    }
    CHECK(h.snapshot() == pre);
}

// What cannot be read must not keep a healthy node from booting: when the
// initrd cannot tell whether a recovery is armed, an ordinary boot goes on with
// a warning; with upgrade_recovery=phase1 it is an error (emergency.target).
// `damage` breaks the host's recovery directory; `said` is in the error, `reason`
// starts the ordinary boot's reason.
static void check_unknown_armed_state(const std::function<void(Host&)>& damage, const std::string& said,
                                      const std::string& reason)
{
    Host h;
    std::string cmdline = h.base + "/cmdline", boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    const bool karg = ordinary_or_karg_boot(cmdline);
    damage(h);
    const Snapshot pre = h.snapshot();
    auto r = h.run("--initrd --cmdline " + cmdline + " --boot-id " + boot);
    INFO(r.out << r.err);
    if (karg) {
        CHECK(r.exit_code == 1);
        CHECK(r.err.find(said) != std::string::npos);
    } else {
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(r.json()["reason"].get<std::string>().rfind(reason, 0) == 0);
        CHECK(r.err.find("an armed recovery could not be looked for in this boot") != std::string::npos);
    }
    CHECK(h.snapshot() == pre);
}

TEST_CASE("the initrd entry lets an ordinary boot go on when it cannot tell whether a recovery is armed")
{
    // The recovery directory on the partition is not a directory.
    check_unknown_armed_state(
        [](Host& h) {
            fs::remove_all(h.p("var/recovery/recovery"));
            write(h.p("var/recovery/recovery"), "not a directory\n");
        },
        "recovery directory", "recovery directory unreadable: ");
}

// An armed marker that does not hold a backup id is damage, not a name to follow.
TEST_CASE("the initrd entry takes an armed marker that holds no backup id as unreadable")
{
    check_unknown_armed_state(
        [](Host& h) {
            fs::create_directories(h.p("var/recovery/recovery"));
            write(h.p("var/recovery/recovery/armed"), "../../etc\n");
        },
        "holds '../../etc', not a backup id", "armed marker unreadable: ");
}

// The same for a configuration file the failed upgrade (or a person) broke, through
// the real CLI; /proc/cmdline is a bind mount of a file in a mount namespace of its own.
TEST_CASE("recover --initrd with a broken configuration: an ordinary boot goes on, the kernel argument fails")
{
    const char* cli = std::getenv("UR_CLI");
    REQUIRE(cli);
    Host h;
    std::string cmdline = h.base + "/cmdline";
    const bool karg = ordinary_or_karg_boot(cmdline);
    write(h.base + "/broken.toml", "[partition]\nlabel = \"ur-test-no-such-partition\"\nbogus_key = 1\n");
    const Snapshot pre = h.snapshot();
    std::string cmd = "unshare --mount sh -c 'mount --bind " + cmdline + " /proc/cmdline && exec " + cli + " --root " +
                      h.root + " --config " + h.base + "/broken.toml --json recover --initrd' >" + h.base + "/out 2>" +
                      h.base + "/err";
    int rc = std::system(cmd.c_str());
    std::string out = slurp(h.base + "/out"), err = slurp(h.base + "/err");
    INFO(out << err);
    REQUIRE(WIFEXITED(rc));
    CHECK(err.find("bogus_key") != std::string::npos);
    if (karg) {
        CHECK(WEXITSTATUS(rc) == 3); // bad config
    } else {
        CHECK(WEXITSTATUS(rc) == 0);
        CHECK(err.find("cannot read the configuration") != std::string::npos);
        auto j = nlohmann::json::parse(out);
        CHECK(j["ran"] == false);
    }
    CHECK(h.snapshot() == pre);
}

// A journal whose plan is not the step table's, or whose backup id is not an id, is
// damage (exit 7, the file named), refused before anything runs: an empty plan was
// resumed to "complete", a bad id was a usage error (exit 2).
TEST_CASE("recover --resume refuses a journal with an invalid plan or backup id as damaged")
{
    Host h;
    const std::string journal = h.p("var/recovery/recovery/journal");
    auto with = [](const std::string& backup, const std::string& steps) {
        return R"({"format":1,"recovery_id":"20240501T120000Z","backup_id":")" + backup +
               R"(","state":"failed","steps":[)" + steps + "]}\n";
    };
    const std::string plan = R"({"name":"verify","state":"done"},{"name":"restore-files","state":"failed"},)"
                             R"({"name":"phase1-done","state":"pending"},{"name":"finish","state":"pending"})";
    const std::pair<std::string, std::string> bad[] = {
        {with(kBackupId, ""), "the step list is empty"},
        {with("../../etc", plan), "backup_id '../../etc' is not a backup id"},
        {with(kBackupId, R"({"name":"restore-files","state":"done"},{"name":"verify","state":"done"},)"
                         R"({"name":"phase1-done","state":"pending"},{"name":"finish","state":"pending"})"),
         "step 'verify' is out of order (after 'restore-files')"},
        {with(kBackupId, R"({"name":"verify","state":"done"},{"name":"restore-everything","state":"pending"},)"
                         R"({"name":"restore-files","state":"pending"},{"name":"phase1-done","state":"pending"},)"
                         R"({"name":"finish","state":"pending"})"),
         "unknown step 'restore-everything'"},
    };
    for (const auto& [text, said] : bad) {
        write(journal, text);
        const Snapshot pre = h.snapshot();
        auto r = h.cli("recover --resume");
        INFO(text << r.out << r.err);
        CHECK(r.exit_code == 7);
        CHECK(r.err.find(journal + " is damaged: " + said) != std::string::npos);
        CHECK(slurp(journal) == text); // not taken for complete, nothing rewritten
        CHECK(h.snapshot() == pre);
    }
}

namespace
{

// Cut off by a full disk or a hand edit: not JSON at all.
const char* kDamagedJournal = R"({"format": 1, "recovery_id": "20240501T120000Z", "backup_id": "2024)";

// The damaged journals kept in recovery/ (journal.damaged-*), name -> content.
std::map<std::string, std::string> damaged_kept(const Host& h)
{
    std::map<std::string, std::string> kept;
    for (const auto& e : fs::directory_iterator(h.p("var/recovery/recovery")))
        if (e.path().filename().string().rfind("journal.damaged-", 0) == 0) kept[e.path().filename()] = slurp(e.path());
    return kept;
}

} // namespace

// A damaged journal blocked backup, abandon and restart with a bare parse error.
// Now each names the file and the way out, and abandon --force takes it: markers
// removed, the journal moved aside (kept), backups allowed again.
TEST_CASE("a damaged journal is named with its remedy, and recover --abandon --force moves it aside")
{
    Host h;
    const std::string journal = h.p("var/recovery/recovery/journal");
    write(journal, kDamagedJournal);
    auto check_named = [&](const Host::Run& r) {
        CHECK(r.exit_code == 7);
        CHECK(r.err.find(journal + " is damaged: ") != std::string::npos);
        CHECK(r.err.find("'upgrade-recovery recover --abandon --force'") != std::string::npos);
        CHECK(r.err.find("'upgrade-recovery recover --restart'") != std::string::npos);
        CHECK(slurp(journal) == kDamagedJournal);
    };
    {
        // (Armed, a backup is refused before the journal is read: a recovery is in progress.)
        auto r = h.cli("backup --dry-run");
        INFO(r.out << r.err);
        check_named(r);
        CHECK(r.err.find("cannot tell whether a recovery is in progress") != std::string::npos);
    }
    write(h.p("var/recovery/recovery/armed"), std::string(kBackupId) + "\n");
    const Snapshot pre = h.snapshot();

    for (const char* cmd : {"recover --abandon", "recover --resume", "arm"}) {
        auto r = h.cli(cmd);
        INFO(cmd << "\n" << r.out << r.err);
        check_named(r);
        CHECK(fs::exists(h.p("var/recovery/recovery/armed")));
    }
    auto st = h.cli("status");
    CHECK(st.exit_code == 7);
    CHECK(st.out.find("Recovery: UNREADABLE: " + journal + " is damaged: ") != std::string::npos);

    auto ab = h.cli("--json recover --abandon --force");
    INFO(ab.out << ab.err);
    REQUIRE(ab.exit_code == 0);
    CHECK(ab.json()["abandoned"] == true);
    auto kept = damaged_kept(h);
    REQUIRE(kept.size() == 1);
    CHECK(ab.json()["damaged_journal"] == kept.begin()->first);
    CHECK(kept.begin()->second == kDamagedJournal); // kept as it was
    CHECK_FALSE(fs::exists(journal));
    CHECK_FALSE(fs::exists(h.p("var/recovery/recovery/armed")));
    CHECK(h.snapshot() == pre); // the host is left as it is
    CHECK(h.cli("status").exit_code == 0);
    auto bk = h.cli("backup --dry-run");
    INFO(bk.out << bk.err);
    CHECK(bk.exit_code == 0);

    // Another damaged journal in the same second is kept beside the first, not over it.
    write(journal, "not json at all\n");
    REQUIRE(h.cli("recover --abandon --force").exit_code == 0);
    kept = damaged_kept(h);
    CHECK(kept.size() == 2);
    CHECK(std::count_if(kept.begin(), kept.end(), [](auto& k) { return k.second == "not json at all\n"; }) == 1);
    // --abandon takes --force and nothing else.
    CHECK(h.cli("recover --abandon --dry-run").exit_code == 2);
}

// Starting over needs nothing from the old journal: --restart moves a damaged one aside.
TEST_CASE("recover --restart over a damaged journal moves it aside and starts over")
{
    Host h;
    const std::string journal = h.p("var/recovery/recovery/journal");
    write(journal, kDamagedJournal);
    auto r = h.run("--restart");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.json()["phase1_done"] == true);
    CHECK(r.err.find(journal + " is damaged: ") != std::string::npos); // the warning
    auto kept = damaged_kept(h);
    REQUIRE(kept.size() == 1);
    CHECK(kept.begin()->second == kDamagedJournal);
    CHECK(h.journal().backup_id == kBackupId);
    h.check_recovered();
}

// The initramfs with a damaged journal (see run_initrd_phase1): armed, phase 1 may be
// half done, so the boot stops (the unit fails) with the way out named, nothing
// touched. Only the kernel argument with phase 1 done (phase2-pending) boots on.
TEST_CASE("the initrd entry with a damaged journal stops an armed recovery and names the way out")
{
    Host h;
    std::string cmdline = h.base + "/cmdline", boot = h.base + "/boot_id";
    write(boot, "boot-1\n");
    const std::string journal = h.p("var/recovery/recovery/journal");
    const std::string initrd = "--initrd --cmdline " + cmdline + " --boot-id " + boot;
    auto boot_with = [&](bool karg, bool armed, bool phase2_pending) {
        write(cmdline,
              std::string("BOOT_IMAGE=/vmlinuz root=UUID=1 ") + (karg ? "upgrade_recovery=phase1 " : "") + "rw\n");
        fs::remove_all(h.p("var/recovery/recovery"));
        write(journal, kDamagedJournal);
        if (armed) write(h.p("var/recovery/recovery/armed"), std::string(kBackupId) + "\n");
        if (phase2_pending) write(h.p("var/recovery/recovery/phase2-pending"), "20240501T120000Z\n");
        const Snapshot pre = h.snapshot();
        auto r = h.run(initrd);
        CHECK(h.snapshot() == pre); // nothing restored, no marker or journal touched
        return r;
    };
    for (bool karg : {false, true}) {
        INFO("kernel argument: " << karg);
        auto r = boot_with(karg, true, false);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("ERROR Corrupt: recovery of backup " + std::string(kBackupId) +
                         " is armed, but whether its phase 1 is done cannot be told") != std::string::npos);
        CHECK(r.err.find("'upgrade-recovery --root " + h.root + " recover --abandon --force'") != std::string::npos);
        CHECK(r.err.find(journal + " is damaged: ") != std::string::npos);
        CHECK(r.err.find("recover --restart") == std::string::npos); // not from the initramfs
    }
    {
        // The kernel argument, phase 1 done: the boot goes on.
        auto r = boot_with(true, false, true);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["ran"] == false);
        CHECK(r.json()["reason"] == "journal damaged; phase 1 of recovery 20240501T120000Z is already done");
    }
    {
        // The kernel argument and no marker: its recovery cannot be started.
        auto r = boot_with(true, false, false);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("whether the latest backup was recovered already cannot be told") != std::string::npos);
    }
    {
        // Neither: the common boot, the journal not even read.
        auto r = boot_with(false, false, false);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.json()["reason"] == "not armed");
    }
}
