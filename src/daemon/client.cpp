#include "client.hpp"

#include "errors.hpp"
#include "sdbus.hpp"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>

namespace ur::dbus
{

namespace
{

struct Wait {
    std::string path;  // our job, once StartBackup answered
    std::string owner; // unique name of the daemon that runs it
    struct End {
        std::string result, error, message;
    };
    std::map<std::string, End> ended; // Finished signals seen, by job path
    bool owner_gone = false;
    bool cancel_sent = false;
    unsigned last_pct = 101;
    std::string last_msg;
    sd_bus* bus = nullptr;
    sd_event* event = nullptr;

    bool done() const { return ended.contains(path) || owner_gone; }
};

void check_done(Wait* w)
{
    if (w->event && !w->path.empty() && w->done()) sd_event_exit(w->event, 0);
}

int on_finished(sd_bus_message* m, void* ud, sd_bus_error*)
{
    auto* w = static_cast<Wait*>(ud);
    const char *result = nullptr, *error = nullptr, *message = nullptr;
    if (sd_bus_message_read(m, "sss", &result, &error, &message) < 0) return 0;
    w->ended[sd_bus_message_get_path(m)] = {result, error, message};
    check_done(w);
    return 0;
}

int on_props(sd_bus_message* m, void* ud, sd_bus_error*)
{
    auto* w = static_cast<Wait*>(ud);
    if (w->path.empty() || w->path != sd_bus_message_get_path(m)) return 0;
    const char* iface = nullptr;
    if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return 0;
    unsigned pct = w->last_pct;
    std::string msg = w->last_msg;
    while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
        const char* key = nullptr;
        if (sd_bus_message_read(m, "s", &key) < 0) return 0;
        if (std::strcmp(key, "Progress") == 0) {
            uint32_t u = 0;
            if (sd_bus_message_read(m, "v", "u", &u) < 0) return 0;
            pct = u;
        } else if (std::strcmp(key, "Message") == 0) {
            const char* s = nullptr;
            if (sd_bus_message_read(m, "v", "s", &s) < 0) return 0;
            msg = s;
        } else if (sd_bus_message_skip(m, "v") < 0) {
            return 0;
        }
        if (sd_bus_message_exit_container(m) < 0) return 0;
    }
    if (pct != w->last_pct || msg != w->last_msg) {
        w->last_pct = pct;
        w->last_msg = msg;
        std::fprintf(stderr, "%3u%% %s\n", pct > 100 ? 0 : pct, msg.c_str());
    }
    return 0;
}

int on_owner_changed(sd_bus_message* m, void* ud, sd_bus_error*)
{
    auto* w = static_cast<Wait*>(ud);
    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
    if (!w->owner.empty() && w->owner == old_owner) w->owner_gone = true;
    check_done(w);
    return 0;
}

// systemctl stop / Ctrl-C: cancel the job and keep waiting for its Finished.
int on_signal(sd_event_source*, const struct signalfd_siginfo*, void* ud)
{
    auto* w = static_cast<Wait*>(ud);
    if (w->cancel_sent) return 0;
    w->cancel_sent = true;
    std::fprintf(stderr, "cancelling backup job %s\n", w->path.c_str());
    sd_bus_call_method_async(w->bus, nullptr, kBusName, w->path.c_str(), kJobInterface, "Cancel", nullptr, nullptr,
                             nullptr);
    return 0;
}

int fail_with(const char* what, int r)
{
    std::fprintf(stderr, "upgrade-recoveryd: %s: %s\n", what, std::strerror(-r));
    return 1;
}

} // namespace

