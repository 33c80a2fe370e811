#include "upgrade_watchdog.hpp"

#include "fd.hpp"
#include "log.hpp"
#include "recovery_journal.hpp"
#include "toml_data.hpp"

#include <cerrno>
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
    std::ostringstream o;
    o << "# upgrade-recovery watchdog: 'upgrade-recovery watchdog stop' ends it\n" << toml::toml_formatter(t) << "\n";
    return o.str();
}

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
    // One started in an earlier boot counts in this one (the upgrade's boot): started
    // again, it would wait for the next boot and leave this one unguarded. A damaged
    // file guards nothing (the monitor stops on it): a new start replaces it.
    auto old = read_watchdog(store);
    if (!old && old.error().kind != ErrorKind::Corrupt) return std::unexpected(old.error());
    if (old && *old && watchdog_applies(**old, boot_id))
        return fail(ErrorKind::Refused,
                    "a watchdog started " + (*old)->started + ", in an earlier boot, counts in this one: it recovers " +
                        "backup " + (*old)->backup_id + " unless 'upgrade-recovery watchdog stop' runs within " +
                        std::to_string((*old)->timeout) + " s of this boot's start. Started again, it would " +
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
    log::warning("watchdog: " + reason + "; recovering backup " + id);
    UR_TRY_CTX(arm_recovery(store, id), "watchdog");
    UR_TRY(stop_watchdog(store));
    return id;
}

} // namespace ur
