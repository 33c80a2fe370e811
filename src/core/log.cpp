#include "log.hpp"

#include "utf8_text.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <vector>

namespace ur::log
{

namespace
{
std::atomic<bool> to_stderr{true};
std::atomic<bool> to_journal{false};
std::atomic<bool> verbose{false};
std::mutex stderr_mutex;
std::string identifier = "upgrade-recovery"; // set before threads start

// systemd connected stderr to the journal ($JOURNAL_STREAM names the stream):
// every printed line is journaled already.
bool stderr_is_journal()
{
    static const bool yes = [] {
        const char* e = std::getenv("JOURNAL_STREAM");
        unsigned long long dev = 0, ino = 0;
        struct stat st;
        return e && std::sscanf(e, "%llu:%llu", &dev, &ino) == 2 && ::fstat(2, &st) == 0 &&
               static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
    }();
    return yes;
}

int priority(Level l)
{
    switch (l) {
    case Level::Debug: return LOG_DEBUG;
    case Level::Info: return LOG_INFO;
    case Level::Warning: return LOG_WARNING;
    case Level::Error: return LOG_ERR;
    }
    return LOG_INFO;
}

void print(Level level, std::string_view msg)
{
    if (!to_stderr.load()) return;
    if (level == Level::Debug && !verbose.load()) return;
    const char* prefix = level == Level::Error ? "error: " : level == Level::Warning ? "warning: " : "";
    // File names and store contents in a message may hold escape sequences or stray
    // bytes; on a terminal (or a journal stream) they are shown, not obeyed.
    const std::string text = printable_lines(msg);
    std::lock_guard lk(stderr_mutex);
    fprintf(stderr, "%s%s\n", prefix, text.c_str());
}
} // namespace

void set_stderr(bool on)
{
    to_stderr = on;
}
void set_journal(bool on)
{
    to_journal = on;
}
void set_verbose(bool on)
{
    verbose = on;
}
void set_identifier(std::string_view id)
{
    identifier = std::string(id);
}

void message(Level level, std::string_view msg)
{
    print(level, msg);
    // Printed into a journal stream, a native entry would be the same line twice.
    bool printed_to_journal = to_stderr.load() && stderr_is_journal() && (level != Level::Debug || verbose.load());
    if (to_journal.load() && !printed_to_journal)
        sd_journal_send("MESSAGE=%.*s", static_cast<int>(msg.size()), msg.data(), "PRIORITY=%d", priority(level),
                        "SYSLOG_IDENTIFIER=%s", identifier.c_str(), nullptr);
}

void event(const char* message_id, Level level, std::string_view msg, std::initializer_list<Field> fields)
{
    print(level, msg);
    std::vector<std::string> items;
    items.push_back("MESSAGE=" + std::string(msg));
    items.push_back(std::string("MESSAGE_ID=") + message_id);
    items.push_back("PRIORITY=" + std::to_string(priority(level)));
    items.push_back("SYSLOG_IDENTIFIER=" + identifier);
    for (const auto& f : fields)
        items.push_back("UPGRADE_RECOVERY_" + f.key + "=" + f.value);
    std::vector<struct iovec> iov;
    for (auto& s : items)
        iov.push_back({s.data(), s.size()});
    // Best effort: in the initramfs or a sandbox there may be no journald.
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

} // namespace ur::log
