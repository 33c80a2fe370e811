// Shared pieces of the CLI: parsed arguments, exit codes, output helpers.
#pragma once

#include "config.hpp"
#include "error.hpp"
#include "log.hpp"
#include "progress.hpp"
#include "store.hpp"
#include "upgrade_watchdog.hpp"
#include "utf8_text.hpp" // printable(): every string from disk in text output

#include <memory>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ur::cli
{

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitBadConfig = 3;
inline constexpr int kExitNoPartition = 4;
inline constexpr int kExitNoSpace = 5;
inline constexpr int kExitRecoveryInProgress = 6;
inline constexpr int kExitCorrupt = 7;
inline constexpr int kExitTimeout = 8;
inline constexpr int kExitBusy = 9;
inline constexpr int kExitCancelled = 10;
inline constexpr int kExitRefused = 11;

struct Args {
    std::string root = "/";
    std::optional<std::string> config;
    std::optional<std::string> dir;
    bool json = false;
    bool verbose = false;
    std::string command;
    std::vector<std::string> params;
};

const char* version();
int exit_code(ErrorKind kind);

// A usage error: the message on standard error, and with --json also
// {"error": "InvalidArgs", "message": ...} on standard output, as for any failure
// (the message without the "upgrade-recovery[ COMMAND]: " the stderr line begins with).
// Arguments are passed as typed: the stderr line escapes terminal controls
// (printable), the JSON message keeps the bytes.
void set_json_errors(bool on);
void usage_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// One JSON document on standard output (bytes that are not UTF-8 become U+FFFD: json_text.hpp).
void print_json(const nlohmann::json& j);

// Print the error (text on stderr, or a JSON object on stdout) and return its exit code.
int report_error(const Args& args, const Error& e);
// After arming (arm, watchdog start): a warning on stderr when this boot's
// initramfs did not run our dracut module (initrd_module_problem, initrd_mark.hpp).
void warn_without_initrd_module(const Args& args);
// After arming (arm; watchdog start with `watchdog`): on stderr a warning for each
// unit under --root that will not act after the reboot (unit_enablement.hpp), a
// note for one whose state cannot be told.
void warn_unit_enablement(const Args& args, bool watchdog);
// The same, the JSON object with `extra`'s members added: what the command did
// before it failed (arm --reboot: {"armed": ID}), in the one document it prints.
int report_error(const Args& args, const Error& e, const nlohmann::json& extra);

Result<Config> load(const Args& args);

// The config and the store a command works on; `lock`: the store lock too
// (every command that writes the partition holds it).
struct Session {
    Config cfg;
    Store store;
    StoreLock lock;
};
// `access`: Inspect for commands that only remove what is there (delete, disarm,
// abandon, watchdog stop), Write for those that write beside a backup there (arm,
// watchdog start): both mount but create no layout on a store that has none.
Result<std::unique_ptr<Session>> open_session(const Args& args, StoreAccess access, bool lock);

// While it lives, SIGINT and SIGTERM cancel `t` instead of killing the process:
// the operation stops at its next check and leaves a consistent state (a backup
// drops its staging directory; a recovery records the step as failed and stops
// the command it runs, whose process group would otherwise go on alone).
class SignalCancel
{
  public:
    explicit SignalCancel(CancelToken& t);
    ~SignalCancel();
    SignalCancel(const SignalCancel&) = delete;
    SignalCancel& operator=(const SignalCancel&) = delete;
};

// A progress bar on stderr when it is a terminal; warnings always printed.
class TerminalProgress : public Progress
{
  public:
    explicit TerminalProgress(bool quiet);
    ~TerminalProgress() override;
    void stage(const std::string& name) override;
    void percent(unsigned pct) override;
    void warning(const std::string& msg) override;
    void clear();
    const std::string& current_stage() const { return stage_; }

  private:
    void draw();
    bool tty_;
    bool quiet_;
    std::string stage_;
    unsigned pct_ = 0;
    long long last_draw_ms_ = 0;
    bool drawn_ = false;
};

// Flags of a subcommand: "--force" style booleans and "--id VALUE" options.
struct Flags {
    std::vector<std::string> positional;
    std::vector<std::string> set;
    std::vector<std::pair<std::string, std::string>> values;
    bool has(const std::string& f) const;
    std::optional<std::string> value(const std::string& f) const;
};
// Every subcommand option that takes a value. main() reads global options
// (--json, --help, --root, ...) anywhere in the arguments, but not in the place
// of such a value: 'watchdog trigger --reason --help' gives --reason the text.
// parse_flags aborts on a valued option missing here.
inline constexpr std::string_view kValuedFlags[] = {"--id", "--timeout", "--backup", "--reason", "--output"};
bool is_valued_flag(std::string_view arg);
// Parse params; unknown flags are a usage error naming them.
std::optional<Flags> parse_flags(const std::vector<std::string>& params, const std::vector<std::string>& booleans,
                                 const std::vector<std::string>& with_value, size_t max_positional);
// For a command that names its backup with --backup: true, after a usage error, when
// parse_flags (max_positional 1) found a positional word, such as the id given alone
// (command: the command named in the hint towards --backup; nullptr: no hint).
bool backup_id_given_alone(const Flags& f, const char* command);
// True, after a usage error naming command and what to type (default_hint, or nullptr),
// when id is given and cannot be a backup id: checked before the store is opened, which
// a command that writes creates or mounts.
bool invalid_backup_id(const std::optional<std::string>& id, const char* command, const char* default_hint);

// A number of seconds given to option `opt`: digits only, within unsigned;
// otherwise a usage error is printed and nothing is returned.
// `hint` follows "wants whole seconds" in the usage error, e.g. " (0: no limit)".
std::optional<unsigned> parse_seconds(const std::string& opt, const std::string& text, const char* hint = "");

int cmd_backup(const Args& args);
int cmd_list(const Args& args);
int cmd_status(const Args& args);
int cmd_verify(const Args& args);
int cmd_delete(const Args& args);
int cmd_rollback_plan(const Args& args);
int cmd_recover(const Args& args);
int cmd_arm(const Args& args);
int cmd_disarm(const Args& args);
int cmd_watchdog(const Args& args);
int cmd_metrics(const Args& args);
// The watchdog as `status --json` and `watchdog --json` show it (null: none).
nlohmann::json watchdog_json(const std::optional<WatchdogState>& w);

int run_command(const Args& args);

} // namespace ur::cli
