#include "recovery_journal.hpp"

#include "earlier_tooling.hpp"
#include "failpoint.hpp"
#include "host_info.hpp"
#include "text.hpp"

#include "json_text.hpp"
#include "log.hpp"
#include "recovery_steps.hpp"
#include "store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace ur
{

using nlohmann::json;

std::string_view step_state_name(StepState s)
{
    switch (s) {
    case StepState::Pending: return "pending";
    case StepState::Started: return "started";
    case StepState::Done: return "done";
    case StepState::Failed: return "failed";
    case StepState::Skipped: return "skipped";
    }
    return "pending";
}

std::string_view recovery_state_name(RecoveryState s)
{
    switch (s) {
    case RecoveryState::Running: return "running";
    case RecoveryState::Paused: return "paused";
    case RecoveryState::Failed: return "failed";
    case RecoveryState::Complete: return "complete";
    case RecoveryState::Aborted: return "aborted";
    }
    return "running";
}

bool recovery_state_in_progress(RecoveryState s)
{
    return s == RecoveryState::Running || s == RecoveryState::Paused || s == RecoveryState::Failed;
}

namespace
{

template <class E, size_t N>
std::optional<E> parse_enum(const std::string& s, const E (&all)[N], std::string_view (*name)(E))
{
    for (E e : all)
        if (name(e) == s) return e;
    return std::nullopt;
}

constexpr StepState kStepStates[] = {StepState::Pending, StepState::Started, StepState::Done, StepState::Failed,
                                     StepState::Skipped};
constexpr RecoveryState kRecoveryStates[] = {RecoveryState::Running, RecoveryState::Paused, RecoveryState::Failed,
                                             RecoveryState::Complete, RecoveryState::Aborted};

std::string format_utc(std::time_t t, long nsec, bool nanos)
{
    struct tm tm {
    };
    gmtime_r(&t, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string out(buf, n);
    if (nanos) {
        char frac[16];
        snprintf(frac, sizeof frac, ".%09ld", nsec);
        out += frac;
    }
    return out + "Z";
}

// A value from a damaged file, fit for a message: printable ASCII, at most 64 bytes.
std::string shown(const std::string& s)
{
    std::string out;
    for (char c : s.substr(0, 64))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

// The steps a plan cannot do without: verify checks the backup before anything
// changes, restore-files is the point of phase 1, phase1-done removes `armed` (a
// plan without it would restore at every boot), finish ends the recovery.
constexpr const char* kRequiredSteps[] = {"verify", "restore-files", "phase1-done", "finish"};

// A loaded plan against the step table. new_journal writes the whole table, and
// runs follow the journal's plan, not the table: a damaged or hand-edited one must
// not run steps out of order, skip the restore, or (no steps at all) be taken as
// complete. A subsequence of the table is accepted: a journal written before a step
// was added still resumes.
Result<> check_journal(const RecoveryJournal& j)
{
    // It names a directory under backups/ (and the backup phase 2 reads).
    if (!valid_backup_id(j.backup_id))
        return fail(ErrorKind::Corrupt, "backup_id '" + shown(j.backup_id) + "' is not a backup id");
    // Only shown (messages, events, phase2-pending): a short printable name. Ours are UTC
    // stamps as backup ids; older tests and tools wrote others, which still load.
    if (j.recovery_id.empty() || j.recovery_id.size() > 64 || shown(j.recovery_id) != j.recovery_id)
        return fail(ErrorKind::Corrupt, "recovery_id '" + shown(j.recovery_id) + "' is not a recovery id");
    if (j.steps.empty()) return fail(ErrorKind::Corrupt, "the step list is empty");
    const auto& table = recovery_steps();
    const JournalStep* prev = nullptr;
    size_t next_at = 0; // the table index the next step must be at or after
    for (const auto& s : j.steps) {
        const StepDef* d = find_step_def(s.name);
        if (!d) return fail(ErrorKind::Corrupt, "unknown step '" + shown(s.name) + "'");
        const size_t at = static_cast<size_t>(d - table.data());
        if (at < next_at)
            return fail(ErrorKind::Corrupt,
                        "step '" + s.name + "' " +
                            (prev->name == s.name ? "appears twice" : "is out of order (after '" + prev->name + "')"));
        next_at = at + 1;
        prev = &s;
    }
    for (const char* name : kRequiredSteps)
        if (!j.step(name)) return fail(ErrorKind::Corrupt, std::string("the plan lacks step '") + name + "'");
    // A run sets complete only after its last step; a complete journal with a step to
    // do would say "recovered" of a node whose files were perhaps never restored.
    if (j.state == RecoveryState::Complete)
        if (const JournalStep* open = j.next_step())
            return fail(ErrorKind::Corrupt, "the recovery is complete, but step '" + open->name + "' is " +
                                                std::string(step_state_name(open->state)));
    return {};
}

} // namespace

std::string rfc3339_now(bool nanos)
{
    struct timespec ts {
    };
    clock_gettime(CLOCK_REALTIME, &ts);
    return format_utc(ts.tv_sec, ts.tv_nsec, nanos);
}

JournalStep* RecoveryJournal::step(const std::string& name)
{
    for (auto& s : steps)
        if (s.name == name) return &s;
    return nullptr;
}

const JournalStep* RecoveryJournal::step(const std::string& name) const
{
    return const_cast<RecoveryJournal*>(this)->step(name);
}

const JournalStep* RecoveryJournal::next_step() const
{
    for (const auto& s : steps)
        if (s.state != StepState::Done && s.state != StepState::Skipped) return &s;
    return nullptr;
}

std::string RecoveryJournal::result() const
{
    if (state == RecoveryState::Complete) return "complete";
    if (state == RecoveryState::Aborted) return "failed";
    return "";
}

const std::string kDamagedJournalRemedy =
    std::string(". Nothing is lost by moving it aside (it is kept as recovery/") + kJournalDamagedPrefix +
    "TIME): 'upgrade-recovery recover --abandon --force' does that and ends the recovery (markers removed, the host "
    "left as it is); 'upgrade-recovery recover --restart' does that and starts the recovery over";

std::string strip_journal_remedy(std::string message)
{
    if (message.ends_with(kDamagedJournalRemedy)) message.resize(message.size() - kDamagedJournalRemedy.size());
    return message;
}

std::string journal_to_json(const RecoveryJournal& j, int indent)
{
    json steps = json::array();
    for (const auto& s : j.steps) {
        json o = {{"name", s.name}, {"state", step_state_name(s.state)}, {"attempts", s.attempts}};
        if (!s.started.empty()) o["started"] = s.started;
        if (!s.finished.empty()) o["finished"] = s.finished;
        if (!s.error.empty()) o["error"] = s.error;
        if (!s.note.empty()) o["note"] = s.note;
        if (!s.data.empty()) o["data"] = s.data;
        steps.push_back(std::move(o));
    }
    json o = {
        {"format", j.format},
        {"recovery_id", j.recovery_id},
        {"backup_id", j.backup_id},
        {"started", j.started},
        {"updated", j.updated},
        {"finished", j.finished},
        {"mode", j.mode},
        {"root", j.root},
        {"phase1_boot_id", j.phase1_boot_id},
        {"state", recovery_state_name(j.state)},
        {"runner_pid", j.runner_pid},
        {"runner_boot_id", j.runner_boot_id},
        {"result", j.result()},
        {"error", j.error},
        {"abandoned", j.abandoned},
        {"mc_files", j.mc_files},
        {"steps", std::move(steps)},
    };
    // Invalid UTF-8 in a path or message must not make the journal unwritable.
    return json_text(o, indent) + "\n";
}

Result<RecoveryJournal> journal_from_json(std::string_view text)
{
    try {
        json o = json::parse(text);
        RecoveryJournal j;
        j.format = o.at("format").get<int>();
        if (j.format != 1) return fail(ErrorKind::Corrupt, "unsupported journal format " + std::to_string(j.format));
        j.recovery_id = o.at("recovery_id").get<std::string>();
        j.backup_id = o.at("backup_id").get<std::string>();
        j.started = o.value("started", "");
        j.updated = o.value("updated", "");
        j.finished = o.value("finished", "");
        j.mode = o.value("mode", "");
        j.root = o.value("root", "");
        j.phase1_boot_id = o.value("phase1_boot_id", "");
        j.runner_pid = o.value("runner_pid", int64_t{0});
        j.runner_boot_id = o.value("runner_boot_id", "");
        auto st = parse_enum(o.at("state").get<std::string>(), kRecoveryStates, recovery_state_name);
        if (!st) return fail(ErrorKind::Corrupt, "unknown recovery state '" + o.at("state").get<std::string>() + "'");
        j.state = *st;
        j.error = o.value("error", "");
        // Journals written before it was recorded said so only in `error`.
        j.abandoned = o.value("abandoned", j.state == RecoveryState::Aborted && j.error.starts_with("abandoned: "));
        if (o.contains("mc_files")) j.mc_files = o.at("mc_files").get<std::vector<std::string>>();
        for (const auto& so : o.at("steps")) {
            JournalStep s;
            s.name = so.at("name").get<std::string>();
            auto ss = parse_enum(so.at("state").get<std::string>(), kStepStates, step_state_name);
            if (!ss) return fail(ErrorKind::Corrupt, "step '" + s.name + "': unknown state");
            s.state = *ss;
            s.attempts = so.value("attempts", 0u);
            s.started = so.value("started", "");
            s.finished = so.value("finished", "");
            s.error = so.value("error", "");
            s.note = so.value("note", "");
            if (so.contains("data")) s.data = so.at("data").get<std::map<std::string, std::string>>();
            j.steps.push_back(std::move(s));
        }
        UR_TRY(check_journal(j));
        return j;
    } catch (const json::exception& e) {
        return fail(ErrorKind::Corrupt, std::string("not a journal: ") + e.what());
    }
}

Result<JournalDir> JournalDir::open(int mount_fd, bool create, std::string where)
{
    JournalDir d;
    d.path_ = std::move(where);
    auto fd = open_at(mount_fd, kRecoveryDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd) {
        d.fd_ = std::move(*fd);
        return d;
    }
    if (fd.error().err != ENOENT) return std::unexpected(std::move(fd.error()).context("recovery directory"));
    if (!create) return d;
    if (::mkdirat(mount_fd, kRecoveryDir, 0755) < 0 && errno != EEXIST) return fail_errno("mkdir recovery");
    UR_TRY(fsync_fd(mount_fd, "recovery partition"));
    auto again = open_at(mount_fd, kRecoveryDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!again) return std::unexpected(std::move(again.error()).context("recovery directory"));
    d.fd_ = std::move(*again);
    return d;
}

Result<JournalDir> JournalDir::open(const Store& store, bool create)
{
    return open(store.fd.get(), create, store.path() + "/" + kRecoveryDir);
}

Result<std::optional<std::string>> JournalDir::read_marker(const char* name) const
{
    if (!fd_) return std::optional<std::string>{};
    auto text = read_file_at(fd_.get(), name, 1 << 20);
    if (!text) {
        if (text.error().err == ENOENT) return std::optional<std::string>{};
        return std::unexpected(std::move(text.error()).context(std::string("read recovery/") + name));
    }
    return std::optional<std::string>(std::move(*text));
}

Result<> JournalDir::remove_marker(const char* name) const
{
    if (!fd_) return {};
    if (::unlinkat(fd_.get(), name, 0) < 0) {
        if (errno == ENOENT) return {};
        return fail_errno(std::string("remove recovery/") + name);
    }
    return fsync_fd(fd_.get(), "recovery directory");
}

Result<std::optional<RecoveryJournal>> JournalDir::load() const
{
    // Damage says which file and the way out: it blocks backups, arming and every recovery command.
    auto damaged = [&](Error e) -> Result<std::optional<RecoveryJournal>> {
        e.context(journal_path() + " is damaged");
        e.message += kDamagedJournalRemedy;
        return std::unexpected(std::move(e));
    };
    auto text = read_marker(kJournalFile);
    if (!text) {
        if (text.error().kind == ErrorKind::Corrupt) return damaged(std::move(text.error())); // not a regular file
        return std::unexpected(text.error());
    }
    if (!*text) return std::optional<RecoveryJournal>{};
    auto j = journal_from_json(**text);
    if (!j) return damaged(std::move(j.error()));
    return std::optional<RecoveryJournal>(std::move(*j));
}

Result<std::string> JournalDir::move_damaged_aside() const
{
    if (!fd_) return std::string();
    // The time as in backup ids (no ':' in a file name people copy around).
    const std::string base = std::string(kJournalDamagedPrefix) + make_backup_id(std::time(nullptr), {});
    // Never over an earlier one: each damaged journal is kept.
    for (int n = 1; n < 1000; n++) {
        std::string name = n == 1 ? base : base + "-" + std::to_string(n);
        if (::renameat2(fd_.get(), kJournalFile, fd_.get(), name.c_str(), RENAME_NOREPLACE) == 0) {
            UR_TRY(fsync_fd(fd_.get(), "recovery directory"));
            return name;
        }
        if (errno == ENOENT) return std::string();
        if (errno != EEXIST) return fail_errno("move " + journal_path() + " aside to " + name);
    }
    return fail(ErrorKind::Io, "move " + journal_path() + " aside: too many damaged journals named " + base);
}

Result<> JournalDir::save(RecoveryJournal& j) const
{
    if (!fd_) return fail(ErrorKind::Internal, "recovery directory not open for writing");
    j.updated = rfc3339_now();
    UR_TRY_CTX(write_file_atomic_at(fd_.get(), kJournalFile, journal_to_json(j)), "write recovery/journal");
    return {};
}

Result<> JournalDir::keep_as_previous() const
{
    if (!fd_) return {};
    // A copy, not a rename: the journal stays until the new one replaces it, so a
    // power cut in between never leaves a started recovery without one.
    auto text = read_marker(kJournalFile);
    if (!text) return std::unexpected(text.error());
    if (!*text) return {};
    UR_TRY_CTX(write_file_atomic_at(fd_.get(), kJournalPrevious, **text, 0644), "write recovery/journal.previous");
    return {};
}

Result<std::optional<std::string>> JournalDir::armed() const
{
    auto m = read_marker(kArmedFile);
    if (!m || !*m) return m;
    std::string id(trim(**m));
    // The id names a directory under backups/: anything else is damage, not a path to follow.
    if (!valid_backup_id(id)) {
        return fail(ErrorKind::Corrupt, "the marker recovery/armed holds '" + shown(id) +
                                            "', not a backup id ('upgrade-recovery disarm' removes it)");
    }
    return std::optional<std::string>(std::move(id));
}

Result<> JournalDir::set_armed(const std::string& backup_id) const
{
    if (!fd_) return fail(ErrorKind::Internal, "recovery directory not open for writing");
    // Already so (as `arm` left it): not written again, which a full partition refuses.
    if (auto cur = armed(); cur && *cur && **cur == backup_id) return {};
    return write_file_atomic_at(fd_.get(), kArmedFile, backup_id + "\n");
}

Result<> JournalDir::clear_armed() const
{
    return remove_marker(kArmedFile);
}

Result<std::optional<std::string>> JournalDir::phase2_pending() const
{
    auto m = read_marker(kPhase2PendingFile);
    if (!m || !*m) return m;
    return std::optional<std::string>(std::string(trim(**m)));
}

Result<> JournalDir::set_phase2_pending(const std::string& recovery_id) const
{
    if (!fd_) return fail(ErrorKind::Internal, "recovery directory not open for writing");
    return write_file_atomic_at(fd_.get(), kPhase2PendingFile, recovery_id + "\n");
}

Result<> JournalDir::clear_phase2_pending() const
{
    return remove_marker(kPhase2PendingFile);
}

Result<bool> recovery_in_progress(const Store& store)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    auto armed = dir->armed();
    if (!armed) return std::unexpected(armed.error());
    auto p2 = dir->phase2_pending();
    if (!p2) return std::unexpected(p2.error());
    if (*armed || *p2) return true;
    auto j = dir->load();
    if (!j) return std::unexpected(j.error());
    return *j && recovery_state_in_progress((*j)->state);
}

Result<> check_backup_deletable(const Store& store, const std::string& id)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    auto armed = dir->armed();
    if (!armed) return std::unexpected(armed.error());
    if (*armed && **armed == id)
        return fail(ErrorKind::Refused, "backup " + id + " is armed for recovery; disarm it first");
    auto j = dir->load();
    if (!j) return std::unexpected(j.error());
    auto p2 = dir->phase2_pending();
    if (!p2) return std::unexpected(p2.error());
    if (*j && (*j)->backup_id == id && (recovery_state_in_progress((*j)->state) || *p2))
        return fail(ErrorKind::Refused, "recovery " + (*j)->recovery_id + " of backup " + id +
                                            " is in progress and still reads it; finish it or abandon it first");
    return {};
}

Result<> arm_recovery(const Store& store, const std::string& backup_id)
{
    if (!valid_backup_id(backup_id)) return fail(ErrorKind::InvalidArgs, "invalid backup id '" + backup_id + "'");
    // Found out now, not at the next boot in the initramfs.
    auto meta = read_metadata(store, backup_id);
    if (!meta) return std::unexpected(std::move(meta.error()).context("cannot arm backup " + backup_id));
    auto dir = JournalDir::open(store, true);
    if (!dir) return std::unexpected(dir.error());
    auto j = dir->load();
    if (!j) return std::unexpected(j.error());
    if (*j && recovery_state_in_progress((*j)->state) && (*j)->backup_id != backup_id)
        return fail(ErrorKind::RecoveryInProgress,
                    "a recovery of backup " + (*j)->backup_id + " is in progress; finish it or abandon it first");
    UR_TRY(check_no_earlier_recovery(store, kEarlierRefusesRecovery));
    if (auto before = dir->armed(); !before && before.error().kind == ErrorKind::Corrupt)
        log::warning("replacing a damaged marker: " + before.error().message);
    UR_TRY_CTX(dir->set_armed(backup_id), "arm recovery");
    // Said now, while someone is there to act on it; the recovery says it again.
    if (auto w = expired_certificates_warning(*meta, std::time(nullptr)); !w.empty()) log::warning(w);
    log::event(log::kRecoveryArmed, log::Level::Info, "recovery armed with backup " + backup_id + " for the next boot",
               {{"BACKUP_ID", backup_id}});
    return {};
}

Result<Disarmed> disarm_recovery(const Store& store)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    auto armed = dir->armed();
    // A damaged marker is what disarm is for: it goes like a good one.
    if (!armed && armed.error().kind != ErrorKind::Corrupt) return std::unexpected(armed.error());
    Disarmed out;
    if (armed && !*armed) return out;
    UR_TRY_CTX(dir->clear_armed(), "disarm recovery");
    if (armed) {
        out.backup_id = **armed;
        log::event(log::kRecoveryDisarmed, log::Level::Info, "recovery disarmed (was backup " + **armed + ")",
                   {{"BACKUP_ID", **armed}});
    } else {
        out.damaged = armed.error().message;
        log::event(log::kRecoveryDisarmed, log::Level::Info,
                   "recovery disarmed: removed a damaged marker: " + out.damaged, {});
    }
    return out;
}

