#include "process.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace
{

Command sh(const std::string& script, std::chrono::seconds timeout = 30s)
{
    Command c;
    c.argv = {"/bin/sh", "-c", script};
    c.timeout = timeout;
    return c;
}

// Dead means gone, or a zombie waiting for a reaper (PID 1 here may not reap orphans).
bool process_dead(pid_t pid)
{
    for (int i = 0; i < 100; ++i) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
        if (!f) return true;
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        auto rp = s.rfind(')');
        if (rp != std::string::npos && rp + 2 < s.size() && (s[rp + 2] == 'Z' || s[rp + 2] == 'X')) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

std::vector<pid_t> read_pids(const std::string& file)
{
    std::ifstream f(file);
    std::vector<pid_t> pids;
    pid_t p;
    while (f >> p)
        pids.push_back(p);
    return pids;
}

double seconds_since(Clock::time_point t)
{
    return std::chrono::duration<double>(Clock::now() - t).count();
}

} // namespace

TEST_CASE("exit codes and signals are reported")
{
    auto ok = run_command(sh("exit 0"));
    REQUIRE(ok);
    CHECK(ok->exit_code == 0);

    auto three = run_command(sh("echo out; echo err >&2; exit 3"));
    REQUIRE(three);
    CHECK(three->exit_code == 3);
    CHECK(three->out == "out\n");
    CHECK(three->err == "err\n");

    auto killed = run_command(sh("kill -KILL $$"));
    REQUIRE(killed);
    CHECK(killed->exit_code == -1);
    CHECK(killed->signal == SIGKILL);
}

TEST_CASE("run_checked names the command, the status and the end of stderr")
{
    auto r = run_checked(sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i >&2; done; exit 7"));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::ExternalFailed);
    CHECK_THAT(r.error().message, Catch::Contains("/bin/sh -c"));
    CHECK_THAT(r.error().message, Catch::Contains("status 7"));
    CHECK_THAT(r.error().message, Catch::Contains("line12"));
    CHECK_THAT(r.error().message, Catch::Contains("line3"));
    CHECK_THAT(r.error().message, !Catch::Contains("line2\n"));

    auto sig = run_checked(sh("kill -TERM $$"));
    REQUIRE_FALSE(sig);
    CHECK_THAT(sig.error().message, Catch::Contains("signal 15"));

    auto ok = run_checked(sh("echo fine"));
    REQUIRE(ok);
    CHECK(ok->out == "fine\n");
}

TEST_CASE("a missing command or directory is an error before anything runs")
{
    Command c;
    c.argv = {"ur-no-such-command-xyz"};
    auto r = run_command(c);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::NotFound);
    CHECK_THAT(r.error().message, Catch::Contains("ur-no-such-command-xyz"));

    Command d = sh("pwd");
    d.cwd = "/nonexistent-ur-dir";
    auto rd = run_command(d);
    REQUIRE_FALSE(rd);
    CHECK_THAT(rd.error().message, Catch::Contains("/nonexistent-ur-dir"));

    Command e;
    REQUIRE_FALSE(run_command(e));
}

TEST_CASE("large output on both streams does not deadlock")
{
    // stderr first: a runner that reads stdout only would block the child forever.
    auto r = run_command(sh("head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 2500000 /dev/zero | tr '\\0' o"));
    REQUIRE(r);
    CHECK(r->exit_code == 0);
    CHECK(r->err.size() == 3000000);
    CHECK(r->out.size() == 2500000);
    CHECK(r->err.find_first_not_of('e') == std::string::npos);
    CHECK(r->out.find_first_not_of('o') == std::string::npos);
    CHECK_FALSE(r->truncated);
}

TEST_CASE("stdin data reaches the command")
{
    std::string data;
    for (int i = 0; i < 200000; ++i)
        data += "line " + std::to_string(i) + "\n"; // > 1 MiB
    Command c;
    c.argv = {"cat"};
    c.stdin_data = data;
    auto r = run_command(c);
    REQUIRE(r);
    CHECK(r->exit_code == 0);
    CHECK(r->out == data);

    // A command that never reads stdin: no SIGPIPE kills the caller.
    Command t;
    t.argv = {"true"};
    t.stdin_data = std::string(4 << 20, 'x');
    auto rt = run_command(t);
    REQUIRE(rt);
    CHECK(rt->exit_code == 0);

    // Without stdin_data the command reads /dev/null, never our terminal.
    auto rn = run_command(sh("cat; echo eof"));
    REQUIRE(rn);
    CHECK(rn->out == "eof\n");
}

TEST_CASE("environment overrides, PATH lookup and cwd")
{
    TempDir tmp;
    ::setenv("UR_TEST_INHERITED", "inherited", 1);
    Command c = sh("printf '%s|%s|%s' \"$UR_TEST_INHERITED\" \"$UR_TEST_SET\" \"$HOME\"");
    c.env_set = {{"UR_TEST_SET", "set value"}, {"HOME", "/override"}};
    auto r = run_command(c);
    REQUIRE(r);
    CHECK(r->out == "inherited|set value|/override");

    // PATH from env_set decides which program argv[0] names.
    std::string tool = tmp.path + "/ur-test-tool";
    {
        std::ofstream f(tool);
        f << "#!/bin/sh\necho from-tool \"$@\"\n";
    }
    ::chmod(tool.c_str(), 0755);
    Command p;
    p.argv = {"ur-test-tool", "a b"};
    p.env_set = {{"PATH", tmp.path + ":/usr/bin:/bin"}};
    auto rp = run_command(p);
    REQUIRE(rp);
    CHECK(rp->out == "from-tool a b\n");

    Command w = sh("pwd");
    w.cwd = tmp.path;
    auto rw = run_command(w);
    REQUIRE(rw);
    CHECK(rw->out == tmp.path + "\n");
}

TEST_CASE("the deadline kills the command and its grandchildren")
{
    TempDir tmp;
    std::string pids = tmp.path + "/pids";
    auto t0 = Clock::now();
    auto r = run_command(sh("sleep 100 & echo $! >> " + pids + "; (sleep 100; true) & echo $! >> " + pids +
                                "; echo $$ >> " + pids + "; sleep 100",
                            1s));
    double took = seconds_since(t0);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK_THAT(r.error().message, Catch::Contains("sleep 100"));
    CHECK_THAT(r.error().message, Catch::Contains("timed out"));
    CHECK(took >= 0.9);
    CHECK(took < 5); // far below sleep 100; generous for a loaded machine
    auto all = read_pids(pids);
    REQUIRE(all.size() == 3);
    for (pid_t p : all)
        CHECK(process_dead(p));
}

TEST_CASE("a group that ignores SIGTERM gets SIGKILL after the grace")
{
    TempDir tmp;
    std::string pids = tmp.path + "/pids";
    auto t0 = Clock::now();
    // An ignored signal stays ignored across fork and exec, so the grandchild ignores it too.
    auto r = run_command(sh("trap '' TERM; sleep 100 & echo $! >> " + pids + "; sleep 100", 1s));
    double took = seconds_since(t0);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(took >= 2.5);
    CHECK(took < 8);
    auto all = read_pids(pids);
    REQUIRE(all.size() == 1);
    CHECK(process_dead(all[0]));
}

TEST_CASE("the CancelToken cancels and carries a deadline")
{
    CancelToken tok;
    std::thread t([&] {
        std::this_thread::sleep_for(300ms);
        tok.cancel();
    });
    auto t0 = Clock::now();
    auto r = run_command(sh("sleep 100", 0s), &tok);
    t.join();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Cancelled);
    CHECK_THAT(r.error().message, Catch::Contains("sleep 100"));
    CHECK(seconds_since(t0) < 5);

    CancelToken dl;
    dl.set_deadline(Clock::now() + 500ms);
    t0 = Clock::now();
    auto rd = run_command(sh("sleep 100", 60s), &dl);
    REQUIRE_FALSE(rd);
    CHECK(rd.error().kind == ErrorKind::Timeout);
    CHECK(seconds_since(t0) < 5);
}

