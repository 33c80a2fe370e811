// metrics_text: the Prometheus text format of a store's state, built from a
// StoreStatus by hand (tests/integration/test-metrics.sh has node_exporter read
// the real thing).
#include "metrics_text.hpp"
#include "utf8_text.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <map>
#include <sstream>

using namespace ur;

namespace
{

// name{labels} -> value, and every family's HELP and TYPE seen before its samples.
struct Parsed {
    std::map<std::string, std::string> samples;
    bool well_formed = true;
};

Parsed parse(const std::string& text)
{
    Parsed p;
    std::map<std::string, int> typed;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0) continue;
        if (line.rfind("# TYPE ", 0) == 0) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            if (typed[name]++ != 0 || line.substr(line.size() - 6) != " gauge") p.well_formed = false;
            continue;
        }
        const auto sp = line.rfind(' ');
        const std::string key = line.substr(0, sp);
        if (!typed.count(key.substr(0, key.find('{'))) || p.samples.count(key)) p.well_formed = false;
        p.samples[key] = line.substr(sp + 1);
    }
    return p;
}

StoreStatus sample_status()
{
    StoreStatus s;
    s.backups = {"20261120T080000Z", "20261121T120000Z"};
    s.latest_id = "20261121T120000Z";
    BackupMetadata m;
    m.id = "20261121T120000Z";
    m.created = "2026-11-21T12:00:00Z";
    m.total_bytes = 123456789;
    m.openshift.version = "4.16.3";
    m.ostree.present = true;
    m.ostree.checksum = "abc123";
    m.openshift.cert_expiry = "2027-11-21T12:00:00Z";
    s.latest = m;
    BackupAttempt a;
    a.state = "succeeded";
    a.started = "2026-11-21T11:59:30Z";
    a.finished = "2026-11-21T12:00:05Z";
    a.duration_seconds = 35.25;
    s.last_attempt = a;
    return s;
}

} // namespace

TEST_CASE("rfc3339_to_epoch reads the times this program writes")
{
    CHECK(rfc3339_to_epoch("1970-01-01T00:00:00Z") == 0.0);
    CHECK(rfc3339_to_epoch("2026-11-21T12:00:00Z") == 1795262400.0);
    CHECK(rfc3339_to_epoch("2024-02-29T23:59:59Z") == 1709251199.0);
    auto frac = rfc3339_to_epoch("2026-11-21T12:00:00.250000000Z");
    REQUIRE(frac);
    CHECK(*frac == 1795262400.25);
    for (const char* bad : {"", "2026-11-21", "2026-11-21T12:00:00", "2026-11-21T12:00:00+01:00",
                            "2026-13-01T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21 12:00:00Z",
                            "2026-11-21T12:00:00.Z", "2026-11-21T12:00:00.5xZ", "20x6-11-21T12:00:00Z"})
        CHECK_FALSE(rfc3339_to_epoch(bad));
}

TEST_CASE("metrics_text: a store that cannot be read says only that")
{
    const auto p = parse(metrics_text(nullptr, StoreUsage{100, 50}));
    CHECK(p.well_formed);
    CHECK(p.samples == std::map<std::string, std::string>{{"upgrade_recovery_store_up", "0"}});
}

