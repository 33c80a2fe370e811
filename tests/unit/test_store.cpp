// The backup store: ids (format, validity, ordering with -N suffixes, a clock
// that goes back), and on a plain-directory store (partition.allow_plain_directory)
// listing, retention, deleting the latest generation and stale staging cleanup.
#include "store.hpp"

#include "plain_store.hpp"
#include "temp_dir.hpp"
#include "test_skip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <grp.h>
#include <optional>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;
namespace fs = std::filesystem;

namespace
{

// A store in <root>/var/recovery as the CLI opens it when the config allows a
// plain directory and no partition carries the label. Without root the
// partition scan is refused (block devices are unreadable), so the same store
// is then put together by hand.
Store plain_store(const std::string& root)
{
    Config cfg;
    cfg.partition_label = "ur-unit-no-such-label-" + std::to_string(::getpid());
    cfg.allow_plain_directory = true;
    cfg.mount_point = "/var/recovery";
    auto s = open_store(cfg, root, true);
    if (!s && s.error().kind == ErrorKind::PermissionDenied && ::geteuid() != 0) {
        return ur::test::plain_store(root + "/var/recovery");
    }
    INFO((s ? std::string() : s.error().message));
    REQUIRE(s);
    CHECK(s->location.plain_directory);
    CHECK(s->path() == fs::canonical(root).string() + "/var/recovery");
    REQUIRE(s->backups_fd);
    return std::move(*s);
}

// A published generation with some content, and metadata that names it.
void make_backup(const Store& s, const std::string& id)
{
    std::string d = s.path() + "/backups/" + id;
    fs::create_directories(d + "/etc/sub");
    std::ofstream(d + "/etc/sub/file") << id;
    BackupMetadata m;
    m.id = id;
    m.created = "2024-01-01T00:00:00Z";
    std::ofstream(d + "/metadata.toml") << metadata_to_toml(m);
}

// A directory named like a backup id that is not a backup: made by hand, or
// left by damage. `metadata`: the file's content, none when absent.
void make_junk(const Store& s, const std::string& id, const std::optional<std::string>& metadata)
{
    std::string d = s.path() + "/backups/" + id;
    fs::create_directories(d + "/etc");
    std::ofstream(d + "/etc/precious") << "not ours to delete";
    if (metadata) std::ofstream(d + "/metadata.toml") << *metadata;
}

void set_latest(const Store& s, const std::string& id)
{
    std::string l = s.path() + "/latest";
    ::unlink(l.c_str());
    fs::create_symlink("backups/" + id, l);
}

std::string latest_of(const Store& s)
{
    auto l = latest_backup(s);
    REQUIRE(l);
    return *l ? **l : std::string();
}

std::vector<std::string> ids_of(const Store& s)
{
    auto l = list_backups(s);
    REQUIRE(l);
    return *l;
}

std::time_t utc(int y, int mo, int d, int h, int mi, int sec)
{
    struct tm tm = {};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return timegm(&tm);
}

} // namespace

TEST_CASE("make_backup_id is the UTC time YYYYMMDDTHHMMSSZ", "[store]")
{
    CHECK(make_backup_id(0, {}) == "19700101T000000Z");
    CHECK(make_backup_id(utc(2024, 2, 29, 23, 59, 58), {}) == "20240229T235958Z");
    CHECK(make_backup_id(utc(2099, 12, 31, 1, 2, 3), {}) == "20991231T010203Z");
    // Existing older ids do not change it.
    CHECK(make_backup_id(utc(2024, 5, 1, 12, 0, 0), {"20240430T080000Z", "20240101T000000Z-3"}) == "20240501T120000Z");
}

