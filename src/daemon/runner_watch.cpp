#include "runner_watch.hpp"

#include "host_info.hpp"
#include "log.hpp"

#include <cerrno>
#include <climits>
#include <cstring>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ur::dbus
{

RunnerWatch::RunnerWatch(sd_event* event, std::function<void()> changed) : event_(event), changed_(std::move(changed))
{
}

void RunnerWatch::clear()
{
    if (dispatching_) return;
    source_.reset();
    pidfd_.reset();
    pid_ = 0;
    boot_id_.clear();
    fired_ = false;
}

void RunnerWatch::report_gone(int64_t pid, const std::string& boot_id)
{
    if (reported_pid_ == pid && reported_boot_id_ == boot_id) return;
    reported_pid_ = pid;
    reported_boot_id_ = boot_id;
    changed_();
}

void RunnerWatch::watch(int64_t pid, const std::string& boot_id)
{
    if (dispatching_) return;
    if (source_ && !fired_ && pid == pid_ && boot_id == boot_id_) return; // that process is watched
    clear();
    // Our own job: a pidfd on ourselves never fires, and on_job_finished re-reads anyway.
    if (pid <= 0 || pid > INT_MAX || pid == ::getpid()) return;
    UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0U)));
    if (!fd) {
        const int e = errno;
        if (e == ESRCH) {
            report_gone(pid, boot_id); // died since the journal was read
        } else if (!unsupported_logged_) {
            // ENOSYS (before Linux 5.3), EPERM (seccomp), EINVAL (not a process leader).
            unsupported_logged_ = true;
            log::info("cannot watch the recovery's process " + std::to_string(pid) + " (pidfd_open: " +
                      std::strerror(e) + "): RecoveryState turns Interrupted at the next re-read after it dies");
        }
        return;
    }
    // The pidfd holds whatever process has the number now: the runner may have died
    // and its number been reused since the journal was read. So the same check the
    // core read the journal with runs again, after the open. A number is free again
    // only once its process is reaped, so if the pidfd's process is alive at any time
    // after this check, the check saw that process; if it died before, the pidfd is
    // readable at once and the re-read it triggers decides. A number reused by another
    // upgrade-recovery process of this boot passes, as it passes the core's check.
    if (!upgrade_recovery_process_running(pid, boot_id)) {
        report_gone(pid, boot_id);
        return;
    }
    sd_event_source* src = nullptr;
    int r = sd_event_add_io(event_, &src, fd.get(), EPOLLIN, on_exit, this);
    if (r < 0) {
        log::warning("cannot watch the recovery's process " + std::to_string(pid) + ": " + std::strerror(-r));
        return;
    }
    // Once: a pidfd stays readable after the exit; the re-read replaces or drops it.
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
    pidfd_ = std::move(fd);
    source_.reset(src);
    pid_ = pid;
    boot_id_ = boot_id;
}

int RunnerWatch::on_exit(sd_event_source*, int, uint32_t, void* userdata)
{
    auto* self = static_cast<RunnerWatch*>(userdata);
    self->fired_ = true;
    // As StoreWatch: `changed` may re-read at once, which must not replace this
    // source from inside its own callback; the next re-read does.
    self->dispatching_ = true;
    self->changed_();
    self->dispatching_ = false;
    return 0;
}

} // namespace ur::dbus
