#include "cli.hpp"

#include "initrd_mark.hpp"
#include "json_text.hpp"
#include "unit_enablement.hpp"
#include "ur-build-config.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace ur::cli
{

const char* version()
{
    return UR_VERSION;
}

namespace
{
CancelToken* g_cancel = nullptr;

void on_signal(int)
{
    if (g_cancel) g_cancel->cancel(); // an atomic store: async-signal-safe
}
} // namespace

SignalCancel::SignalCancel(CancelToken& t)
{
    g_cancel = &t;
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

SignalCancel::~SignalCancel()
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    g_cancel = nullptr;
}

int exit_code(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::InvalidArgs: return kExitUsage;
    case ErrorKind::BadConfig: return kExitBadConfig;
    case ErrorKind::PartitionNotFound:
    case ErrorKind::NotMounted: return kExitNoPartition;
    case ErrorKind::NoSpace: return kExitNoSpace;
    case ErrorKind::RecoveryInProgress: return kExitRecoveryInProgress;
    case ErrorKind::Corrupt: return kExitCorrupt;
    case ErrorKind::Timeout: return kExitTimeout;
    case ErrorKind::Busy: return kExitBusy;
    case ErrorKind::Cancelled: return kExitCancelled;
    case ErrorKind::Refused: return kExitRefused;
    default: return kExitFailure;
    }
}

namespace
{
bool json_errors = false;

// The JSON form of every failure: {"error": KIND, "message": TEXT}, plus `extra`'s members.
void print_json_error(ErrorKind kind, const std::string& message,
                      const nlohmann::json& extra = nlohmann::json::object())
{
    nlohmann::json j = {{"error", std::string(error_kind_name(kind))}, {"message", message}};
    j.update(extra);
    print_json(j);
}

// The JSON message of a usage error is the text without what the stderr line begins
// with, "upgrade-recovery: " or "upgrade-recovery COMMAND [ACTION]: ", as report_error's is.
std::string without_program_prefix(const std::string& text)
{
    static constexpr std::string_view program = "upgrade-recovery";
    if (text.compare(0, program.size(), program) != 0) return text;
    const auto colon = text.find(": ", program.size());
    if (colon == std::string::npos) return text;
    const std::string_view words = std::string_view(text).substr(program.size(), colon - program.size());
    if (!words.empty() && words.front() != ' ') return text; // upgrade-recoveryd, ...
    if (!std::all_of(words.begin(), words.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == ' ' || c == '-'; }))
        return text;
    return text.substr(colon + 2);
}
} // namespace

void set_json_errors(bool on)
{
    json_errors = on;
}

void usage_error(const char* fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::string text = buf;
    while (!text.empty() && text.back() == '\n')
        text.pop_back();
    // What was typed comes in as it is: escaped for the terminal here, exact in JSON.
    fprintf(stderr, "%s\n", printable_lines(text).c_str());
    if (!json_errors) return;
    print_json_error(ErrorKind::InvalidArgs, without_program_prefix(text));
}

void print_json(const nlohmann::json& j)
{
    printf("%s\n", json_text(j).c_str());
}

void warn_without_initrd_module(const Args& args)
{
    if (auto p = initrd_module_problem(args.root); p && !p->empty()) fprintf(stderr, "warning: %s\n", p->c_str());
}

void warn_unit_enablement(const Args& args, bool watchdog)
{
    for (const auto& c : check_units_after_arming(args.root, watchdog)) {
        if (!c.warning.empty()) fprintf(stderr, "warning: %s\n", printable(c.warning).c_str());
        if (!c.note.empty()) fprintf(stderr, "note: %s\n", printable(c.note).c_str());
    }
}

int report_error(const Args& args, const Error& e)
{
    return report_error(args, e, nlohmann::json::object());
}

int report_error(const Args& args, const Error& e, const nlohmann::json& extra)
{
    if (args.json) print_json_error(e.kind, e.message, extra);
    // Messages quote names and store files: printable on the terminal, exact in JSON.
    fprintf(stderr, "upgrade-recovery %s: %s\n", args.command.c_str(), printable(e.message).c_str());
    return exit_code(e.kind);
}

Result<Config> load(const Args& args)
{
    ConfigSource src;
    src.root = args.root;
    src.file = args.config;
    auto c = load_config(src);
    if (!c) return c;
    if (args.dir) {
        if (args.dir->empty() || (*args.dir)[0] != '/')
            return fail(ErrorKind::InvalidArgs, "--dir needs an absolute path");
        c->mount_point = *args.dir;
    }
    return c;
}

Result<std::unique_ptr<Session>> open_session(const Args& args, StoreAccess access, bool lock)
{
    auto cfg = load(args);
    if (!cfg) return std::unexpected(cfg.error());
    auto s = std::make_unique<Session>();
    s->cfg = std::move(*cfg);
    auto store = open_store(s->cfg, args.root, access);
    if (!store) return std::unexpected(store.error());
    s->store = std::move(*store);
    if (lock) {
        auto l = lock_store(s->store);
        if (!l) return std::unexpected(l.error());
        s->lock = std::move(*l);
    }
    return s;
}