TEST_CASE("make_backup_id appends -N on a collision and never sorts before an existing id", "[store]")
{
    const auto t = utc(2024, 5, 1, 12, 0, 0);
    CHECK(make_backup_id(t, {"20240501T120000Z"}) == "20240501T120000Z-1");
    CHECK(make_backup_id(t, {"20240501T120000Z", "20240501T120000Z-1"}) == "20240501T120000Z-2");
    // Numeric, not lexical: after -9 comes -10, after -10 comes -11.
    CHECK(make_backup_id(t, {"20240501T120000Z-9"}) == "20240501T120000Z-10");
    CHECK(make_backup_id(t, {"20240501T120000Z-9", "20240501T120000Z-10"}) == "20240501T120000Z-11");
    // The clock went back: the new id still sorts after the newest existing one.
    std::vector<std::string> future = {"20240301T000000Z", "20250101T000000Z", "20250101T000000Z-2"};
    std::string id = make_backup_id(t, future);
    CHECK(valid_backup_id(id));
    for (const auto& f : future)
        CHECK(compare_backup_ids(id, f) > 0);
    CHECK(id == "20250101T000000Z-3");
    CHECK(make_backup_id(0, {"20240501T120000Z"}) == "20240501T120000Z-1");
    // Ids made one after another keep increasing.
    std::vector<std::string> have;
    for (int i = 0; i < 15; i++) {
        std::string n = make_backup_id(t - i, have); // the clock keeps going back
        CHECK(std::find(have.begin(), have.end(), n) == have.end());
        for (const auto& h : have)
            CHECK(compare_backup_ids(n, h) > 0);
        have.push_back(n);
    }
}

TEST_CASE("valid_backup_id accepts only YYYYMMDDTHHMMSSZ[-N]", "[store]")
{
    for (const char* ok : {"20240501T120000Z", "20240501T120000Z-1", "20240501T120000Z-10", "19700101T000000Z-9999999",
                           "20240229T235959Z", "20001231T000000Z"})
        CHECK(valid_backup_id(ok));
    for (const char* bad :
         {"", "latest", ".staging-20240501T120000Z", ".staging-deleted-20240501T120000Z", "20240501T120000",
          "20240501T120000z", "20240501t120000Z", "20240501X120000Z", "2024050AT120000Z", "20240501T120000Z-",
          "20240501T120000Z-0", "20240501T120000Z-01", "20240501T120000Z-1a", "20240501T120000Z_1",
          "20240501T120000Z-123456789", "20240501T120000Z/..", "../20240501T120000Z", " 20240501T120000Z",
          // digits, but not a time
          "99999999T999999Z", "20241340T256199Z", "20240001T000000Z", "20240100T000000Z", "20230229T000000Z",
          "20240431T000000Z", "20240501T240000Z", "20240501T126000Z", "20240501T120060Z", "19691231T235959Z"}) {
        INFO(bad);
        CHECK_FALSE(valid_backup_id(bad));
    }
}

TEST_CASE("compare_backup_ids orders by time, then by the -N suffix numerically", "[store]")
{
    std::vector<std::string> want = {"20231231T235959Z",    "20240501T120000Z",   "20240501T120000Z-1",
                                     "20240501T120000Z-2",  "20240501T120000Z-9", "20240501T120000Z-10",
                                     "20240501T120000Z-11", "20240501T120001Z",   "20250101T000000Z"};
    for (size_t i = 0; i < want.size(); i++)
        for (size_t j = 0; j < want.size(); j++) {
            INFO(want[i] << " vs " << want[j]);
            int c = compare_backup_ids(want[i], want[j]);
            CHECK((i < j ? c < 0 : i > j ? c > 0 : c == 0));
        }
    auto shuffled = want;
    std::reverse(shuffled.begin(), shuffled.end());
    std::swap(shuffled[1], shuffled[5]);
    std::sort(shuffled.begin(), shuffled.end(),
              [](const auto& a, const auto& b) { return compare_backup_ids(a, b) < 0; });
    CHECK(shuffled == want);
}

TEST_CASE("plain-directory store: list_backups sorts by id and ignores staging and junk", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    CHECK(ids_of(s).empty());
    CHECK(latest_of(s).empty());
    for (const char* id : {"20240501T120000Z-10", "20240501T120000Z", "20240501T120000Z-2", "20240430T000000Z"})
        make_backup(s, id);
    fs::create_directories(s.path() + "/backups/.staging-20240601T000000Z");
    fs::create_directories(s.path() + "/backups/not-a-backup");
    std::ofstream(s.path() + "/backups/20240701T000000Z.tmp") << "";
    CHECK(ids_of(s) == std::vector<std::string>{"20240430T000000Z", "20240501T120000Z", "20240501T120000Z-2",
                                                "20240501T120000Z-10"});
    set_latest(s, "20240501T120000Z-2");
    CHECK(latest_of(s) == "20240501T120000Z-2");
    // latest pointing outside backups/ is not trusted.
    ::unlink((s.path() + "/latest").c_str());
    fs::create_symlink("/etc", s.path() + "/latest");
    auto bad = latest_backup(s);
    REQUIRE(!bad);
    CHECK(bad.error().kind == ErrorKind::Corrupt);
}

