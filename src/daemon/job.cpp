#include "job.hpp"

#include "errors.hpp"
#include "log.hpp"
#include "message_strings.hpp"
#include "utf8_text.hpp"

#include <cstring>
#include <ctime>
#include <exception>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

namespace ur::dbus
{

namespace
{
// A vanished-files storm must not make the property (and every GetAll) huge.
constexpr size_t kMaxWarnings = 64;
// Nice value of job workers relative to the event loop.
constexpr int kWorkerNice = 10;
} // namespace

const char* phase_name(Phase p)
{
    switch (p) {
    case Phase::Idle: return "Idle";
    case Phase::PreparingToStart: return "PreparingToStart";
    case Phase::Starting: return "Starting";
    case Phase::Active: return "Active";
    case Phase::Succeeded: return "Succeeded";
    case Phase::Timeout: return "Timeout";
    case Phase::Cancelled: return "Cancelled";
    case Phase::Error: return "Error";
    }
    return "Error";
}

bool phase_terminal(Phase p)
{
    return p == Phase::Succeeded || p == Phase::Timeout || p == Phase::Cancelled || p == Phase::Error;
}

// The worker's ur::Progress: turns callbacks into queued events.
class Job::Bridge : public Progress
{
  public:
    explicit Bridge(Job& job) : job_(job) {}
    void stage(const std::string& name) override { job_.post({Event::Stage, name, 0}); }
    void percent(unsigned pct) override
    {
        if (pct > 100) pct = 100;
        if (pct == last_) return;
        last_ = pct;
        job_.post({Event::Percent, {}, pct});
    }
    void warning(const std::string& msg) override { job_.post({Event::Warning, msg, 0}); }

  private:
    Job& job_;
    unsigned last_ = 0;
};

Job::Job(uint32_t id, std::string type, bool exported)
    : id_(id), type_(std::move(type)), path_(std::string(kJobPathPrefix) + "/" + std::to_string(id)),
      exported_(exported), started_(static_cast<int64_t>(::time(nullptr)))
{
}

Job::~Job()
{
    if (thread_.joinable()) {
        cancel_.cancel();
        thread_.join();
    }
}

Result<> Job::start(sd_event* event, sd_bus* bus, JobWork work, std::function<void(Job&, bool)> on_change,
                    std::function<void(Job&)> on_finished)
{
    bus_ = bus;
    on_change_ = std::move(on_change);
    on_finished_ = std::move(on_finished);

    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return fail_errno("eventfd");
    eventfd_.reset(efd);
    sd_event_source* src = nullptr;
    int r = sd_event_add_io(event, &src, eventfd_.get(), EPOLLIN, on_eventfd, this);
    if (r < 0) return fail_errno(-r, "sd_event_add_io");
    source_.reset(src);

    // EAGAIN (TasksMax) is an error for this job, not std::terminate for the daemon.
    try {
        thread_ = std::thread([this, work = std::move(work)]() {
            // The bus answers first: the worker (and the copy threads it starts, which
            // inherit this) yields the CPU to the event loop. Linux nice is per thread.
            if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWorkerNice) < 0)
                log::debug(std::string("setpriority on the job worker: ") + std::strerror(errno));
            post({Event::Started, {}, 0});
            Bridge bridge(*this);
            std::optional<Result<JobOutcome>> res;
            // The thread is the module line: nothing may escape it, or std::terminate
            // takes the daemon (and every other client) down with this job.
            try {
                res = work(bridge, cancel_);
            } catch (const std::exception& e) {
                res = fail(ErrorKind::Internal, std::string("unexpected exception: ") + e.what());
            } catch (...) {
                res = fail(ErrorKind::Internal, "unexpected exception");
            }
            {
                std::lock_guard lk(mu_);
                result_ = std::move(*res);
            }
            post({Event::Done, {}, 0});
        });
    } catch (const std::exception& e) { // std::system_error, or no memory for the thread
        source_.reset();
        return fail(ErrorKind::Internal, std::string("cannot start the job's worker thread: ") + e.what());
    }
    return {};
}

// A backup's warnings come live (progress) and again in its result: each text once.
void Job::add_warning(std::string text)
{
    if (!warnings_seen_.insert(text).second) return;
    if (warnings_.size() < kMaxWarnings)
        warnings_.push_back(std::move(text));
    else
        warnings_dropped_++;
}

void Job::post(Event ev)
{
    {
        std::lock_guard lk(mu_);
        // Coalesce percent updates the loop has not seen yet.
        if (ev.kind == Event::Percent && !queue_.empty() && queue_.back().kind == Event::Percent)
            queue_.back().pct = ev.pct;
        else
            queue_.push_back(std::move(ev));
    }
    uint64_t one = 1;
    // EAGAIN only when the counter is saturated: the loop will wake anyway.
    (void)!::write(eventfd_.get(), &one, sizeof one);
}

int Job::on_eventfd(sd_event_source*, int, uint32_t, void* userdata)
{
    static_cast<Job*>(userdata)->drain();
    return 0;
}

void Job::emit_changed(std::initializer_list<const char*> props)
{
    if (!exported_ || !bus_) return;
    std::vector<char*> names;
    for (const char* p : props)
        names.push_back(const_cast<char*>(p));
    names.push_back(nullptr);
    sd_bus_emit_properties_changed_strv(bus_, path_.c_str(), kJobInterface, names.data());
}

