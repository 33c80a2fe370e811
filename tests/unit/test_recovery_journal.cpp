// The recovery journal and markers on a real directory: JSON round trips,
// durable replacement, in-progress rules, arm/disarm/abandon, status output.
#include "host_info.hpp"
#include "recovery_journal.hpp"
#include "recovery_steps.hpp"
#include "store.hpp"

#include "plain_store.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

using namespace ur;
using ur::test::plain_store;
using ur::test::TempDir;
namespace fs = std::filesystem;

namespace
{

// A generation directory with readable metadata (arming reads it).
void make_backup(const std::string& store_dir, const std::string& id)
{
    fs::create_directories(store_dir + "/backups/" + id);
    BackupMetadata m;
    m.id = id;
    m.created = "2024-01-01T00:00:00Z";
    std::ofstream(store_dir + "/backups/" + id + "/" + kMetadataFile) << metadata_to_toml(m);
}

RecoveryJournal sample()
{
    RecoveryJournal j;
    j.recovery_id = "20240501T120000Z";
    j.backup_id = "20240430T080000Z";
    j.started = "2024-05-01T12:00:00Z";
    j.mode = "initrd";
    j.root = "/sysroot";
    j.phase1_boot_id = "b0071d";
    j.state = RecoveryState::Failed;
    j.error = "wait-etcd: timed out";
    j.mc_files = {"/var/lib/extra/a.conf", "/opt/mc/\xc3\xa9t\xc3\xa9"};
    JournalStep a;
    a.name = "verify";
    a.state = StepState::Done;
    a.attempts = 1;
    a.started = "2024-05-01T12:00:01Z";
    a.finished = "2024-05-01T12:00:05Z";
    a.note = "1234 entries verified";
    JournalStep b;
    b.name = "record-containers";
    b.state = StepState::Done;
    b.data = {{"etcd", "abc123"}, {"etcd-operator", ""}};
    JournalStep c;
    c.name = "wait-etcd";
    c.state = StepState::Failed;
    c.attempts = 2;
    c.error = "container etcd was not recreated";
    JournalStep d;
    d.name = "finish";
    // A plan in the step table's order with the steps every plan has.
    JournalStep restored;
    restored.name = "restore-files";
    restored.state = StepState::Done;
    JournalStep p1;
    p1.name = "phase1-done";
    p1.state = StepState::Done;
    j.steps = {a, restored, p1, b, c, d};
    return j;
}

// A journal in `st` as a run leaves it: a complete one has every step done.
void set_state(RecoveryJournal& j, RecoveryState st)
{
    j.state = st;
    if (st == RecoveryState::Complete)
        for (auto& s : j.steps)
            s.state = StepState::Done;
}

} // namespace

TEST_CASE("journal JSON round trip keeps every field")
{
    RecoveryJournal j = sample();
    auto text = journal_to_json(j);
    auto back = journal_from_json(text);
    REQUIRE(back);
    CHECK(back->recovery_id == j.recovery_id);
    CHECK(back->backup_id == j.backup_id);
    CHECK(back->mode == "initrd");
    CHECK(back->root == "/sysroot");
    CHECK(back->phase1_boot_id == "b0071d");
    CHECK(back->state == RecoveryState::Failed);
    CHECK(back->error == j.error);
    CHECK(back->mc_files == j.mc_files);
    REQUIRE(back->steps.size() == 6);
    CHECK(back->steps[0].state == StepState::Done);
    CHECK(back->steps[0].note == "1234 entries verified");
    CHECK(back->steps[0].finished == "2024-05-01T12:00:05Z");
    CHECK(back->steps[3].data.at("etcd") == "abc123");
    CHECK(back->steps[3].data.at("etcd-operator").empty());
    CHECK(back->steps[4].attempts == 2);
    CHECK(back->steps[4].error == "container etcd was not recreated");
    CHECK(back->steps[5].state == StepState::Pending);
    // Stable: serializing again gives the same text.
    CHECK(journal_to_json(*back) == text);
    // The result field readers see.
    auto o = nlohmann::json::parse(text);
    CHECK(o["state"] == "failed");
    CHECK(o["result"] == "");
}

