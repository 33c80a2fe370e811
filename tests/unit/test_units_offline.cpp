// Offline unit enabling/disabling on a real tree, the way the initrd does it
// against /sysroot: .wants/.requires links, aliases, Also=, templates, masks,
// idempotence, and symlinks that must resolve inside the root.
#include "test_skip.hpp"
#include "units.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

struct Root {
    std::string path;
    Root()
    {
        char t[] = "/tmp/ur-units-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
        fs::create_directories(path + "/usr/lib/systemd/system");
        fs::create_directories(path + "/etc/systemd/system");
    }
    ~Root()
    {
        // A daemon that removes its socket while we do must not end in std::terminate.
        for (int i = 0; i < 3; i++) {
            std::error_code ec;
            fs::remove_all(path, ec);
            if (!ec) break;
        }
    }
    void unit(const std::string& rel, const std::string& text)
    {
        fs::create_directories(fs::path(path + "/" + rel).parent_path());
        std::ofstream(path + "/" + rel) << text;
    }
    std::string link(const std::string& rel) const
    {
        std::error_code ec;
        auto t = fs::read_symlink(path + "/" + rel, ec);
        return ec ? std::string() : t.string();
    }
    bool exists(const std::string& rel) const
    {
        return fs::symlink_status(path + "/" + rel).type() != fs::file_type::not_found;
    }
};

const char* kKubelet = "[Unit]\nDescription=Kubernetes Kubelet\n\n[Service]\nExecStart=/usr/bin/kubelet\n\n"
                       "[Install]\n# comment\nWantedBy=multi-user.target\n";

} // namespace

TEST_CASE("enable and disable a WantedBy unit, idempotently")
{
    Root r;
    r.unit("usr/lib/systemd/system/kubelet.service", kKubelet);
    CHECK_FALSE(*offline_unit_enabled(r.path, "kubelet.service"));

    auto en = offline_enable_unit(r.path, "kubelet.service");
    REQUIRE(en);
    CHECK(*en == std::vector<std::string>{"/etc/systemd/system/multi-user.target.wants/kubelet.service"});
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/kubelet.service") ==
          "/usr/lib/systemd/system/kubelet.service");
    CHECK(*offline_unit_enabled(r.path, "kubelet.service"));

    auto again = offline_enable_unit(r.path, "kubelet.service");
    REQUIRE(again);
    CHECK(again->empty());

    auto dis = offline_disable_unit(r.path, "kubelet.service");
    REQUIRE(dis);
    CHECK(*dis == std::vector<std::string>{"/etc/systemd/system/multi-user.target.wants/kubelet.service"});
    CHECK_FALSE(r.exists("etc/systemd/system/multi-user.target.wants/kubelet.service"));
    CHECK(r.exists("usr/lib/systemd/system/kubelet.service")); // the unit file stays
    CHECK_FALSE(*offline_unit_enabled(r.path, "kubelet.service"));

    auto dis2 = offline_disable_unit(r.path, "kubelet.service");
    REQUIRE(dis2);
    CHECK(dis2->empty());
}

TEST_CASE("a unit in /etc wins over /usr/lib, RequiredBy and continuation lines")
{
    Root r;
    r.unit("usr/lib/systemd/system/upgrade-recovery-phase2.service", "[Install]\nWantedBy=other.target\n");
    r.unit("etc/systemd/system/upgrade-recovery-phase2.service",
           "[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target \\\n  "
           "graphical.target\nRequiredBy=kubelet.service\n");
    auto en = offline_enable_unit(r.path, "upgrade-recovery-phase2.service");
    REQUIRE(en);
    CHECK(en->size() == 3);
    const std::string target = "/etc/systemd/system/upgrade-recovery-phase2.service";
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/upgrade-recovery-phase2.service") == target);
    CHECK(r.link("etc/systemd/system/graphical.target.wants/upgrade-recovery-phase2.service") == target);
    CHECK(r.link("etc/systemd/system/kubelet.service.requires/upgrade-recovery-phase2.service") == target);
    CHECK_FALSE(r.exists("etc/systemd/system/other.target.wants"));
    REQUIRE(offline_disable_unit(r.path, "upgrade-recovery-phase2.service"));
    CHECK_FALSE(r.exists("etc/systemd/system/kubelet.service.requires/upgrade-recovery-phase2.service"));
    CHECK_FALSE(r.exists("etc/systemd/system/multi-user.target.wants/upgrade-recovery-phase2.service"));
    CHECK(r.exists("etc/systemd/system/upgrade-recovery-phase2.service"));
}

