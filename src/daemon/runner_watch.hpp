// Notices the death of the process a running recovery journal names (runner_pid,
// runner_boot_id), so RecoveryState turns Interrupted with a PropertiesChanged when
// it dies: a killed process writes nothing, so the store watch (inotify) sees nothing.
//
// A pidfd (pidfd_open(2)) in the sd-event loop: it becomes readable when the process
// exits, also when it is not our child. Nothing runs while the process lives, so the
// daemon's idle exit still comes (then nobody emits, as before). Where pidfd_open
// fails (ENOSYS before Linux 5.3, a seccomp filter), nothing is watched: the state
// turns Interrupted at the next re-read, as without this watch.
#pragma once

#include "fd.hpp"
#include "sdbus.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace ur::dbus
{

class RunnerWatch
{
  public:
    // `changed` runs from the event loop when the watched process exits, or when
    // watch() finds it gone already; it should re-read the store (coalesced).
    RunnerWatch(sd_event* event, std::function<void()> changed);

    // Watch process `pid` of boot `boot_id`: the runner a journal reading Running
    // (not interrupted) names. A no-op when that process is watched already; any
    // other watch is replaced. The daemon's own pid is not watched (its job's end
    // re-reads the store itself). A no-op when called from inside `changed`.
    void watch(int64_t pid, const std::string& boot_id);
    // Nothing to watch any more (no running journal, or it reads interrupted).
    void clear();

  private:
    static int on_exit(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    // The process is gone (or not the one recorded) before it could be watched: the
    // view just read may be stale, so re-read once. Once per runner: no refresh loop.
    void report_gone(int64_t pid, const std::string& boot_id);

    sd_event* event_;
    std::function<void()> changed_;
    int64_t pid_ = 0;
    std::string boot_id_;
    UniqueFd pidfd_;
    SourcePtr source_; // after pidfd_: leaves the epoll set before the fd is closed
    bool fired_ = false;
    bool dispatching_ = false; // inside on_exit: the source must not be replaced under itself
    int64_t reported_pid_ = 0;
    std::string reported_boot_id_;
    bool unsupported_logged_ = false;
};

} // namespace ur::dbus