TEST_CASE("prune_backups keeps the newest N", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    std::vector<std::string> ids = {"20240101T000000Z",   "20240102T000000Z",    "20240103T000000Z",
                                    "20240103T000000Z-1", "20240103T000000Z-10", "20240104T000000Z"};
    for (const auto& id : ids)
        make_backup(s, id);
    set_latest(s, ids.back());

    auto r = prune_backups(s, 3);
    REQUIRE(r);
    CHECK(*r == std::vector<std::string>{"20240101T000000Z", "20240102T000000Z", "20240103T000000Z"});
    CHECK(ids_of(s) == std::vector<std::string>{"20240103T000000Z-1", "20240103T000000Z-10", "20240104T000000Z"});
    CHECK(latest_of(s) == "20240104T000000Z");
    // Nothing is left behind by the deletes (no staging-like names).
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(s.path() + "/backups")) {
        (void)e;
        entries++;
    }
    CHECK(entries == 3);

    // Already within the limit: nothing happens.
    auto again = prune_backups(s, 3);
    REQUIRE(again);
    CHECK(again->empty());
    CHECK(ids_of(s).size() == 3);

    // keep = 0 is treated as 1: the latest survives.
    auto one = prune_backups(s, 0);
    REQUIRE(one);
    CHECK(ids_of(s) == std::vector<std::string>{"20240104T000000Z"});
    CHECK(latest_of(s) == "20240104T000000Z");
}

TEST_CASE("prune_backups never deletes the generation latest names", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    std::vector<std::string> ids = {"20240101T000000Z", "20240102T000000Z", "20240103T000000Z", "20240104T000000Z"};
    for (const auto& id : ids)
        make_backup(s, id);
    // latest is the oldest one (a newer backup was taken and never switched, or the
    // operator pointed it back): it must survive retention.
    set_latest(s, ids[0]);
    auto r = prune_backups(s, 2);
    REQUIRE(r);
    CHECK(std::find(r->begin(), r->end(), ids[0]) == r->end());
    CHECK(r->size() == 2);
    auto left = ids_of(s);
    CHECK(left.size() == 2);
    CHECK(std::find(left.begin(), left.end(), ids[0]) != left.end());
    CHECK(std::find(left.begin(), left.end(), ids[3]) != left.end()); // and the newest
    CHECK(latest_of(s) == ids[0]);
    CHECK(fs::exists(s.path() + "/backups/" + ids[0] + "/etc/sub/file"));

    // keep = 1 with latest not the newest: latest stays, whatever else goes.
    auto r1 = prune_backups(s, 1);
    REQUIRE(r1);
    CHECK(ids_of(s) == std::vector<std::string>{ids[0]});
    CHECK(latest_of(s) == ids[0]);
}

