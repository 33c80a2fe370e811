// Whether a unit is enabled in a root, asked of `systemctl --root=DIR is-enabled`
// on temporary trees: unit files under usr/lib/systemd/system, enabled and masked
// by systemctl --root itself or by the links it makes; and what arm, watchdog
// start and status say of the phase 2 and watchdog units.
#include "temp_dir.hpp"
#include "test_skip.hpp"
#include "unit_enablement.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

bool have_systemctl()
{
    return std::system("systemctl --version >/dev/null 2>&1") == 0;
}

struct Root {
    test::TempDir tmp{"ur-unit-en"};
    const std::string& path = tmp.path;
    Root() { fs::create_directories(path + "/usr/lib/systemd/system"); }
    void install(const std::string& unit, bool with_install = true)
    {
        std::ofstream(path + "/usr/lib/systemd/system/" + unit)
            << "[Service]\nExecStart=/bin/true\n"
            << (with_install ? "[Install]\nWantedBy=multi-user.target\n" : "");
    }
    // As `systemctl --root=DIR enable` makes it.
    void link(const std::string& rel, const std::string& target)
    {
        fs::create_directories(fs::path(path + "/" + rel).parent_path());
        fs::create_symlink(target, path + "/" + rel);
    }
    void systemctl(const std::string& args)
    {
        REQUIRE(std::system(("systemctl --root='" + path + "' " + args + " >/dev/null 2>&1").c_str()) == 0);
    }
};

UnitEnablement kind_of(const std::string& root, const std::string& unit)
{
    auto st = unit_enablement(root, unit);
    REQUIRE(st);
    return st->kind;
}

} // namespace

TEST_CASE("systemctl --root tells enabled, disabled, masked, not installed and the rest")
{
    UR_RUN_ONLY_IF(have_systemctl(), "no systemctl");
    Root r;
    r.install(kPhase2UnitName);
    r.install(kWatchdogUnitName);
    r.install("static.service", false);

    CHECK(kind_of(r.path, kPhase2UnitName) == UnitEnablement::Disabled);
    CHECK(unit_enablement(r.path, kPhase2UnitName)->word == "disabled");

    r.systemctl(std::string("enable ") + kPhase2UnitName);
    CHECK(kind_of(r.path, kPhase2UnitName) == UnitEnablement::Enabled);
    r.systemctl(std::string("disable ") + kPhase2UnitName);
    CHECK(kind_of(r.path, kPhase2UnitName) == UnitEnablement::Disabled);

    // The link `systemctl enable` makes, made by hand.
    r.link(std::string("etc/systemd/system/multi-user.target.wants/") + kWatchdogUnitName,
           std::string("/usr/lib/systemd/system/") + kWatchdogUnitName);
    CHECK(kind_of(r.path, kWatchdogUnitName) == UnitEnablement::Enabled);

    // Masked with the link `systemctl mask` makes: even an enabled unit.
    r.link(std::string("etc/systemd/system/") + kWatchdogUnitName, "/dev/null");
    CHECK(kind_of(r.path, kWatchdogUnitName) == UnitEnablement::Masked);
    CHECK(unit_enablement(r.path, kWatchdogUnitName)->word == "masked");

    auto nf = unit_enablement(r.path, "not-installed.service");
    REQUIRE(nf);
    CHECK(nf->kind == UnitEnablement::NotFound);
    CHECK(nf->word == "not-found");

    auto st = unit_enablement(r.path, "static.service");
    REQUIRE(st);
    CHECK(st->kind == UnitEnablement::Other);
    CHECK(st->word == "static");

    // Enabled in /run only: gone after the reboot.
    r.link(std::string("run/systemd/system/multi-user.target.wants/") + kPhase2UnitName,
           std::string("/usr/lib/systemd/system/") + kPhase2UnitName);
    CHECK(kind_of(r.path, kPhase2UnitName) == UnitEnablement::Runtime);
}

