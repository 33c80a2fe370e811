#include "upgrade_watchdog.hpp"

#include "earlier_tooling.hpp"
#include "fd.hpp"
#include "host_info.hpp"
#include "log.hpp"
#include "recovery_journal.hpp"
#include "toml_data.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <sstream>
#include <toml++/toml.h>
#include <unistd.h>

namespace ur
{

std::string watchdog_to_toml(const WatchdogState& w)
{
    toml::table t;
    t.insert("backup", w.backup_id);
    t.insert("timeout", static_cast<int64_t>(w.timeout));
    t.insert("started", w.started);
    t.insert("boot_id", w.boot_id);
    if (!w.later_boots.empty()) { // a file without later boots stays as older versions wrote it
        toml::array boots;
        for (const auto& b : w.later_boots)
            boots.push_back(b);
        t.insert("later_boots", std::move(boots));
    }
    std::ostringstream o;
    o << "# upgrade-recovery watchdog: 'upgrade-recovery watchdog stop' ends it\n" << toml::toml_formatter(t) << "\n";
    return o.str();
}

namespace
{

// `later_boots`: absent in files written before it (none seen), else distinct boot ids.
Result<std::vector<std::string>> later_boots_from_toml(const toml::table& t, const std::string& name)
{
    std::vector<std::string> out;
    const toml::node* n = t.get("later_boots");
    if (!n) return out;
    const toml::array* a = n->as_array();
    auto bad = [&] {
        return fail(ErrorKind::Corrupt, name + ":" + std::to_string(n->source().begin.line) +
                                            ": later_boots must be an array of distinct boot ids");
    };
    if (!a) return bad();
    for (const auto& e : *a) {
        auto id = e.value<std::string>();
        if (!e.is_string() || !id || id->empty() || std::find(out.begin(), out.end(), *id) != out.end()) return bad();
        out.push_back(*id);
    }
    return out;
}

} // namespace

Result<WatchdogState> watchdog_from_toml(std::string_view text, const std::string& name)
{
    auto parsed = parse_data_toml(text, name);
    if (!parsed) return std::unexpected(parsed.error());
    const toml::table& t = *parsed;
    WatchdogState w;
    auto id = t["backup"].value<std::string>();
    auto timeout = t["timeout"].value<int64_t>();
    auto started = t["started"].value<std::string>();
    auto boot = t["boot_id"].value<std::string>();
    if (!id || !valid_backup_id(*id) || !timeout || *timeout < 1 || *timeout > UINT32_MAX || !started || !boot)
        return fail(ErrorKind::Corrupt, name + ": not a watchdog (backup, timeout, started, boot_id)");
    w.backup_id = *id;
    w.timeout = static_cast<unsigned>(*timeout);
    w.started = *started;
    w.boot_id = *boot;
    auto boots = later_boots_from_toml(t, name);
    if (!boots) return std::unexpected(boots.error());
    w.later_boots = std::move(*boots);
    return w;
}

Result<std::optional<WatchdogState>> read_watchdog(const Store& store)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    if (!dir->exists()) return std::optional<WatchdogState>{};
    auto text = read_file_at(dir->fd(), kWatchdogFile, 1 << 16);
    if (!text) {
        if (text.error().err == ENOENT) return std::optional<WatchdogState>{};
        return std::unexpected(std::move(text.error()).context("read recovery/watchdog"));
    }
    auto w = watchdog_from_toml(*text, store.path() + "/" + kRecoveryDir + "/" + kWatchdogFile);
    if (!w) return std::unexpected(w.error());
    return std::optional<WatchdogState>(std::move(*w));
}

Result<WatchdogState> start_watchdog(const Store& store, const std::string& backup_id, unsigned timeout,
                                     const std::string& boot_id)
{
    // A minute at least: less cannot see a node through its own boot.
    if (timeout < kWatchdogMinTimeout)
        return fail(ErrorKind::InvalidArgs,
                    "the watchdog's timeout must be at least " + std::to_string(kWatchdogMinTimeout) + " seconds");
    if (!valid_backup_id(backup_id)) return fail(ErrorKind::InvalidArgs, "invalid backup id '" + backup_id + "'");
    auto meta = read_metadata(store, backup_id);
    if (!meta) return std::unexpected(std::move(meta.error()).context("watchdog for backup " + backup_id));
    auto busy = recovery_in_progress(store);
    if (!busy) return std::unexpected(busy.error());
    if (*busy)
        return fail(ErrorKind::RecoveryInProgress,
                    "a recovery is armed or in progress; a watchdog would only arm it again");
    // The earlier tooling's recovery, run by hand: a watchdog would arm ours over it.
    UR_TRY(check_no_earlier_recovery(store, kEarlierRefusesWatchdog));
    // One started in an earlier boot counts in this one (the upgrade's boot): started
    // again, it would wait for the next boot and leave this one unguarded. A damaged
    // file guards nothing (the monitor stops on it): a new start replaces it.
    auto old = read_watchdog(store);
    if (!old && old.error().kind != ErrorKind::Corrupt) return std::unexpected(old.error());
    if (old && *old && watchdog_applies(**old, boot_id))
        return fail(ErrorKind::Refused,
                    "a watchdog started " + (*old)->started + ", in an earlier boot, counts in this one: it recovers " +
                        "backup " + (*old)->backup_id + " unless 'upgrade-recovery watchdog stop' runs within " +
                        std::to_string((*old)->timeout) + " s of this boot's start (or before the node comes up " +
                        "more than watchdog.max_boots times). Started again, it would " +
                        "wait for the next boot and leave this one unguarded; when the upgrade is complete, " +
                        "run 'upgrade-recovery watchdog stop' first");
    WatchdogState w{backup_id, timeout, rfc3339_now(), boot_id};
    auto dir = JournalDir::open(store, true);
    if (!dir) return std::unexpected(dir.error());
    UR_TRY_CTX(write_file_atomic_at(dir->fd(), kWatchdogFile, watchdog_to_toml(w), 0644), "write recovery/watchdog");
    log::info("watchdog started: backup " + backup_id +
              " is recovered unless the upgrade is declared complete within " + std::to_string(timeout) +
              " s of a later boot");
    return w;
}

