#include "compat_script.hpp"
#include "fd.hpp"
#include "process.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

struct Dir {
    std::string path;
    UniqueFd fd;
    Dir()
    {
        char t[] = "/tmp/ur-test-compat XXXXXX"; // a space on purpose: quoting
        REQUIRE(mkdtemp(t));
        path = t;
        fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        REQUIRE(fd);
    }
    ~Dir() { fs::remove_all(path); }
};

// Stand-in for the binary: prints each argument on its own line and exits
// with $FAKE_EXIT, so both the argv mapping and the exit code pass-through show.
std::string make_fake_binary(const std::string& dir)
{
    std::string bin = dir + "/bin/upgrade-recovery";
    fs::create_directories(dir + "/bin");
    std::ofstream f(bin);
    f << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\nexit \"${FAKE_EXIT:-0}\"\n";
    f.close();
    ::chmod(bin.c_str(), 0755);
    return bin;
}

struct Run {
    int code;
    std::vector<std::string> argv;
    std::string err;
};

Run run_script(const Dir& d, std::vector<std::string> args, int fake_exit = 0)
{
    Command c;
    c.argv = {d.path + "/upgrade-recovery.sh"};
    for (auto& a : args)
        c.argv.push_back(a);
    c.env_set = {{"FAKE_EXIT", std::to_string(fake_exit)}, {"PATH", "/usr/bin:/bin"}};
    c.timeout = std::chrono::seconds(20);
    auto r = run_command(c);
    REQUIRE(r);
    Run out{r->exit_code, {}, r->err};
    size_t pos = 0;
    while (pos < r->out.size()) {
        size_t nl = r->out.find('\n', pos);
        if (nl == std::string::npos) nl = r->out.size();
        out.argv.push_back(r->out.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

using V = std::vector<std::string>;

} // namespace

TEST_CASE("the script is written atomically with mode 0700")
{
    Dir d;
    std::string bin = make_fake_binary(d.path);
    REQUIRE(write_compat_script(d.fd.get(), bin));
    struct stat st;
    REQUIRE(::stat((d.path + "/upgrade-recovery.sh").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(S_ISREG(st.st_mode));
    // Rewriting replaces it (same name, no leftovers).
    REQUIRE(write_compat_script(d.fd.get(), bin));
    size_t entries = 0;
    for (auto& e : fs::directory_iterator(d.path)) {
        (void)e;
        ++entries;
    }
    CHECK(entries == 2); // bin/ and the script

    auto rel = write_compat_script(d.fd.get(), "relative/upgrade-recovery");
    REQUIRE_FALSE(rel);
    CHECK(rel.error().kind == ErrorKind::InvalidArgs);
}

TEST_CASE("old options map onto the CLI")
{
    Dir d;
    std::string bin = make_fake_binary(d.path);
    REQUIRE(write_compat_script(d.fd.get(), bin));

    CHECK(run_script(d, {}).argv == V{"recover"});
    CHECK(run_script(d, {"--take-backup"}).argv == V{"backup"});
    CHECK(run_script(d, {"--take-backup", "--force"}).argv == V{"backup", "--force"});
    CHECK(run_script(d, {"--resume"}).argv == V{"recover", "--resume"});
    CHECK(run_script(d, {"--restart"}).argv == V{"recover", "--restart"});
    CHECK(run_script(d, {"--step"}).argv == V{"recover", "--step"});
    CHECK(run_script(d, {"--resume", "--step"}).argv == V{"recover", "--resume", "--step"});
    CHECK(run_script(d, {"--force"}).argv == V{"recover", "--force"});
    CHECK(run_script(d, {"--restart", "--step", "--force"}).argv == V{"recover", "--restart", "--step", "--force"});
    CHECK(run_script(d, {"--dir", "/var/my recovery", "--take-backup"}).argv ==
          V{"--dir", "/var/my recovery", "backup"});
    CHECK(run_script(d, {"--take-backup", "--dir", "/var/recovery"}).argv == V{"--dir", "/var/recovery", "backup"});
    CHECK(run_script(d, {"--dir=/mnt/r", "--resume"}).argv == V{"--dir", "/mnt/r", "recover", "--resume"});
}

TEST_CASE("exit codes pass through and usage errors exit 2")
{
    Dir d;
    std::string bin = make_fake_binary(d.path);
    REQUIRE(write_compat_script(d.fd.get(), bin));

    CHECK(run_script(d, {"--resume"}, 7).code == 7);
    CHECK(run_script(d, {"--take-backup"}, 0).code == 0);

    auto help = run_script(d, {"-h"});
    CHECK(help.code == 0);
    REQUIRE_FALSE(help.argv.empty());
    CHECK_THAT(help.argv.front(), Catch::StartsWith("Usage: upgrade-recovery.sh"));
    CHECK(run_script(d, {"--help"}).code == 0);

    auto bad = run_script(d, {"--bogus"});
    CHECK(bad.code == 2);
    CHECK(bad.argv.empty()); // the binary never ran
    CHECK_THAT(bad.err, Catch::Contains("unknown option '--bogus'"));

    CHECK(run_script(d, {"--dir"}).code == 2);
    CHECK(run_script(d, {"--resume", "--restart"}).code == 2);
    CHECK(run_script(d, {"--take-backup", "--resume"}).code == 2);
}

TEST_CASE("a binary path with quotes and spaces is kept intact")
{
    Dir d;
    std::string odd = d.path + "/it's here";
    fs::create_directories(odd);
    std::string bin = make_fake_binary(odd);
    REQUIRE(write_compat_script(d.fd.get(), bin));
    auto r = run_script(d, {"--take-backup"});
    CHECK(r.code == 0);
    CHECK(r.argv == V{"backup"});

    // A missing binary: exec fails, the script reports it and exits non-zero.
    fs::remove(bin);
    auto missing = run_script(d, {});
    CHECK(missing.code != 0);
}