TEST_CASE("abandoned: recorded, and read from the error of a journal without the key")
{
    RecoveryJournal j = sample();
    CHECK_FALSE(journal_from_json(journal_to_json(j))->abandoned);
    j.state = RecoveryState::Aborted;
    j.abandoned = true;
    auto o = nlohmann::json::parse(journal_to_json(j));
    CHECK(o["abandoned"] == true);
    CHECK(journal_from_json(o.dump())->abandoned);
    // Written before the key: only an aborted journal whose error says so.
    o.erase("abandoned");
    o["error"] = "abandoned: operator gave up";
    CHECK(journal_from_json(o.dump())->abandoned);
    o["error"] = "refused: backup is corrupt";
    CHECK_FALSE(journal_from_json(o.dump())->abandoned);
    o["error"] = "abandoned: operator gave up";
    o["state"] = "failed";
    CHECK_FALSE(journal_from_json(o.dump())->abandoned);
}

TEST_CASE("final states and next step")
{
    RecoveryJournal j = sample();
    REQUIRE(j.next_step());
    CHECK(j.next_step()->name == "wait-etcd");
    j.state = RecoveryState::Complete;
    CHECK(j.result() == "complete");
    CHECK_FALSE(recovery_state_in_progress(j.state));
    j.state = RecoveryState::Aborted;
    CHECK(j.result() == "failed");
    CHECK_FALSE(recovery_state_in_progress(j.state));
    for (auto s : {RecoveryState::Running, RecoveryState::Paused, RecoveryState::Failed})
        CHECK(recovery_state_in_progress(s));
    for (auto& s : j.steps)
        s.state = StepState::Skipped;
    CHECK(j.next_step() == nullptr);
}

TEST_CASE("malformed or unknown journals are Corrupt, not a crash")
{
    for (const char* bad :
         {"", "{", "[]", R"({"format":2,"recovery_id":"a","backup_id":"b","state":"running","steps":[]})",
          R"({"format":1,"recovery_id":"a","backup_id":"b","state":"sleeping","steps":[]})",
          R"({"format":1,"recovery_id":"a","backup_id":"b","state":"running","steps":[{"name":"x","state":"odd"}]})",
          R"({"format":1,"recovery_id":1,"backup_id":"b","state":"running","steps":[]})"}) {
        auto r = journal_from_json(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
    }
}

// The plan a run follows is the journal's: one that is not the step table's (damage,
// a hand edit) must not run steps out of order, skip the restore or, with no steps
// at all, be taken as complete; its backup id names a directory under backups/.
TEST_CASE("a journal whose plan or backup id is not valid is Corrupt")
{
    auto with = [](const std::string& backup, const std::string& steps) {
        return R"({"format":1,"recovery_id":"20240501T120000Z","backup_id":")" + backup +
               R"(","state":"running","steps":[)" + steps + "]}";
    };
    auto step = [](const char* n) { return std::string(R"({"name":")") + n + R"(","state":"pending"})"; };
    const std::string needed =
        step("verify") + "," + step("restore-files") + "," + step("phase1-done") + "," + step("finish");
    const std::string id = "20240430T080000Z";
    REQUIRE(journal_from_json(with(id, needed))); // the steps every plan has, in order
    REQUIRE(journal_from_json(with(id + "-2", needed)));
    const std::pair<std::string, std::string> bad[] = {
        {with(id, ""), "the step list is empty"},
        {with(id, step("verify") + "," + step("restore-files") + "," + step("no-such-step") + "," +
                      step("phase1-done") + "," + step("finish")),
         "unknown step 'no-such-step'"},
        {with(id, step("restore-files") + "," + step("verify") + "," + step("phase1-done") + "," + step("finish")),
         "step 'verify' is out of order (after 'restore-files')"},
        {with(id, step("verify") + "," + step("restore-files") + "," + step("restore-files") + "," +
                      step("phase1-done") + "," + step("finish")),
         "step 'restore-files' appears twice"},
        {with(id, step("verify") + "," + step("restore-files") + "," + step("finish")),
         "the plan lacks step 'phase1-done'"},
        {with(id, step("verify") + "," + step("restore-files") + "," + step("phase1-done")),
         "the plan lacks step 'finish'"},
        {with("../etc", needed), "backup_id '../etc' is not a backup id"},
        {with("latest", needed), "backup_id 'latest' is not a backup id"},
        {with("", needed), "backup_id '' is not a backup id"},
        {std::regex_replace(with(id, needed), std::regex("20240501T120000Z"), ""),
         "recovery_id '' is not a recovery id"},
        {std::regex_replace(with(id, needed), std::regex("20240501T120000Z"), "a\\nb"),
         "recovery_id 'a?b' is not a recovery id"},
        {std::regex_replace(with(id, needed), std::regex("20240501T120000Z"), std::string(65, 'r')),
         "recovery_id '" + std::string(64, 'r') + "' is not a recovery id"},
        {std::regex_replace(with(id, needed), std::regex("running"), "complete"),
         "the recovery is complete, but step 'verify' is pending"},
    };
    for (const auto& [text, said] : bad) {
        INFO(text);
        auto r = journal_from_json(text);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
        CHECK(r.error().message == said);
    }
    // The whole table, as new_journal writes it, in its order.
    RecoveryJournal full;
    full.recovery_id = "20240501T120000Z";
    full.backup_id = id;
    for (const auto& d : recovery_steps()) {
        JournalStep st;
        st.name = d.name;
        full.steps.push_back(st);
    }
    CHECK(journal_from_json(journal_to_json(full)));
    // Complete once every step is done or skipped; another recovery id still loads.
    for (auto& st : full.steps)
        st.state = st.name == "wipe-images" ? StepState::Skipped : StepState::Done;
    full.state = RecoveryState::Complete;
    full.recovery_id = "20000101T000000Z-r";
    CHECK(journal_from_json(journal_to_json(full)));
}