int request_backup(const ClientArgs& args)
{
    sd_bus* raw = nullptr;
    int r = sd_bus_open_system(&raw);
    if (r < 0) return fail_with("connect to the system bus", r);
    BusPtr bus(raw);
    register_error_map();

    Wait w;
    sd_bus_slot* s = nullptr;
    // Subscribe before the call: the job may end before its path reaches us.
    r = sd_bus_match_signal(bus.get(), &s, kBusName, nullptr, kJobInterface, "Finished", on_finished, &w);
    if (r < 0) return fail_with("subscribe to Finished", r);
    SlotPtr finished_slot(s);
    r = sd_bus_add_match(bus.get(), &s,
                         "type='signal',sender='io.openshift.UpgradeRecovery1',interface='org.freedesktop.DBus."
                         "Properties',member='PropertiesChanged',path_namespace='/io/openshift/UpgradeRecovery1/job'",
                         on_props, &w);
    if (r < 0) return fail_with("subscribe to PropertiesChanged", r);
    SlotPtr props_slot(s);
    r = sd_bus_match_signal(bus.get(), &s, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                            "NameOwnerChanged", on_owner_changed, &w);
    if (r < 0) return fail_with("subscribe to NameOwnerChanged", r);
    SlotPtr owner_slot(s);

    sd_bus_message* callm = nullptr;
    r = sd_bus_message_new_method_call(bus.get(), &callm, kBusName, kManagerPath, kManagerInterface, "StartBackup");
    if (r < 0) return fail_with("StartBackup", r);
    MessagePtr call(callm);
    r = sd_bus_message_open_container(call.get(), 'a', "{sv}");
    if (r >= 0 && args.timeout) r = sd_bus_message_append(call.get(), "{sv}", "timeout", "u", *args.timeout);
    if (r >= 0 && args.force) r = sd_bus_message_append(call.get(), "{sv}", "force", "b", 1);
    if (r >= 0 && args.id) r = sd_bus_message_append(call.get(), "{sv}", "id", "s", args.id->c_str());
    if (r >= 0) r = sd_bus_message_close_container(call.get());
    if (r < 0) return fail_with("StartBackup", r);

    BusError err;
    sd_bus_message* replym = nullptr;
    r = sd_bus_call(bus.get(), call.get(), 0, err.get(), &replym);
    MessagePtr reply(replym);
    if (r < 0) {
        std::fprintf(stderr, "upgrade-recoveryd: StartBackup: %s (%s)\n", err.message(), err.name());
        return exit_code_for(kind_from_error_name(err.name()));
    }
    const char* path = nullptr;
    if ((r = sd_bus_message_read(reply.get(), "o", &path)) < 0) return fail_with("StartBackup reply", r);
    w.path = path;
    w.owner = sd_bus_message_get_sender(reply.get()) ? sd_bus_message_get_sender(reply.get()) : "";
    std::fprintf(stderr, "backup job %s started\n", path);

    // The job may have ended while we subscribed and called: ask its state once.
    char* state = nullptr;
    BusError perr;
    if (sd_bus_get_property_string(bus.get(), kBusName, path, kJobInterface, "State", perr.get(), &state) >= 0) {
        std::string st = state;
        free(state);
        if (st == "Succeeded" || st == "Timeout" || st == "Cancelled" || st == "Error") {
            char *e = nullptr, *msg = nullptr;
            sd_bus_get_property_string(bus.get(), kBusName, path, kJobInterface, "Error", nullptr, &e);
            sd_bus_get_property_string(bus.get(), kBusName, path, kJobInterface, "Message", nullptr, &msg);
            w.ended[path] = {st, e ? e : "", msg ? msg : ""};
            free(e);
            free(msg);
        }
    }

    if (!w.done()) {
        sd_event* e = nullptr;
        if ((r = sd_event_default(&e)) < 0) return fail_with("sd_event_default", r);
        EventPtr event(e);
        w.event = e;
        w.bus = bus.get();
        if ((r = sd_bus_attach_event(bus.get(), e, SD_EVENT_PRIORITY_NORMAL)) < 0) return fail_with("attach bus", r);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, nullptr);
        sd_event_source* src = nullptr;
        if ((r = sd_event_add_signal(e, &src, SIGTERM, on_signal, &w)) < 0) return fail_with("SIGTERM", r);
        SourcePtr sigterm(src);
        if ((r = sd_event_add_signal(e, &src, SIGINT, on_signal, &w)) < 0) return fail_with("SIGINT", r);
        SourcePtr sigint(src);
        if ((r = sd_event_loop(e)) < 0) return fail_with("event loop", r);
        sd_bus_detach_event(bus.get());
    }
    if (!w.ended.contains(w.path)) {
        std::fprintf(stderr, "upgrade-recoveryd: the service exited before backup job %s finished\n", path);
        return 1;
    }
    const auto& end = w.ended[w.path];
    if (end.result == "Succeeded") {
        std::fprintf(stderr, "%s\n", end.message.c_str());
        return 0;
    }
    std::fprintf(stderr, "upgrade-recoveryd: backup job %s ended %s: %s (%s)\n", path, end.result.c_str(),
                 end.message.c_str(), end.error.c_str());
    return exit_code_for(kind_from_error_name(end.error.c_str()));
}

} // namespace ur::dbus