Result<Abandoned> abandon_recovery(const Store& store, const std::string& reason, bool force)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    auto j = dir->load();
    // Damaged: whether a recovery was under way, and how far, cannot be read. Only
    // on request (the message says how): the administrator ends what may be a
    // half-done recovery without seeing it.
    const bool damaged = !j && j.error().kind == ErrorKind::Corrupt && force;
    if (!j && !damaged) return std::unexpected(j.error());
    auto armed = dir->armed();
    if (!armed && armed.error().kind != ErrorKind::Corrupt) return std::unexpected(armed.error());
    auto p2 = dir->phase2_pending();
    if (!p2) return std::unexpected(p2.error());
    const bool running = j && *j && recovery_state_in_progress((*j)->state);
    Abandoned out;
    if (!damaged && !running && armed && !*armed && !*p2) return out; // a damaged marker is something to abandon
    out.abandoned = true;
    // The markers first: a power cut before the journal says Aborted leaves a recovery
    // that nothing starts again (status shows it, and abandon once more ends it);
    // the other order left `armed` beside a finished journal, and the next boot
    // restored the backup over whatever was fixed by hand. The same for a damaged
    // journal: cut off before it is moved aside, abandon --force once more does it.
    UR_TRY(dir->clear_armed());
    UR_TRY(dir->clear_phase2_pending());
    failpoint("recovery.abandon.markers");
    if (damaged) {
        auto kept = dir->move_damaged_aside();
        if (!kept) return std::unexpected(kept.error());
        out.damaged_kept = *kept;
        log::event(log::kRecoveryFailed, log::Level::Warning,
                   "recovery with a damaged journal abandoned: " + reason + "; the journal was moved aside to " +
                       dir->path() + "/" + *kept + " (" + strip_journal_remedy(j.error().message) + ")",
                   {{"STEP", "abandon"}});
        return out;
    }
    if (running) {
        (*j)->state = RecoveryState::Aborted;
        (*j)->error = "abandoned: " + reason;
        (*j)->abandoned = true;
        (*j)->finished = rfc3339_now();
        UR_TRY(dir->save(**j));
        log::event(log::kRecoveryFailed, log::Level::Warning, "recovery " + (*j)->recovery_id + " abandoned: " + reason,
                   {{"BACKUP_ID", (*j)->backup_id}, {"RECOVERY_ID", (*j)->recovery_id}, {"STEP", "abandon"}});
        out.journal = std::move(**j);
    }
    return out;
}