// Which file is damaged is in the message: the administrator must find it.
TEST_CASE("a journal that does not load names its file")
{
    TempDir t;
    Store s = plain_store(t.path);
    fs::create_directories(t.path + "/recovery");
    std::ofstream(t.path + "/recovery/journal")
        << R"({"format":1,"recovery_id":"20240501T120000Z","backup_id":"20240430T080000Z","state":"complete","steps":[]})";
    auto dir = JournalDir::open(s, false);
    REQUIRE(dir);
    auto j = dir->load();
    REQUIRE_FALSE(j);
    CHECK(j.error().kind == ErrorKind::Corrupt);
    CHECK_THAT(j.error().message, Catch::StartsWith(t.path + "/recovery/journal is damaged: the step list is empty"));
}

TEST_CASE("JournalDir saves durably and loads back")
{
    TempDir t;
    Store s = plain_store(t.path);
    auto none = JournalDir::open(s, false);
    REQUIRE(none);
    CHECK_FALSE(none->exists());
    auto empty = none->load();
    REQUIRE(empty);
    CHECK_FALSE(*empty);

    auto dir = JournalDir::open(s, true);
    REQUIRE(dir);
    REQUIRE(dir->exists());
    CHECK(fs::is_directory(t.path + "/recovery"));
    RecoveryJournal j = sample();
    REQUIRE(dir->save(j));
    CHECK_FALSE(j.updated.empty());
    auto loaded = dir->load();
    REQUIRE(loaded);
    REQUIRE(*loaded);
    CHECK((*loaded)->steps.size() == 6);
    // Only the journal itself: no temporaries left behind by the atomic replace.
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(t.path + "/recovery"))
        names.push_back(e.path().filename());
    CHECK(names == std::vector<std::string>{"journal"});

    // A second save replaces it whole.
    set_state(j, RecoveryState::Complete);
    REQUIRE(dir->save(j));
    CHECK((*dir->load())->state == RecoveryState::Complete);

    // Kept as journal.previous by a copy: the journal stays until a new one replaces it.
    REQUIRE(dir->keep_as_previous());
    CHECK(fs::exists(t.path + "/recovery/journal"));
    std::ifstream prev(t.path + "/recovery/journal.previous");
    std::string kept((std::istreambuf_iterator<char>(prev)), std::istreambuf_iterator<char>());
    CHECK_THAT(kept, Catch::Contains("\"complete\""));
    CHECK((*dir->load())->state == RecoveryState::Complete);
    fs::remove(t.path + "/recovery/journal");
    REQUIRE(dir->keep_as_previous()); // nothing to keep is fine
    CHECK(fs::exists(t.path + "/recovery/journal.previous"));
}

