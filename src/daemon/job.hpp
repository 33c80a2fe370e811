// A long operation (backup, verify, recovery, delete) run on a worker thread.
//
// sd-bus is not thread safe, so the worker owns no bus object: it only fills a
// mutex-protected queue of events (stage, percent, warning, done) and pokes an
// eventfd. The event loop drains the queue in order, updates the properties
// and emits PropertiesChanged / Finished (systemd-sysupdated does the same with
// a child process and sd_notify; a thread keeps ur::Progress and the
// CancelToken in-process, and dies with the daemon on SIGKILL).
#pragma once

#include "error.hpp"
#include "fd.hpp"
#include "progress.hpp"
#include "sdbus.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace ur::dbus
{

// The vocabulary of the upgrade orchestrator, shared by Manager.State and Job.State.
enum class Phase { Idle, PreparingToStart, Starting, Active, Succeeded, Timeout, Cancelled, Error };
const char* phase_name(Phase p);
bool phase_terminal(Phase p);

struct JobOutcome {
    std::string message;   // one line for Job.Message / the journal
    std::string backup_id; // the backup made or worked on
    std::vector<std::string> warnings;
};

using JobWork = std::function<Result<JobOutcome>(Progress&, const CancelToken&)>;

class Job
{
  public:
    // `exported`: a Job object on the bus (false for DeleteBackup, which answers its call instead).
    Job(uint32_t id, std::string type, bool exported);
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;
    // Cancels and joins a still running worker (shutdown only).
    ~Job();

    // Start the worker. `on_change` runs on the event loop after every batch of
    // updates (phase changes one at a time), `on_finished` once at the end.
    Result<> start(sd_event* event, sd_bus* bus, JobWork work, std::function<void(Job&, bool phase_changed)> on_change,
                   std::function<void(Job&)> on_finished);

    void cancel() { cancel_.cancel(); }
    CancelToken& token() { return cancel_; }

    uint32_t id() const { return id_; }
    const std::string& path() const { return path_; }
    const std::string& type() const { return type_; }
    bool exported() const { return exported_; }
    Phase phase() const { return phase_; }
    bool finished() const { return phase_terminal(phase_); }
    unsigned progress() const { return progress_; }
    const std::string& message() const { return message_; }
    const std::string& error_name() const { return error_name_; }
    const std::optional<Error>& error() const { return error_; }
    // The BackupId property: the backup made, verified or recovered to.
    const std::string& backup_id() const { return backup_id_; }
    void set_backup_id(std::string id) { backup_id_ = std::move(id); }
    // For the journal and the job record: BackupId, else the id the call asked for.
    const std::string& named_backup_id() const { return backup_id_.empty() ? requested_backup_id_ : backup_id_; }
    void set_requested_backup_id(std::string id) { requested_backup_id_ = std::move(id); }
    const std::vector<std::string>& warnings() const { return warnings_; }
    int64_t started() const { return started_; }

    // The D-Bus face: a fallback vtable on kJobPathPrefix, resolved through the Manager.
    static const sd_bus_vtable vtable[];

  private:
    struct Event {
        enum Kind { Started, Stage, Percent, Warning, Done } kind;
        std::string text;
        unsigned pct = 0;
    };
    class Bridge;

    void post(Event ev); // worker thread
    static int on_eventfd(sd_event_source*, int, uint32_t, void* userdata);
    void drain(); // event loop
    void emit_changed(std::initializer_list<const char*> props);
    void set_phase(Phase p);

    static int method_cancel(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int prop_get(sd_bus* bus, const char* path, const char* iface, const char* prop, sd_bus_message* reply,
                        void* userdata, sd_bus_error* err);

    const uint32_t id_;
    const std::string type_;
    const std::string path_;
    const bool exported_;
    Phase phase_ = Phase::PreparingToStart;
    unsigned progress_ = 0;
    std::string message_;
    std::string error_name_;
    std::optional<Error> error_;
    std::string backup_id_;
    std::string requested_backup_id_;
    std::vector<std::string> warnings_;
    uint64_t warnings_dropped_ = 0;
    // Every warning text taken so far: the result repeats what came live.
    std::unordered_set<std::string> warnings_seen_;
    void add_warning(std::string text);
    int64_t started_ = 0;

    CancelToken cancel_;
    sd_bus* bus_ = nullptr; // owned by the daemon, outlives every job
    UniqueFd eventfd_;
    SourcePtr source_;
    std::function<void(Job&, bool)> on_change_;
    std::function<void(Job&)> on_finished_;

    std::mutex mu_; // guards queue_ and result_
    std::deque<Event> queue_;
    std::optional<Result<JobOutcome>> result_;
    std::thread thread_;
};

} // namespace ur::dbus