bool recovery_interrupted(const RecoveryJournal& j)
{
    return j.state == RecoveryState::Running && j.runner_pid > 0 &&
           !upgrade_recovery_process_running(j.runner_pid, j.runner_boot_id);
}

RecoveryStatus make_recovery_status(std::optional<RecoveryJournal> journal, std::optional<std::string> armed,
                                    std::optional<std::string> phase2)
{
    RecoveryStatus s;
    s.armed = std::move(armed);
    s.phase2_pending = std::move(phase2);
    s.journal = std::move(journal);
    s.in_progress = s.armed || s.phase2_pending || (s.journal && recovery_state_in_progress(s.journal->state));
    const RecoveryJournal* j = s.journal ? &*s.journal : nullptr;
    // An armed recovery that has not started yet (or whose journal is a finished earlier one).
    if (s.armed && (!j || !recovery_state_in_progress(j->state))) {
        s.summary = "armed: phase 1 of a recovery with backup " + *s.armed + " runs at the next boot";
        s.next = "reboot to recover, or 'upgrade-recovery disarm' to cancel";
        return s;
    }
    if (!j) {
        s.summary = "no recovery";
        return s;
    }
    const JournalStep* next = j->next_step();
    std::string where = next ? next->name : std::string("end");
    std::string head = "recovery " + j->recovery_id + " (backup " + j->backup_id + "): ";
    switch (j->state) {
    case RecoveryState::Running:
        s.interrupted = recovery_interrupted(*j);
        if (s.interrupted) {
            s.summary = head + "interrupted at step " + where + ": the process running it (pid " +
                        std::to_string(j->runner_pid) + ") is gone (killed, a crash or a power cut)";
            s.next = "'upgrade-recovery recover --resume' runs step " + where + " again and goes on" +
                     (s.armed ? " (or reboot: the initramfs resumes an armed recovery)" : "");
            break;
        }
        s.summary = head + "running at step " + where +
                    (next && next->attempts > 1 ? " (attempt " + std::to_string(next->attempts) + ")" : "");
        s.next = j->runner_pid > 0
                     ? "wait for it (pid " + std::to_string(j->runner_pid) + ")"
                     : "if no upgrade-recovery process is running, it was interrupted: 'upgrade-recovery recover "
                       "--resume'";
        break;
    case RecoveryState::Paused:
        if (s.phase2_pending) {
            s.summary = head + "phase 1 done, phase 2 pending";
            s.next = j->mode == "live" ? "reboot ('systemctl reboot'); upgrade-recovery-phase2.service then runs "
                                         "phase 2 (or run 'upgrade-recovery recover --resume' after the reboot)"
                                       : "boot the node; upgrade-recovery-phase2.service runs phase 2";
        } else {
            s.summary = head + "paused before step " + where;
            s.next = "continue with 'upgrade-recovery recover --resume' (or --step for one more stage)";
        }
        break;
    case RecoveryState::Failed:
        s.summary = head + "failed at step " + where + ": " + j->error;
        s.next = "fix the cause, then 'upgrade-recovery recover --resume' retries " + where +
                 "; 'upgrade-recovery recover --restart' starts over";
        break;
    case RecoveryState::Complete: s.summary = head + "complete at " + j->finished; break;
    case RecoveryState::Aborted: s.summary = head + "failed: " + j->error; break;
    }
    return s;
}