void Job::set_phase(Phase p)
{
    if (phase_ == p) return;
    phase_ = p;
    emit_changed({"State"});
    if (on_change_) on_change_(*this, true);
}

void Job::drain()
{
    uint64_t cnt;
    (void)!::read(eventfd_.get(), &cnt, sizeof cnt);

    std::deque<Event> events;
    {
        std::lock_guard lk(mu_);
        events.swap(queue_);
    }
    bool progress_changed = false, message_changed = false, warnings_changed = false, done = false;
    auto flush = [&] {
        if (progress_changed && message_changed)
            emit_changed({"Progress", "Message"});
        else if (progress_changed)
            emit_changed({"Progress"});
        else if (message_changed)
            emit_changed({"Message"});
        if (warnings_changed) emit_changed({"Warnings"});
        if ((progress_changed || message_changed || warnings_changed) && on_change_) on_change_(*this, false);
        progress_changed = message_changed = warnings_changed = false;
    };
    for (auto& ev : events) {
        switch (ev.kind) {
        case Event::Started: set_phase(Phase::Starting); break;
        case Event::Stage:
            if (phase_ == Phase::Starting || phase_ == Phase::PreparingToStart) {
                flush();
                set_phase(Phase::Active);
            }
            if (message_ != ev.text) {
                message_ = std::move(ev.text);
                message_changed = true;
            }
            break;
        case Event::Percent:
            // Monotonic: a core stage that restarts its count must not make the bar jump back.
            if (ev.pct > progress_) {
                if (phase_ == Phase::Starting || phase_ == Phase::PreparingToStart) {
                    flush();
                    set_phase(Phase::Active);
                }
                progress_ = ev.pct;
                progress_changed = true;
            }
            break;
        case Event::Warning:
            add_warning(std::move(ev.text));
            warnings_changed = true;
            break;
        case Event::Done: done = true; break;
        }
    }
    flush();
    if (!done) return;

    thread_.join();
    source_.reset();
    eventfd_.reset();
    Result<JobOutcome> res = [&] {
        std::lock_guard lk(mu_);
        return std::move(*result_);
    }();

    Phase final;
    if (res) {
        final = Phase::Succeeded;
        progress_ = 100;
        message_ = res->message;
        if (!res->backup_id.empty()) backup_id_ = res->backup_id;
        for (auto& w : res->warnings)
            add_warning(std::move(w));
    } else {
        const Error& e = res.error();
        final = e.kind == ErrorKind::Timeout     ? Phase::Timeout
                : e.kind == ErrorKind::Cancelled ? Phase::Cancelled
                                                 : Phase::Error;
        error_ = e;
        error_name_ = ur::error_name(e.kind);
        message_ = e.message;
    }
    if (warnings_dropped_ > 0 && warnings_.size() == kMaxWarnings)
        warnings_.back() = "... and " + std::to_string(warnings_dropped_ + 1) + " more warnings";
    phase_ = final;
    emit_changed({"State", "Progress", "Message", "Error", "BackupId", "Warnings"});
    if (exported_ && bus_)
        sd_bus_emit_signal(bus_, path_.c_str(), kJobInterface, "Finished", "sss", phase_name(final),
                           error_name_.c_str(), valid_utf8(message_).c_str());
    if (on_finished_) on_finished_(*this);
}

int Job::method_cancel(sd_bus_message* m, void* userdata, sd_bus_error* err)
{
    auto* job = static_cast<Job*>(userdata);
    int r = sd_bus_query_sender_privilege(m, CAP_SYS_ADMIN);
    if (r < 0) return r;
    if (r == 0) return sd_bus_error_set(err, SD_BUS_ERROR_ACCESS_DENIED, "Cancelling a job needs root (uid 0)");
    // Idempotent: cancelling a job that just ended is not the caller's error;
    // Finished tells the real outcome.
    if (!job->finished()) job->cancel();
    return sd_bus_reply_method_return(m, nullptr);
}

int Job::prop_get(sd_bus*, const char*, const char*, const char* prop, sd_bus_message* reply, void* userdata,
                  sd_bus_error*)
{
    auto* job = static_cast<Job*>(userdata);
    if (std::strcmp(prop, "Id") == 0) return sd_bus_message_append(reply, "u", job->id_);
    if (std::strcmp(prop, "Type") == 0) return sd_bus_message_append(reply, "s", job->type_.c_str());
    if (std::strcmp(prop, "State") == 0) return sd_bus_message_append(reply, "s", phase_name(job->phase_));
    if (std::strcmp(prop, "Progress") == 0) return sd_bus_message_append(reply, "u", job->progress_);
    if (std::strcmp(prop, "Message") == 0) return sd_bus_message_append(reply, "s", valid_utf8(job->message_).c_str());
    if (std::strcmp(prop, "Error") == 0) return sd_bus_message_append(reply, "s", job->error_name_.c_str());
    if (std::strcmp(prop, "BackupId") == 0) return sd_bus_message_append(reply, "s", job->backup_id_.c_str());
    if (std::strcmp(prop, "Warnings") == 0) return append_strings(reply, job->warnings_);
    return -ENOENT;
}

const sd_bus_vtable Job::vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Id", "u", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Type", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("State", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Progress", "u", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Message", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Error", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("BackupId", "s", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Warnings", "as", prop_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_cancel, 0),
    SD_BUS_SIGNAL_WITH_ARGS("Finished", SD_BUS_ARGS("s", result, "s", error, "s", message), 0),
    SD_BUS_VTABLE_END,
};

} // namespace ur::dbus