TEST_CASE("metrics_text: backups, the latest one and the last attempt")
{
    const StoreStatus s = sample_status();
    const auto p = parse(metrics_text(&s, StoreUsage{1 << 30, 1 << 20}));
    REQUIRE(p.well_formed);
    CHECK(p.samples.at("upgrade_recovery_store_up") == "1");
    CHECK(p.samples.at("upgrade_recovery_store_size_bytes") == "1073741824");
    CHECK(p.samples.at("upgrade_recovery_store_free_bytes") == "1048576");
    CHECK(p.samples.at("upgrade_recovery_backups") == "2");
    CHECK(p.samples.at("upgrade_recovery_latest_backup_info{backup_id=\"20261121T120000Z\",openshift_version=\"4.16."
                       "3\",ostree_checksum=\"abc123\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_latest_backup_timestamp_seconds") == "1795262400");
    CHECK(p.samples.at("upgrade_recovery_latest_backup_bytes") == "123456789");
    CHECK(p.samples.at("upgrade_recovery_latest_backup_cert_expiry_timestamp_seconds") == "1826798400");
    StoreStatus unknown = s;
    unknown.latest->openshift.cert_expiry.clear(); // no certificates found: no sample
    CHECK(parse(metrics_text(&unknown, std::nullopt))
              .samples.count("upgrade_recovery_latest_backup_cert_expiry_timestamp_seconds") == 0);
    CHECK(p.samples.at("upgrade_recovery_last_backup_attempt_state{state=\"succeeded\"}") == "1");
    for (const char* other : {"running", "failed", "interrupted"})
        CHECK(p.samples.at(std::string("upgrade_recovery_last_backup_attempt_state{state=\"") + other + "\"}") == "0");
    CHECK(p.samples.at("upgrade_recovery_last_backup_attempt_timestamp_seconds") == "1795262405");
    CHECK(p.samples.at("upgrade_recovery_last_backup_attempt_duration_seconds") == "35.250");
    CHECK(p.samples.at("upgrade_recovery_recovery_armed") == "0");
    CHECK(p.samples.at("upgrade_recovery_recovery_in_progress") == "0");
    CHECK(p.samples.at("upgrade_recovery_earlier_recovery_in_progress") == "0");
    StoreStatus earlier = s;
    earlier.earlier_recovery = true; // the earlier tooling's progress file: backups are refused
    CHECK(parse(metrics_text(&earlier, std::nullopt)).samples.at("upgrade_recovery_earlier_recovery_in_progress") ==
          "1");
    CHECK(p.samples.at("upgrade_recovery_watchdog_active") == "0");
    CHECK_FALSE(p.samples.count("upgrade_recovery_recovery_state{state=\"running\"}"));
    for (const char* part : {"backups", "latest_backup", "last_backup_attempt", "recovery", "watchdog"})
        CHECK(p.samples.at(std::string("upgrade_recovery_unreadable{part=\"") + part + "\"}") == "0");
}

TEST_CASE("metrics_text: a running attempt has its start as its time and no duration")
{
    StoreStatus s = sample_status();
    s.last_attempt->state = "running";
    s.last_attempt->finished.clear();
    const auto p = parse(metrics_text(&s, std::nullopt));
    REQUIRE(p.well_formed);
    CHECK(p.samples.at("upgrade_recovery_last_backup_attempt_state{state=\"running\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_last_backup_attempt_timestamp_seconds") == "1795262370");
    CHECK_FALSE(p.samples.count("upgrade_recovery_last_backup_attempt_duration_seconds"));
    CHECK_FALSE(p.samples.count("upgrade_recovery_store_size_bytes")); // no usage: no guess
}

TEST_CASE("metrics_text: label values are escaped")
{
    StoreStatus s = sample_status();
    s.latest->openshift.version = "4.16 \"odd\"\\\nbuild";
    const auto text = metrics_text(&s, std::nullopt);
    CHECK(text.find("openshift_version=\"4.16 \\\"odd\\\"\\\\\\nbuild\"") != std::string::npos);
    CHECK(parse(text).well_formed); // the line feed did not split the sample
}

TEST_CASE("metrics_text: label values are valid UTF-8")
{
    // metadata.toml decodes %XX, so damaged or odd data gives any bytes; one that is
    // not UTF-8 makes node_exporter's textfile collector drop the whole file.
    StoreStatus s = sample_status();
    s.latest->id = "20261121T120000Z\xff";
    s.latest->openshift.version = "4.16.3-\xc3\xa9\xfe\"\xc0\x80"; // é kept; stray, quote, overlong
    s.latest->ostree.checksum = "abc\xed\xa0\x80";                 // a surrogate
    const auto text = metrics_text(&s, std::nullopt);
    CHECK(valid_utf8(text) == text);
    CHECK(text.find("{backup_id=\"20261121T120000Z\xEF\xBF\xBD\",openshift_version=\"4.16.3-\xc3\xa9\xEF\xBF\xBD\\\""
                    "\xEF\xBF\xBD\xEF\xBF\xBD\",ostree_checksum=\"abc\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 1\n") !=
          std::string::npos);
    CHECK(parse(text).well_formed);
}