Result<bool> stop_watchdog(const Store& store)
{
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    if (!dir->exists()) return false;
    if (::unlinkat(dir->fd(), kWatchdogFile, 0) < 0) {
        if (errno == ENOENT) return false;
        return fail_errno("remove recovery/watchdog");
    }
    UR_TRY(fsync_fd(dir->fd(), "recovery directory"));
    return true;
}

Result<WatchdogEnd> end_watchdog(const Store& store)
{
    auto was = stop_watchdog(store);
    if (!was) return std::unexpected(was.error());
    WatchdogEnd e{*was, std::nullopt};
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    if (!dir->exists()) return e;
    auto armed = dir->armed();
    // A damaged marker too: what the next boot does with it is for disarm to settle.
    if (!armed)
        return std::unexpected(
            std::move(armed.error())
                .context(std::string(e.stopped ? "the watchdog is stopped" : "no watchdog was running") +
                         ", but whether a recovery is armed cannot be told"));
    if (*armed) e.armed = **armed;
    return e;
}

std::string armed_after_watchdog_end(const WatchdogEnd& e, const std::string& disarm)
{
    if (!e.armed) return {};
    return std::string(e.stopped ? "Watchdog stopped, but" : "No watchdog is running, but") + " a recovery of backup " +
           *e.armed + " is armed" + (e.stopped ? "" : " (the watchdog fired, or one was armed)") +
           ": the next boot restores it. To keep the node as it is, " + disarm + " before that reboot.";
}

bool watchdog_applies(const WatchdogState& w, const std::string& boot_id)
{
    // An unknown boot id cannot prove that the upgrade rebooted: never fire on it.
    return !boot_id.empty() && boot_id != w.boot_id;
}

Result<std::string> fire_watchdog(const Store& store, const std::string& reason)
{
    auto w = read_watchdog(store);
    if (!w) return std::unexpected(w.error());
    if (!*w) return fail(ErrorKind::NotFound, "no watchdog is running");
    const std::string id = (*w)->backup_id;
    auto busy = recovery_in_progress(store);
    if (!busy) return std::unexpected(busy.error());
    if (*busy) {
        UR_TRY(stop_watchdog(store));
        return fail(ErrorKind::RecoveryInProgress,
                    "a recovery is already armed or in progress; the watchdog (backup " + id + ") is removed");
    }
    // Likewise the earlier tooling's: arming ours would restore over it. Kept, the
    // watchdog would fail to arm at every look (its monitor restarts every 30 s).
    auto earlier = find_earlier_files(store);
    if (!earlier)
        return std::unexpected(std::move(earlier.error()).context("cannot tell whether a recovery is in progress"));
    if (earlier->progress) {
        UR_TRY(stop_watchdog(store));
        return std::unexpected(earlier_recovery_refusal(
            store, *earlier, "the watchdog (backup " + id + ") is removed rather than arm a recovery over it"));
    }
    log::warning("watchdog: " + reason + "; recovering backup " + id);
    UR_TRY_CTX(arm_recovery(store, id), "watchdog");
    UR_TRY(stop_watchdog(store));
    return id;
}

Result<std::optional<WatchdogState>> record_watchdog_boot(const Store& store, const std::string& boot_id)
{
    auto w = read_watchdog(store);
    if (!w) return std::unexpected(w.error());
    if (!*w || !watchdog_applies(**w, boot_id)) return w;
    auto& boots = (*w)->later_boots;
    if (std::find(boots.begin(), boots.end(), boot_id) != boots.end()) return w; // a restarted monitor
    boots.push_back(boot_id);
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    UR_TRY_CTX(write_file_atomic_at(dir->fd(), kWatchdogFile, watchdog_to_toml(**w), 0644),
               "record this boot in recovery/watchdog");
    return w;
}

BootClock read_boot_clock()
{
    auto seconds = [](clockid_t id) {
        struct timespec ts {
        };
        ::clock_gettime(id, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    return {read_boot_id(), seconds(CLOCK_BOOTTIME), seconds(CLOCK_REALTIME)};
}

WatchdogOutlook watchdog_outlook(const WatchdogState& w, const BootClock& clock, unsigned max_boots)
{
    WatchdogOutlook o;
    o.applies = watchdog_applies(w, clock.boot_id);
    o.boots = static_cast<unsigned>(w.later_boots.size());
    o.max_boots = max_boots;
    o.too_many_boots = o.boots > max_boots;
    if (o.applies) {
        o.seconds_left = std::max(0.0, w.timeout - clock.uptime);
        o.deadline = clock.now - clock.uptime + w.timeout; // the boot began at now - uptime
    }
    return o;
}

std::string watchdog_fire_reason(const WatchdogState& w, const WatchdogOutlook& o)
{
    if (!o.applies) return {};
    if (o.too_many_boots)
        return "the node came up " + std::to_string(o.boots) + " times since the watchdog was started (" +
               "watchdog.max_boots = " + std::to_string(o.max_boots) +
               ") and the upgrade was never declared complete: a reboot loop";
    if (o.seconds_left <= 0)
        return "the upgrade was not declared complete within " + std::to_string(w.timeout) + " s of the boot";
    return {};
}

} // namespace ur