TEST_CASE("directories named like ids that are not backups are neither counted nor pruned", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    std::vector<std::string> real = {"20240101T000000Z", "20240102T000000Z", "20240103T000000Z"};
    for (const auto& id : real)
        make_backup(s, id);
    set_latest(s, real.back());
    // Future and past ones, without metadata, with metadata that does not read or
    // names another backup (a copy made by hand), and a file.
    BackupMetadata other;
    other.id = real[0];
    make_junk(s, "20990101T000000Z", std::nullopt);
    make_junk(s, "20980101T000000Z", "format = ");
    make_junk(s, "20970101T000000Z", metadata_to_toml(other));
    make_junk(s, "20000101T000000Z", std::nullopt);
    std::ofstream(s.path() + "/backups/20960101T000000Z") << "a file";

    CHECK(ids_of(s) == real);

    // Retention 3: the three backups are all there is to keep; nothing goes.
    auto r = prune_backups(s, 3);
    REQUIRE(r);
    CHECK(r->empty());
    CHECK(ids_of(s) == real);
    // Retention 2: the oldest backup goes, and nothing that is not one (the 2000 one is older).
    auto r2 = prune_backups(s, 2);
    REQUIRE(r2);
    CHECK(*r2 == std::vector<std::string>{real[0]});
    for (const char* j : {"20990101T000000Z", "20980101T000000Z", "20970101T000000Z", "20000101T000000Z"})
        CHECK(fs::exists(s.path() + "/backups/" + j + "/etc/precious"));
    CHECK(latest_of(s) == real.back());

    // Deleting the newest backup moves latest to the next backup, never onto junk;
    // the last backup is still the only one, whatever else is there.
    REQUIRE(delete_backup(s, real[2]));
    CHECK(latest_of(s) == real[1]);
    auto only = delete_backup(s, real[1]);
    REQUIRE_FALSE(only);
    CHECK(only.error().kind == ErrorKind::Refused);
    // Junk goes only when named, and is never the only backup.
    REQUIRE(delete_backup(s, "20990101T000000Z"));
    CHECK_FALSE(fs::exists(s.path() + "/backups/20990101T000000Z"));
    CHECK(latest_of(s) == real[1]);
    // A damaged `latest` is set to the newest backup by a delete, not to junk.
    set_latest(s, "20980101T000000Z");
    REQUIRE(delete_backup(s, "20980101T000000Z"));
    CHECK(latest_of(s) == real[1]);
}

namespace
{

// `fn` run as uid/gid 65534 in a child; what it returns comes back as the child's output.
std::string as_nobody(const std::function<std::string()>& fn)
{
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(out[0]);
        if (::setgroups(0, nullptr) < 0 || ::setresgid(65534, 65534, 65534) < 0 || ::setresuid(65534, 65534, 65534) < 0)
            std::_Exit(1);
        std::string msg = fn();
        (void)!::write(out[1], msg.data(), msg.size());
        std::_Exit(0);
    }
    ::close(out[1]);
    std::string msg;
    char buf[512];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
        msg.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return msg;
}

std::string kind_and_message(const Result<>& r)
{
    return r ? "ok" : std::string(error_kind_name(r.error().kind)) + ": " + r.error().message;
}

} // namespace

TEST_CASE("a backup that cannot be read just now is neither damage nor let go as if it were none", "[store]")
{
    UR_RUN_ONLY_IF(::geteuid() == 0, "needs root to read as another user");
    TempDir t;
    Store s = plain_store(t.path);
    const std::string older = "20240101T000000Z", newer = "20240102T000000Z";
    make_backup(s, older);
    make_backup(s, newer);
    set_latest(s, newer);
    make_junk(s, "20230101T000000Z", "format = ");
    // The store (0700) opened to the other user, one backup's metadata not (EACCES).
    REQUIRE(::chmod((s.path() + "/backups").c_str(), 0755) == 0);
    REQUIRE(::chmod((s.path() + "/backups/" + older + "/metadata.toml").c_str(), 0600) == 0);
    CHECK(ids_of(s) == std::vector<std::string>{older, newer}); // root reads it

    // Sorted apart from damage: the listing goes on without it, and says why.
    CHECK(as_nobody([&] {
              auto g = scan_generations(s);
              if (!g) return "scan failed: " + g.error().message;
              std::string out;
              for (const auto& b : g->backups)
                  out += "backup " + b + "\n";
              for (const auto& d : g->damaged)
                  out += "damaged " + d + "\n";
              for (const auto& u : g->unreadable)
                  out += "unreadable " + u.id + " " + std::string(error_kind_name(u.error.kind)) + "\n";
              return out;
          }) == "backup " + newer + "\ndamaged 20230101T000000Z\nunreadable " + older + " PermissionDenied\n");

    // Alone with the junk, it is the only backup there may be: delete refuses it as
    // it would a readable one, and names why it counts.
    REQUIRE(delete_backup(s, newer, true));
    const std::string refused = as_nobody([&] { return kind_and_message(delete_backup(s, older)); });
    CHECK_THAT(refused, Catch::StartsWith("Refused: '" + older +
                                          "' is the only backup there may be (its metadata "
                                          "cannot be read: "));
    CHECK_THAT(refused, Catch::Contains("'upgrade-recovery delete --force " + older + "'"));
    CHECK(fs::exists(s.path() + "/backups/" + older + "/metadata.toml"));
}