static long long now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

TerminalProgress::TerminalProgress(bool quiet) : tty_(isatty(STDERR_FILENO) == 1), quiet_(quiet) {}

TerminalProgress::~TerminalProgress()
{
    clear();
}

void TerminalProgress::clear()
{
    if (drawn_) {
        fprintf(stderr, "\r\033[K");
        drawn_ = false;
    }
}

void TerminalProgress::draw()
{
    if (!tty_ || quiet_) return;
    long long t = now_ms();
    if (t - last_draw_ms_ < 100 && pct_ < 100) return;
    last_draw_ms_ = t;
    const int width = 30;
    int filled = static_cast<int>(pct_) * width / 100;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    fprintf(stderr, "\r\033[K[%s] %3u%% %s", bar.c_str(), pct_, printable(stage_).c_str());
    fflush(stderr);
    drawn_ = true;
}

void TerminalProgress::stage(const std::string& name)
{
    stage_ = name;
    if (!tty_ && !quiet_) fprintf(stderr, "%s...\n", printable(name).c_str());
    draw();
}

void TerminalProgress::percent(unsigned pct)
{
    pct_ = pct > 100 ? 100 : pct;
    draw();
}

void TerminalProgress::warning(const std::string& msg)
{
    clear();
    fprintf(stderr, "warning: %s\n", printable(msg).c_str()); // file names of the trees
    draw();
}

bool Flags::has(const std::string& f) const
{
    for (const auto& s : set)
        if (s == f) return true;
    return false;
}

std::optional<std::string> Flags::value(const std::string& f) const
{
    for (const auto& [k, v] : values)
        if (k == f) return v;
    return std::nullopt;
}

bool is_valued_flag(std::string_view arg)
{
    return std::find(std::begin(kValuedFlags), std::end(kValuedFlags), arg) != std::end(kValuedFlags);
}

std::optional<Flags> parse_flags(const std::vector<std::string>& params, const std::vector<std::string>& booleans,
                                 const std::vector<std::string>& with_value, size_t max_positional)
{
    for (const auto& v : with_value)
        if (!is_valued_flag(v)) {
            // A programming error: main() would take a global option in its value's place.
            fprintf(stderr, "upgrade-recovery: internal error: %s is not in kValuedFlags\n", v.c_str());
            abort();
        }
    Flags f;
    for (size_t i = 0; i < params.size(); i++) {
        const std::string& p = params[i];
        auto in = [&](const std::vector<std::string>& v) {
            for (const auto& x : v)
                if (x == p) return true;
            return false;
        };
        if (in(booleans)) {
            f.set.push_back(p);
        } else if (in(with_value)) {
            if (i + 1 >= params.size()) {
                usage_error("upgrade-recovery: %s needs a value\n", p.c_str());
                return std::nullopt;
            }
            if (f.value(p)) {
                usage_error("upgrade-recovery: %s given twice\n", p.c_str());
                return std::nullopt;
            }
            f.values.emplace_back(p, params[++i]);
        } else if (!p.empty() && p[0] == '-') {
            usage_error("upgrade-recovery: unknown option '%s' (see --help)\n", p.c_str());
            return std::nullopt;
        } else {
            f.positional.push_back(p);
        }
    }
    if (f.positional.size() > max_positional) {
        usage_error("upgrade-recovery: unexpected argument '%s' (see --help)\n", f.positional.back().c_str());
        return std::nullopt;
    }
    return f;
}

bool backup_id_given_alone(const Flags& f, const char* command)
{
    if (f.positional.empty()) return false;
    const std::string& word = f.positional.front();
    // verify, arm and watchdog start take the id alone; these two take it as --backup ID.
    if (command && valid_backup_id(word))
        usage_error("upgrade-recovery %s: the backup is given as --backup ID (upgrade-recovery %s --backup %s)\n",
                    command, command, word.c_str());
    else
        usage_error("upgrade-recovery: unexpected argument '%s' (see --help)\n", word.c_str());
    return true;
}

bool invalid_backup_id(const std::optional<std::string>& id, const char* command, const char* default_hint)
{
    if (!id || valid_backup_id(*id)) return false;
    usage_error("upgrade-recovery %s: '%s' is not a backup id (YYYYMMDDTHHMMSSZ, or with -N appended, as "
                "'upgrade-recovery list' shows them%s%s)\n",
                command, id->c_str(), default_hint ? "; " : "", default_hint ? default_hint : "");
    return true;
}

std::optional<unsigned> parse_seconds(const std::string& opt, const std::string& text, const char* hint)
{
    unsigned v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        usage_error("upgrade-recovery: %s wants whole seconds%s, not '%s'\n", opt.c_str(), hint, text.c_str());
        return std::nullopt;
    }
    return v;
}

} // namespace ur::cli