TEST_CASE("a corrupt journal on disk is reported")
{
    TempDir t;
    Store s = plain_store(t.path);
    fs::create_directories(t.path + "/recovery");
    std::ofstream(t.path + "/recovery/journal") << "{ not json";
    auto dir = JournalDir::open(s, false);
    REQUIRE(dir);
    auto j = dir->load();
    REQUIRE_FALSE(j);
    CHECK(j.error().kind == ErrorKind::Corrupt);
    CHECK_FALSE(recovery_in_progress(s));
}

TEST_CASE("recovery_in_progress follows the journal and the markers")
{
    TempDir t;
    Store s = plain_store(t.path);
    CHECK(*recovery_in_progress(s) == false); // no recovery directory at all
    auto dir = JournalDir::open(s, true);
    REQUIRE(dir);
    CHECK(*recovery_in_progress(s) == false);

    RecoveryJournal j = sample();
    for (auto st : {RecoveryState::Running, RecoveryState::Paused, RecoveryState::Failed}) {
        j.state = st;
        REQUIRE(dir->save(j));
        CHECK(*recovery_in_progress(s) == true);
    }
    for (auto st : {RecoveryState::Complete, RecoveryState::Aborted}) {
        set_state(j, st);
        REQUIRE(dir->save(j));
        CHECK(*recovery_in_progress(s) == false);
    }
    // Markers count as started even with a finished journal.
    REQUIRE(dir->set_phase2_pending("r1"));
    CHECK(*recovery_in_progress(s) == true);
    CHECK(**dir->phase2_pending() == "r1");
    REQUIRE(dir->clear_phase2_pending());
    REQUIRE(dir->clear_phase2_pending()); // idempotent
    CHECK(*recovery_in_progress(s) == false);
    REQUIRE(dir->set_armed("b1"));
    CHECK(*recovery_in_progress(s) == true);
    REQUIRE(dir->clear_armed());
    CHECK(*recovery_in_progress(s) == false);
}

TEST_CASE("check_backup_deletable refuses the backups a recovery still needs")
{
    TempDir t;
    Store s = plain_store(t.path);
    const std::string a = "20240101T000000Z", b = "20240202T000000Z";
    make_backup(t.path, a);
    make_backup(t.path, b);
    auto refused = [&](const std::string& id) {
        auto r = check_backup_deletable(s, id);
        return !r && r.error().kind == ErrorKind::Refused;
    };
    CHECK(check_backup_deletable(s, a)); // no recovery directory at all

    REQUIRE(arm_recovery(s, a));
    CHECK(refused(a));
    CHECK(check_backup_deletable(s, b));
    REQUIRE(disarm_recovery(s));
    CHECK(check_backup_deletable(s, a));

    // Phase 1 done: `armed` is gone, phase 2 still reads the backup.
    auto dir = JournalDir::open(s, true);
    REQUIRE(dir);
    RecoveryJournal j = sample();
    j.backup_id = a;
    j.state = RecoveryState::Paused;
    REQUIRE(dir->save(j));
    REQUIRE(dir->set_phase2_pending(j.recovery_id));
    CHECK(refused(a));
    CHECK(check_backup_deletable(s, b));
    // A failed phase 2 waits for --resume: still needed.
    REQUIRE(dir->clear_phase2_pending());
    j.state = RecoveryState::Failed;
    REQUIRE(dir->save(j));
    CHECK(refused(a));
    // Finished or abandoned: free again.
    for (auto st : {RecoveryState::Complete, RecoveryState::Aborted}) {
        set_state(j, st);
        REQUIRE(dir->save(j));
        CHECK(check_backup_deletable(s, a));
    }
}