TEST_CASE("read_metadata: an id that is not its directory's, missing metadata, a file", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    make_backup(s, "20240101T000000Z");
    REQUIRE(read_metadata(s, "20240101T000000Z"));
    // A copy made by hand names the backup it was copied from.
    fs::copy(s.path() + "/backups/20240101T000000Z", s.path() + "/backups/20240202T000000Z",
             fs::copy_options::recursive);
    auto copy = read_metadata(s, "20240202T000000Z");
    REQUIRE_FALSE(copy);
    CHECK(copy.error().kind == ErrorKind::Corrupt);
    CHECK_THAT(copy.error().message, Catch::Contains("20240202T000000Z/metadata.toml") &&
                                         Catch::Contains("'20240101T000000Z'") && Catch::Contains("does not match"));
    // No such generation: NotFound. One without metadata: damage.
    auto none = read_metadata(s, "20240303T000000Z");
    REQUIRE_FALSE(none);
    CHECK(none.error().kind == ErrorKind::NotFound);
    fs::create_directories(s.path() + "/backups/20240303T000000Z");
    auto bare = read_metadata(s, "20240303T000000Z");
    REQUIRE_FALSE(bare);
    CHECK(bare.error().kind == ErrorKind::Corrupt);
    CHECK_THAT(bare.error().message, Catch::Contains("20240303T000000Z/metadata.toml is missing"));
    std::ofstream(s.path() + "/backups/20240404T000000Z") << "x";
    auto file = read_metadata(s, "20240404T000000Z");
    REQUIRE_FALSE(file);
    CHECK(file.error().kind == ErrorKind::Corrupt);
    fs::create_directory_symlink("20240101T000000Z", s.path() + "/backups/20240505T000000Z");
    auto link = read_metadata(s, "20240505T000000Z");
    REQUIRE_FALSE(link);
    CHECK(link.error().kind == ErrorKind::Corrupt);
}

TEST_CASE("read_metadata: metadata.toml a symlink, a FIFO or too large is Corrupt", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    const std::string id = "20240101T000000Z", meta = s.path() + "/backups/" + id + "/metadata.toml";
    make_backup(s, id);
    fs::rename(meta, t.path + "/saved.toml");
    auto kind = [&] {
        auto m = read_metadata(s, id);
        INFO((m ? std::string("read") : m.error().message));
        REQUIRE_FALSE(m);
        CHECK_THAT(m.error().message, Catch::Contains(meta));
        return m.error().kind;
    };
    fs::create_symlink(t.path + "/saved.toml", meta);
    CHECK(kind() == ErrorKind::Corrupt);
    fs::remove(meta);
    REQUIRE(::mkfifo(meta.c_str(), 0600) == 0);
    CHECK(kind() == ErrorKind::Corrupt);
    fs::remove(meta);
    fs::copy_file(t.path + "/saved.toml", meta);
    fs::resize_file(meta, (16 << 20) + 1); // the TOML, then NULs
    CHECK(kind() == ErrorKind::Corrupt);
    fs::remove(meta);
    fs::rename(t.path + "/saved.toml", meta);
    CHECK(read_metadata(s, id));
}