TEST_CASE("no systemctl, or one that fails, cannot tell: a note, never a warning")
{
    Root r;
    auto missing = unit_enablement(r.path, kPhase2UnitName, r.path + "/no-such-systemctl");
    CHECK_FALSE(missing);
    auto c = check_watchdog_unit(r.path, r.path + "/no-such-systemctl");
    CHECK(c.state.empty());
    CHECK(c.warning.empty());
    CHECK_THAT(c.note, Catch::Contains("cannot tell whether upgrade-recovery-watchdog.service is enabled"));

    const std::string fake = r.path + "/systemctl";
    std::ofstream(fake) << "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n";
    ::chmod(fake.c_str(), 0755);
    auto failing = unit_enablement(r.path, kPhase2UnitName, fake);
    REQUIRE_FALSE(failing);
    CHECK_THAT(failing.error().message, Catch::Contains("exit status 1") && Catch::Contains("Failed to connect"));
    auto p = check_phase2_unit(r.path, true, fake);
    CHECK(p.warning.empty());
    CHECK_THAT(p.note, Catch::Contains("cannot tell whether upgrade-recovery-phase2.service is enabled"));
}

TEST_CASE("the watchdog unit must be enabled for every later boot")
{
    UR_RUN_ONLY_IF(have_systemctl(), "no systemctl");
    Root r;
    auto missing = check_watchdog_unit(r.path);
    CHECK(missing.state == "not-found");
    CHECK_THAT(missing.warning, Catch::Contains("not installed"));

    r.install(kWatchdogUnitName);
    auto off = check_watchdog_unit(r.path);
    CHECK(off.state == "disabled");
    CHECK(off.note.empty());
    CHECK_THAT(off.warning,
               Catch::Contains("upgrade-recovery-watchdog.service is not enabled") &&
                   Catch::Contains("'systemctl --root=" + r.path + " enable upgrade-recovery-watchdog.service'"));
    // A root systemctl cannot read: it cannot tell.
    auto unreadable = check_watchdog_unit(r.path + "/no-such-root");
    CHECK(unreadable.warning.empty());
    CHECK_THAT(unreadable.note, Catch::Contains("cannot tell"));

    r.systemctl(std::string("enable ") + kWatchdogUnitName);
    auto on = check_watchdog_unit(r.path);
    CHECK(on.state == "enabled");
    CHECK(on.warning.empty());
    CHECK(on.note.empty());

    r.systemctl(std::string("mask ") + kWatchdogUnitName);
    auto masked = check_watchdog_unit(r.path);
    CHECK(masked.state == "masked");
    CHECK_THAT(masked.warning, Catch::Contains("is masked") && Catch::Contains("unmask upgrade-recovery-watchdog"));
}

TEST_CASE("the phase 2 unit: phase 1 enables a disabled one, not a masked or missing one")
{
    UR_RUN_ONLY_IF(have_systemctl(), "no systemctl");
    Root r;
    CHECK_THAT(check_phase2_unit(r.path, false).warning, Catch::Contains("not installed"));

    r.install(kPhase2UnitName);
    auto before = check_phase2_unit(r.path, false);
    CHECK(before.state == "disabled");
    CHECK(before.warning.empty()); // step enable-phase2 enables it
    auto pending = check_phase2_unit(r.path, true);
    CHECK_THAT(pending.warning,
               Catch::Contains("phase 2 is pending") && Catch::Contains("enable upgrade-recovery-phase2.service'"));

    r.systemctl(std::string("enable ") + kPhase2UnitName);
    CHECK(check_phase2_unit(r.path, false).warning.empty());
    CHECK(check_phase2_unit(r.path, true).warning.empty());

    r.systemctl(std::string("mask ") + kPhase2UnitName);
    auto masked = check_phase2_unit(r.path, false);
    CHECK(masked.state == "masked");
    CHECK_THAT(masked.warning, Catch::Contains("enable-phase2") &&
                                   Catch::Contains("unmask upgrade-recovery-phase2.service && systemctl --root=") &&
                                   Catch::Contains("enable upgrade-recovery-phase2.service"));
}
