// upgrade-recoveryd: the io.openshift.UpgradeRecovery1 system service.
//
//   upgrade-recoveryd [--root DIR] [--config FILE] [--initrd-run-dir DIR] [-v]
//   upgrade-recoveryd --request-backup [--timeout SEC] [--force] [--id ID]
#include "client.hpp"
#include "config.hpp"
#include "errors.hpp"
#include "log.hpp"
#include "manager.hpp"
#include "process_limits.hpp"
#include "sdbus.hpp"
#include "store.hpp"
#include "ur-build-config.h"
#include "utf8_text.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>
#include <systemd/sd-daemon.h>

using namespace ur;
using namespace ur::dbus;

namespace
{

void usage(FILE* f)
{
    std::fprintf(f, "Usage: upgrade-recoveryd [--root DIR] [--config FILE] [--initrd-run-dir DIR] [-v]\n"
                    "       upgrade-recoveryd --request-backup [--timeout SECONDS] [--force] [--id ID]\n"
                    "\n"
                    "Serve io.openshift.UpgradeRecovery1 on the system bus (DBUS_SYSTEM_BUS_ADDRESS\n"
                    "overrides the bus), or, with --request-backup, ask that service for a backup\n"
                    "and wait for its job. See upgrade-recoveryd(8), io.openshift.UpgradeRecovery1(5).\n");
}

int fail_r(const char* what, int r)
{
    log::error(std::string(what) + ": " + std::strerror(-r));
    return 1;
}

struct Loop {
    sd_event* event = nullptr;
    Manager* manager = nullptr;
    bool stopping = false;
};

int on_signal(sd_event_source*, const struct signalfd_siginfo* si, void* ud)
{
    auto* l = static_cast<Loop*>(ud);
    if (l->stopping) return 0;
    l->stopping = true;
    log::info(std::string("received ") + sigdescr_np(static_cast<int>(si->ssi_signo)) +
              (l->manager->busy() ? ", cancelling the running job" : ", exiting"));
    sd_notify(0, "STOPPING=1");
    l->manager->shutdown([l] { sd_event_exit(l->event, 0); });
    return 0;
}

// The bus went away (dbus-daemon restarted or gone): nobody can call us or read a
// result, and D-Bus activation starts a new instance on the next bus. A running job
// still finishes (its outcome is on the partition), then we exit.
int on_disconnected(sd_bus_message*, void* ud, sd_bus_error*)
{
    auto* l = static_cast<Loop*>(ud);
    if (l->stopping) return 0;
    l->stopping = true;
    log::warning(std::string("lost the bus connection") +
                 (l->manager->busy() ? ", exiting once the running job is done" : ", exiting"));
    sd_notify(0, "STOPPING=1");
    l->manager->when_idle([l] { sd_event_exit(l->event, 0); });
    return 0;
}

int on_name_released(sd_bus_message* m, void* ud, sd_bus_error*)
{
    auto* l = static_cast<Loop*>(ud);
    if (sd_bus_message_is_method_error(m, nullptr))
        log::warning(std::string("releasing the bus name failed: ") + sd_bus_message_get_error(m)->message);
    // A call that slipped in before the release may have started a job: finish it first.
    l->manager->when_idle([l] { sd_event_exit(l->event, 0); });
    return 0;
}

int serve(const DaemonArgs& args)
{
    auto cfg = load_config(ConfigSource{args.root, args.config_file});
    if (!cfg) {
        log::error(cfg.error().message);
        return exit_code_for(cfg.error().kind);
    }
    register_error_map();

    // Signals arrive through sd-event; worker threads inherit the mask and never see them.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);

    sd_event* e = nullptr;
    int r = sd_event_default(&e);
    if (r < 0) return fail_r("sd_event_default", r);
    EventPtr event(e);
    sd_bus* b = nullptr;
    r = sd_bus_open_system_with_description(&b, "upgrade-recoveryd");
    if (r < 0) return fail_r("connect to the system bus", r);
    BusPtr bus(b);
    r = sd_bus_attach_event(bus.get(), event.get(), SD_EVENT_PRIORITY_NORMAL);
    if (r < 0) return fail_r("attach bus to event loop", r);

    Manager manager(event.get(), bus.get(), *cfg, args);
    if (auto a = manager.attach(); !a) {
        log::error(a.error().message);
        return 1;
    }
    r = sd_bus_request_name(bus.get(), kBusName, 0);
    if (r < 0) {
        if (r == -EEXIST) log::error(std::string(kBusName) + " is already owned: another upgrade-recoveryd runs");
        return fail_r("request bus name", r);
    }
    manager.startup();

    Loop loop{event.get(), &manager};
    sd_event_source* src = nullptr;
    if ((r = sd_event_add_signal(event.get(), &src, SIGTERM, on_signal, &loop)) < 0) return fail_r("SIGTERM", r);
    SourcePtr sigterm(src);
    if ((r = sd_event_add_signal(event.get(), &src, SIGINT, on_signal, &loop)) < 0) return fail_r("SIGINT", r);
    SourcePtr sigint(src);
    sd_bus_slot* dslot = nullptr;
    r = sd_bus_match_signal(bus.get(), &dslot, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, &loop);
    if (r < 0) return fail_r("watch for a lost bus", r);
    SlotPtr disconnected(dslot);

    sd_notify(0, "READY=1");
    log::info(std::string("upgrade-recoveryd ") + UR_VERSION + " serving " + kBusName +
              (args.root != "/" ? " for root " + args.root : std::string()));

    // Exit after idle_exit seconds without any event (no call, no job); D-Bus
    // activation starts us again on the next call (systemd's bus_event_loop_with_idle).
    const uint64_t idle_usec = static_cast<uint64_t>(cfg->idle_exit) * 1000000ULL;
    SlotPtr release_slot;
    for (;;) {
        r = sd_event_get_state(event.get());
        if (r < 0) return fail_r("event loop", r);
        if (r == SD_EVENT_FINISHED) break;
        bool idle_armed = idle_usec > 0 && !release_slot && !loop.stopping;
        r = sd_event_run(event.get(), idle_armed ? idle_usec : UINT64_MAX);
        if (r < 0) return fail_r("event loop", r);
        if (r == 0 && idle_armed && !manager.busy()) {
            log::info("idle, exiting");
            sd_notify(0, "STOPPING=1\nSTATUS=Idle, exiting");
            sd_bus_slot* s = nullptr;
            // Release first, then exit: calls queued before the release are still served.
            r = sd_bus_release_name_async(bus.get(), &s, kBusName, on_name_released, &loop);
            if (r < 0) return fail_r("release bus name", r);
            release_slot.reset(s);
        }
    }
    int code = 0;
    sd_event_get_exit_code(event.get(), &code);
    return code;
}

} // namespace