TEST_CASE("metrics_text: a recovery, the watchdog and unreadable parts")
{
    StoreStatus s = sample_status();
    s.latest.reset();
    s.latest_error = Error{ErrorKind::Corrupt, 0, "metadata.toml:3:1: bad"};
    s.armed = "20261121T120000Z";
    RecoveryJournal j;
    j.recovery_id = "20261121T130000Z";
    j.backup_id = "20261121T120000Z";
    j.started = "2026-11-21T13:00:00Z";
    j.state = RecoveryState::Failed;
    s.journal = j;
    s.watchdog = WatchdogState{};
    s.last_attempt.reset();
    s.last_attempt_error = Error{ErrorKind::Corrupt, 0, "last-backup.json: bad"};
    s.unreadable.push_back({"20261119T080000Z", Error{ErrorKind::Io, EIO, "metadata.toml: Input/output error"}});
    const auto p = parse(metrics_text(&s, std::nullopt));
    REQUIRE(p.well_formed);
    CHECK_FALSE(p.samples.count("upgrade_recovery_latest_backup_timestamp_seconds"));
    CHECK_FALSE(p.samples.count("upgrade_recovery_last_backup_attempt_state{state=\"succeeded\"}"));
    CHECK(p.samples.at("upgrade_recovery_unreadable{part=\"backups\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_unreadable{part=\"latest_backup\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_unreadable{part=\"last_backup_attempt\"}") == "1");
    StoreStatus junk = sample_status();
    junk.damaged = {"20990101T000000Z"};
    CHECK(parse(metrics_text(&junk, std::nullopt)).samples.at("upgrade_recovery_unreadable{part=\"backups\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_unreadable{part=\"recovery\"}") == "0");
    CHECK(p.samples.at("upgrade_recovery_recovery_armed") == "1");
    CHECK(p.samples.at("upgrade_recovery_recovery_in_progress") == "1");
    CHECK(p.samples.at("upgrade_recovery_recovery_state{state=\"failed\"}") == "1");
    CHECK(p.samples.at("upgrade_recovery_recovery_state{state=\"complete\"}") == "0");
    CHECK(p.samples.at("upgrade_recovery_recovery_started_timestamp_seconds") == "1795266000");
    CHECK(p.samples.at("upgrade_recovery_watchdog_active") == "1");
}

TEST_CASE("metrics_text: the watchdog's boots, its limit, and its deadline only where it can fire")
{
    StoreStatus s = sample_status();
    s.watchdog = WatchdogState{"20261121T120000Z", 1800, "2026-11-21T12:00:00Z", "boot-0", {"boot-1", "boot-2"}};
    s.watchdog_outlook = watchdog_outlook(*s.watchdog, {"boot-2", 300, 1'795'266'000}, 3);
    auto p = parse(metrics_text(&s, std::nullopt));
    REQUIRE(p.well_formed);
    CHECK(p.samples.at("upgrade_recovery_watchdog_boots") == "2");
    CHECK(p.samples.at("upgrade_recovery_watchdog_max_boots") == "3");
    CHECK(p.samples.at("upgrade_recovery_watchdog_deadline_timestamp_seconds") == "1795267500");

    s.watchdog_outlook = watchdog_outlook(*s.watchdog, {"boot-0", 300, 1'795'266'000}, 3); // its start boot
    p = parse(metrics_text(&s, std::nullopt));
    REQUIRE(p.well_formed);
    CHECK(p.samples.at("upgrade_recovery_watchdog_boots") == "2");
    CHECK_FALSE(p.samples.count("upgrade_recovery_watchdog_deadline_timestamp_seconds"));
}
