// Notices changes another process (the CLI, phase 2) makes to the recovery store,
// so the Manager's LastBackup and RecoveryState send PropertiesChanged when they
// happen, not when someone next reads them. inotify through sd-event: nothing
// runs while nothing changes, so the daemon's idle exit still comes.
//
// Watched: the mount point (latest, last-backup.json) and its recovery/ directory
// (armed, phase2-pending, journal). A partition mounted over the directory, or
// recovery/ made later, is a different inode: watch() re-arms on those, and moves
// to another directory when partition.mount_point changed in a reload.
#pragma once

#include "sdbus.hpp"

#include <functional>
#include <string>
#include <sys/types.h>

struct inotify_event;

namespace ur::dbus
{

class StoreWatch
{
  public:
    // `changed` runs from the event loop on each event; coalesce in it.
    StoreWatch(sd_event* event, std::function<void()> changed);

    // Watch `dir` and `dir`/recovery, unless the same inodes are watched already.
    // Best effort: what cannot be watched (missing, no inotify) is left unwatched.
    // A no-op when called from inside `changed`; the next call re-arms.
    void watch(const std::string& dir);

  private:
    struct Watched {
        SourcePtr source;
        dev_t dev = 0;
        ino_t ino = 0;
    };
    void arm(Watched& w, const std::string& path);
    static int on_event(sd_event_source* s, const struct inotify_event* ev, void* userdata);

    sd_event* event_;
    std::function<void()> changed_;
    Watched top_, recovery_;
    bool dispatching_ = false; // inside on_event: a source must not be replaced under itself
};

} // namespace ur::dbus