TEST_CASE("delete_backup of latest moves latest to the newest other generation", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    std::vector<std::string> ids = {"20240101T000000Z", "20240102T000000Z", "20240102T000000Z-1"};
    for (const auto& id : ids)
        make_backup(s, id);
    set_latest(s, ids[2]);

    REQUIRE(delete_backup(s, ids[2]));
    CHECK(latest_of(s) == ids[1]);
    CHECK(ids_of(s) == std::vector<std::string>{ids[0], ids[1]});
    CHECK(!fs::exists(s.path() + "/backups/" + ids[2]));

    // Deleting a generation that is not latest leaves latest alone.
    REQUIRE(delete_backup(s, ids[0]));
    CHECK(latest_of(s) == ids[1]);

    // Unknown ids and ids that are not ids: NotFound, nothing changes.
    auto nf = delete_backup(s, "20200101T000000Z");
    REQUIRE(!nf);
    CHECK(nf.error().kind == ErrorKind::NotFound);
    auto junk = delete_backup(s, "../var");
    REQUIRE(!junk);
    CHECK(ids_of(s) == std::vector<std::string>{ids[1]});

    // The only backup: refused unless allowed, then latest goes too.
    auto only = delete_backup(s, ids[1]);
    REQUIRE(!only);
    CHECK(only.error().kind == ErrorKind::Refused);
    CHECK_THAT(only.error().message,
               Catch::Contains("'upgrade-recovery delete --force " + ids[1] + "' deletes it anyway"));
    CHECK(latest_of(s) == ids[1]);
    CHECK(ids_of(s) == std::vector<std::string>{ids[1]});
    // The same with latest gone or dangling: counted, so still refused.
    fs::remove(s.path() + "/latest");
    auto unlinked = delete_backup(s, ids[1]);
    REQUIRE(!unlinked);
    CHECK(unlinked.error().kind == ErrorKind::Refused);
    set_latest(s, "20991231T000000Z");
    auto dangling = delete_backup(s, ids[1]);
    REQUIRE(!dangling);
    CHECK(dangling.error().kind == ErrorKind::Refused);
    CHECK(ids_of(s) == std::vector<std::string>{ids[1]});
    set_latest(s, ids[1]);
    REQUIRE(delete_backup(s, ids[1], true));
    CHECK(ids_of(s).empty());
    CHECK(latest_of(s).empty());
    CHECK(!fs::exists(fs::symlink_status(s.path() + "/latest")));
}

TEST_CASE("delete_backup of a latest that is older than another generation", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    std::vector<std::string> ids = {"20240101T000000Z", "20240102T000000Z", "20240103T000000Z"};
    for (const auto& id : ids)
        make_backup(s, id);
    set_latest(s, ids[1]);
    REQUIRE(delete_backup(s, ids[1]));
    CHECK(latest_of(s) == ids[2]); // the newest remaining one
}

TEST_CASE("remove_stale_staging removes interrupted backups and half-deleted ones only", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    auto none = remove_stale_staging(s);
    REQUIRE(none);
    CHECK(*none == 0);

    make_backup(s, "20240101T000000Z");
    set_latest(s, "20240101T000000Z");
    std::string b = s.path() + "/backups/";
    // An interrupted backup: nested, with a symlink pointing
    // outside (which must not be followed) and a fifo.
    fs::create_directories(b + ".staging-20240102T000000Z/etc/deep/er");
    std::ofstream(b + ".staging-20240102T000000Z/etc/deep/er/f") << "x";
    std::ofstream(b + ".staging-20240102T000000Z/manifest") << "# upgrade-recovery manifest 1\n";
    std::string outside = t.path + "/outside";
    fs::create_directories(outside);
    std::ofstream(outside + "/keep") << "keep";
    fs::create_symlink(outside, b + ".staging-20240102T000000Z/etc/out");
    REQUIRE(::mkfifo((b + ".staging-20240102T000000Z/etc/fifo").c_str(), 0600) == 0);
    // A delete interrupted after its rename.
    fs::create_directories(b + ".staging-deleted-20231231T000000Z/etc");

    auto n = remove_stale_staging(s);
    REQUIRE(n);
    CHECK(*n == 2);
    CHECK(!fs::exists(b + ".staging-20240102T000000Z"));
    CHECK(!fs::exists(b + ".staging-deleted-20231231T000000Z"));
    CHECK(fs::exists(b + "20240101T000000Z/etc/sub/file"));
    CHECK(fs::exists(outside + "/keep"));
    CHECK(latest_of(s) == "20240101T000000Z");
    auto again = remove_stale_staging(s);
    REQUIRE(again);
    CHECK(*again == 0);
}

TEST_CASE("lock_store: one holder at a time", "[store]")
{
    TempDir t;
    Store s = plain_store(t.path);
    auto a = lock_store(s);
    REQUIRE(a);
    CHECK(a->held());
    // flock locks belong to the open file description: a second open is refused.
    auto b = lock_store(s);
    REQUIRE(!b);
    CHECK(b.error().kind == ErrorKind::Busy);
    a = StoreLock();
    auto c = lock_store(s);
    CHECK(c);
}