// A step runs under a child token: the parent's cancel (a SIGTERM) must show at the
// child's very next check, or a step that finishes quickly ends "done" instead of
// "cancelled" (crash-recover once saw that with a watcher thread polling the parent).
TEST_CASE("a child CancelToken shares its parent's cancel and deadline at once")
{
    CancelToken parent;
    CancelToken child(&parent);
    REQUIRE(child.check());
    CHECK_FALSE(child.has_deadline());
    parent.cancel();
    CHECK(child.cancelled());
    auto r = child.check();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Cancelled);

    CancelToken p2;
    CancelToken c2(&p2);
    c2.set_timeout(60s);
    auto own = c2.deadline();
    p2.set_deadline(Clock::now() + 1h); // later than the child's own: the own one holds
    CHECK(c2.deadline() == own);
    p2.set_deadline(Clock::now() - 1ms); // the parent's passed: the child expires with it
    CHECK(c2.deadline() < own);
    auto rt = c2.check();
    REQUIRE_FALSE(rt);
    CHECK(rt.error().kind == ErrorKind::Timeout);
    c2.cancel(); // a child's cancel does not reach its parent
    CHECK_FALSE(p2.cancelled());
}

TEST_CASE("leftover background processes holding the pipes do not block the caller")
{
    TempDir tmp;
    std::string pids = tmp.path + "/pids";
    auto t0 = Clock::now();
    auto r = run_command(sh("sleep 100 & echo $! > " + pids + "; echo done"));
    REQUIRE(r);
    CHECK(r->exit_code == 0);
    CHECK(r->out == "done\n");
    CHECK(seconds_since(t0) < 5);
    auto all = read_pids(pids);
    REQUIRE(all.size() == 1);
    CHECK(process_dead(all[0]));
}