int main(int argc, char** argv)
{
    raise_fd_limit();
    enum {
        OPT_ROOT = 0x100,
        OPT_CONFIG,
        OPT_INITRD_RUN_DIR,
        OPT_REQUEST_BACKUP,
        OPT_TIMEOUT,
        OPT_FORCE,
        OPT_ID,
        OPT_VERSION
    };
    static const struct option longopts[] = {
        {"root", required_argument, nullptr, OPT_ROOT},
        {"config", required_argument, nullptr, OPT_CONFIG},
        {"initrd-run-dir", required_argument, nullptr, OPT_INITRD_RUN_DIR},
        {"request-backup", no_argument, nullptr, OPT_REQUEST_BACKUP},
        {"timeout", required_argument, nullptr, OPT_TIMEOUT},
        {"force", no_argument, nullptr, OPT_FORCE},
        {"id", required_argument, nullptr, OPT_ID},
        {"verbose", no_argument, nullptr, 'v'},
        {"version", no_argument, nullptr, OPT_VERSION},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    DaemonArgs args;
    ClientArgs client;
    bool request = false, client_opts = false, service_opts = false;
    int c;
    while ((c = getopt_long(argc, argv, "vh", longopts, nullptr)) != -1) {
        switch (c) {
        case OPT_ROOT: args.root = optarg, service_opts = true; break;
        case OPT_CONFIG: args.config_file = optarg, service_opts = true; break;
        case OPT_INITRD_RUN_DIR: args.initrd_run_dir = optarg, service_opts = true; break;
        case OPT_REQUEST_BACKUP: request = true; break;
        case OPT_TIMEOUT: {
            char* end = nullptr;
            errno = 0;
            unsigned long v = std::strtoul(optarg, &end, 10);
            if (errno || !end || *end || end == optarg || v > UINT32_MAX) {
                std::fprintf(stderr, "upgrade-recoveryd: --timeout wants seconds, not '%s'\n", optarg);
                return 2;
            }
            client.timeout = static_cast<unsigned>(v);
            client_opts = true;
            break;
        }
        case OPT_FORCE: client.force = client_opts = true; break;
        case OPT_ID: client.id = optarg, client_opts = true; break;
        case 'v': log::set_verbose(true); break;
        case OPT_VERSION: std::printf("upgrade-recoveryd %s\n", UR_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "upgrade-recoveryd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (client_opts && !request) {
        std::fprintf(stderr, "upgrade-recoveryd: --timeout, --force and --id go with --request-backup\n");
        return 2;
    }
    if (request && service_opts) {
        // The running service backs up its own root with its own configuration.
        std::fprintf(stderr, "upgrade-recoveryd: --root, --config and --initrd-run-dir are the service's; "
                             "--request-backup asks the running service, which uses its own\n");
        return 2;
    }
    if (request && client.id && !valid_backup_id(*client.id)) {
        std::fprintf(stderr,
                     "upgrade-recoveryd: --id: '%s' is not a backup id (YYYYMMDDTHHMMSSZ, optionally followed "
                     "by -N)\n",
                     printable(*client.id).c_str());
        return 2;
    }
    if (request) return request_backup(client);

    // Under systemd stderr is already the journal: log there once, structured.
    log::set_identifier("upgrade-recoveryd");
    if (std::getenv("JOURNAL_STREAM")) {
        log::set_stderr(false);
        log::set_journal(true);
    }
    return serve(args);
}