Result<RecoveryStatus> read_recovery_status(const Store& store)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    std::optional<Error> unreadable;
    auto part = [&](auto r) -> typename decltype(r)::value_type {
        if (!r) {
            if (!unreadable) unreadable = std::move(r.error());
            return {};
        }
        return std::move(*r);
    };
    // The markers first: when the journal is damaged too, `armed`'s damage (with its
    // remedy, disarm) is the one named.
    auto armed = part(dir->armed());
    auto p2 = part(dir->phase2_pending());
    auto j = part(dir->load());
    RecoveryStatus st = make_recovery_status(std::move(j), std::move(armed), std::move(p2));
    st.unreadable = std::move(unreadable);
    return st;
}

std::string recovery_state_label(const RecoveryStatus& s)
{
    const auto& j = s.journal;
    const bool running = j && recovery_state_in_progress(j->state);
    std::string l = "None";
    if (s.phase2_pending)
        l = "Phase2Pending";
    else if (running && j->state == RecoveryState::Running)
        l = s.interrupted ? "Interrupted" : "Running";
    else if (running && j->state == RecoveryState::Paused)
        l = "Paused";
    else if (running && j->state == RecoveryState::Failed)
        l = "Failed";
    else if (s.armed)
        l = "Armed";
    else if (j && j->state == RecoveryState::Complete)
        l = "Complete";
    else if (j && j->state == RecoveryState::Aborted)
        l = "Aborted";
    if (l == "None" && s.unreadable) l = "Unknown";
    return l;
}

