// The upgrade watchdog's state file (recovery/watchdog): its TOML round trip with
// the later boots, files written before that key (none seen), damage, recording
// a boot once, and what it does in a boot (the outlook, the reason it fires).
// The monitor and status with the real CLI are in test-watchdog.sh.
#include "upgrade_watchdog.hpp"

#include "plain_store.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace ur;
using ur::test::TempDir;

namespace
{

WatchdogState sample()
{
    return {"20261121T101500Z", 1800, "2026-11-21T10:15:00Z", "boot-0", {}};
}

// A file as versions before later_boots wrote it.
const char* kOldFile = "# upgrade-recovery watchdog: 'upgrade-recovery watchdog stop' ends it\n"
                       "backup = '20261121T101500Z'\n"
                       "boot_id = 'boot-0'\n"
                       "started = '2026-11-21T10:15:00Z'\n"
                       "timeout = 1800\n";

void write_watchdog(const std::string& store_dir, const std::string& text)
{
    std::filesystem::create_directories(store_dir + "/recovery");
    std::ofstream(store_dir + "/recovery/watchdog") << text;
}

std::string file_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("the watchdog's later boots survive the TOML round trip", "[watchdog]")
{
    WatchdogState w = sample();
    w.later_boots = {"boot-1", "boot-2"};
    auto back = watchdog_from_toml(watchdog_to_toml(w), "wd");
    REQUIRE(back);
    CHECK(back->backup_id == w.backup_id);
    CHECK(back->timeout == 1800);
    CHECK(back->boot_id == "boot-0");
    CHECK(back->later_boots == std::vector<std::string>{"boot-1", "boot-2"});
}

TEST_CASE("a file without later_boots reads as none seen, and one without any is written as before", "[watchdog]")
{
    auto old = watchdog_from_toml(kOldFile, "wd");
    REQUIRE(old);
    CHECK(old->later_boots.empty());
    CHECK(watchdog_to_toml(sample()) == kOldFile); // older versions read what `start` writes
}

TEST_CASE("damaged later_boots is Corrupt, named with its line", "[watchdog]")
{
    for (const char* bad : {"later_boots = \"boot-1\"\n", "later_boots = [1]\n", "later_boots = [\"\"]\n",
                            "later_boots = [\"boot-1\", \"boot-1\"]\n"}) {
        INFO(bad);
        auto r = watchdog_from_toml(std::string(kOldFile) + bad, "wd");
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
        CHECK_THAT(r.error().message, Catch::Contains("wd:6: later_boots must be an array of distinct boot ids"));
    }
}

TEST_CASE("each later boot is recorded once, never the one it was started in", "[watchdog]")
{
    TempDir t;
    Store store = ur::test::plain_store(t.path);
    const std::string file = t.path + "/recovery/watchdog";

    auto none = record_watchdog_boot(store, "boot-1");
    REQUIRE(none);
    CHECK_FALSE(*none);

    write_watchdog(t.path, kOldFile);
    auto same = record_watchdog_boot(store, "boot-0");
    REQUIRE(same);
    REQUIRE(*same);
    CHECK((*same)->later_boots.empty());
    CHECK(file_text(file) == kOldFile); // nothing written in the start boot
    auto unknown = record_watchdog_boot(store, "");
    REQUIRE(unknown);
    CHECK(file_text(file) == kOldFile); // an unknown boot proves nothing

    for (int i = 0; i < 2; i++) { // a restarted monitor counts its boot once
        auto r = record_watchdog_boot(store, "boot-1");
        REQUIRE(r);
        REQUIRE(*r);
        CHECK((*r)->later_boots == std::vector<std::string>{"boot-1"});
    }
    REQUIRE(record_watchdog_boot(store, "boot-2"));
    auto read = read_watchdog(store);
    REQUIRE(read);
    REQUIRE(*read);
    CHECK((*read)->later_boots == std::vector<std::string>{"boot-1", "boot-2"});
    CHECK((*read)->backup_id == "20261121T101500Z");
    CHECK((*read)->timeout == 1800);
}

TEST_CASE("the outlook: waits in the start boot, counts down in a later one, fires past the boot limit", "[watchdog]")
{
    WatchdogState w = sample();
    const BootClock start_boot{"boot-0", 100, 1'000'000};
    auto o = watchdog_outlook(w, start_boot, 3);
    CHECK_FALSE(o.applies);
    CHECK(o.boots == 0);
    CHECK(o.max_boots == 3);
    CHECK(watchdog_fire_reason(w, o).empty());

    w.later_boots = {"boot-1"};
    const BootClock later{"boot-1", 100, 1'000'000};
    o = watchdog_outlook(w, later, 3);
    CHECK(o.applies);
    CHECK(o.boots == 1);
    CHECK(o.seconds_left == Approx(1700));
    CHECK(o.deadline == Approx(1'000'000 - 100 + 1800));
    CHECK(watchdog_fire_reason(w, o).empty());

    o = watchdog_outlook(w, {"boot-1", 1801, 1'000'000}, 3);
    CHECK(o.seconds_left == 0);
    CHECK_THAT(watchdog_fire_reason(w, o), Catch::Contains("not declared complete within 1800 s of the boot"));

    w.later_boots = {"boot-1", "boot-2", "boot-3"};
    CHECK(watchdog_fire_reason(w, watchdog_outlook(w, {"boot-3", 5, 0}, 3)).empty()); // 3 allowed
    w.later_boots.push_back("boot-4");
    o = watchdog_outlook(w, {"boot-4", 5, 0}, 3);
    CHECK(o.too_many_boots);
    CHECK_THAT(watchdog_fire_reason(w, o),
               Catch::Contains("came up 4 times") && Catch::Contains("watchdog.max_boots = 3"));
}