TEST_CASE("aliases and Also= are enabled and disabled together")
{
    Root r;
    r.unit("usr/lib/systemd/system/foo.service",
           "[Install]\nWantedBy=multi-user.target\nAlias=bar.service\nAlso=helper.socket\n");
    r.unit("usr/lib/systemd/system/helper.socket", "[Install]\nWantedBy=sockets.target\n");
    auto en = offline_enable_unit(r.path, "foo.service");
    REQUIRE(en);
    CHECK(en->size() == 3);
    CHECK(r.link("etc/systemd/system/bar.service") == "/usr/lib/systemd/system/foo.service");
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/foo.service") == "/usr/lib/systemd/system/foo.service");
    CHECK(r.link("etc/systemd/system/sockets.target.wants/helper.socket") == "/usr/lib/systemd/system/helper.socket");
    CHECK(offline_enable_unit(r.path, "foo.service")->empty());

    // A link made under the alias name (as `systemctl enable bar.service` would) goes too.
    fs::create_directories(r.path + "/etc/systemd/system/timers.target.wants");
    fs::create_symlink("/usr/lib/systemd/system/foo.service",
                       r.path + "/etc/systemd/system/timers.target.wants/bar.service");
    auto dis = offline_disable_unit(r.path, "foo.service");
    REQUIRE(dis);
    CHECK(dis->size() == 4);
    CHECK_FALSE(r.exists("etc/systemd/system/bar.service"));
    CHECK_FALSE(r.exists("etc/systemd/system/timers.target.wants/bar.service"));
    CHECK_FALSE(r.exists("etc/systemd/system/sockets.target.wants/helper.socket"));
    CHECK_FALSE(*offline_unit_enabled(r.path, "helper.socket"));
}

TEST_CASE("templates: DefaultInstance and explicit instances")
{
    Root r;
    r.unit("usr/lib/systemd/system/getty@.service", "[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n");
    REQUIRE(offline_enable_unit(r.path, "getty@.service"));
    CHECK(r.link("etc/systemd/system/getty.target.wants/getty@tty1.service") ==
          "/usr/lib/systemd/system/getty@.service");
    REQUIRE(offline_enable_unit(r.path, "getty@tty2.service"));
    CHECK(r.link("etc/systemd/system/getty.target.wants/getty@tty2.service") ==
          "/usr/lib/systemd/system/getty@.service");
    CHECK(*offline_unit_enabled(r.path, "getty@tty2.service"));

    // Disabling one instance leaves the other; disabling the template takes all.
    REQUIRE(offline_disable_unit(r.path, "getty@tty2.service"));
    CHECK_FALSE(r.exists("etc/systemd/system/getty.target.wants/getty@tty2.service"));
    CHECK(r.exists("etc/systemd/system/getty.target.wants/getty@tty1.service"));
    REQUIRE(offline_enable_unit(r.path, "getty@tty3.service"));
    auto all = offline_disable_unit(r.path, "getty@.service");
    REQUIRE(all);
    CHECK(all->size() == 2);
    CHECK_FALSE(r.exists("etc/systemd/system/getty.target.wants/getty@tty1.service"));

    r.unit("usr/lib/systemd/system/plain@.service", "[Install]\nWantedBy=multi-user.target\n");
    auto no_inst = offline_enable_unit(r.path, "plain@.service");
    REQUIRE_FALSE(no_inst);
    CHECK(no_inst.error().kind == ErrorKind::InvalidArgs);
}

