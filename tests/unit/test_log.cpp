// Where log lines go. With stderr a journal stream ($JOURNAL_STREAM names it),
// plain messages are journaled once, from the stream, and events natively with
// their MESSAGE_ID; without it (or when it names another stream) messages go
// natively too. A datagram socket at /run/systemd/journal/socket, in a private
// mount namespace, receives what sd-journal sends; each case runs in a child
// process because the stream check is made once per process.
#include "log.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace ur;
using ur::test::TempDir;

namespace
{

// The fake journal: set up once, before any case runs.
const int journal_fd = [] {
    if (::geteuid() != 0) {
        std::fprintf(stderr, "SKIP: needs root (a private mount namespace with its own /run)\n");
        std::_Exit(77);
    }
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("ur-test-run", "/run", "tmpfs", 0, "mode=0755") != 0) {
        std::perror("private /run");
        std::_Exit(1);
    }
    ::mkdir("/run/systemd", 0755);
    ::mkdir("/run/systemd/journal", 0755);
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "/run/systemd/journal/socket");
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("journal socket");
        std::_Exit(1);
    }
    return fd;
}();

std::vector<std::string> received()
{
    std::vector<std::string> out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(journal_fd, buf, sizeof buf, 0);
        if (n < 0) break;
        out.emplace_back(buf, static_cast<size_t>(n));
    }
    return out;
}

int count_with(const std::vector<std::string>& entries, const std::string& line)
{
    int n = 0;
    for (const auto& e : entries)
        if (("\n" + e).find("\n" + line + "\n") != std::string::npos) n++;
    return n;
}

enum class Stream { None, Stderr, Other };

// In a child: stderr to `errfile`, JOURNAL_STREAM as asked, then one message and one event.
void run_child(const std::string& errfile, Stream stream, const std::string& tag, const char* identifier = nullptr)
{
    received(); // drain
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = ::open(errfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(fd, 2);
        struct stat st;
        ::fstat(stream == Stream::Other ? 0 : 2, &st);
        char v[64];
        std::snprintf(v, sizeof v, "%llu:%llu", static_cast<unsigned long long>(st.st_dev),
                      static_cast<unsigned long long>(st.st_ino));
        if (stream == Stream::None)
            ::unsetenv("JOURNAL_STREAM");
        else
            ::setenv("JOURNAL_STREAM", v, 1);
        if (identifier) log::set_identifier(identifier);
        log::set_journal(true);
        log::info("message " + tag);
        log::event(log::kBackupStarted, log::Level::Info, "event " + tag, {{"STEP", "start"}});
        std::_Exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}

std::string slurp(const std::string& p)
{
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("stderr is the journal stream: messages once (the stream), events natively")
{
    TempDir t("ur-log");
    std::string err = t.path + "/stderr";
    run_child(err, Stream::Stderr, "a");
    auto j = received();
    CHECK(count_with(j, "MESSAGE=message a") == 0);
    CHECK(count_with(j, "MESSAGE=event a") == 1);
    CHECK(count_with(j, "MESSAGE_ID=" + std::string(log::kBackupStarted)) == 1);
    CHECK(count_with(j, "UPGRADE_RECOVERY_STEP=start") == 1);
    CHECK(slurp(err) == "message a\nevent a\n");
}

TEST_CASE("no journal stream: messages and events go to the journal natively and to stderr")
{
    TempDir t("ur-log");
    std::string err = t.path + "/stderr";
    for (Stream s : {Stream::None, Stream::Other}) {
        run_child(err, s, "b");
        auto j = received();
        INFO("JOURNAL_STREAM " << (s == Stream::None ? "unset" : "naming another stream"));
        CHECK(count_with(j, "MESSAGE=message b") == 1);
        CHECK(count_with(j, "MESSAGE=event b") == 1);
        CHECK(count_with(j, "SYSLOG_IDENTIFIER=upgrade-recovery") == 2);
        CHECK(slurp(err) == "message b\nevent b\n");
    }
}

// Messages name files from the host, which may hold any byte: on a terminal (or a
// journal stream, where a line feed starts a new entry) they are escaped, as the
// CLI's own output is; the native journal entry keeps them as they are.
TEST_CASE("stderr escapes control characters and stray bytes; the native entry keeps them")
{
    TempDir t("ur-log");
    std::string err = t.path + "/stderr";
    const std::string tag = "\x1b]0;owned\x07 \xff\\";
    run_child(err, Stream::None, tag);
    auto j = received();
    CHECK(count_with(j, "MESSAGE=message " + tag) == 1);
    CHECK(count_with(j, "MESSAGE=event " + tag) == 1);
    const std::string shown = "\\x1b]0;owned\\x07 \\xff\\x5c";
    CHECK(slurp(err) == "message " + shown + "\nevent " + shown + "\n");
}

TEST_CASE("the daemon's identifier")
{
    TempDir t("ur-log");
    run_child(t.path + "/stderr", Stream::None, "c", "upgrade-recoveryd");
    auto j = received();
    CHECK(count_with(j, "SYSLOG_IDENTIFIER=upgrade-recoveryd") == 2);
    CHECK(count_with(j, "SYSLOG_IDENTIFIER=upgrade-recovery") == 0);
}
