// watchdog start|stop|monitor|trigger: the upgrade watchdog (upgrade_watchdog.hpp).
#include "cli.hpp"
#include "host_info.hpp"
#include "recovery_journal.hpp"
#include "units.hpp"
#include "upgrade_watchdog.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace ur::cli
{

namespace
{

constexpr const char* kUnit = "upgrade-recovery-watchdog.service";

// Arm the watchdog's backup and reboot (when this is the running system).
int fire(const Args& args, const Config& cfg, const Store& store, const std::string& reason,
         std::chrono::seconds patience)
{
    // A watchdog that gave up on a busy store (a backup) would leave the node as the upgrade left it.
    auto lock = lock_store_patiently(store, patience);
    if (!lock) return report_error(args, lock.error());
    log::set_journal(true);
    auto id = fire_watchdog(store, reason);
    if (!id) return report_error(args, id.error());
    auto units = make_unit_manager(cfg, args.root);
    // Armed all the same; the journal says why this process does not reboot (a
    // bus it cannot reach, recovery.systemctl = "dbus" on another root).
    if (!units) log::warning("watchdog: cannot reboot the node: " + units.error().message);
    bool rebooting = false;
    if (units && (*units)->can_control()) {
        CancelToken cancel;
        if (auto rb = (*units)->reboot(cancel); !rb) return report_error(args, rb.error());
        rebooting = true;
    }
    if (args.json)
        print_json(nlohmann::json({{"fired", true}, {"armed", *id}, {"rebooting", rebooting}}));
    else
        printf("Watchdog fired (%s): recovery armed with backup %s; %s\n", printable(reason).c_str(),
               printable(*id).c_str(), rebooting ? "the node reboots now." : "reboot to recover.");
    return 0;
}

int start(const Args& args, const Flags& f)
{
    unsigned timeout = kWatchdogDefaultTimeout;
    if (auto t = f.value("--timeout")) {
        auto v = parse_seconds("--timeout", *t, " (at least 60)");
        if (!v) return kExitUsage;
        timeout = *v;
    }
    const auto given = f.positional.size() > 1 ? std::optional(f.positional[1]) : std::nullopt;
    if (invalid_backup_id(given, "watchdog start", "leave it out for the latest backup")) return kExitUsage;
    auto session = open_session(args, StoreAccess::Write, true);
    if (!session) return report_error(args, session.error());
    const Store& store = (*session)->store;
    auto id = backup_or_latest(store, given);
    if (!id) return report_error(args, id.error());
    auto w = start_watchdog(store, *id, timeout, read_boot_id());
    if (!w) return report_error(args, w.error());
    warn_without_initrd_module(args); // the watchdog's recovery needs it too
    warn_unit_enablement(args, true); // its own unit, and phase 2 for the recovery it arms
    if (args.json)
        print_json(nlohmann::json({{"watchdog", watchdog_json(*w)}}));
    else
        printf("Watchdog started: unless 'upgrade-recovery watchdog stop' runs within %u s of each later boot\n"
               "(or the node comes up more than %u times first: watchdog.max_boots), %s recovers backup %s.\n",
               timeout, (*session)->cfg.watchdog_max_boots, kUnit, printable(*id).c_str());
    return 0;
}

int stop(const Args& args)
{
    auto session = open_session(args, StoreAccess::Inspect, false);
    if (!session) return report_error(args, session.error());
    const Store& store = (*session)->store;
    // Firing waits for a busy store (a backup); so does declaring the upgrade
    // complete, or the watchdog could fire after a stop that gave up.
    auto lock = lock_store_patiently(store, kStoreLockPatience, [&] {
        fprintf(stderr, "upgrade-recovery: another operation holds %s; waiting up to %lld s for it\n",
                printable(store.path()).c_str(), static_cast<long long>(kStoreLockPatience.count()));
    });
    if (!lock) return report_error(args, lock.error());
    auto end = end_watchdog(store);
    if (!end) return report_error(args, end.error());
    if (args.json) {
        nlohmann::json j = {{"stopped", end->stopped}};
        if (end->armed) j["armed"] = *end->armed;
        print_json(j);
    } else if (end->armed) {
        printf("%s\n", printable(armed_after_watchdog_end(*end, "run 'upgrade-recovery disarm'")).c_str());
    } else {
        printf(end->stopped ? "Watchdog stopped.\n" : "No watchdog was running.\n");
    }
    // Not a success for automation that declares the upgrade complete: the next boot restores.
    return end->armed ? kExitRecoveryInProgress : 0;
}

int trigger(const Args& args, const Flags& f)
{
    auto session = open_session(args, StoreAccess::Inspect, false);
    if (!session) return report_error(args, session.error());
    const Store& store = (*session)->store;
    auto w = read_watchdog(store);
    if (!w) return report_error(args, w.error());
    const std::string reason = f.value("--reason").value_or("triggered");
    if (!*w || !watchdog_applies(**w, read_boot_id())) {
        // A hook on a unit fails on ordinary days too: without a watchdog, or in the
        // boot it was started in (before the upgrade's reboot), it means nothing.
        // The words watchdog monitor --json gives for the same two cases.
        const char* why = *w ? "started in this boot" : "no watchdog";
        if (args.json)
            print_json(nlohmann::json({{"fired", false}, {"reason", why}, {"watchdog", watchdog_json(*w)}}));
        else
            printf("Not fired (%s): %s.\n", printable(reason).c_str(),
                   *w ? "the watchdog was started in this boot" : "no watchdog is running");
        return 0;
    }
    return fire(args, (*session)->cfg, store, reason, std::chrono::seconds(60)); // within ExecStopPost's time
}

std::optional<WatchdogState> uncounted(const Error& e, std::optional<WatchdogState> seen)
{
    log::warning("watchdog: cannot count this boot (" + e.message + "); the timeout still applies");
    return seen;
}

// Count this boot once, under the store's lock: a `watchdog stop` meanwhile is not
// undone. A count that cannot be written is lost, but the timeout still fires.
std::optional<WatchdogState> count_this_boot(const Store& store, const std::string& boot,
                                             std::optional<WatchdogState> seen)
{
    auto lock = lock_store_patiently(store, std::chrono::minutes(30));
    if (!lock) return uncounted(lock.error(), std::move(seen));
    auto counted = record_watchdog_boot(store, boot);
    if (!counted) return uncounted(counted.error(), std::move(seen));
    return std::move(*counted);
}

// The service: wait in every boot after the one the watchdog was started in.
int monitor(const Args& args)
{
    auto session = open_session(args, StoreAccess::Inspect, false);
    if (!session) return report_error(args, session.error());
    const Store& store = (*session)->store;
    const unsigned max_boots = (*session)->cfg.watchdog_max_boots;
    const std::string boot = read_boot_clock().boot_id;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    // With --json one object per line: the waiting line, then how it ended.
    auto say = [&](const nlohmann::json& j, const std::string& text) {
        if (args.json)
            printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        else
            printf("%s\n", text.c_str());
        fflush(stdout);
    };
    bool told = false;
    bool counted = false;
    for (;;) {
        auto w = read_watchdog(store);
        if (!w) return report_error(args, w.error()); // never fire on what cannot be read
        if (!*w) {
            say({{"fired", false}, {"reason", "no watchdog"}},
                "No watchdog: the upgrade was declared complete (or none was started).");
            return 0;
        }
        if (!watchdog_applies(**w, boot)) {
            say({{"fired", false}, {"reason", "started in this boot"}, {"watchdog", watchdog_json(*w)}},
                "The watchdog was started in this boot; it waits from the next one.");
            return 0;
        }
        if (!counted) {
            *w = count_this_boot(store, boot, std::move(*w));
            counted = true;
            if (!*w) continue; // stopped meanwhile: the next look says so
        }
        const WatchdogOutlook o = watchdog_outlook(**w, read_boot_clock(), max_boots);
        if (auto why = watchdog_fire_reason(**w, o); !why.empty())
            return fire(args, (*session)->cfg, store, why, std::chrono::minutes(30));
        if (!told) {
            char text[512];
            snprintf(text, sizeof text,
                     "Watchdog: backup %s is recovered in %.0f s unless 'upgrade-recovery watchdog stop' runs "
                     "(later boot %u; it fires at the start of later boot %u).",
                     printable((*w)->backup_id).c_str(), o.seconds_left, o.boots, max_boots + 1);
            say({{"waiting", true},
                 {"seconds_left", static_cast<long long>(o.seconds_left)},
                 {"boots", o.boots},
                 {"max_boots", max_boots},
                 {"watchdog", watchdog_json(*w)}},
                text);
            told = true;
        }
        // Sleep until the deadline or the next look (the watchdog may be stopped), or a stop signal.
        const double nap = o.seconds_left < 2.0 ? o.seconds_left : 2.0;
        struct timespec ts {
            static_cast<time_t>(nap), static_cast<long>((nap - static_cast<double>(static_cast<time_t>(nap))) * 1e9)
        };
        if (::sigtimedwait(&stop_signals, nullptr, &ts) > 0) return 0; // shutdown: the next boot looks again
    }
}

} // namespace

nlohmann::json watchdog_json(const std::optional<WatchdogState>& w)
{
    if (!w) return nullptr;
    return {{"backup", w->backup_id}, {"timeout", w->timeout}, {"started", w->started}, {"boot_id", w->boot_id}};
}

int cmd_watchdog(const Args& args)
{
    auto f = parse_flags(args.params, {}, {"--timeout", "--reason"}, 2);
    if (!f) return kExitUsage;
    const std::string verb = f->positional.empty() ? "" : f->positional[0];
    const char* synopsis = "start [ID] [--timeout SECONDS] | stop | monitor | trigger [--reason TEXT]";
    if (verb != "start" && verb != "stop" && verb != "trigger" && verb != "monitor") {
        if (verb.empty())
            usage_error("upgrade-recovery watchdog: which action? %s\n", synopsis);
        else
            usage_error("upgrade-recovery watchdog: unknown action '%s'; the actions: %s\n", verb.c_str(), synopsis);
        return kExitUsage;
    }
    // Name what does not belong to this action, as the other commands do.
    if (f->positional.size() > (verb == "start" ? 2u : 1u)) {
        usage_error("upgrade-recovery watchdog %s: unexpected argument '%s' (see --help)\n", verb.c_str(),
                    f->positional.back().c_str());
        return kExitUsage;
    }
    for (const auto& [flag, owner] : {std::pair{"--timeout", "start"}, std::pair{"--reason", "trigger"}})
        if (f->value(flag) && verb != owner) {
            usage_error("upgrade-recovery watchdog %s: %s goes with watchdog %s only (see --help)\n", verb.c_str(),
                        flag, owner);
            return kExitUsage;
        }
    if (verb == "start") return start(args, *f);
    if (verb == "stop") return stop(args);
    if (verb == "trigger") return trigger(args, *f);
    return monitor(args);
}

} // namespace ur::cli