TEST_CASE("masked, missing, static and blocked units")
{
    Root r;
    r.unit("usr/lib/systemd/system/kubelet.service", kKubelet);
    fs::create_symlink("/dev/null", r.path + "/etc/systemd/system/kubelet.service");
    auto masked = offline_enable_unit(r.path, "kubelet.service");
    REQUIRE_FALSE(masked);
    CHECK(masked.error().kind == ErrorKind::Refused);
    // Disabling a masked unit is fine and keeps the mask.
    REQUIRE(offline_disable_unit(r.path, "kubelet.service"));
    CHECK(r.link("etc/systemd/system/kubelet.service") == "/dev/null");

    auto missing = offline_enable_unit(r.path, "nothere.service");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    REQUIRE(offline_disable_unit(r.path, "nothere.service")); // nothing to remove

    r.unit("usr/lib/systemd/system/static.service", "[Service]\nExecStart=/bin/true\n");
    auto st = offline_enable_unit(r.path, "static.service");
    REQUIRE(st);
    CHECK(st->empty());

    for (const char* bad : {"", "../x.service", "a/b.service", "noext"}) {
        auto b = offline_enable_unit(r.path, bad);
        REQUIRE_FALSE(b);
        CHECK(b.error().kind == ErrorKind::InvalidArgs);
    }

    // A regular file where the link belongs is not overwritten.
    r.unit("usr/lib/systemd/system/crio.service", "[Install]\nWantedBy=multi-user.target\n");
    r.unit("etc/systemd/system/multi-user.target.wants/crio.service", "not a link");
    auto blocked = offline_enable_unit(r.path, "crio.service");
    REQUIRE_FALSE(blocked);
    CHECK(blocked.error().kind == ErrorKind::Refused);

    // A stale link pointing elsewhere is corrected.
    r.unit("usr/lib/systemd/system/a.service", "[Install]\nWantedBy=multi-user.target\n");
    fs::create_symlink("/lib/systemd/system/old-a.service",
                       r.path + "/etc/systemd/system/multi-user.target.wants/a.service");
    auto fixed = offline_enable_unit(r.path, "a.service");
    REQUIRE(fixed);
    CHECK(fixed->size() == 1);
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/a.service") == "/usr/lib/systemd/system/a.service");
}

TEST_CASE("unit files are read inside the root, never outside it")
{
    Root r;
    // An absolute link inside the tree resolves against the tree, as systemctl --root does.
    r.unit("opt/units/real.service", "[Install]\nWantedBy=inroot.target\n");
    fs::create_symlink("/opt/units/real.service", r.path + "/etc/systemd/system/linked.service");
    auto en = offline_enable_unit(r.path, "linked.service");
    REQUIRE(en);
    CHECK(r.link("etc/systemd/system/inroot.target.wants/linked.service") == "/etc/systemd/system/linked.service");

    // A unit file outside the root, reachable only by escaping it, is not used.
    char t[] = "/tmp/ur-units-outside-XXXXXX";
    REQUIRE(mkdtemp(t));
    std::string outside = t;
    std::ofstream(outside + "/escape.service") << "[Install]\nWantedBy=escaped.target\n";
    fs::create_symlink("../../../../../../../../../../.." + outside + "/escape.service",
                       r.path + "/etc/systemd/system/escape.service");
    fs::create_symlink(outside + "/escape.service", r.path + "/usr/lib/systemd/system/escape2.service");
    auto e1 = offline_enable_unit(r.path, "escape.service");
    auto e2 = offline_enable_unit(r.path, "escape2.service");
    CHECK_FALSE(e1);
    CHECK_FALSE(e2);
    CHECK_FALSE(r.exists("etc/systemd/system/escaped.target.wants"));
    fs::remove_all(outside);

    // The link directories are never created through a symlink planted in the root.
    r.unit("usr/lib/systemd/system/b.service", "[Install]\nWantedBy=planted.target\n");
    char o2[] = "/tmp/ur-units-plant-XXXXXX";
    REQUIRE(mkdtemp(o2));
    fs::create_symlink(o2, r.path + "/etc/systemd/system/planted.target.wants");
    auto planted = offline_enable_unit(r.path, "b.service");
    CHECK_FALSE(planted);
    CHECK(fs::is_empty(o2));
    fs::remove_all(o2);
}

