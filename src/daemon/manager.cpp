#include "manager.hpp"

#include "backup.hpp"
#include "backup_removal.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "host_info.hpp"
#include "initrd_mark.hpp"
#include "log.hpp"
#include "message_strings.hpp"
#include "options.hpp"
#include "ostree_state.hpp"
#include "recovery.hpp"
#include "recovery_journal.hpp"
#include "rollback_plan.hpp"
#include "status_warnings.hpp"
#include "store.hpp"
#include "unit_enablement.hpp"
#include "upgrade_watchdog.hpp"
#include "ur-build-config.h"
#include "utf8_text.hpp"
#include "verify.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <linux/capability.h>
#include <string_view>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

namespace ur::dbus
{

namespace
{

// Finished jobs stay readable this long (by count) after their Finished signal.
constexpr size_t kKeepFinishedJobs = 16;
// Property reads re-read the partition at most this often.
constexpr auto kViewTtl = std::chrono::seconds(2);

std::string human_bytes(uint64_t b)
{
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

// a{sv} entry helpers.
int add(sd_bus_message* r, const char* k, const std::string& v)
{
    return sd_bus_message_append(r, "{sv}", k, "s", valid_utf8(v).c_str());
}
// Without this overload a string literal would silently pick the bool one.
[[maybe_unused]] int add(sd_bus_message* r, const char* k, const char* v)
{
    return sd_bus_message_append(r, "{sv}", k, "s", valid_utf8(v).c_str());
}
int add(sd_bus_message* r, const char* k, bool v)
{
    return sd_bus_message_append(r, "{sv}", k, "b", static_cast<int>(v));
}
int add_u64(sd_bus_message* r, const char* k, uint64_t v)
{
    return sd_bus_message_append(r, "{sv}", k, "t", v);
}
int add_i64(sd_bus_message* r, const char* k, int64_t v)
{
    return sd_bus_message_append(r, "{sv}", k, "x", v);
}
int add_i32(sd_bus_message* r, const char* k, int32_t v)
{
    return sd_bus_message_append(r, "{sv}", k, "i", v);
}
int add_d(sd_bus_message* r, const char* k, double v)
{
    return sd_bus_message_append(r, "{sv}", k, "d", v);
}
int add(sd_bus_message* r, const char* k, const std::vector<std::string>& v)
{
    int rr = sd_bus_message_open_container(r, 'e', "sv");
    if (rr >= 0) rr = sd_bus_message_append(r, "s", k);
    if (rr >= 0) rr = sd_bus_message_open_container(r, 'v', "as");
    if (rr >= 0) rr = append_strings(r, v);
    for (int i = 0; i < 2 && rr >= 0; i++)
        rr = sd_bus_message_close_container(r);
    return rr;
}

// Chain a{sv} appends, stopping at the first failure.
struct DictWriter {
    sd_bus_message* m;
    int r = 0;
    template <class F> DictWriter& operator()(F&& f)
    {
        if (r >= 0) r = f(m);
        return *this;
    }
};

int append_backup(sd_bus_message* reply, const std::string& id, const Result<BackupMetadata>& meta, bool latest)
{
    int r = sd_bus_message_open_container(reply, 'a', "{sv}");
    if (r < 0) return r;
    DictWriter w{reply};
    w([&](auto* m) { return add(m, "id", id); });
    w([&](auto* m) { return add(m, "latest", latest); });
    if (!meta) {
        // Listed anyway: an unreadable generation must not hide the good ones.
        w([&](auto* m) { return add(m, "error", meta.error().message); });
        w([&](auto* m) { return add(m, "error_name", error_name(meta.error().kind)); });
    } else {
        const BackupMetadata& b = *meta;
        w([&](auto* m) { return add(m, "created", b.created); });
        w([&](auto* m) { return add(m, "host", b.host); });
        w([&](auto* m) { return add(m, "tool_version", b.tool_version); });
        w([&](auto* m) { return add_d(m, "duration_seconds", b.duration_seconds); });
        w([&](auto* m) { return add_u64(m, "manifest_entries", b.manifest_entries); });
        w([&](auto* m) { return add_u64(m, "total_bytes", b.total_bytes); });
        w([&](auto* m) { return add_u64(m, "copied_bytes", b.copied_bytes); });
        w([&](auto* m) { return add_u64(m, "shared_bytes", b.shared_bytes); });
        w([&](auto* m) { return add_u64(m, "shared_files", b.shared_files); });
        w([&](auto* m) { return add(m, "previous", b.previous); });
        std::vector<std::string> trees;
        for (const auto& t : b.trees)
            trees.push_back(t.name + ":" + t.path);
        w([&](auto* m) { return add(m, "trees", trees); });
        w([&](auto* m) { return add(m, "warnings", b.warnings); });
        w([&](auto* m) { return add(m, "ostree", b.ostree.present); });
        if (b.ostree.present) {
            w([&](auto* m) { return add(m, "ostree_osname", b.ostree.osname); });
            w([&](auto* m) { return add(m, "ostree_checksum", b.ostree.checksum); });
            w([&](auto* m) { return add_i32(m, "ostree_serial", b.ostree.serial); });
            w([&](auto* m) { return add(m, "ostree_version", b.ostree.version); });
            w([&](auto* m) { return add(m, "ostree_pinned", b.ostree.pinned); });
        }
        w([&](auto* m) { return add(m, "etcd", b.cluster.present); });
        if (b.cluster.present) {
            w([&](auto* m) { return add(m, "etcd_method", b.cluster.method); });
            w([&](auto* m) { return add(m, "etcd_dirty", b.cluster.dirty); });
            w([&](auto* m) { return add_i64(m, "etcd_revision", b.cluster.revision); });
            w([&](auto* m) { return add_i64(m, "etcd_total_keys", b.cluster.total_keys); });
            w([&](auto* m) { return add_u64(m, "etcd_snapshot_size", b.cluster.snapshot_size); });
        }
        w([&](auto* m) { return add(m, "openshift_version", b.openshift.version); });
        w([&](auto* m) { return add(m, "release_image", b.openshift.release_image); });
        w([&](auto* m) { return add(m, "cert_expiry", b.openshift.cert_expiry); });
        w([&](auto* m) { return add(m, "has_cluster_restore", b.openshift.has_cluster_restore); });
        w([&](auto* m) { return add(m, "metadata_json", metadata_to_json(b)); });
    }
    if (w.r < 0) return w.r;
    return sd_bus_message_close_container(reply);
}

std::vector<std::string> deployment_ids(const std::vector<DeploymentInfo>& v)
{
    std::vector<std::string> out;
    for (const auto& d : v)
        out.push_back(d.id());
    return out;
}

// The error of a failed result as the bus sees it.
int reply_error(sd_bus_error* err, const Error& e)
{
    return set_error(err, e);
}

// StartBackup with dry_run: the numbers in Job.Message; a backup that would not
// fit ends the job with NoSpace, as `backup --dry-run` exits 5.
Result<JobOutcome> dry_run_outcome(const BackupEstimate& e)
{
    const std::string shared = e.previous.empty() ? "share nothing (" + e.unshared + ")"
                                                  : "share " + human_bytes(e.shared_bytes) + " with " + e.previous;
    std::string numbers = "would copy " + std::to_string(e.new_files) + " files (" + human_bytes(e.new_bytes) + "), " +
                          shared + "; needs " + human_bytes(e.need_bytes) + " of " + human_bytes(e.free_bytes) +
                          " free";
    if (!e.fits()) {
        Error err = no_space_error(e);
        err.message = "dry run: a backup now would not fit: " + err.message;
        return fail(std::move(err));
    }
    JobOutcome o;
    o.message = "dry run, nothing written: " + numbers + ": fits";
    return o;
}

} // namespace

Manager::Manager(sd_event* event, sd_bus* bus, Config cfg, DaemonArgs args)
    : event_(event), bus_(bus), cfg_(std::move(cfg)), args_(std::move(args))
{
}

Manager::~Manager()
{
    // Jobs join their workers; the bus slots go before the objects they point at.
    // No more store refreshes: the deferred one below would emit on a gone object.
    runner_watch_.reset();
    store_watch_.reset();
    manager_slot_.reset();
    job_slot_.reset();
    enum_slot_.reset();
    current_.reset();
    finished_.clear();
    defer_source_.reset();
    for (auto& f : deferred_)
        f(); // pending frees of finished hidden jobs
}

Result<> Manager::attach()
{
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus_, &s, kManagerPath, kManagerInterface, vtable, this);
    if (r < 0) return fail_errno(-r, "register Manager object");
    manager_slot_.reset(s);
    r = sd_bus_add_fallback_vtable(bus_, &s, kJobPathPrefix, kJobInterface, Job::vtable, find_job, this);
    if (r < 0) return fail_errno(-r, "register Job objects");
    job_slot_.reset(s);
    r = sd_bus_add_node_enumerator(bus_, &s, kJobPathPrefix, enumerate_jobs, this);
    if (r < 0) return fail_errno(-r, "register Job enumerator");
    enum_slot_.reset(s);
    return {};
}

void Manager::startup()
{
    auto st = load_state(args_.root);
    if (!st) {
        // Counting from 1 again would hand out paths of earlier jobs a client may
        // still hold (and the journal's JOB numbers): count on above them.
        saved_ = DaemonState{};
        saved_.last_job_id = job_numbers_after_damage(args_.root, static_cast<int64_t>(::time(nullptr)));
        log::warning("daemon state unreadable, starting fresh with job numbers above " +
                     std::to_string(saved_.last_job_id) + ": " + st.error().message);
    } else {
        saved_ = std::move(*st);
    }
    bool interrupted = false;
    if (saved_.job) {
        JobRecord& j = *saved_.job;
        if (!j.terminal()) {
            // The previous instance died under this job (SIGKILL, crash, power cut).
            std::string step = j.message.empty() ? std::string("start") : j.message;
            std::string msg = j.type + " job " + std::to_string(j.id) + " was interrupted at '" + step +
                              "': the daemon stopped before it finished";
            if (j.type == "backup") {
                // A kill between publishing and switching `latest` leaves the new backup
                // complete and kept, `latest` still on the one before (the next backup sets
                // it). The id is known only at the end unless given: the newest generation,
                // when `latest` does not name it and it was written during this job.
                std::string published;
                if (auto store = open_store(cfg_, args_.root, false); store) {
                    auto ids = list_backups(*store);
                    auto latest = read_latest(*store);
                    struct stat st;
                    if (ids && !ids->empty() && latest && latest->id != ids->back() &&
                        ::fstatat(store->backups_fd.get(), ids->back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                        S_ISDIR(st.st_mode) && st.st_mtime >= j.started)
                        published = ids->back();
                }
                msg += !published.empty()
                           ? "; backup " + published +
                                 " was published before that and is kept ('latest' may still name the one "
                                 "before it until the next backup)"
                           : "; the previous backup is untouched and the partial one is discarded";
            }
            log::event(
                log::kJobInterrupted, log::Level::Error, msg,
                {{"JOB", std::to_string(j.id)}, {"JOB_TYPE", j.type}, {"BACKUP_ID", j.backup_id}, {"STEP", step}});
            j.state = "Error";
            j.error_name = kInterruptedError;
            j.message = msg;
            j.finished = static_cast<int64_t>(::time(nullptr));
            interrupted = true;
            if (j.type == "backup" || j.type == "delete") {
                // Drop the half-written staging, or finish the delete and release the ostree
                // pins it held, now rather than at the next backup or delete, unless someone
                // else holds the store (then they or the next run will).
                if (auto store = open_store(cfg_, args_.root, false); store) {
                    if (auto lock = lock_store(*store); lock) {
                        auto n = remove_leftovers(cfg_, args_.root, *store);
                        if (!n)
                            log::warning("what the interrupted job left stays: " + n.error().message);
                        else if (!n->warning.empty())
                            log::warning(n->warning);
                        if (n && n->leftovers)
                            log::info("removed " + std::to_string(n->leftovers) +
                                      " partial backup(s) or delete(s) of the interrupted job");
                    }
                }
            }
        }
    }
    // Idle exit and D-Bus activation must not lose the last result.
    auto result_phase = [](const std::string& name) {
        return name == "Succeeded" ? Phase::Succeeded
               : name == "Timeout" ? Phase::Timeout
               : name == "Error"   ? Phase::Error
                                   : Phase::Idle;
    };
    if (saved_.result) {
        state_ = result_phase(*saved_.result);
        last_error_ = saved_.last_error;
        last_error_name_ = saved_.last_error_name;
    } else if (saved_.job) { // written by a version that kept only the job
        const JobRecord& j = *saved_.job;
        state_ = result_phase(j.state == "Succeeded" || j.state == "Timeout" ? j.state : "Error");
        last_error_ = j.state == "Succeeded" ? "" : j.message;
        last_error_name_ = j.state == "Succeeded" ? "" : j.error_name;
    }
    if (interrupted) {
        const JobRecord& j = *saved_.job;
        if (j.type != "delete") state_ = Phase::Error; // DeleteBackup is not a State job
        last_error_ = j.message;
        last_error_name_ = j.error_name;
    }
    // LastBackup and RecoveryState follow what the CLI or phase 2 write, when they write it,
    // and RecoveryState turns Interrupted when the process running a recovery dies.
    store_watch_ = std::make_unique<StoreWatch>(event_, [this] { queue_refresh(); });
    runner_watch_ = std::make_unique<RunnerWatch>(event_, [this] { queue_refresh(); });
    if (interrupted) save_daemon_state();
    refresh_view(false);
    notify_status();
}

void Manager::queue_refresh()
{
    if (refresh_queued_) return; // one re-read for a burst of events
    refresh_queued_ = true;
    defer([this] {
        if (!store_watch_) return; // the Manager is going away
        refresh_queued_ = false;
        refresh_view(true);
    });
}

void Manager::when_idle(std::function<void()> on_idle)
{
    if (!current_) {
        on_idle();
        return;
    }
    on_idle_ = std::move(on_idle);
}

void Manager::shutdown(std::function<void()> on_idle)
{
    if (current_) current_->cancel();
    when_idle(std::move(on_idle));
}

int Manager::require_privileged(sd_bus_message* m, sd_bus_error* err)
{
    int r = sd_bus_query_sender_privilege(m, CAP_SYS_ADMIN);
    if (r < 0) return r;
    if (r == 0)
        return sd_bus_error_setf(err, SD_BUS_ERROR_ACCESS_DENIED, "%s needs root (uid 0)",
                                 sd_bus_message_get_member(m));
    return 1;
}

Result<Manager::LockedStore> Manager::open_locked_store(StoreAccess access) const
{
    auto store = open_store(cfg_, args_.root, access);
    if (!store) return std::unexpected(store.error());
    auto lock = lock_store(*store);
    if (!lock) return std::unexpected(lock.error());
    return LockedStore{std::move(*store), std::move(*lock)};
}

void Manager::warn_after_arming(const char* method, bool watchdog) const
{
    if (auto p = initrd_module_problem(args_.root, args_.initrd_run_dir); p && !p->empty())
        log::warning(std::string(method) + ": " + *p);
    for (const auto& u : check_units_after_arming(args_.root, watchdog)) {
        if (!u.warning.empty()) log::warning(std::string(method) + ": " + u.warning);
        if (!u.note.empty()) log::info(std::string(method) + ": " + u.note);
    }
}

int Manager::check_idle(sd_bus_error* err) const
{
    if (!current_) return 1;
    std::string msg = "a " + current_->type() + " job is running" +
                      (current_->exported() ? " (" + current_->path() + ")" : std::string()) +
                      "; one operation at a time";
    return sd_bus_error_set(err, error_name(ErrorKind::Busy).c_str(), valid_utf8(msg).c_str());
}

Result<Job*> Manager::launch(const std::string& type, bool exported, JobWork work, const std::string& backup_id,
                             MessagePtr reply_to)
{
    uint32_t id = ++saved_.last_job_id;
    auto job = std::make_unique<Job>(id, type, exported);
    // A backup job's BackupId is the backup it published: none before. An id asked
    // for may still be refused (taken meanwhile) and must not show as this job's.
    job->set_requested_backup_id(backup_id);
    if (type != "backup") job->set_backup_id(backup_id);
    Job* raw = job.get();
    current_ = std::move(job);
    current_reply_ = std::move(reply_to);
    last_stage_.clear();
    last_notified_pct_ = 0;
    if (exported) {
        set_state(Phase::PreparingToStart);
        emit_changed({"CurrentJob"});
    }
    record_job(*raw); // durable before any work: a crash from here on is reported
    log_job_start(*raw);
    auto r = raw->start(
        event_, bus_, std::move(work), [this](Job& j, bool phase_changed) { on_job_change(j, phase_changed); },
        [this](Job& j) { on_job_finished(j); });
    if (!r) {
        // Never started: record it as failed, or the next start would call it interrupted.
        JobRecord rec = *saved_.job;
        rec.state = phase_name(Phase::Error);
        rec.error_name = error_name(r.error().kind);
        rec.message = r.error().message;
        rec.finished = static_cast<int64_t>(::time(nullptr));
        saved_.job = std::move(rec);
        current_.reset();
        current_reply_.reset();
        if (exported) set_state(Phase::Error);
        set_last_error(error_name(r.error().kind), r.error().message);
        save_daemon_state();
        if (exported) emit_changed({"CurrentJob"});
        return std::unexpected(r.error());
    }
    notify_status();
    return raw;
}

void Manager::on_job_change(Job& job, bool phase_changed)
{
    if (job.exported() && phase_changed) set_state(job.phase());
    if (job.message() != last_stage_) {
        last_stage_ = job.message();
        record_job(job); // the STEP an interruption report names
        notify_status();
    } else if (job.progress() >= last_notified_pct_ + 10) {
        notify_status();
    }
}

void Manager::on_job_finished(Job& job)
{
    // LastError follows every operation; State only the jobs on the bus.
    if (job.exported()) set_state(job.phase() == Phase::Cancelled ? Phase::Error : job.phase());
    if (job.phase() == Phase::Succeeded)
        set_last_error("", "");
    else
        set_last_error(job.error_name(), job.message());
    record_job(job); // durable with the result it left
    log_job_end(job);
    if (current_reply_) {
        // DeleteBackup answers its caller only now.
        if (job.phase() == Phase::Succeeded) {
            sd_bus_reply_method_return(current_reply_.get(), nullptr);
        } else {
            BusError e;
            set_error(e.get(), job.error() ? *job.error() : Error{ErrorKind::Internal, 0, job.message()});
            sd_bus_reply_method_error(current_reply_.get(), e.get());
        }
        current_reply_.reset();
    }
    std::unique_ptr<Job> done = std::move(current_);
    const bool was_current_job = done->exported(); // a hidden job (DeleteBackup) never was CurrentJob
    if (done->exported()) {
        finished_.push_back(std::move(done));
        while (finished_.size() > kKeepFinishedJobs)
            finished_.pop_front();
    } else {
        // Not on the bus: nobody can look it up. We run inside its own
        // callback, so free it from the loop, not here.
        Job* raw = done.release();
        defer([raw] { delete raw; });
    }
    if (was_current_job) emit_changed({"CurrentJob"});
    refresh_view(true);
    notify_status();
    if (on_idle_) {
        auto cb = std::move(on_idle_);
        on_idle_ = nullptr;
        cb();
    }
}

void Manager::record_job(const Job& job)
{
    JobRecord r;
    r.id = job.id();
    r.type = job.type();
    r.state = phase_name(job.phase());
    r.backup_id = job.named_backup_id();
    r.error_name = job.error_name();
    r.message = job.message();
    r.started = job.started();
    if (job.finished()) r.finished = static_cast<int64_t>(::time(nullptr));
    saved_.job = std::move(r);
    save_daemon_state();
}

void Manager::log_job_start(const Job& job)
{
    std::string jid = std::to_string(job.id());
    log::event(kJobStarted, log::Level::Info,
               job.type() + " job " + jid + " started" +
                   (job.named_backup_id().empty() ? std::string() : " (backup " + job.named_backup_id() + ")"),
               {{"JOB", jid}, {"JOB_TYPE", job.type()}, {"BACKUP_ID", job.named_backup_id()}, {"STEP", "start"}});
}

void Manager::log_job_end(const Job& job)
{
    std::string jid = std::to_string(job.id());
    bool ok = job.phase() == Phase::Succeeded;
    std::string step = ok ? std::string("done") : last_stage_.empty() ? std::string("start") : last_stage_;
    log::event(kJobFinished, ok ? log::Level::Info : log::Level::Error,
               job.type() + " job " + jid + " " + phase_name(job.phase()) + ": " + job.message(),
               {{"JOB", jid},
                {"JOB_TYPE", job.type()},
                {"BACKUP_ID", job.named_backup_id()},
                {"STEP", step},
                {"RESULT", phase_name(job.phase())},
                {"ERROR", job.error_name()}});
    // run_backup reports its start and success itself; a failure is the caller's to report.
    if (job.type() == "backup" && !ok)
        log::event(log::kBackupFailed, log::Level::Error, "backup failed: " + job.message(),
                   {{"JOB", jid}, {"BACKUP_ID", job.named_backup_id()}, {"STEP", step}, {"ERROR", job.error_name()}});
}

void Manager::notify_status()
{
    std::string s;
    if (current_) {
        s = current_->type() + " job " + std::to_string(current_->id()) + ": " + std::to_string(current_->progress()) +
            "%" + (current_->message().empty() ? std::string() : " " + current_->message());
        last_notified_pct_ = current_->progress();
    } else {
        s = std::string(phase_name(state_)) + (last_backup_.empty() ? "" : ", last backup " + last_backup_);
    }
    sd_notify(0, ("STATUS=" + s).c_str());
}

void Manager::set_state(Phase p)
{
    if (state_ == p) return;
    state_ = p;
    emit_changed({"State"});
}

void Manager::set_last_error(std::string name, std::string message)
{
    if (last_error_ == message && last_error_name_ == name) return;
    last_error_ = std::move(message);
    last_error_name_ = std::move(name);
    emit_changed({"LastError", "LastErrorName"});
}

void Manager::save_daemon_state()
{
    // The result the next start shows: State's last result (not a running job's
    // phase: a crash then is reported as interrupted) and LastError.
    if (state_ == Phase::Succeeded || state_ == Phase::Timeout || state_ == Phase::Error)
        saved_.result = phase_name(state_);
    saved_.last_error = last_error_;
    saved_.last_error_name = last_error_name_;
    if (auto r = save_state(args_.root, saved_); !r) log::warning("save daemon state: " + r.error().message);
}

void Manager::emit_changed(std::initializer_list<const char*> props)
{
    std::vector<char*> names;
    for (const char* p : props)
        names.push_back(const_cast<char*>(p));
    names.push_back(nullptr);
    sd_bus_emit_properties_changed_strv(bus_, kManagerPath, kManagerInterface, names.data());
}

void Manager::refresh_view(bool emit)
{
    view_time_ = std::chrono::steady_clock::now();
    std::string latest, rstate = "None", rsummary;
    auto store = open_store(cfg_, args_.root, false);
    // Each re-read re-checks the watch: the partition may be mounted by now.
    if (store_watch_) store_watch_->watch(store ? store->path() : root_path(args_.root, cfg_.mount_point));
    const RecoveryJournal* running = nullptr; // a run at work, whose process to watch
    std::optional<RecoveryStatus> status;
    if (store) {
        if (auto l = read_latest(*store); l && l->id) latest = *l->id; // damaged: none
        if (auto rs = read_recovery_status(*store); rs) {
            // The words `status` uses (recovery_journal): a killed run reads Interrupted
            // there and here alike.
            rsummary = rs->summary;
            rstate = recovery_state_label(*rs);
            status = std::move(*rs);
            const auto& j = status->journal;
            if (j && j->state == RecoveryState::Running && !status->interrupted && j->runner_pid > 0) running = &*j;
            if (status->unreadable) // damage in one part (a bad `armed`) must not hide a readable journal
                rsummary = "unreadable: " + status->unreadable->message + (rsummary.empty() ? "" : "; " + rsummary);
        } else {
            rsummary = "recovery state unreadable: " + rs.error().message;
            rstate = "Unknown";
        }
    } else {
        rsummary = store.error().message;
        rstate = "Unknown";
    }
    // Its death changes nothing on the partition: the pidfd says when (runner_watch).
    if (runner_watch_) {
        if (running)
            runner_watch_->watch(running->runner_pid, running->runner_boot_id);
        else
            runner_watch_->clear();
    }
    bool backup_changed = latest != last_backup_;
    bool rec_changed = rstate != recovery_state_ || rsummary != recovery_summary_;
    last_backup_ = std::move(latest);
    recovery_state_ = std::move(rstate);
    recovery_summary_ = std::move(rsummary);
    if (!emit) return;
    if (backup_changed) emit_changed({"LastBackup"});
    if (rec_changed) emit_changed({"RecoveryState", "RecoverySummary"});
}

void Manager::refresh_if_stale()
{
    if (std::chrono::steady_clock::now() - view_time_ < kViewTtl) return;
    // Someone else (the CLI, the initrd) may have changed the partition. Re-read
    // now for this reply; PropertiesChanged goes out from the loop, not from
    // inside a getter.
    std::string old_backup = last_backup_, old_rstate = recovery_state_, old_summary = recovery_summary_;
    refresh_view(false);
    bool b = old_backup != last_backup_, rc = old_rstate != recovery_state_ || old_summary != recovery_summary_;
    if (b || rc)
        defer([this, b, rc] {
            if (b) emit_changed({"LastBackup"});
            if (rc) emit_changed({"RecoveryState", "RecoverySummary"});
        });
}

const std::vector<std::string>& Manager::current_warnings()
{
    const auto now = std::chrono::steady_clock::now();
    if (warnings_time_ != std::chrono::steady_clock::time_point{} && now - warnings_time_ < kViewTtl) return warnings_;
    warnings_time_ = now;
    // A store that cannot be read has nothing armed or pending as far as this can tell:
    // the checks of the boot and of the initramfs still apply (RecoveryState says Unknown).
    StoreStatus st;
    if (auto store = open_store(cfg_, args_.root, false); store)
        if (auto s = read_store_status(*store, cfg_.watchdog_max_boots); s) st = std::move(*s);
    warnings_ = check_status_host(args_.root, st, args_.initrd_run_dir).warnings();
    return warnings_;
}

void Manager::defer(std::function<void()> fn)
{
    deferred_.push_back(std::move(fn));
    if (defer_source_) {
        sd_event_source_set_enabled(defer_source_.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* src = nullptr;
    int r = sd_event_add_defer(
        event_, &src,
        [](sd_event_source*, void* ud) {
            auto* self = static_cast<Manager*>(ud);
            auto fns = std::move(self->deferred_);
            self->deferred_.clear();
            for (auto& f : fns)
                f();
            return 0;
        },
        this);
    if (r < 0) {
        // ENOMEM only: run it now rather than never.
        auto fns = std::move(deferred_);
        deferred_.clear();
        for (auto& f : fns)
            f();
        return;
    }
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
    defer_source_.reset(src);
}

// ---- properties ----------------------------------------------------------

int Manager::prop_get(sd_bus*, const char*, const char*, const char* prop, sd_bus_message* reply, void* userdata,
                      sd_bus_error*)
{
    auto* self = static_cast<Manager*>(userdata);
    if (std::strcmp(prop, "Version") == 0) return sd_bus_message_append(reply, "s", UR_VERSION);
    if (std::strcmp(prop, "State") == 0) return sd_bus_message_append(reply, "s", phase_name(self->state_));
    if (std::strcmp(prop, "LastError") == 0)
        return sd_bus_message_append(reply, "s", valid_utf8(self->last_error_).c_str());
    if (std::strcmp(prop, "LastErrorName") == 0)
        return sd_bus_message_append(reply, "s", self->last_error_name_.c_str());
    if (std::strcmp(prop, "CurrentJob") == 0)
        return sd_bus_message_append(
            reply, "o", self->current_ && self->current_->exported() ? self->current_->path().c_str() : "/");
    if (std::strcmp(prop, "Warnings") == 0) return dbus::append_strings(reply, self->current_warnings());
    self->refresh_if_stale();
    if (std::strcmp(prop, "LastBackup") == 0)
        return sd_bus_message_append(reply, "s", valid_utf8(self->last_backup_).c_str());
    if (std::strcmp(prop, "RecoveryState") == 0)
        return sd_bus_message_append(reply, "s", self->recovery_state_.c_str());
    if (std::strcmp(prop, "RecoverySummary") == 0)
        return sd_bus_message_append(reply, "s", valid_utf8(self->recovery_summary_).c_str());
    return -ENOENT;
}

// ---- job objects ---------------------------------------------------------

int Manager::find_job(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    if (self->current_ && self->current_->exported() && self->current_->path() == path) {
        *found = self->current_.get();
        return 1;
    }
    for (auto& j : self->finished_)
        if (j->path() == path) {
            *found = j.get();
            return 1;
        }
    // A job path we no longer serve (dropped from finished_, or from before an idle
    // exit or a restart): a named error that says where the result went, instead of
    // UnknownObject, which reads like a wrong path. Other paths below the prefix stay unknown.
    const std::string prefix = std::string(kJobPathPrefix) + "/";
    const std::string_view p(path);
    const std::string_view digits = p.substr(std::min(p.size(), prefix.size()));
    if (!p.starts_with(prefix) || digits.empty() || digits.size() > 10 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
        return 0;
    const uint64_t n = std::stoull(std::string(digits));
    std::string msg;
    if (n == 0 || n > self->saved_.last_job_id) {
        msg = "no job " + std::string(digits) + " was ever started (the last one is " +
              std::to_string(self->saved_.last_job_id) + ")";
    } else {
        msg = "job " + std::to_string(n) + " is no longer known: it finished and was dropped (the last " +
              std::to_string(kKeepFinishedJobs) +
              " finished jobs stay readable until the service exits) or the service has exited or restarted since";
        if (const auto& j = self->saved_.job; j && j->id == n && j->terminal())
            msg += "; it ended " + j->state + (j->message.empty() ? "" : ": " + j->message);
        msg += "; its result is in the journal ('journalctl UPGRADE_RECOVERY_JOB=" + std::to_string(n) +
               "'), the last one's in the Manager's State and LastError, and 'upgrade-recovery status' shows the "
               "last backup attempt and the recovery";
    }
    return set_error(err, Error{ErrorKind::NotFound, 0, msg});
}

int Manager::enumerate_jobs(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*)
{
    auto* self = static_cast<Manager*>(userdata);
    std::vector<const Job*> jobs;
    for (auto& j : self->finished_)
        jobs.push_back(j.get());
    if (self->current_ && self->current_->exported()) jobs.push_back(self->current_.get());
    // sd-bus frees the list with free(): allocate it with malloc/strdup.
    char** l = static_cast<char**>(calloc(jobs.size() + 1, sizeof(char*)));
    if (!l) return -ENOMEM;
    for (size_t i = 0; i < jobs.size(); i++) {
        l[i] = strdup(jobs[i]->path().c_str());
        if (!l[i]) {
            for (size_t k = 0; k < i; k++)
                free(l[k]);
            free(l);
            return -ENOMEM;
        }
    }
    *nodes = l;
    return 1;
}

// ---- methods -------------------------------------------------------------

int Manager::m_start_backup(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    auto opts = read_options(m, {{"timeout", 'u'}, {"force", 'b'}, {"id", 's'}, {"dry_run", 'b'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;

    BackupOptions bo;
    bo.root = self->args_.root;
    bo.force_dirty = opts->boolean("force").value_or(false);
    bo.dry_run = opts->boolean("dry_run").value_or(false);
    if (auto id = opts->str("id")) {
        if (!valid_backup_id(*id))
            return reply_error(err, Error{ErrorKind::InvalidArgs, 0,
                                          "option 'id': '" + *id + "' is not a backup id (YYYYMMDDTHHMMSSZ[-N])"});
        bo.id = *id;
    }
    unsigned timeout = opts->u32("timeout").value_or(self->cfg_.backup_timeout);

    // Refuse at once what would only fail inside the job. The job checks again
    // under the store lock (run_backup), which is the authority.
    if (auto store = open_store(self->cfg_, self->args_.root, false); store) {
        auto inprog = recovery_in_progress(*store);
        if (!inprog) return reply_error(err, inprog.error());
        if (*inprog)
            return reply_error(
                err, Error{ErrorKind::RecoveryInProgress, 0,
                           "a recovery is armed or in progress on " + store->path() +
                               "; no backup until it ends (DisarmRecovery cancels an armed one; StartRecovery "
                               "with resume continues one in progress, AbandonRecovery ends it)"});
        auto lock = lock_store(*store, false); // a probe: no lock file where none was
        if (!lock) return reply_error(err, lock.error());
        // A refused id is refused by the call: no job, no property changes (the job
        // used to end InvalidArgs, State and LastError changed, for bad arguments).
        if (bo.id) {
            auto ids = list_backups(*store);
            if (!ids) return reply_error(err, ids.error());
            if (auto c = check_requested_backup_id(*bo.id, *ids, ::time(nullptr)); !c)
                return reply_error(err, std::move(c.error()).context("option 'id'"));
        }
    }

    Config cfg = self->cfg_;
    auto job = self->launch(
        "backup", true,
        [cfg, bo](Progress& p, const CancelToken& c) -> Result<JobOutcome> {
            auto res = run_backup(cfg, bo, p, c);
            if (!res) return std::unexpected(res.error());
            if (bo.dry_run) return dry_run_outcome(res->estimate);
            const BackupMetadata& b = res->meta;
            char dur[32];
            std::snprintf(dur, sizeof dur, "%.1f", b.duration_seconds);
            JobOutcome o;
            o.backup_id = b.id;
            o.message = "backup " + b.id + " published: " + std::to_string(b.manifest_entries) + " entries, " +
                        human_bytes(b.total_bytes) + " (" + human_bytes(b.copied_bytes) + " copied, " +
                        human_bytes(b.shared_bytes) + " shared) in " + dur + " s";
            if (!res->pruned.empty()) {
                o.message += "; pruned";
                for (const auto& id : res->pruned)
                    o.message += " " + id;
            }
            o.warnings = b.warnings;
            return o;
        },
        bo.dry_run ? "" : bo.id.value_or(""));
    if (!job) return reply_error(err, job.error());
    (*job)->token().set_timeout(std::chrono::seconds(timeout));
    return sd_bus_reply_method_return(m, "o", (*job)->path().c_str());
}

int Manager::m_list_backups(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    auto store = open_store(self->cfg_, self->args_.root, false);
    if (!store) return reply_error(err, store.error());
    // Every generation; one that is not a backup comes with its error.
    auto ids = list_generations(*store);
    if (!ids) return reply_error(err, ids.error());
    // A damaged `latest` marks no backup as latest; the backups are still listed.
    auto latest = read_latest(*store);
    if (!latest) return reply_error(err, latest.error());

    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
    for (auto it = ids->rbegin(); r >= 0 && it != ids->rend(); ++it) // newest first
        r = append_backup(reply.get(), *it, read_metadata(*store, *it), latest->id == *it);
    if (r >= 0) r = sd_bus_message_close_container(reply.get());
    if (r < 0) return r;
    return sd_bus_send(nullptr, reply.get(), nullptr);
}

int Manager::m_verify_backup(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    const char* id_arg = nullptr;
    if ((r = sd_bus_message_read(m, "s", &id_arg)) < 0) return r;
    auto opts = read_options(m, {{"timeout", 'u'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;

    std::string id = id_arg;
    auto store = open_store(self->cfg_, self->args_.root, false);
    if (!store) return reply_error(err, store.error());
    if (id.empty()) {
        auto l = latest_backup(*store);
        if (!l) return reply_error(err, l.error());
        if (!*l) return reply_error(err, Error{ErrorKind::NotFound, 0, "no backup to verify in " + store->path()});
        id = **l;
    } else if (!valid_backup_id(id)) {
        return reply_error(err, Error{ErrorKind::InvalidArgs, 0, "'" + id + "' is not a backup id"});
    } else if (auto meta = read_metadata(*store, id); !meta && meta.error().kind == ErrorKind::NotFound) {
        return reply_error(err, meta.error());
    }

    Config cfg = self->cfg_;
    std::string root = self->args_.root;
    auto job = self->launch(
        "verify", true,
        [cfg, root, id](Progress& p, const CancelToken& c) -> Result<JobOutcome> {
            auto st = open_store(cfg, root, false);
            if (!st) return std::unexpected(st.error());
            // Verifying while a backup prunes could race with the delete.
            auto lock = lock_store(*st);
            if (!lock) return std::unexpected(lock.error());
            auto rep = verify_backup(*st, id, p, c);
            if (!rep) return std::unexpected(rep.error());
            if (!rep->ok()) {
                std::string msg = "backup " + id + " is corrupt: " + std::to_string(rep->mismatches.size()) + " of " +
                                  std::to_string(rep->checked) + " entries differ; first: " + rep->mismatches.front();
                return fail(ErrorKind::Corrupt, msg);
            }
            JobOutcome o;
            o.backup_id = id;
            o.message = "backup " + id + " verified: " + std::to_string(rep->checked) + " entries match the manifest";
            return o;
        },
        id);
    if (!job) return reply_error(err, job.error());
    if (auto t = opts->u32("timeout"); t && *t) (*job)->token().set_timeout(std::chrono::seconds(*t));
    return sd_bus_reply_method_return(m, "o", (*job)->path().c_str());
}

int Manager::m_delete_backup(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    const char* id_arg = nullptr;
    if ((r = sd_bus_message_read(m, "s", &id_arg)) < 0) return r;
    std::string id = id_arg;
    if (!valid_backup_id(id))
        return reply_error(err, Error{ErrorKind::InvalidArgs, 0, "'" + id + "' is not a backup id"});
    if ((r = self->check_idle(err)) <= 0) return r;

    // Removing a generation is thousands of unlinks: off the loop, answered when done.
    Config cfg = self->cfg_;
    std::string root = self->args_.root;
    auto job = self->launch(
        "delete", false,
        [cfg, root, id](Progress&, const CancelToken&) -> Result<JobOutcome> {
            auto st = open_store(cfg, root, StoreAccess::Inspect);
            if (!st) return std::unexpected(st.error());
            auto lock = lock_store(*st);
            if (!lock) return std::unexpected(lock.error());
            auto r = remove_backup(cfg, root, *st, id, false);
            if (!r) return std::unexpected(r.error());
            std::string msg = "backup " + id + " deleted";
            for (const auto& f : r->finished)
                msg +=
                    f == id ? " (its interrupted delete finished)" : "; the interrupted delete of " + f + " finished";
            for (const auto& u : r->unpinned)
                msg += "; ostree deployment " + u + " unpinned";
            std::vector<std::string> warnings;
            if (!r->warning.empty()) warnings.push_back(r->warning);
            return JobOutcome{msg, id, warnings};
        },
        id, ref_message(m));
    if (!job) return reply_error(err, job.error());
    return 1; // answered by on_job_finished
}

int Manager::m_get_rollback_plan(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    auto store = open_store(self->cfg_, self->args_.root, false);
    if (!store) return reply_error(err, store.error());
    auto latest = latest_backup(*store);
    if (!latest) return reply_error(err, latest.error());
    if (!*latest)
        return reply_error(err,
                           Error{ErrorKind::NotFound, 0, "no backup in " + store->path() + ": nothing to plan for"});
    auto meta = read_metadata(*store, **latest);
    if (!meta) return reply_error(err, meta.error());
    auto plan = compute_rollback_plan(self->cfg_, self->args_.root, meta->ostree);
    if (!plan) return reply_error(err, plan.error());
    const RollbackPlan& p = *plan;

    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    r = sd_bus_message_open_container(reply.get(), 'a', "{sv}");
    if (r < 0) return r;
    DictWriter w{reply.get()};
    w([&](auto* mm) { return add(mm, "backup_id", **latest); });
    w([&](auto* mm) { return add(mm, "action", std::string(rollback_action_name(p.action))); });
    w([&](auto* mm) { return add(mm, "reason", p.reason); });
    w([&](auto* mm) { return add(mm, "recorded", meta->ostree.present ? p.recorded.id() : std::string()); });
    w([&](auto* mm) { return add(mm, "target", p.target ? p.target->id() : std::string()); });
    w([&](auto* mm) { return add(mm, "drop_staged", p.drop_staged ? p.drop_staged->id() : std::string()); });
    w([&](auto* mm) { return add(mm, "undeploy", deployment_ids(p.undeploy)); });
    w([&](auto* mm) { return add(mm, "new_order", deployment_ids(p.new_order)); });
    w([&](auto* mm) { return add(mm, "deployments", deployment_ids(p.deployments)); });
    w([&](auto* mm) { return add(mm, "reboot_needed", p.reboot_needed); });
    w([&](auto* mm) { return add(mm, "changes", p.changes()); });
    w([&](auto* mm) { return add(mm, "notes", p.notes); });
    w([&](auto* mm) { return add(mm, "text", rollback_plan_text(p)); });
    w([&](auto* mm) { return add(mm, "json", rollback_plan_json(p)); });
    if (w.r < 0) return w.r;
    if ((r = sd_bus_message_close_container(reply.get())) < 0) return r;
    return sd_bus_send(nullptr, reply.get(), nullptr);
}

int Manager::m_arm_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    const char* id_arg = nullptr;
    if ((r = sd_bus_message_read(m, "s", &id_arg)) < 0) return r;
    auto opts = read_options(m, {{"reboot", 'b'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;

    auto ls = self->open_locked_store();
    if (!ls) return reply_error(err, ls.error());
    auto id = backup_or_latest(ls->store, id_arg);
    if (!id) return reply_error(err, id.error());
    if (auto a = arm_recovery(ls->store, *id); !a) return reply_error(err, a.error());
    self->warn_after_arming("ArmRecovery", false);
    self->refresh_view(true);
    if (!opts->boolean("reboot").value_or(false)) return sd_bus_reply_method_return(m, nullptr);

    // Reboot the way `systemctl reboot` does; answer once systemd queued the job.
    // The slot owns the held call: freed after the reply, or when the bus goes first.
    auto* held = new MessagePtr(ref_message(m));
    sd_bus_slot* slot = nullptr;
    r = sd_bus_call_method_async(
        self->bus_, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
        "StartUnit",
        [](sd_bus_message* reply, void* ud, sd_bus_error*) -> int {
            const auto* call = static_cast<MessagePtr*>(ud);
            const sd_bus_error* e = sd_bus_message_get_error(reply);
            if (!e) return sd_bus_reply_method_return(call->get(), nullptr);
            std::string msg = std::string("recovery armed, but the reboot request failed: ") +
                              (e->message ? e->message : e->name) + "; reboot by hand";
            return sd_bus_reply_method_errorf(call->get(), error_name(ErrorKind::ExternalFailed).c_str(), "%s",
                                              msg.c_str());
        },
        held, "ss", "reboot.target", "replace-irreversibly");
    if (r < 0) {
        delete held;
        return reply_error(err,
                           Error{ErrorKind::ExternalFailed, -r,
                                 std::string("recovery armed, but the reboot request failed: ") + std::strerror(-r)});
    }
    sd_bus_slot_set_destroy_callback(slot, [](void* ud) { delete static_cast<MessagePtr*>(ud); });
    sd_bus_slot_set_floating(slot, 1);
    sd_bus_slot_unref(slot);
    return 1;
}

int Manager::m_disarm_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    if ((r = self->check_idle(err)) <= 0) return r;
    auto ls = self->open_locked_store(StoreAccess::Inspect);
    if (!ls) return reply_error(err, ls.error());
    if (auto d = disarm_recovery(ls->store); !d) return reply_error(err, d.error());
    self->refresh_view(true);
    return sd_bus_reply_method_return(m, nullptr);
}

// Give up a recovery, as `upgrade-recovery recover --abandon [--force]`: over the bus
// too, since a node whose journal is damaged may be reached by no shell at all.
int Manager::m_abandon_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    auto opts = read_options(m, {{"force", 'b'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;
    auto ls = self->open_locked_store(StoreAccess::Inspect);
    if (!ls) return reply_error(err, ls.error());
    auto a = abandon_recovery(ls->store, "abandoned by the administrator (AbandonRecovery)",
                              opts->boolean("force").value_or(false));
    if (!a) return reply_error(err, a.error());
    // The host is left alone, as by the CLI: the caller gets what phase 1 left there
    // and phase 2's remaining commands, from the same builder.
    const LeftBehind left = abandoned_left_behind(self->cfg_, self->args_.root, ls->store, *a);
    self->refresh_view(true);

    sd_bus_message* raw = nullptr;
    if ((r = sd_bus_message_new_method_return(m, &raw)) < 0) return r;
    MessagePtr reply(raw);
    r = sd_bus_message_append(reply.get(), "bs", static_cast<int>(a->abandoned), valid_utf8(a->damaged_kept).c_str());
    if (r >= 0) r = append_strings(reply.get(), left.left);
    if (r >= 0) r = append_strings(reply.get(), left.commands);
    if (r < 0) return r;
    return sd_bus_send(nullptr, reply.get(), nullptr);
}

// The upgrade watchdog, as `upgrade-recovery watchdog start|stop` (upgrade_watchdog.hpp).
int Manager::m_start_watchdog(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    const char* id_arg = nullptr;
    if ((r = sd_bus_message_read(m, "s", &id_arg)) < 0) return r;
    auto opts = read_options(m, {{"timeout", 'u'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;

    auto ls = self->open_locked_store();
    if (!ls) return reply_error(err, ls.error());
    auto id = backup_or_latest(ls->store, id_arg);
    if (!id) return reply_error(err, id.error());
    auto w = start_watchdog(ls->store, *id, opts->u32("timeout").value_or(kWatchdogDefaultTimeout), read_boot_id());
    if (!w) return reply_error(err, w.error());
    self->warn_after_arming("StartWatchdog", true); // the watchdog's recovery needs phase 2 too
    return sd_bus_reply_method_return(m, "s", id->c_str());
}

int Manager::m_stop_watchdog(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    auto was = self->held_stops_.empty() ? self->try_stop_watchdog()
                                         : Result<bool>(fail(ErrorKind::Busy, "a StopWatchdog waits already"));
    if (!was && was.error().kind == ErrorKind::Busy) {
        log::info("StopWatchdog: " + was.error().message + "; waiting up to " +
                  std::to_string(kStoreLockPatience.count()) + " s for the store");
        self->held_stops_.push_back({ref_message(m), std::chrono::steady_clock::now() + kStoreLockPatience});
        self->arm_stop_retry();
        return 1; // answered by retry_held_stops
    }
    if (!was) return reply_error(err, was.error());
    return sd_bus_reply_method_return(m, "b", static_cast<int>(*was));
}

Result<bool> Manager::try_stop_watchdog()
{
    if (current_) return fail(ErrorKind::Busy, "a " + current_->type() + " job is running");
    auto ls = open_locked_store(StoreAccess::Inspect);
    if (!ls) return std::unexpected(ls.error());
    auto end = end_watchdog(ls->store);
    refresh_view(true);
    if (!end) return std::unexpected(end.error());
    // As `watchdog stop` exits 6: whoever declares the upgrade complete must hear
    // that the next boot restores a backup all the same.
    if (end->armed) return fail(ErrorKind::RecoveryInProgress, armed_after_watchdog_end(*end, "call DisarmRecovery"));
    return end->stopped;
}

void Manager::arm_stop_retry()
{
    constexpr uint64_t kRetryUsec = 1000000;
    if (stop_retry_) {
        if (sd_event_source_set_time_relative(stop_retry_.get(), kRetryUsec) >= 0 &&
            sd_event_source_set_enabled(stop_retry_.get(), SD_EVENT_ONESHOT) >= 0)
            return;
    } else {
        sd_event_source* s = nullptr;
        auto cb = [](sd_event_source*, uint64_t, void* ud) -> int {
            static_cast<Manager*>(ud)->retry_held_stops();
            return 0;
        };
        if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, kRetryUsec, 0, cb, this) >= 0) {
            stop_retry_.reset(s);
            return;
        }
    }
    // No timer: the held calls are answered now (Busy), not left without a reply.
    for (auto& h : held_stops_)
        sd_bus_reply_method_errorf(h.call.get(), error_name(ErrorKind::Busy).c_str(), "%s",
                                   "the store is busy and the service cannot wait for it; call again");
    held_stops_.clear();
}

void Manager::retry_held_stops()
{
    auto was = try_stop_watchdog();
    const bool busy = !was && was.error().kind == ErrorKind::Busy;
    const auto now = std::chrono::steady_clock::now();
    std::vector<HeldStop> waiting;
    bool first = true;
    for (auto& h : held_stops_) {
        if (busy && now < h.until) {
            waiting.push_back(std::move(h));
        } else if (was) {
            sd_bus_reply_method_return(h.call.get(), "b", static_cast<int>(*was && first)); // one removed it
            first = false;
        } else {
            sd_bus_reply_method_errorf(h.call.get(), error_name(was.error().kind).c_str(), "%s",
                                       valid_utf8(was.error().message).c_str());
        }
    }
    held_stops_ = std::move(waiting);
    if (!held_stops_.empty()) arm_stop_retry();
}

int Manager::m_start_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* self = static_cast<Manager*>(userdata);
    int r = require_privileged(m, err);
    if (r <= 0) return r;
    // The CLI's `recover` flags, same names and meaning (upgrade-recovery(8)), except
    // "timeout": D-Bus only (recover has no --timeout), the job's deadline, none when
    // absent or 0; each step's own timeout still applies under it.
    auto opts = read_options(m, {{"backup", 's'},
                                 {"resume", 'b'},
                                 {"restart", 'b'},
                                 {"step", 'b'},
                                 {"force", 'b'},
                                 {"reboot", 'b'},
                                 {"dry_run", 'b'},
                                 {"checksum", 'b'},
                                 {"timeout", 'u'}});
    if (!opts) return reply_error(err, opts.error());
    if ((r = self->check_idle(err)) <= 0) return r;

    RecoveryOptions ro;
    ro.root = self->args_.root;
    ro.backup_id = opts->str("backup");
    if (ro.backup_id && (ro.backup_id->empty() || !valid_backup_id(*ro.backup_id)))
        return reply_error(
            err, Error{ErrorKind::InvalidArgs, 0, "option 'backup': '" + *ro.backup_id + "' is not a backup id"});
    ro.resume = opts->boolean("resume").value_or(false);
    ro.restart = opts->boolean("restart").value_or(false);
    if (ro.resume && ro.restart)
        return reply_error(err, Error{ErrorKind::InvalidArgs, 0, "options 'resume' and 'restart' exclude each other"});
    ro.step = opts->boolean("step").value_or(false);
    ro.force = opts->boolean("force").value_or(false);
    ro.reboot = opts->boolean("reboot").value_or(false);
    ro.dry_run = opts->boolean("dry_run").value_or(false);
    ro.checksum = opts->boolean("checksum").value_or(false);

    Config cfg = self->cfg_;
    auto job = self->launch(
        "recovery", true,
        [cfg, ro](Progress& p, const CancelToken& c) -> Result<JobOutcome> {
            auto res = run_recovery(cfg, ro, p, c);
            if (!res) return std::unexpected(res.error());
            if (res->refusal) {
                // As a backup's dry run that would not fit: the job ends with the error a
                // recovery now would end with.
                Error e = *res->refusal;
                e.message = "dry run: a recovery now would stop: " + e.message;
                return fail(std::move(e));
            }
            JobOutcome o;
            o.backup_id = res->backup_id;
            o.message = res->message.empty()
                            ? "recovery " + res->recovery_id + ": " + std::string(recovery_state_name(res->state))
                            : res->message;
            for (const auto& pl : res->planned)
                o.warnings.push_back("plan: " + pl);
            return o;
        },
        ro.backup_id.value_or(""));
    if (!job) return reply_error(err, job.error());
    if (auto t = opts->u32("timeout"); t && *t) (*job)->token().set_timeout(std::chrono::seconds(*t));
    return sd_bus_reply_method_return(m, "o", (*job)->path().c_str());
}

Result<> Manager::reload_config()
{
    auto cfg = load_config(ConfigSource{args_.root, args_.config_file});
    if (!cfg) return std::unexpected(std::move(cfg.error()).context("configuration"));
    const bool moved = cfg->mount_point != cfg_.mount_point;
    cfg_ = std::move(*cfg);
    // The store moved: watch the one now configured, and show its state, from this call
    // on. The next re-read (a job's end, a stale property read) came too late: what
    // another process wrote there until then went unsignalled.
    if (moved) refresh_view(true);
    return {};
}

template <sd_bus_message_handler_t Handler>
int Manager::with_config(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    if (auto r = static_cast<Manager*>(userdata)->reload_config(); !r) return reply_error(err, r.error());
    return Handler(m, userdata, err);
}

const sd_bus_vtable Manager::vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("State", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("CurrentJob", "o", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("RecoveryState", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("RecoverySummary", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("LastBackup", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("LastError", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("LastErrorName", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Warnings", "as", prop_get, 0, 0),
    SD_BUS_METHOD_WITH_ARGS("StartBackup", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                            with_config<m_start_backup>, 0),
    SD_BUS_METHOD_WITH_ARGS("ListBackups", SD_BUS_NO_ARGS, SD_BUS_RESULT("aa{sv}", backups),
                            with_config<m_list_backups>, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_ARGS("VerifyBackup", SD_BUS_ARGS("s", id, "a{sv}", options), SD_BUS_RESULT("o", job),
                            with_config<m_verify_backup>, 0),
    SD_BUS_METHOD_WITH_ARGS("DeleteBackup", SD_BUS_ARGS("s", id), SD_BUS_NO_RESULT, with_config<m_delete_backup>, 0),
    SD_BUS_METHOD_WITH_ARGS("GetRollbackPlan", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", plan),
                            with_config<m_get_rollback_plan>, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_ARGS("StartRecovery", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", job),
                            with_config<m_start_recovery>, 0),
    SD_BUS_METHOD_WITH_ARGS("ArmRecovery", SD_BUS_ARGS("s", id, "a{sv}", options), SD_BUS_NO_RESULT,
                            with_config<m_arm_recovery>, 0),
    SD_BUS_METHOD_WITH_ARGS("DisarmRecovery", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, with_config<m_disarm_recovery>, 0),
    SD_BUS_METHOD_WITH_ARGS(
        "AbandonRecovery", SD_BUS_ARGS("a{sv}", options),
        SD_BUS_RESULT("b", abandoned, "s", damaged_journal, "as", left_behind, "as", finish_by_hand),
        with_config<m_abandon_recovery>, 0),
    SD_BUS_METHOD_WITH_ARGS("StartWatchdog", SD_BUS_ARGS("s", id, "a{sv}", options), SD_BUS_RESULT("s", backup),
                            with_config<m_start_watchdog>, 0),
    SD_BUS_METHOD_WITH_ARGS("StopWatchdog", SD_BUS_NO_ARGS, SD_BUS_RESULT("b", was_running),
                            with_config<m_stop_watchdog>, 0),
    SD_BUS_VTABLE_END,
};

} // namespace ur::dbus