TEST_CASE("arm, disarm and abandon")
{
    TempDir t;
    Store s = plain_store(t.path);
    make_backup(t.path, "20240101T000000Z");
    make_backup(t.path, "20240202T000000Z");

    auto missing = arm_recovery(s, "20250101T000000Z");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    for (const char* bad : {"", "../etc", ".staging-x", "a/b", "20240101T000000Z/../x", "latest"}) {
        auto r = arm_recovery(s, bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::InvalidArgs);
    }
    // A generation whose metadata is unreadable is refused now, not in the initramfs.
    fs::create_directories(t.path + "/backups/20240303T000000Z");
    std::ofstream(t.path + "/backups/20240303T000000Z/" + kMetadataFile) << "format = ";
    auto corrupt = arm_recovery(s, "20240303T000000Z");
    REQUIRE_FALSE(corrupt);
    CHECK(corrupt.error().kind == ErrorKind::Corrupt);
    CHECK(corrupt.error().message.find("cannot arm backup 20240303T000000Z") != std::string::npos);
    CHECK_FALSE(fs::exists(t.path + "/recovery/armed"));

    REQUIRE(arm_recovery(s, "20240101T000000Z"));
    std::ifstream in(t.path + "/recovery/armed");
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(content == "20240101T000000Z\n");
    auto st = read_recovery_status(s);
    REQUIRE(st);
    CHECK(st->in_progress);
    CHECK(*st->armed == "20240101T000000Z");
    CHECK(st->summary.find("next boot") != std::string::npos);

    REQUIRE(disarm_recovery(s));
    CHECK_FALSE(fs::exists(t.path + "/recovery/armed"));
    REQUIRE(disarm_recovery(s)); // nothing armed: fine

    // A recovery of another backup in progress refuses arming; the same backup is fine.
    auto dir = JournalDir::open(s, true);
    RecoveryJournal j = sample();
    j.backup_id = "20240202T000000Z";
    j.state = RecoveryState::Failed;
    REQUIRE(dir->save(j));
    auto other = arm_recovery(s, "20240101T000000Z");
    REQUIRE_FALSE(other);
    CHECK(other.error().kind == ErrorKind::RecoveryInProgress);
    REQUIRE(arm_recovery(s, "20240202T000000Z"));

    REQUIRE(dir->set_phase2_pending(j.recovery_id));
    auto gave_up = abandon_recovery(s, "operator gave up");
    REQUIRE(gave_up);
    CHECK(gave_up->abandoned);
    auto after = dir->load();
    REQUIRE(after);
    CHECK((*after)->state == RecoveryState::Aborted);
    CHECK((*after)->result() == "failed");
    CHECK((*after)->error.find("operator gave up") != std::string::npos);
    CHECK((*after)->abandoned);
    CHECK_FALSE((*after)->finished.empty());
    CHECK_FALSE(fs::exists(t.path + "/recovery/armed"));
    CHECK_FALSE(fs::exists(t.path + "/recovery/phase2-pending"));
    CHECK(*recovery_in_progress(s) == false);
    // Again: nothing left to give up, and it says so.
    auto again = abandon_recovery(s, "operator gave up twice");
    REQUIRE(again);
    CHECK_FALSE(again->abandoned);
}

TEST_CASE("status text and JSON")
{
    RecoveryJournal j = sample();
    auto failed = make_recovery_status(j, std::nullopt, std::nullopt);
    CHECK(failed.in_progress);
    CHECK(failed.summary.find("failed at step wait-etcd") != std::string::npos);
    CHECK(failed.next.find("--resume") != std::string::npos);
    auto text = recovery_status_to_text(failed);
    CHECK(text.find("record-containers") != std::string::npos);
    CHECK(text.find("Next:") != std::string::npos);
    auto o = nlohmann::json::parse(recovery_status_to_json(failed));
    CHECK(o["in_progress"] == true);
    CHECK(o["armed"].is_null());
    CHECK(o["journal"]["steps"][4]["state"] == "failed");
    CHECK(o["journal"]["steps"][3]["data"]["etcd"] == "abc123");

    j.state = RecoveryState::Paused;
    j.mode = "live";
    auto p2 = make_recovery_status(j, std::nullopt, std::string("r"));
    CHECK(p2.summary.find("phase 2 pending") != std::string::npos);
    CHECK(p2.next.find("reboot") != std::string::npos);

    j.state = RecoveryState::Complete;
    j.finished = "2024-05-01T14:00:00Z";
    auto done = make_recovery_status(j, std::nullopt, std::nullopt);
    CHECK_FALSE(done.in_progress);
    CHECK(done.summary.find("complete at 2024-05-01T14:00:00Z") != std::string::npos);
    CHECK(done.next.empty());
    auto none = make_recovery_status(std::nullopt, std::nullopt, std::nullopt);
    CHECK(none.summary == "no recovery");
    CHECK(nlohmann::json::parse(recovery_status_to_json(none))["journal"].is_null());
}