TEST_CASE("unit manager selection")
{
    Root r;
    Config cfg;
    cfg.systemctl_mode = "offline";
    auto off = make_unit_manager(cfg, r.path);
    REQUIRE(off);
    CHECK((*off)->mode() == "offline");
    CHECK_FALSE((*off)->can_control());
    CancelToken tok;
    auto start = (*off)->start("crio.service", std::chrono::seconds(1), tok);
    REQUIRE_FALSE(start);
    CHECK(start.error().kind == ErrorKind::Refused);

    cfg.systemctl_mode = "dbus";
    auto dbus = make_unit_manager(cfg, r.path);
    REQUIRE_FALSE(dbus);
    CHECK(dbus.error().kind == ErrorKind::InvalidArgs);

    cfg.systemctl_mode = "auto";
    auto aut = make_unit_manager(cfg, r.path);
    REQUIRE(aut);
    CHECK((*aut)->mode() == "offline"); // a root that is not "/" never talks to the running systemd

    // Through the interface, the offline manager edits the tree.
    r.unit("usr/lib/systemd/system/kubelet.service", kKubelet);
    REQUIRE((*aut)->enable("kubelet.service", tok));
    CHECK(*(*aut)->is_enabled("kubelet.service", tok));
    REQUIRE((*aut)->disable("kubelet.service", tok));
    CHECK_FALSE(*(*aut)->is_enabled("kubelet.service", tok));
}

TEST_CASE("live mode on a bus without systemd fails fast and clearly")
{
    // A real private bus that nobody serves org.freedesktop.systemd1 on.
    UR_RUN_ONLY_IF(std::system("command -v dbus-daemon >/dev/null 2>&1") == 0,
                   "dbus-daemon missing: the live-mode error path");
    Root r;
    std::string addr = "unix:path=" + r.path + "/bus";
    std::string cmd = "dbus-daemon --session --address=" + addr + " --fork --print-pid=1 >" + r.path + "/pid";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream pf(r.path + "/pid");
    pid_t pid = 0;
    pf >> pid;
    REQUIRE(pid > 0);
    const char* old = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
    std::string saved = old ? old : "";
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", addr.c_str(), 1);
    auto u = make_dbus_units();
    CHECK(u->mode() == "dbus");
    CHECK(u->can_control());
    CancelToken tok;
    auto t0 = std::chrono::steady_clock::now();
    auto start = u->start("crio.service", std::chrono::seconds(5), tok);
    auto st = u->active_state("crio.service", tok);
    auto en = u->enable("kubelet.service", tok);
    auto took = std::chrono::steady_clock::now() - t0;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 200 && ::kill(pid, 0) == 0; i++) // it removes its socket on the way out
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (old)
        ::setenv("DBUS_SYSTEM_BUS_ADDRESS", saved.c_str(), 1);
    else
        ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    REQUIRE_FALSE(start);
    CHECK(start.error().kind == ErrorKind::ExternalFailed);
    CHECK(start.error().message.find("StartUnit") != std::string::npos);
    CHECK(start.error().message.find("org.freedesktop.systemd1") != std::string::npos);
    CHECK_FALSE(st);
    CHECK_FALSE(en);
    CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("an existing link that names the same unit file another way is kept")
{
    // Merged /usr: /lib -> usr/lib, and `systemctl enable` wrote /lib/systemd/system/...
    // Rewriting that link would make a restored /etc differ from its backup.
    Root r;
    r.unit("usr/lib/systemd/system/kubelet.service", kKubelet);
    fs::create_symlink("usr/lib", r.path + "/lib");
    fs::create_directories(r.path + "/etc/systemd/system/multi-user.target.wants");
    fs::create_symlink("/lib/systemd/system/kubelet.service",
                       r.path + "/etc/systemd/system/multi-user.target.wants/kubelet.service");
    auto en = offline_enable_unit(r.path, "kubelet.service");
    REQUIRE(en);
    CHECK(en->empty());
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/kubelet.service") ==
          "/lib/systemd/system/kubelet.service");

    // A link to something else is still corrected.
    r.unit("usr/lib/systemd/system/other.service", kKubelet);
    fs::remove(r.path + "/etc/systemd/system/multi-user.target.wants/kubelet.service");
    fs::create_symlink("/usr/lib/systemd/system/other.service",
                       r.path + "/etc/systemd/system/multi-user.target.wants/kubelet.service");
    auto fix = offline_enable_unit(r.path, "kubelet.service");
    REQUIRE(fix);
    CHECK(fix->size() == 1);
    CHECK(r.link("etc/systemd/system/multi-user.target.wants/kubelet.service") ==
          "/usr/lib/systemd/system/kubelet.service");
}