std::string recovery_status_to_json(const RecoveryStatus& s)
{
    json o = {{"in_progress", s.in_progress}, {"interrupted", s.interrupted}, {"summary", s.summary}, {"next", s.next}};
    o["armed"] = s.armed ? json(*s.armed) : json(nullptr);
    o["phase2_pending"] = s.phase2_pending ? json(*s.phase2_pending) : json(nullptr);
    if (s.journal) {
        try {
            o["journal"] = json::parse(journal_to_json(*s.journal, -1));
        } catch (const json::exception&) {
            o["journal"] = nullptr;
        }
    } else {
        o["journal"] = nullptr;
    }
    return json_text(o, 2) + "\n";
}

std::string recovery_status_to_text(const RecoveryStatus& s)
{
    std::string out = "Recovery: " + s.summary + "\n";
    if (s.armed) out += "  armed:          backup " + *s.armed + "\n";
    if (s.phase2_pending) out += "  phase 2:        pending (recovery " + *s.phase2_pending + ")\n";
    if (s.journal) {
        const auto& j = *s.journal;
        out += "  recovery id:    " + j.recovery_id + "\n";
        out += "  backup:         " + j.backup_id + "\n";
        out += "  mode:           " + j.mode + " (root " + j.root + ")\n";
        out += "  started:        " + j.started + "\n";
        out += "  state:          " + std::string(s.interrupted ? "interrupted" : recovery_state_name(j.state));
        if (!j.result().empty()) out += " (result: " + j.result() + (j.finished.empty() ? "" : ", " + j.finished) + ")";
        out += "\n";
        if (!j.error.empty()) out += "  error:          " + j.error + "\n";
        out += "  steps:\n";
        for (const auto& st : j.steps) {
            char line[96];
            snprintf(line, sizeof line, "    %-40s %-8s", st.name.c_str(),
                     std::string(step_state_name(st.state)).c_str());
            out += line;
            if (!st.finished.empty() && st.state != StepState::Started)
                out += " " + st.finished;
            else if (!st.started.empty())
                out += " " + st.started;
            if (st.attempts > 1) out += " (" + std::to_string(st.attempts) + " attempts)";
            if (!st.note.empty()) out += "  " + st.note;
            if (!st.error.empty() && st.state == StepState::Failed) out += "  error: " + st.error;
            out += "\n";
        }
    }
    if (!s.next.empty()) out += "Next: " + s.next + "\n";
    return out;
}

} // namespace ur
