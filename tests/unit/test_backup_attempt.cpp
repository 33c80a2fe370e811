// The last backup attempt's record (last-backup.json, W20): its JSON, what is
// refused as damaged, and how a reader tells a "running" attempt whose process
// is gone. A running upgrade-recovery process and a real kill are in
// test-backup-badinput.sh.
#include "backup_attempt.hpp"

#include "fd.hpp"
#include "host_info.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <fstream>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;

namespace
{

BackupAttempt failed_attempt()
{
    BackupAttempt a;
    a.state = "failed";
    a.backup_id = "20261121T101500Z";
    a.started = "2026-11-21T10:15:00Z";
    a.finished = "2026-11-21T10:15:03Z";
    a.duration_seconds = 3.25;
    a.error_kind = "NoSpace";
    a.error = "not enough space on /var/recovery: 1.0 MiB free, the backup needs 2.0 GiB";
    a.pid = 4242;
    a.boot_id = "0b5c3ad3-5d8e-4a43-9d0e-1f7e4c6a9b10";
    return a;
}

} // namespace

TEST_CASE("a backup attempt survives its JSON round trip", "[attempt]")
{
    const BackupAttempt a = failed_attempt();
    auto b = backup_attempt_from_json(backup_attempt_to_json(a));
    REQUIRE(b);
    CHECK(b->state == a.state);
    CHECK(b->backup_id == a.backup_id);
    CHECK(b->started == a.started);
    CHECK(b->finished == a.finished);
    CHECK(b->duration_seconds == a.duration_seconds);
    CHECK(b->error_kind == a.error_kind);
    CHECK(b->error == a.error);
    CHECK(b->pid == a.pid);
    CHECK(b->boot_id == a.boot_id);
}

TEST_CASE("a running attempt has no end, id or error in its JSON", "[attempt]")
{
    BackupAttempt a;
    a.state = "running";
    a.started = "2026-11-21T10:15:00Z";
    a.pid = 7;
    a.boot_id = "b";
    const std::string j = backup_attempt_to_json(a);
    for (const char* key : {"\"finished\"", "\"duration_seconds\"", "\"backup_id\"", "\"error\""}) {
        INFO(key);
        CHECK(j.find(key) == std::string::npos);
    }
}

TEST_CASE("a damaged attempt record is Corrupt", "[attempt]")
{
    for (const char* text : {"", "{\"state\": \"running\"", "[]", "{\"state\": \"running\"}",
                             "{\"state\": \"exploded\", \"started\": \"x\", \"pid\": 1, \"boot_id\": \"b\"}",
                             "{\"state\": \"failed\", \"started\": \"x\", \"pid\": \"one\", \"boot_id\": \"b\"}"}) {
        INFO(text);
        auto r = backup_attempt_from_json(text);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
    }
}

TEST_CASE("load_backup_attempt: none, a finished one, and a running one whose process is gone", "[attempt]")
{
    TempDir t("ur-attempt");
    auto dir = open_at(AT_FDCWD, t.path, O_RDONLY | O_DIRECTORY);
    REQUIRE(dir);
    auto none = load_backup_attempt(dir->get());
    REQUIRE(none);
    CHECK_FALSE(*none);

    REQUIRE(save_backup_attempt(dir->get(), failed_attempt()));
    auto failed = load_backup_attempt(dir->get());
    REQUIRE(failed);
    REQUIRE(*failed);
    CHECK((*failed)->state == "failed");

    // This process is alive in this boot but is not upgrade-recovery (a pid reused
    // after a crash): interrupted. So is any pid of another boot.
    BackupAttempt run;
    run.state = "running";
    run.started = "2026-11-21T10:15:00Z";
    run.pid = ::getpid();
    run.boot_id = read_boot_id();
    REQUIRE(save_backup_attempt(dir->get(), run));
    auto r1 = load_backup_attempt(dir->get());
    REQUIRE(r1);
    CHECK((*r1)->state == "interrupted");
    run.boot_id = "another-boot";
    REQUIRE(save_backup_attempt(dir->get(), run));
    auto r2 = load_backup_attempt(dir->get());
    REQUIRE(r2);
    CHECK((*r2)->state == "interrupted");

    std::ofstream(t.path + "/" + kLastBackupFile, std::ios::trunc) << "{\"state\": ";
    auto bad = load_backup_attempt(dir->get());
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::Corrupt);
    CHECK(bad.error().message.starts_with("last-backup.json: "));
}