// A running journal names the process at work on it; when that is no upgrade-recovery
// process of this boot any more, status and the daemon's RecoveryState say Interrupted.
TEST_CASE("a running journal whose process is gone is interrupted")
{
    RecoveryJournal j = sample();
    j.state = RecoveryState::Running;
    // Written by a version that named no process: cannot tell, stays running.
    auto older = make_recovery_status(j, std::nullopt, std::nullopt);
    CHECK_FALSE(older.interrupted);
    CHECK(recovery_state_label(older) == "Running");
    CHECK(older.summary.find("running at step wait-etcd") != std::string::npos);

    // This test binary is alive but is no upgrade-recovery process: the pid was reused.
    j.runner_pid = ::getpid();
    j.runner_boot_id = read_boot_id();
    auto back = journal_from_json(journal_to_json(j));
    REQUIRE(back);
    CHECK(back->runner_pid == j.runner_pid);
    CHECK(back->runner_boot_id == j.runner_boot_id);
    auto gone = make_recovery_status(*back, std::nullopt, std::nullopt);
    CHECK(gone.interrupted);
    CHECK(gone.in_progress);
    CHECK(recovery_state_label(gone) == "Interrupted");
    CHECK(gone.summary.find("interrupted at step wait-etcd") != std::string::npos);
    CHECK(gone.next.find("recover --resume") != std::string::npos);
    CHECK(recovery_status_to_text(gone).find("state:          interrupted") != std::string::npos);
    CHECK(nlohmann::json::parse(recovery_status_to_json(gone))["interrupted"] == true);
    // Another boot: gone whatever runs under that pid now.
    j.runner_boot_id = "another-boot";
    CHECK(recovery_interrupted(j));
    // Only a running journal can be interrupted.
    j.state = RecoveryState::Failed;
    CHECK_FALSE(recovery_interrupted(j));
    CHECK(recovery_state_label(make_recovery_status(j, std::nullopt, std::nullopt)) == "Failed");
}

TEST_CASE("rfc3339 timestamps")
{
    auto s = rfc3339_now();
    REQUIRE(s.size() == 20);
    CHECK(s[10] == 'T');
    CHECK(s.back() == 'Z');
    auto n = rfc3339_now(true);
    REQUIRE(n.size() == 30);
    CHECK(n[19] == '.');
}

// A damaged journal: the error names the file and the way out; abandon refuses it
// unless forced, then removes the markers and moves it aside, never deleting it.
TEST_CASE("abandon --force moves a damaged journal aside and clears the markers")
{
    TempDir t;
    Store s = plain_store(t.path);
    auto dir = JournalDir::open(s, true);
    REQUIRE(dir);
    const std::string bad = "{\"format\": 1, \"steps\": [";
    std::ofstream(t.path + "/recovery/journal") << bad;
    REQUIRE(dir->set_armed("20240101T000000Z"));
    REQUIRE(dir->set_phase2_pending("20240501T120000Z"));

    auto refused = abandon_recovery(s, "by hand");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::Corrupt);
    CHECK_THAT(refused.error().message, Catch::StartsWith(t.path + "/recovery/journal is damaged: not a journal: "));
    CHECK_THAT(refused.error().message, Catch::Contains("'upgrade-recovery recover --abandon --force'"));
    CHECK(strip_journal_remedy(refused.error().message).find("--force") == std::string::npos);
    CHECK(fs::exists(t.path + "/recovery/armed")); // nothing changed
    CHECK(fs::exists(t.path + "/recovery/journal"));

    auto gone = abandon_recovery(s, "by hand", true);
    REQUIRE(gone);
    CHECK(gone->abandoned);
    CHECK_THAT(gone->damaged_kept, Catch::StartsWith("journal.damaged-"));
    CHECK(valid_backup_id(gone->damaged_kept.substr(std::string("journal.damaged-").size()))); // UTC, as ids
    std::ifstream kept(t.path + "/recovery/" + gone->damaged_kept);
    CHECK(std::string((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>()) == bad);
    CHECK_FALSE(fs::exists(t.path + "/recovery/journal"));
    CHECK_FALSE(fs::exists(t.path + "/recovery/armed"));
    CHECK_FALSE(fs::exists(t.path + "/recovery/phase2-pending"));
    CHECK(*recovery_in_progress(s) == false);

    // Forced with nothing damaged and nothing in progress: nothing to do.
    auto nothing = abandon_recovery(s, "by hand", true);
    REQUIRE(nothing);
    CHECK_FALSE(nothing->abandoned);
    CHECK(nothing->damaged_kept.empty());
}
