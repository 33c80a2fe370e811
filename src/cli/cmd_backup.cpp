// backup, list, status, verify, delete.
#include "backup.hpp"
#include "backup_attempt.hpp"
#include "backup_removal.hpp"
#include "cli.hpp"
#include "recovery_journal.hpp"
#include "status_warnings.hpp"
#include "store.hpp"
#include "store_status.hpp"
#include "text.hpp"
#include "upgrade_watchdog.hpp"
#include "verify.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace ur::cli
{

namespace
{

// `unshared`: why nothing was shared when the metadata names no previous backup.
// Only the backup just taken knows (its config); list and status cannot tell a
// first backup from one taken with backup.share_unchanged off.
void print_metadata_text(const BackupMetadata& m, bool latest,
                         const std::string& unshared = "nothing shared with an earlier backup")
{
    // Every string here comes from metadata.toml: printable (cli.hpp).
    printf("%s%s  created %s on %s\n", printable(m.id).c_str(), latest ? " (latest)" : "", printable(m.created).c_str(),
           printable(m.host).c_str());
    for (const auto& t : m.trees)
        printf("  %-10s %-22s %8llu entries %12s\n", printable(t.name).c_str(), printable(t.path).c_str(),
               static_cast<unsigned long long>(t.files), human_size(t.bytes).c_str());
    if (m.previous.empty())
        printf("  data: %s total, %s copied, %s\n", human_size(m.total_bytes).c_str(),
               human_size(m.copied_bytes).c_str(), unshared.c_str());
    else
        printf("  data: %s total, %s copied, %s shared with %s (%llu files)\n", human_size(m.total_bytes).c_str(),
               human_size(m.copied_bytes).c_str(), human_size(m.shared_bytes).c_str(), printable(m.previous).c_str(),
               static_cast<unsigned long long>(m.shared_files));
    if (m.ostree.present)
        printf("  ostree: %s %s.%d%s%s\n", printable(m.ostree.osname).c_str(), printable(m.ostree.checksum).c_str(),
               m.ostree.serial, m.ostree.version.empty() ? "" : (" version " + printable(m.ostree.version)).c_str(),
               m.ostree.pinned ? " (pinned)" : " (NOT pinned)");
    else
        printf("  ostree: not recorded (not an ostree host)\n");
    if (m.cluster.present)
        printf("  etcd: %s via %s, revision %lld, %lld keys%s\n", printable(m.cluster.snapshot).c_str(),
               printable(m.cluster.method).c_str(), static_cast<long long>(m.cluster.revision),
               static_cast<long long>(m.cluster.total_keys), m.cluster.dirty ? ", DIRTY (taken with --force)" : "");
    else
        printf("  etcd: not included\n");
    if (m.images.present)
        printf("  control-plane images: %zu held, %s (%s copied)%s\n", m.images.held.size(),
               human_size(m.images.bytes).c_str(), human_size(m.images.copied_bytes).c_str(),
               m.images.missing.empty() ? "" : (", " + std::to_string(m.images.missing.size()) + " NOT held").c_str());
    printf("  openshift: %s%s\n",
           m.openshift.version.empty() ? "version unknown" : printable(m.openshift.version).c_str(),
           m.openshift.version.empty() && !m.openshift.version_source.empty()
               ? (" (" + printable(m.openshift.version_source) + ")").c_str()
               : "");
    if (!m.openshift.release_image.empty())
        printf("  release image: %s\n", printable(m.openshift.release_image).c_str());
    if (!m.openshift.cert_expiry.empty())
        printf("  rollback without manual certificate recovery possible until %s\n",
               printable(m.openshift.cert_expiry).c_str());
    printf("  recovery tools in backup: cluster-restore.sh %s, etcd scripts %s\n",
           m.openshift.has_cluster_restore ? "yes" : "NO", m.openshift.has_etcd_scripts ? "yes" : "NO");
    if (!m.mc_files.empty())
        printf("  MachineConfig files outside the trees: %zu (%zu missing)\n", m.mc_files.size(), m.mc_missing.size());
    if (!m.warnings.empty()) printf("  warnings: %zu (see --json)\n", m.warnings.size());
}

int print_estimate(const Args& args, const BackupEstimate& e)
{
    if (args.json) {
        nlohmann::json j = {{"dry_run", true},
                            {"directory", e.store},
                            {"previous", e.previous},
                            {"entries", e.entries},
                            {"total_bytes", e.total_bytes},
                            {"new_files", e.new_files},
                            {"new_bytes", e.new_bytes},
                            {"shared_bytes", e.shared_bytes},
                            {"cluster_bytes", e.cluster_bytes},
                            {"images_bytes", e.images_bytes},
                            {"metadata_bytes", e.metadata_bytes},
                            {"margin_bytes", e.margin_bytes},
                            {"need_bytes", e.need_bytes},
                            {"free_bytes", e.free_bytes},
                            {"fits", e.fits()}};
        print_json(j);
    } else {
        printf("Dry run: nothing was written to %s.\n", printable(e.store).c_str());
        printf("  copy set:   %llu names, %s in regular files\n", static_cast<unsigned long long>(e.entries),
               human_size(e.total_bytes).c_str());
        printf("  to copy:    %llu files, %s\n", static_cast<unsigned long long>(e.new_files),
               human_size(e.new_bytes).c_str());
        if (e.previous.empty())
            printf("  shared:     nothing (%s)\n", printable(e.unshared).c_str());
        else
            printf("  shared:     %s with backup %s\n", human_size(e.shared_bytes).c_str(),
                   printable(e.previous).c_str());
        printf("  etcd:       %s\n", human_size(e.cluster_bytes).c_str());
        if (e.images_bytes)
            printf("  images:     %s (control-plane images to copy)\n", human_size(e.images_bytes).c_str());
        printf("  metadata:   %s\n", human_size(e.metadata_bytes).c_str());
        printf("  margin:     %s (backup.free_space_margin)\n", human_size(e.margin_bytes).c_str());
        printf("  needed:     %s of %s free: %s\n", human_size(e.need_bytes).c_str(), human_size(e.free_bytes).c_str(),
               e.fits() ? "fits" : "DOES NOT FIT");
    }
    if (e.fits()) return 0;
    // The error a backup now would end with; stdout keeps the estimate alone (--json).
    fprintf(stderr, "upgrade-recovery backup: dry run: %s\n", printable(no_space_error(e).message).c_str());
    return kExitNoSpace;
}

} // namespace

int cmd_backup(const Args& args)
{
    auto f = parse_flags(args.params, {"--force", "--dry-run"}, {"--id", "--timeout"}, 0);
    if (!f) return kExitUsage;
    std::optional<unsigned> timeout_opt;
    if (auto t = f->value("--timeout"); t && !(timeout_opt = parse_seconds("--timeout", *t, " (0: no limit)")))
        return kExitUsage;
    if (auto id = f->value("--id"); id && !valid_backup_id(*id)) { // before the partition is looked for
        usage_error("upgrade-recovery: --id: '%s' is not a valid backup id (YYYYMMDDTHHMMSSZ, a UTC time)\n",
                    id->c_str());
        return kExitUsage;
    }
    auto cfg = load(args);
    if (!cfg) return report_error(args, cfg.error());
    BackupOptions opts;
    opts.root = args.root;
    opts.force_dirty = f->has("--force");
    opts.id = f->value("--id");
    opts.dry_run = f->has("--dry-run");
    unsigned timeout = timeout_opt.value_or(cfg->backup_timeout);
    CancelToken cancel;
    cancel.set_timeout(std::chrono::seconds(timeout));
    SignalCancel sc(cancel);
    TerminalProgress progress(args.json);
    auto r = run_backup(*cfg, opts, progress, cancel);
    progress.clear();
    if (!r) {
        Error e = r.error();
        if (e.kind == ErrorKind::Timeout)
            e.message += " (" + std::string(timeout_opt ? "--timeout" : "backup.timeout") + " is " +
                         std::to_string(timeout) + " s); the previous backup is intact";
        if (!opts.dry_run) {
            // run_backup leaves the failure event to its caller (the daemon adds its job);
            // stderr gets report_error's line only.
            log::set_stderr(false);
            // The fields the daemon gives the same event (catalog: STEP, the D-Bus error name).
            const std::string step = progress.current_stage().empty() ? "start" : progress.current_stage();
            log::event(log::kBackupFailed, log::Level::Error, "backup failed: " + e.message,
                       {{"BACKUP_ID", opts.id.value_or("")}, {"STEP", step}, {"ERROR", error_name(e.kind)}});
            log::set_stderr(true);
        }
        return report_error(args, e);
    }
    if (opts.dry_run) return print_estimate(args, r->estimate);
    const auto& m = r->meta;
    if (args.json) {
        auto j = nlohmann::json::parse(metadata_to_json(m));
        j["pruned"] = r->pruned;
        j["unpinned"] = r->unpinned;
        print_json(j);
        return 0;
    }
    printf("Backup %s complete in %.1f s.\n", printable(m.id).c_str(), m.duration_seconds);
    print_metadata_text(m, true,
                        cfg->share_unchanged ? "nothing shared with an earlier backup"
                                             : "nothing shared: backup.share_unchanged is off");
    for (const auto& w : m.warnings)
        printf("  warning: %s\n", printable(w).c_str());
    if (!r->pruned.empty()) {
        printf("Removed by retention:");
        for (const auto& p : r->pruned)
            printf(" %s", printable(p).c_str());
        printf("\n");
    }
    for (const auto& u : r->unpinned)
        printf("Unpinned ostree deployment %s (no backup records it any more).\n", printable(u).c_str());
    return 0;
}

int cmd_list(const Args& args)
{
    if (!parse_flags(args.params, {}, {}, 0)) return kExitUsage;
    auto session = open_session(args, StoreAccess::Read, false);
    if (!session) return report_error(args, session.error());
    Store* store = &(*session)->store;
    // Every generation: one that is not a backup is shown as damaged, with why.
    auto ids = list_generations(*store);
    if (!ids) return report_error(args, ids.error());
    // Like status: what cannot be read is shown, and the first such part is the exit status.
    std::optional<Error> first_err;
    auto latest = latest_backup(*store);
    if (!latest) {
        if (latest.error().kind != ErrorKind::Corrupt) return report_error(args, latest.error());
        first_err = latest.error();
    }
    std::string latest_id = latest && *latest ? **latest : "";
    nlohmann::json arr = nlohmann::json::array();
    if (!args.json && ids->empty()) printf("No backups in %s.\n", printable(store->path()).c_str());
    for (auto it = ids->rbegin(); it != ids->rend(); ++it) {
        auto m = read_metadata(*store, *it);
        if (!m && m.error().kind == ErrorKind::NotFound) continue; // deleted since the listing
        if (!m) {
            if (!first_err) {
                first_err = m.error();
                first_err->context("backup " + *it);
            }
            if (args.json) // damaged: what delete is for; else perhaps a good backup (as the text says)
                arr.push_back(
                    {{"id", *it}, {"error", m.error().message}, {"damaged", m.error().kind == ErrorKind::Corrupt}});
            else if (m.error().kind == ErrorKind::Corrupt)
                printf("%s  DAMAGED, not counted as a backup and never removed by retention ('upgrade-recovery "
                       "delete %s' removes it): %s\n",
                       printable(*it).c_str(), printable(*it).c_str(), printable(m.error().message).c_str());
            else // EACCES, EIO: perhaps a good backup, not one to delete
                printf("%s  UNREADABLE: %s\n", printable(*it).c_str(), printable(m.error().message).c_str());
            continue;
        }
        if (args.json) {
            auto j = nlohmann::json::parse(metadata_to_json(*m));
            j["latest"] = *it == latest_id;
            arr.push_back(j);
        } else {
            print_metadata_text(*m, *it == latest_id);
        }
    }
    if (args.json) print_json(arr);
    if (!first_err) return 0;
    // Not report_error: with --json, stdout holds the list.
    fprintf(stderr, "upgrade-recovery list: %s\n", printable(first_err->message).c_str());
    return exit_code(first_err->kind);
}

namespace
{

void print_backup_attempt(const BackupAttempt& a)
{
    // last-backup.json, as found on the partition: printable.
    std::string id = a.backup_id.empty() ? "" : " (backup " + printable(a.backup_id) + ")";
    if (a.state == "succeeded")
        printf("Last backup attempt: succeeded %s in %.1f s%s\n", printable(a.finished).c_str(), a.duration_seconds,
               id.c_str());
    else if (a.state == "failed")
        printf("Last backup attempt: FAILED %s after %.1f s%s: %s: %s\n", printable(a.finished).c_str(),
               a.duration_seconds, id.c_str(), printable(a.error_kind).c_str(), printable(a.error).c_str());
    else if (a.state == "running")
        printf("Last backup attempt: running since %s (pid %lld)\n", printable(a.started).c_str(),
               static_cast<long long>(a.pid));
    else
        printf("Last backup attempt: INTERRUPTED: started %s, its process is gone (killed or a power cut); "
               "the next backup removes what it left\n",
               printable(a.started).c_str());
}

std::string utc_text(double epoch)
{
    const time_t t = static_cast<time_t>(epoch);
    struct tm tm {
    };
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// What the watchdog does in this boot, added to its object in `status --json`.
void add_watchdog_outlook(nlohmann::json& j, const WatchdogOutlook& o)
{
    j["applies_this_boot"] = o.applies;
    j["seconds_left"] = o.applies ? nlohmann::json(static_cast<long long>(o.seconds_left)) : nlohmann::json(nullptr);
    j["deadline"] = o.applies ? nlohmann::json(utc_text(o.deadline)) : nlohmann::json(nullptr);
    j["boots"] = o.boots;
    j["max_boots"] = o.max_boots;
}

void print_watchdog_outlook(const WatchdogOutlook& o)
{
    const std::string counted = "later boots: " + std::to_string(o.boots) + "; it fires at the start of later boot " +
                                std::to_string(o.max_boots + 1) +
                                " (watchdog.max_boots = " + std::to_string(o.max_boots) + ")";
    if (!o.applies)
        printf("  This boot: the watchdog was started in it; it waits for the next boot (%s)\n", counted.c_str());
    else if (o.too_many_boots)
        printf("  This boot: fires as soon as its monitor runs (%s)\n", counted.c_str());
    else if (o.seconds_left <= 0)
        printf("  This boot: the timeout has passed (%s); it fires as soon as its monitor runs\n",
               utc_text(o.deadline).c_str());
    else
        printf("  This boot: fires in %.0f s (%s) unless stopped; %s\n", o.seconds_left, utc_text(o.deadline).c_str(),
               counted.c_str());
}

} // namespace

int cmd_status(const Args& args)
{
    if (!parse_flags(args.params, {}, {}, 0)) return kExitUsage;
    auto session = open_session(args, StoreAccess::Read, false);
    if (!session) return report_error(args, session.error());
    const Store& store = (*session)->store;
    auto st = read_store_status(store, (*session)->cfg.watchdog_max_boots);
    if (!st) return report_error(args, st.error());
    // What cannot be read, or is damaged, is shown and makes the exit status, after the rest.
    const auto problem = st->problem();
    const int rc = problem ? exit_code(*problem) : 0;
    // As list does: the report on stdout, and the reason for the exit status on stderr.
    auto finish = [&] {
        if (rc) fprintf(stderr, "upgrade-recovery status: %s\n", printable(st->problem_message()).c_str());
        return rc;
    };
    // The next action, as the daemon and the metrics read it (make_recovery_status). Not
    // when the journal is what could not be read: the pieces left would tell a damaged
    // journal's armed node to reboot, and its error already names the way out.
    const RecoveryStatus rstatus = make_recovery_status(st->journal, st->armed, st->phase2_pending);
    const std::string next = st->recovery_error && !st->journal ? std::string() : rstatus.next;
    // The initramfs module, boot entries keeping upgrade_recovery=phase1, the units
    // that act after the next boot: what the daemon's Manager.Warnings says too.
    const StatusChecks checks = check_status_host(args.root, *st);
    if (args.json) {
        nlohmann::json j;
        j["store"] = store.path();
        j["partition"] = store.location.plain_directory ? "" : store.location.partition.device;
        j["plain_directory"] = store.location.plain_directory;
        j["backups"] = st->backups.size();
        j["damaged"] = st->damaged;
        j["unreadable"] = nlohmann::json::array();
        for (const auto& u : st->unreadable)
            j["unreadable"].push_back({{"id", u.id}, {"error", u.error.message}});
        j["latest"] = st->latest ? nlohmann::json::parse(metadata_to_json(*st->latest)) : nlohmann::json(nullptr);
        if (st->latest_error) j["latest_error"] = st->latest_error->message;
        j["last_backup"] = st->last_attempt ? nlohmann::json::parse(backup_attempt_to_json(*st->last_attempt))
                                            : nlohmann::json(nullptr);
        if (st->last_attempt_error) j["last_backup_error"] = st->last_attempt_error->message;
        j["recovery"] =
            st->journal ? nlohmann::json::parse(journal_to_json(*st->journal, -1)) : nlohmann::json(nullptr);
        if (st->recovery_error) j["recovery_error"] = st->recovery_error->message;
        j["armed"] = st->armed ? nlohmann::json(*st->armed) : nlohmann::json(nullptr);
        j["phase2_pending"] = st->phase2_pending.has_value();
        j["recovery_next"] = next; // "" when there is nothing to do
        // Its "running" process is gone (recovery_interrupted); the daemon's RecoveryState Interrupted.
        j["recovery_interrupted"] = rstatus.interrupted;
        j["initrd_module_ran"] =
            checks.initrd_module ? nlohmann::json(checks.initrd_module->empty()) : nlohmann::json(nullptr);
        j["kept_recovery_karg"] = checks.kept_karg ? nlohmann::json(*checks.kept_karg) : nlohmann::json(nullptr);
        j["units"] = nlohmann::json::object();
        for (const auto& [c, matters] : checks.units)
            j["units"][c.unit] = {{"state", c.state.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.state)},
                                  {"warning", matters ? c.warning : ""},
                                  {"note", c.note}};
        j["warnings"] = checks.warnings();
        j["watchdog"] = watchdog_json(st->watchdog);
        if (st->watchdog_outlook) add_watchdog_outlook(j["watchdog"], *st->watchdog_outlook);
        if (st->watchdog_error) j["watchdog_error"] = st->watchdog_error->message;
        print_json(j);
        return finish();
    }
    // Text: every string read from the store goes through printable (--json above is exact).
    printf("Store: %s (%s)\n", printable(store.path()).c_str(),
           store.location.plain_directory ? "plain directory"
                                          : ("partition " + printable(store.location.partition.device)).c_str());
    printf("Backups: %zu\n", st->backups.size());
    if (!st->damaged.empty()) {
        std::string ids;
        for (const auto& d : st->damaged)
            ids += " " + d;
        printf("Damaged (named like backups, not counted; see 'upgrade-recovery list'):%s\n", ids.c_str());
    }
    for (const auto& u : st->unreadable)
        printf("Unreadable (perhaps a backup, not counted until it reads): %s: %s\n", printable(u.id).c_str(),
               printable(u.error.message).c_str());
    if (st->latest) {
        printf("Latest: ");
        print_metadata_text(*st->latest, true);
    } else if (st->latest_error && st->latest_id) {
        printf("Latest: %s UNREADABLE: %s\n", printable(*st->latest_id).c_str(),
               printable(st->latest_error->message).c_str());
    } else if (st->latest_error) {
        printf("Latest: DAMAGED: %s\n", printable(st->latest_error->message).c_str());
    } else {
        printf("Latest: none\n");
    }
    if (st->last_attempt)
        print_backup_attempt(*st->last_attempt);
    else if (st->last_attempt_error)
        printf("Last backup attempt: UNREADABLE: %s\n", printable(st->last_attempt_error->message).c_str());
    if (st->armed) printf("Recovery ARMED for the next boot with backup %s\n", printable(*st->armed).c_str());
    if (const auto& journal = st->journal) {
        printf("Recovery %s: %s (backup %s, started %s)\n", printable(journal->recovery_id).c_str(),
               rstatus.interrupted ? "INTERRUPTED (its process is gone)"
                                   : std::string(recovery_state_name(journal->state)).c_str(),
               printable(journal->backup_id).c_str(), printable(journal->started).c_str());
        for (const auto& s : journal->steps)
            printf("  %-22s %-8s %s%s\n", printable(s.name).c_str(), std::string(step_state_name(s.state)).c_str(),
                   printable(s.finished).c_str(), s.error.empty() ? "" : ("  " + printable(s.error)).c_str());
        if (!journal->error.empty()) printf("  error: %s\n", printable(journal->error).c_str());
    } else if (!st->recovery_error) {
        printf("Recovery: none recorded\n");
    }
    if (st->recovery_error) printf("Recovery: UNREADABLE: %s\n", printable(st->recovery_error->message).c_str());
    if (st->phase2_pending) printf("Phase 2 pending (runs after the reboot: upgrade-recovery-phase2.service)\n");
    for (const auto& w : checks.warnings())
        printf("WARNING: %s\n", printable(w).c_str());
    for (const auto& [c, matters] : checks.units)
        if (matters && !c.note.empty()) printf("Note: %s\n", printable(c.note).c_str());
    if (const auto& w = st->watchdog) {
        printf("Watchdog: started %s; recovers backup %s unless 'upgrade-recovery watchdog stop' runs within %u s "
               "of a later boot\n",
               printable(w->started).c_str(), printable(w->backup_id).c_str(), w->timeout);
        if (st->watchdog_outlook) print_watchdog_outlook(*st->watchdog_outlook);
    } else if (st->watchdog_error)
        printf("Watchdog: UNREADABLE: %s\n", printable(st->watchdog_error->message).c_str());
    // Last, as upgrade-recovery(8) says: what to do now, after everything it is about.
    if (!next.empty()) printf("Next: %s\n", printable(next).c_str());
    return finish();
}

int cmd_verify(const Args& args)
{
    auto f = parse_flags(args.params, {}, {}, 1);
    if (!f) return kExitUsage;
    if (invalid_backup_id(f->positional.empty() ? std::nullopt : std::optional(f->positional[0]), "verify",
                          "leave it out for the latest backup"))
        return kExitUsage;
    auto session = open_session(args, StoreAccess::Read, true); // a backup pruning it meanwhile would look like damage
    if (!session) return report_error(args, session.error());
    Store* store = &(*session)->store;
    std::string id;
    if (!f->positional.empty()) {
        id = f->positional[0];
    } else {
        auto latest = latest_backup(*store);
        if (!latest) return report_error(args, latest.error());
        if (!*latest) return report_error(args, Error{ErrorKind::NotFound, 0, "there is no backup to verify"});
        id = **latest;
    }
    CancelToken cancel;
    SignalCancel sc(cancel);
    TerminalProgress progress(args.json);
    progress.stage("verify " + id);
    auto rep = verify_backup(*store, id, progress, cancel);
    progress.clear();
    if (!rep) return report_error(args, rep.error());
    if (args.json) {
        nlohmann::json j = {
            {"id", rep->id}, {"checked", rep->checked}, {"ok", rep->ok()}, {"mismatches", rep->mismatches}};
        print_json(j);
    } else {
        for (const auto& m : rep->mismatches)
            printf("MISMATCH %s\n", printable(m).c_str());
        printf("Backup %s: %llu entries checked, %zu mismatch%s.\n", printable(id).c_str(),
               static_cast<unsigned long long>(rep->checked), rep->mismatches.size(),
               rep->mismatches.size() == 1 ? "" : "es");
    }
    return rep->ok() ? 0 : kExitCorrupt;
}

int cmd_delete(const Args& args)
{
    auto f = parse_flags(args.params, {"--force"}, {}, 1);
    if (!f) return kExitUsage;
    if (f->positional.empty()) {
        usage_error("upgrade-recovery delete: which backup? (see 'upgrade-recovery list')\n");
        return kExitUsage;
    }
    if (invalid_backup_id(f->positional[0], "delete", nullptr)) return kExitUsage;
    auto session = open_session(args, StoreAccess::Inspect, true);
    if (!session) return report_error(args, session.error());
    Store* store = &(*session)->store;
    auto r = remove_backup((*session)->cfg, args.root, *store, f->positional[0], f->has("--force"));
    if (!r) return report_error(args, r.error());
    if (!r->warning.empty()) log::warning(r->warning);
    const bool was_interrupted =
        std::find(r->finished.begin(), r->finished.end(), f->positional[0]) != r->finished.end();
    if (args.json) {
        print_json(nlohmann::json(
            {{"deleted", f->positional[0]}, {"unpinned", r->unpinned}, {"finished_interrupted", r->finished}}));
    } else {
        for (const auto& id : r->finished)
            if (id != f->positional[0])
                printf("Finished the interrupted delete of backup %s.\n", printable(id).c_str());
        printf(was_interrupted ? "Deleted backup %s (finished its interrupted delete).\n" : "Deleted backup %s.\n",
               printable(f->positional[0]).c_str());
        for (const auto& u : r->unpinned)
            printf("Unpinned ostree deployment %s (no backup records it any more).\n", printable(u).c_str());
    }
    return 0;
}

int run_command(const Args& args)
{
    const std::string& c = args.command;
    if (c == "backup") return cmd_backup(args);
    if (c == "list") return cmd_list(args);
    if (c == "status") return cmd_status(args);
    if (c == "verify") return cmd_verify(args);
    if (c == "delete") return cmd_delete(args);
    if (c == "rollback-plan") return cmd_rollback_plan(args);
    if (c == "recover") return cmd_recover(args);
    if (c == "arm") return cmd_arm(args);
    if (c == "watchdog") return cmd_watchdog(args);
    if (c == "disarm") return cmd_disarm(args);
    if (c == "metrics") return cmd_metrics(args);
    if (!c.empty() && c[0] == '-') {
        // Not a global option, so main() took it for the command. A command's own
        // option given before it (upgrade-recovery --dry-run backup): say where it goes.
        static const char* const kCommands[] = {"backup",  "list", "status", "verify",   "delete", "rollback-plan",
                                                "recover", "arm",  "disarm", "watchdog", "metrics"};
        static const char* const kCommandFlags[] = {"--force",  "--dry-run",  "--resume", "--restart", "--step",
                                                    "--reboot", "--checksum", "--initrd", "--abandon"};
        const bool command_flag = is_valued_flag(c) || std::find(std::begin(kCommandFlags), std::end(kCommandFlags),
                                                                 c) != std::end(kCommandFlags);
        for (const auto& p : args.params)
            if (command_flag && std::find(std::begin(kCommands), std::end(kCommands), p) != std::end(kCommands)) {
                usage_error("upgrade-recovery: %s is an option of a command, not of upgrade-recovery itself: "
                            "give it after the command name (upgrade-recovery %s %s ...; see --help)\n",
                            c.c_str(), p.c_str(), c.c_str());
                return kExitUsage;
            }
        usage_error("upgrade-recovery: unknown option '%s' (see --help)\n", c.c_str());
        return kExitUsage;
    }
    usage_error("upgrade-recovery: unknown command '%s' (see --help)\n", c.c_str());
    return kExitUsage;
}

} // namespace ur::cli
