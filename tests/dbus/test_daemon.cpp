// Unit tests of the daemon's pure parts: a{sv} option checking, the job-state record,
// the error name mapping. No bus daemon needed: messages are built and read locally.
#include "errors.hpp"
#include "jobstate.hpp"
#include "options.hpp"
#include "sdbus.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <sys/socket.h>

using namespace ur;
using namespace ur::dbus;

namespace
{

// A sealed method call whose body is an a{sv} filled by `fill`, rewound for reading.
MessagePtr options_message(const std::function<int(sd_bus_message*)>& fill)
{
    // Messages need an open bus: one end of a socketpair is enough (auth never
    // completes, so the bus is closed without the flush BusPtr would wait for).
    struct Closer {
        void operator()(sd_bus* b) const { sd_bus_close_unref(b); }
    };
    static std::unique_ptr<sd_bus, Closer> bus = [] {
        int fds[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        sd_bus* b = nullptr;
        REQUIRE(sd_bus_new(&b) >= 0);
        REQUIRE(sd_bus_set_fd(b, fds[0], fds[0]) >= 0);
        REQUIRE(sd_bus_start(b) >= 0);
        return std::unique_ptr<sd_bus, Closer>(b);
    }();
    sd_bus_message* m = nullptr;
    REQUIRE(sd_bus_message_new_method_call(bus.get(), &m, "io.openshift.UpgradeRecovery1",
                                           "/io/openshift/UpgradeRecovery1", "io.openshift.UpgradeRecovery1.Manager",
                                           "StartBackup") >= 0);
    MessagePtr msg(m);
    REQUIRE(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
    REQUIRE(fill(m) >= 0);
    REQUIRE(sd_bus_message_close_container(m) >= 0);
    REQUIRE(sd_bus_message_seal(m, 1, 0) >= 0);
    REQUIRE(sd_bus_message_rewind(m, 1) >= 0);
    return msg;
}

const std::initializer_list<OptionSpec> kSpec = {{"timeout", 'u'}, {"force", 'b'}, {"id", 's'}, {"size", 't'}};

} // namespace

TEST_CASE("options: known keys of the right type are read")
{
    auto m = options_message([](sd_bus_message* m) {
        int r = sd_bus_message_append(m, "{sv}", "timeout", "u", 30u);
        if (r >= 0) r = sd_bus_message_append(m, "{sv}", "force", "b", 1);
        if (r >= 0) r = sd_bus_message_append(m, "{sv}", "id", "s", "20240101T000000Z");
        if (r >= 0) r = sd_bus_message_append(m, "{sv}", "size", "t", uint64_t{1} << 40);
        return r;
    });
    auto o = read_options(m.get(), kSpec);
    REQUIRE(o);
    CHECK(o->u32("timeout") == 30u);
    CHECK(o->boolean("force") == true);
    CHECK(o->str("id") == "20240101T000000Z");
    CHECK(o->u64("size") == (uint64_t{1} << 40));
    CHECK_FALSE(o->has("other"));
}

TEST_CASE("options: empty dict")
{
    auto m = options_message([](sd_bus_message*) { return 0; });
    auto o = read_options(m.get(), kSpec);
    REQUIRE(o);
    CHECK_FALSE(o->has("timeout"));
    CHECK(o->u32("timeout").value_or(7) == 7u);
}

TEST_CASE("options: an unknown key is InvalidArgs naming it and the known ones")
{
    auto m = options_message([](sd_bus_message* m) { return sd_bus_message_append(m, "{sv}", "timout", "u", 3u); });
    auto o = read_options(m.get(), kSpec);
    REQUIRE_FALSE(o);
    CHECK(o.error().kind == ErrorKind::InvalidArgs);
    CHECK(o.error().message.find("'timout'") != std::string::npos);
    CHECK(o.error().message.find("timeout, force, id, size") != std::string::npos);
}

TEST_CASE("options: a wrong type is InvalidArgs naming the key and both types")
{
    auto m = options_message([](sd_bus_message* m) { return sd_bus_message_append(m, "{sv}", "timeout", "s", "5"); });
    auto o = read_options(m.get(), kSpec);
    REQUIRE_FALSE(o);
    CHECK(o.error().kind == ErrorKind::InvalidArgs);
    CHECK(o.error().message.find("'timeout'") != std::string::npos);
    CHECK(o.error().message.find("uint32") != std::string::npos);
    CHECK(o.error().message.find("'s'") != std::string::npos);

    auto m2 = options_message([](sd_bus_message* m) { return sd_bus_message_append(m, "{sv}", "force", "i", 1); });
    auto o2 = read_options(m2.get(), kSpec);
    REQUIRE_FALSE(o2);
    CHECK(o2.error().message.find("'force'") != std::string::npos);

    // A container where a basic type is wanted.
    auto m3 =
        options_message([](sd_bus_message* m) { return sd_bus_message_append(m, "{sv}", "id", "as", 2, "a", "b"); });
    auto o3 = read_options(m3.get(), kSpec);
    REQUIRE_FALSE(o3);
    CHECK(o3.error().message.find("'id'") != std::string::npos);
}

TEST_CASE("options: a key given twice is refused")
{
    auto m = options_message([](sd_bus_message* m) {
        int r = sd_bus_message_append(m, "{sv}", "force", "b", 1);
        return r < 0 ? r : sd_bus_message_append(m, "{sv}", "force", "b", 0);
    });
    auto o = read_options(m.get(), kSpec);
    REQUIRE_FALSE(o);
    CHECK(o.error().message.find("twice") != std::string::npos);
}

TEST_CASE("options: a method without options refuses every key")
{
    auto m = options_message([](sd_bus_message* m) { return sd_bus_message_append(m, "{sv}", "force", "b", 1); });
    auto o = read_options(m.get(), {});
    REQUIRE_FALSE(o);
    CHECK(o.error().message.find("known: none") != std::string::npos);
}

TEST_CASE("job state: round trip with escapes")
{
    DaemonState s;
    s.last_job_id = 42;
    JobRecord j;
    j.id = 42;
    j.type = "backup";
    j.state = "Active";
    j.backup_id = "20240101T000000Z-2";
    j.error_name = "";
    j.message = "copy 'etc'\nsecond line with a backslash \\ and = sign";
    j.started = 1700000000;
    j.finished = 0;
    s.job = j;
    auto p = parse_state(format_state(s));
    REQUIRE(p);
    CHECK(p->last_job_id == 42u);
    REQUIRE(p->job);
    CHECK(p->job->id == 42u);
    CHECK(p->job->type == "backup");
    CHECK(p->job->state == "Active");
    CHECK(p->job->backup_id == "20240101T000000Z-2");
    CHECK(p->job->message == j.message);
    CHECK(p->job->started == 1700000000);
    CHECK_FALSE(p->job->terminal());
    CHECK_FALSE(p->result); // none recorded: an older file, or no job yet
    // The Manager's result and LastError, which the job record alone cannot give.
    s.result = "Error";
    s.last_error_name = "io.openshift.UpgradeRecovery1.Error.Corrupt";
    s.last_error = "backup x is corrupt:\n1 mismatch \\ here";
    auto r = parse_state(format_state(s));
    REQUIRE(r);
    CHECK(r->result == std::optional<std::string>("Error"));
    CHECK(r->last_error_name == s.last_error_name);
    CHECK(r->last_error == s.last_error);
    for (const char* t : {"Succeeded", "Timeout", "Cancelled", "Error"}) {
        JobRecord r;
        r.state = t;
        CHECK(r.terminal());
    }
}

TEST_CASE("job state: no job, unknown keys, corrupt lines")
{
    auto p = parse_state("last_job_id=3\n");
    REQUIRE(p);
    CHECK(p->last_job_id == 3u);
    CHECK_FALSE(p->job);
    // A newer version's extra keys are ignored.
    auto q = parse_state("last_job_id=3\njob.id=3\njob.state=Succeeded\njob.future=x\n");
    REQUIRE(q);
    CHECK(q->job->state == "Succeeded");
    CHECK_FALSE(parse_state("last_job_id=x\n"));
    CHECK_FALSE(parse_state("garbage\n"));
    CHECK(parse_state("last_job_id=x\n").error().kind == ErrorKind::Corrupt);
}

TEST_CASE("job state: save and load under a root")
{
    char tmpl[] = "/tmp/ur-jobstate.XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    std::string root = tmpl;
    auto empty = load_state(root);
    REQUIRE(empty);
    CHECK(empty->last_job_id == 0u);
    DaemonState s;
    s.last_job_id = 7;
    s.job = JobRecord{7, "verify", "Error", "20240101T000000Z", kErrorPrefix + std::string("Corrupt"), "bad", 1, 2};
    REQUIRE(save_state(root, s));
    auto l = load_state(root);
    REQUIRE(l);
    CHECK(l->last_job_id == 7u);
    CHECK(l->job->error_name == "io.openshift.UpgradeRecovery1.Error.Corrupt");
    std::string cmd = "rm -rf '" + root + "'";
    CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("errors: every kind has its own name, mapped back and to an errno")
{
    REQUIRE(register_error_map() >= 0);
    std::set<std::string> names;
    for (ErrorKind k : {ErrorKind::Internal, ErrorKind::InvalidArgs, ErrorKind::BadConfig, ErrorKind::PartitionNotFound,
                        ErrorKind::NotMounted, ErrorKind::NoSpace, ErrorKind::Busy, ErrorKind::RecoveryInProgress,
                        ErrorKind::Corrupt, ErrorKind::Timeout, ErrorKind::Cancelled, ErrorKind::NotFound,
                        ErrorKind::Io, ErrorKind::Refused, ErrorKind::ExternalFailed, ErrorKind::PermissionDenied}) {
        std::string n = error_name(k);
        CHECK(n.rfind("io.openshift.UpgradeRecovery1.Error.", 0) == 0);
        CHECK((n.find("Failed") == std::string::npos || k == ErrorKind::ExternalFailed));
        CHECK(kind_from_error_name(n.c_str()) == k);
        CHECK(names.insert(n).second);
        BusError e;
        int r = set_error(e.get(), Error{k, 0, "msg"});
        CHECK(r < 0);
        CHECK(std::string(e.name()) == n);
        CHECK(std::string(e.message()) == "msg");
    }
    BusError e;
    CHECK(set_error(e.get(), Error{ErrorKind::NoSpace, 0, "full"}) == -ENOSPC);
    BusError e2;
    CHECK(set_error(e2.get(), Error{ErrorKind::Busy, 0, "busy"}) == -EBUSY);
    CHECK(kind_from_error_name("org.freedesktop.DBus.Error.InvalidArgs") == ErrorKind::InvalidArgs);
    CHECK(kind_from_error_name("org.freedesktop.DBus.Error.AccessDenied") == ErrorKind::PermissionDenied);
    CHECK(kind_from_error_name("com.example.Nope") == ErrorKind::Internal);
    CHECK(kind_from_error_name(nullptr) == ErrorKind::Internal);
}

TEST_CASE("errors: client exit codes follow the CLI's table")
{
    CHECK(exit_code_for(ErrorKind::InvalidArgs) == 2);
    CHECK(exit_code_for(ErrorKind::BadConfig) == 3);
    CHECK(exit_code_for(ErrorKind::PartitionNotFound) == 4);
    CHECK(exit_code_for(ErrorKind::NotMounted) == 4);
    CHECK(exit_code_for(ErrorKind::NoSpace) == 5);
    CHECK(exit_code_for(ErrorKind::RecoveryInProgress) == 6);
    CHECK(exit_code_for(ErrorKind::Corrupt) == 7);
    CHECK(exit_code_for(ErrorKind::Timeout) == 8);
    CHECK(exit_code_for(ErrorKind::Busy) == 9);
    CHECK(exit_code_for(ErrorKind::Cancelled) == 10);
    CHECK(exit_code_for(ErrorKind::Refused) == 11);
    CHECK(exit_code_for(ErrorKind::Io) == 1);
}

TEST_CASE("job state: numbers after damage stay above every legible one and the clock")
{
    // Nothing legible: the clock.
    CHECK(job_numbers_after_damage(std::string_view("\x01garbage"), 1700000000) == 1700000000u);
    CHECK(job_numbers_after_damage(std::string_view(""), 1700000000) == 1700000000u);
    // A clock set back (no RTC, before NTP): the numbers left in the file.
    CHECK(job_numbers_after_damage(std::string_view("last_job_id=41\njob.id=42\njob.state=Act\x01ive\nbad line\n"),
                                   10) == 42u);
    CHECK(job_numbers_after_damage(std::string_view("last_job_id=4x1\njob.id=17"), 5) == 17u);
    // Never so near the top that counting on wraps to 0 soon.
    CHECK(job_numbers_after_damage(std::string_view(""), INT64_MAX) == UINT32_MAX - (1u << 24));
    CHECK(job_numbers_after_damage(std::string_view(""), -5) == 0u);
}
