#include "store_watch.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>

namespace ur::dbus
{

StoreWatch::StoreWatch(sd_event* event, std::function<void()> changed) : event_(event), changed_(std::move(changed)) {}

void StoreWatch::watch(const std::string& dir)
{
    if (dispatching_) return;
    arm(top_, dir);
    arm(recovery_, dir + "/recovery");
}

void StoreWatch::arm(Watched& w, const std::string& path)
{
    struct stat st;
    if (::stat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) {
        w = Watched{};
        return;
    }
    if (w.source && w.dev == st.st_dev && w.ino == st.st_ino) return;
    // Every change the store's writers make: atomic renames, unlinks, new directories.
    constexpr uint32_t mask =
        IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    sd_event_source* src = nullptr;
    w = Watched{};
    if (sd_event_add_inotify(event_, &src, path.c_str(), mask, on_event, this) < 0) return;
    w.source.reset(src);
    w.dev = st.st_dev;
    w.ino = st.st_ino;
}

int StoreWatch::on_event(sd_event_source*, const struct inotify_event*, void* userdata)
{
    // Re-arming happens later (watch() from a deferred refresh), never in here: this
    // source may be the one replaced. `changed` may run the refresh at once (the
    // Manager's defer without memory), hence the flag.
    auto* self = static_cast<StoreWatch*>(userdata);
    self->dispatching_ = true;
    self->changed_();
    self->dispatching_ = false;
    return 0;
}

} // namespace ur::dbus
