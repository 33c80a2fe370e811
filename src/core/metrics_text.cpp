#include "metrics_text.hpp"

#include "utf8_text.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace ur
{

namespace
{

// Label values: UTF-8 (the text format says so, and node_exporter's textfile
// collector drops the whole file for one bad byte; metadata decodes %XX, so a
// version string may hold any), then backslash, double quote and line feed escaped.
std::string label_value(std::string_view v)
{
    std::string out;
    for (char c : valid_utf8(v)) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string number(double v)
{
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        snprintf(buf, sizeof buf, "%.0f", v);
    else
        snprintf(buf, sizeof buf, "%.3f", v);
    return buf;
}

// One metric family: HELP and TYPE once, then its samples.
class Writer
{
  public:
    void family(const char* name, const char* help)
    {
        name_ = name;
        out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    }
    void sample(double v) { out_ += name_ + " " + number(v) + "\n"; }
    void sample(std::string_view labels, double v)
    {
        out_ += name_ + "{" + std::string(labels) + "} " + number(v) + "\n";
    }
    // A state set: one sample per state, 1 for the current one.
    void states(std::initializer_list<std::string_view> all, std::string_view current)
    {
        for (auto s : all)
            sample("state=\"" + std::string(s) + "\"", s == current ? 1 : 0);
    }
    std::string take() { return std::move(out_); }

  private:
    std::string name_;
    std::string out_;
};

void maybe_timestamp(Writer& w, const char* name, const char* help, const std::string& when)
{
    if (auto t = rfc3339_to_epoch(when)) {
        w.family(name, help);
        w.sample(*t);
    }
}

} // namespace

std::optional<double> rfc3339_to_epoch(std::string_view s)
{
    // YYYY-MM-DDTHH:MM:SS[.fraction]Z
    auto digits = [&](size_t pos, size_t n, int& out) {
        if (pos + n > s.size()) return false;
        auto r = std::from_chars(s.data() + pos, s.data() + pos + n, out);
        return r.ec == std::errc() && r.ptr == s.data() + pos + n;
    };
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z')
        return std::nullopt;
    std::tm tm{};
    if (!digits(0, 4, tm.tm_year) || !digits(5, 2, tm.tm_mon) || !digits(8, 2, tm.tm_mday) ||
        !digits(11, 2, tm.tm_hour) || !digits(14, 2, tm.tm_min) || !digits(17, 2, tm.tm_sec))
        return std::nullopt;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return std::nullopt;
    double fraction = 0;
    if (s.size() > 20) {
        std::string_view f = s.substr(19, s.size() - 20); // ".123456789"
        if (f.size() < 2 || f[0] != '.') return std::nullopt;
        double scale = 0.1;
        for (char c : f.substr(1)) {
            if (c < '0' || c > '9') return std::nullopt;
            fraction += (c - '0') * scale;
            scale /= 10;
        }
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t t = timegm(&tm);
    if (t == static_cast<time_t>(-1)) return std::nullopt;
    return static_cast<double>(t) + fraction;
}

std::string metrics_text(const StoreStatus* st, const std::optional<StoreUsage>& usage)
{
    Writer w;
    w.family("upgrade_recovery_store_up", "1 when the recovery store (the partition) could be opened and read.");
    w.sample(st ? 1 : 0);
    if (!st) return w.take();

    if (usage) {
        w.family("upgrade_recovery_store_size_bytes", "Size of the file system holding the recovery store.");
        w.sample(static_cast<double>(usage->size_bytes));
        w.family("upgrade_recovery_store_free_bytes", "Space available on the file system holding the recovery store.");
        w.sample(static_cast<double>(usage->free_bytes));
    }
    w.family("upgrade_recovery_backups", "Number of complete backups in the store.");
    w.sample(static_cast<double>(st->backups.size()));

    if (const auto& m = st->latest) {
        w.family("upgrade_recovery_latest_backup_info",
                 "The latest backup: its id, the OpenShift version and the ostree deployment it holds.");
        w.sample("backup_id=\"" + label_value(m->id) + "\",openshift_version=\"" + label_value(m->openshift.version) +
                     "\",ostree_checksum=\"" + label_value(m->ostree.present ? m->ostree.checksum : "") + "\"",
                 1);
        maybe_timestamp(w, "upgrade_recovery_latest_backup_timestamp_seconds",
                        "When the latest backup was taken, in seconds since the epoch.", m->created);
        w.family("upgrade_recovery_latest_backup_bytes", "Logical size of the regular files in the latest backup.");
        w.sample(static_cast<double>(m->total_bytes));
        maybe_timestamp(w, "upgrade_recovery_latest_backup_cert_expiry_timestamp_seconds",
                        "Earliest expiry of the kubelet certificates in the latest backup, in seconds since the "
                        "epoch: after it a recovery to that backup needs their signing requests approved by hand.",
                        m->openshift.cert_expiry);
    }

    if (const auto& a = st->last_attempt) {
        w.family("upgrade_recovery_last_backup_attempt_state",
                 "Outcome of the last backup attempt: 1 for its state (running, succeeded, failed, interrupted).");
        w.states({"running", "succeeded", "failed", "interrupted"}, a->state);
        maybe_timestamp(w, "upgrade_recovery_last_backup_attempt_timestamp_seconds",
                        "When the last backup attempt ended (while it runs: when it started), in seconds since the "
                        "epoch.",
                        a->finished.empty() ? a->started : a->finished);
        if (!a->finished.empty()) {
            w.family("upgrade_recovery_last_backup_attempt_duration_seconds", "How long the last backup attempt took.");
            w.sample(a->duration_seconds);
        }
    }

    const RecoveryStatus rs = make_recovery_status(st->journal, st->armed, st->phase2_pending);
    w.family("upgrade_recovery_recovery_armed", "1 when a recovery is armed: phase 1 runs at the next boot.");
    w.sample(st->armed ? 1 : 0);
    w.family("upgrade_recovery_recovery_phase2_pending", "1 when phase 1 is done and phase 2 runs after the reboot.");
    w.sample(st->phase2_pending ? 1 : 0);
    w.family("upgrade_recovery_recovery_in_progress",
             "1 while a recovery is armed, running, paused or failed and not abandoned (backups are refused).");
    w.sample(rs.in_progress ? 1 : 0);
    w.family("upgrade_recovery_earlier_recovery_in_progress",
             "1 while a recovery by the earlier tooling's upgrade-recovery.sh is in progress (its progress file on "
             "the partition): backups and recoveries of upgrade-recovery are refused.");
    w.sample(st->earlier_recovery ? 1 : 0);
    if (const auto& j = st->journal) {
        w.family("upgrade_recovery_recovery_state",
                 "State of the current or last recovery: 1 for its state (running, interrupted: running but its "
                 "process is gone, paused, failed, complete, aborted).");
        w.states({"running", "interrupted", "paused", "failed", "complete", "aborted"},
                 rs.interrupted ? "interrupted" : recovery_state_name(j->state));
        maybe_timestamp(w, "upgrade_recovery_recovery_started_timestamp_seconds",
                        "When the current or last recovery started, in seconds since the epoch.", j->started);
    }
    w.family("upgrade_recovery_watchdog_active",
             "1 while the upgrade watchdog runs: it recovers unless stopped in time.");
    w.sample(st->watchdog ? 1 : 0);
    if (const auto& o = st->watchdog_outlook) {
        w.family("upgrade_recovery_watchdog_boots",
                 "Boots after the one the upgrade watchdog was started in, counted so far.");
        w.sample(o->boots);
        w.family("upgrade_recovery_watchdog_max_boots",
                 "watchdog.max_boots: the watchdog fires at the start of the boot after this many.");
        w.sample(o->max_boots);
        // Not in the boot it was started in: it cannot fire there.
        if (o->applies) {
            w.family("upgrade_recovery_watchdog_deadline_timestamp_seconds",
                     "When the upgrade watchdog fires in this boot unless stopped, in seconds since the epoch.");
            w.sample(o->deadline);
        }
    }

    w.family("upgrade_recovery_unreadable",
             "1 for a part of the store that cannot be read (damaged or unreadable; see upgrade-recovery status).");
    // A generation named like a backup that is damaged or cannot be read now (status lists them).
    w.sample("part=\"backups\"", st->damaged.empty() && st->unreadable.empty() ? 0 : 1);
    w.sample("part=\"latest_backup\"", st->latest_error ? 1 : 0);
    w.sample("part=\"last_backup_attempt\"", st->last_attempt_error ? 1 : 0);
    w.sample("part=\"recovery\"", st->recovery_error ? 1 : 0);
    w.sample("part=\"watchdog\"", st->watchdog_error ? 1 : 0);
    return w.take();
}

} // namespace ur
