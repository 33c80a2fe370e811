// The io.openshift.UpgradeRecovery1.Manager object and the Job objects under
// /io/openshift/UpgradeRecovery1/job/<n>: method handlers, authorization,
// one-operation-at-a-time, and the properties the orchestrator polls.
#pragma once

#include "config.hpp"
#include "job.hpp"
#include "jobstate.hpp"
#include "runner_watch.hpp"
#include "sdbus.hpp"
#include "store.hpp"
#include "store_watch.hpp"

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace ur::dbus
{

// An error name that is not an ErrorKind: the daemon died under a job.
inline constexpr const char* kInterruptedError = "io.openshift.UpgradeRecovery1.Error.Interrupted";

struct DaemonArgs {
    std::string root = "/";
    std::optional<std::string> config_file;
    // Where this boot's initramfs leaves its mark (initrd_mark.hpp); given, it is
    // asked under any root (tests, a sandbox), else only with root "/".
    std::optional<std::string> initrd_run_dir;
};

class Manager
{
  public:
    Manager(sd_event* event, sd_bus* bus, Config cfg, DaemonArgs args);
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;
    ~Manager();

    // Register the vtables. Before the name is requested, so the first call finds them.
    Result<> attach();
    // Once the name is ours (only the owner may read and rewrite the job record):
    // report a job the previous instance left unfinished, restore the last result.
    void startup();

    // A job is running (the daemon must not exit idle).
    bool busy() const { return current_ != nullptr; }
    // `on_idle` runs once no job runs any more (at once when none does).
    void when_idle(std::function<void()> on_idle);
    // SIGTERM: cancel the running job, then `on_idle`.
    void shutdown(std::function<void()> on_idle);

    static const sd_bus_vtable vtable[];

  private:
    // Every method reads the configuration again first, as the CLI does for every
    // command: a drop-in changed since the start reaches the next job, and a broken
    // one is refused (BadConfig, naming file:line:column) instead of being ignored.
    Result<> reload_config();
    template <sd_bus_message_handler_t Handler>
    static int with_config(sd_bus_message* m, void* userdata, sd_bus_error* err);

    // Method handlers (userdata: Manager*).
    static int m_start_backup(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_list_backups(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_verify_backup(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_delete_backup(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_get_rollback_plan(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_start_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_arm_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_disarm_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_abandon_recovery(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_start_watchdog(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int m_stop_watchdog(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int prop_get(sd_bus* bus, const char* path, const char* iface, const char* prop, sd_bus_message* reply,
                        void* userdata, sd_bus_error* err);

    // Job objects: fallback vtable + node enumerator.
    static int find_job(sd_bus* bus, const char* path, const char* iface, void* userdata, void** found,
                        sd_bus_error* err);
    static int enumerate_jobs(sd_bus* bus, const char* prefix, void* userdata, char*** nodes, sd_bus_error* err);

    // Root or CAP_SYS_ADMIN; 1 when allowed, else sets AccessDenied and returns <= 0.
    static int require_privileged(sd_bus_message* m, sd_bus_error* err);
    // After ArmRecovery and StartWatchdog (`watchdog`), as the CLI's arm and watchdog
    // start: log when this boot's initramfs had no dracut module of ours (an armed
    // recovery runs only from one; initrd_module_problem's text), and when a unit that
    // must act after the reboot will not (unit_enablement.hpp; a note when it cannot tell).
    void warn_after_arming(const char* method, bool watchdog) const;
    // Busy while a job runs: one operation at a time inside the daemon (the
    // store lock does the same across processes).
    int check_idle(sd_bus_error* err) const;
    // The store of a method that writes it at once (no job): read-write and locked.
    struct LockedStore {
        Store store;
        StoreLock lock;
    };
    // Inspect for the calls that only remove what is there; Write (ArmRecovery, StartWatchdog)
    // writes beside a backup there: neither creates a layout on a fresh store.
    Result<LockedStore> open_locked_store(StoreAccess access = StoreAccess::Write) const;

    Result<Job*> launch(const std::string& type, bool exported, JobWork work, const std::string& backup_id,
                        MessagePtr reply_to = {});
    void on_job_change(Job& job, bool phase_changed);
    void on_job_finished(Job& job);
    void record_job(const Job& job);
    void log_job_start(const Job& job);
    void log_job_end(const Job& job);
    void notify_status();

    void set_state(Phase p);
    void set_last_error(std::string name, std::string message);
    void save_daemon_state(); // saved_, with State's result and LastError, to disk
    // Re-read LastBackup and the recovery state from the partition.
    void refresh_view(bool emit);
    void refresh_if_stale();
    void emit_changed(std::initializer_list<const char*> props);
    // Run `fn` from the event loop soon (not from inside the current callback).
    void defer(std::function<void()> fn);
    // StopWatchdog waits for a busy store (a job here, another process's lock) as
    // `watchdog stop` does: the watchdog waits for the store too, and must not fire
    // after a stop that gave up. Held calls are tried again every second, for up to
    // kStoreLockPatience each, then answered Busy.
    Result<bool> try_stop_watchdog();
    void arm_stop_retry();
    void retry_held_stops();

    sd_event* event_;
    sd_bus* bus_;
    Config cfg_;
    DaemonArgs args_;

    Phase state_ = Phase::Idle;
    std::string last_error_;
    std::string last_error_name_;
    std::string last_backup_;
    std::string recovery_state_ = "None";
    std::string recovery_summary_;
    std::chrono::steady_clock::time_point view_time_{};
    // Warnings: `status`'s (check_status_host), read again at most every kViewTtl on a
    // Get; they depend on /boot and the unit files too, which no watch covers.
    std::vector<std::string> warnings_;
    std::chrono::steady_clock::time_point warnings_time_{};
    const std::vector<std::string>& current_warnings();
    std::vector<std::function<void()>> deferred_;
    SourcePtr defer_source_;
    std::unique_ptr<StoreWatch> store_watch_;   // changes by other processes
    std::unique_ptr<RunnerWatch> runner_watch_; // the death of a running recovery's process
    bool refresh_queued_ = false;
    void queue_refresh(); // a re-read and its PropertiesChanged from the loop, once per burst

    DaemonState saved_;
    std::unique_ptr<Job> current_;
    MessagePtr current_reply_;                  // DeleteBackup: answered when its hidden job ends
    std::deque<std::unique_ptr<Job>> finished_; // kept so clients can read the result after Finished
    std::string last_stage_;                    // for the journal's STEP field and the job record
    unsigned last_notified_pct_ = 0;
    std::function<void()> on_idle_;
    struct HeldStop {
        MessagePtr call;
        std::chrono::steady_clock::time_point until;
    };
    std::vector<HeldStop> held_stops_;
    SourcePtr stop_retry_;

    SlotPtr manager_slot_, job_slot_, enum_slot_;
};

} // namespace ur::dbus