TEST_CASE("delete_backup removes a wide generation in parallel, never what is mounted in it", "[store]")
{
    // A private mount namespace for the bind mount below, entered before any fd
    // of the store is opened (an fd keeps resolving in the namespace it came from).
    const bool root = ::geteuid() == 0;
    if (root) {
        REQUIRE(::unshare(CLONE_NEWNS) == 0);
        REQUIRE(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
    }
    TempDir t;
    Store s = plain_store(t.path);
    // 120 pods x 3 levels: enough subtrees for the parallel removal.
    auto make_wide = [&](const std::string& id) {
        make_backup(s, id);
        std::string d = s.path() + "/backups/" + id + "/kubelet/pods";
        for (int i = 0; i < 120; i++) {
            std::string p = d + "/p" + std::to_string(i) + "/volumes/v";
            fs::create_directories(p);
            std::ofstream(p + "/file") << i;
            fs::create_symlink("file", p + "/link");
        }
    };
    make_wide("20240101T000000Z");
    make_wide("20240102T000000Z");
    make_backup(s, "20240103T000000Z");
    set_latest(s, "20240103T000000Z");

    REQUIRE(delete_backup(s, "20240101T000000Z"));
    CHECK(ids_of(s) == std::vector<std::string>{"20240102T000000Z", "20240103T000000Z"});
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(s.path() + "/backups")) {
        (void)e;
        entries++;
    }
    CHECK(entries == 2); // no half-deleted leftovers

    UR_RUN_ONLY_IF(root, "not root: the mount below a generation");
    // Something mounted inside a generation (by hand, or a bind mount gone
    // wrong) is not emptied: the delete stops with Busy and the files stay.
    std::string outside = t.path + "/outside";
    fs::create_directories(outside);
    std::ofstream(outside + "/keep") << "keep";
    std::string mp = s.path() + "/backups/20240102T000000Z/kubelet/pods/p7/volumes/v";
    REQUIRE(::mount(outside.c_str(), mp.c_str(), nullptr, MS_BIND, nullptr) == 0);
    auto r = delete_backup(s, "20240102T000000Z");
    ::umount2(mp.c_str(), MNT_DETACH);
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().kind == ErrorKind::Busy);
    CHECK(fs::exists(outside + "/keep"));
}

TEST_CASE("stale temporaries of killed atomic writes go; young ones and other names stay")
{
    TempDir t;
    Store s = plain_store(t.path);
    const std::string base = s.path();
    fs::create_directories(base + "/recovery");
    auto make = [&](const std::string& rel, bool old) {
        std::ofstream(base + "/" + rel) << "x";
        if (old) {
            struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
            REQUIRE(::utimensat(AT_FDCWD, (base + "/" + rel).c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
        }
    };
    make(".last-backup.json.0123456789abcdef.tmp", true);
    make("recovery/.journal.fedcba9876543210.tmp", true);
    make("recovery/.armed.00000000000000aa.tmp", false); // a writer may still be at it
    make("recovery/.journal.not-hex-digits!.tmp", true);
    make("recovery/journal.tmp", true);
    // replace_symlink_at's temporary when publishing `latest`.
    fs::create_symlink("backups/20240101T000000Z", base + "/.latest.00112233445566ff.tmp");
    struct timespec old_ts[2] = {{1000000000, 0}, {1000000000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (base + "/.latest.00112233445566ff.tmp").c_str(), old_ts, AT_SYMLINK_NOFOLLOW) == 0);
    auto n = remove_stale_store_temporaries(s);
    REQUIRE(n);
    CHECK(*n == 3);
    CHECK_FALSE(fs::is_symlink(base + "/.latest.00112233445566ff.tmp"));
    CHECK_FALSE(fs::exists(base + "/.last-backup.json.0123456789abcdef.tmp"));
    CHECK_FALSE(fs::exists(base + "/recovery/.journal.fedcba9876543210.tmp"));
    CHECK(fs::exists(base + "/recovery/.armed.00000000000000aa.tmp"));
    CHECK(fs::exists(base + "/recovery/.journal.not-hex-digits!.tmp"));
    CHECK(fs::exists(base + "/recovery/journal.tmp"));
}
