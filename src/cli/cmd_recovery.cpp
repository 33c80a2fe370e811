// rollback-plan, recover, arm, disarm.
#include "cli.hpp"
#include "initrd_mark.hpp"
#include "ostree_state.hpp"
#include "process.hpp"
#include "recovery.hpp"
#include "recovery_journal.hpp"
#include "rollback_plan.hpp"
#include "store.hpp"
#include "units.hpp"

#include <sys/reboot.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

namespace ur::cli
{

namespace
{

// Reboots from the initrd unit; returns reboot(2)'s errno only when that failed.
// Not a queued reboot (`systemctl --no-block reboot`): initrd-cleanup.service would
// start behind this unit and fail its isolate of initrd-switch-root.target against
// the irreversible reboot job, a "[FAILED]" on the console of a planned recovery.
// Nothing of the real system runs yet and the recovery's state is on disk, so no
// unit needs an orderly stop: the manager reboots at once (still killing processes
// and unmounting), and this process waits to be killed, so no unit ordered after
// it, the switch root above all, starts meanwhile.
int reboot_from_initrd()
{
    Command rb;
    rb.argv = {"systemctl", "--force", "reboot"};
    rb.timeout = std::chrono::seconds(30);
    auto res = run_command(rb);
    if (res && res->exit_code == 0)
        for (int i = 0; i < 120; i++)
            ::sleep(1); // killed by the shutdown long before
    ::sync();
    ::reboot(RB_AUTOBOOT); // returns only when it failed
    return errno;
}

// `recover --initrd` works on the real root, /sysroot unless --root names another,
// and reads that root's configuration: a retry from the emergency shell typed
// without --root must not fall back to the initramfs's own /etc.
Args with_initrd_root(const Args& args)
{
    Args a = args;
    if (a.root == "/") a.root = "/sysroot";
    return a;
}

InitrdOptions initrd_options(const Args& args)
{
    InitrdOptions io;
    io.root = args.root;
    return io;
}

} // namespace

int cmd_rollback_plan(const Args& args)
{
    auto f = parse_flags(args.params, {}, {"--backup"}, 1);
    if (!f || backup_id_given_alone(*f, "rollback-plan") ||
        invalid_backup_id(f->value("--backup"), "rollback-plan", "leave --backup out for the latest backup"))
        return kExitUsage;
    auto session = open_session(args, StoreAccess::Read, false);
    if (!session) return report_error(args, session.error());
    Config* cfg = &(*session)->cfg;
    Store* store = &(*session)->store;
    auto id = backup_or_latest(*store, f->value("--backup"));
    if (!id) return report_error(args, id.error());
    auto meta = read_metadata(*store, *id);
    if (!meta) return report_error(args, meta.error());
    auto plan = compute_rollback_plan(*cfg, args.root, meta->ostree);
    if (!plan) return report_error(args, plan.error());
    if (args.json) {
        auto j = nlohmann::json::parse(rollback_plan_json(*plan));
        j["backup_id"] = *id;
        print_json(j);
    } else {
        if (meta->ostree.present)
            printf("Backup %s recorded %s %s.%d.\n", printable(*id).c_str(), printable(meta->ostree.osname).c_str(),
                   printable(meta->ostree.checksum).c_str(), meta->ostree.serial);
        else
            printf("Backup %s recorded no ostree deployment (taken on a host without ostree, or with "
                   "ostree.mode = off); a recovery skips the platform rollback.\n",
                   printable(*id).c_str());
        fputs(printable_lines(rollback_plan_text(*plan)).c_str(), stdout); // deployment ids, notes
    }
    return plan->action == RollbackAction::Refuse ? kExitRefused : 0;
}

int cmd_recover(const Args& given)
{
    auto f = parse_flags(
        given.params,
        {"--resume", "--restart", "--step", "--force", "--reboot", "--dry-run", "--checksum", "--initrd", "--abandon"},
        {"--backup"}, 1);
    // --abandon and --initrd take no backup at all: no hint towards --backup there.
    if (!f || backup_id_given_alone(*f, f->has("--abandon") || f->has("--initrd") ? nullptr : "recover"))
        return kExitUsage;
    if (invalid_backup_id(f->value("--backup"), "recover", "leave --backup out for the armed, else the latest backup"))
        return kExitUsage;
    const Args args = f->has("--initrd") ? with_initrd_root(given) : given;
    if (f->has("--resume") && f->has("--restart")) {
        usage_error("upgrade-recovery recover: --resume and --restart exclude each other\n");
        return kExitUsage;
    }
    // --abandon and --initrd are whole modes: a --dry-run next to them must not be ignored.
    // (--abandon --force: also a damaged journal, moved aside.)
    if (f->has("--abandon") && (f->set.size() > (f->has("--force") ? 2u : 1u) || !f->values.empty())) {
        usage_error("upgrade-recovery recover: --abandon takes no other option than --force\n");
        return kExitUsage;
    }
    if (f->has("--initrd") && (f->set.size() > 1 || !f->values.empty())) {
        usage_error("upgrade-recovery recover: --initrd takes no other option\n");
        return kExitUsage;
    }
    // Every boot, armed or not, before anything can fail: the booted host can then
    // tell that its initramfs has the module (initrd_mark.hpp).
    if (f->has("--initrd") && in_initramfs()) mark_initrd_ran(kInitrdRunDir, version());
    auto cfg = load(args);
    if (!cfg && f->has("--initrd")) {
        // A broken file must not keep a healthy node from booting (unless the kernel argument asks for a recovery).
        log::set_journal(true);
        auto r = initrd_without_config(cfg.error(), initrd_options(args));
        if (!r) return report_error(args, r.error());
        if (args.json) print_json(nlohmann::json({{"ran", false}, {"reason", r->reason}}));
        return 0;
    }
    if (!cfg) return report_error(args, cfg.error());
    CancelToken cancel;
    std::optional<SignalCancel> on_signal(std::in_place, cancel);
    TerminalProgress progress(args.json);

    if (f->has("--abandon")) {
        // The administrator gives up on a recovery (e.g. fixed the node by hand): the
        // journal keeps the result "failed", markers are removed, backups are allowed again.
        auto session = open_session(args, StoreAccess::Inspect, true);
        if (!session) return report_error(args, session.error());
        auto r = abandon_recovery((*session)->store, "abandoned by the administrator (recover --abandon)",
                                  f->has("--force"));
        if (!r) return report_error(args, r.error());
        // Abandon leaves the host alone, so what phase 1 changed and phase 2 did not put
        // back stays (kubelet disabled: no kubelet after the next reboot). Say so, and how
        // to finish by hand, while the journal's steps are at hand.
        const LeftBehind left = abandoned_left_behind(*cfg, args.root, (*session)->store, *r);
        if (args.json) {
            nlohmann::json j = {
                {"abandoned", r->abandoned}, {"left_behind", left.left}, {"finish_by_hand", left.commands}};
            if (!r->damaged_kept.empty()) j["damaged_journal"] = r->damaged_kept;
            print_json(j);
        } else {
            if (!r->damaged_kept.empty()) {
                printf("Recovery abandoned; the damaged journal was moved aside to recovery/%s (kept, never read "
                       "again). Backups are allowed again.\n",
                       r->damaged_kept.c_str());
            } else if (r->abandoned && r->journal) {
                printf("Recovery abandoned; the journal keeps its steps. Backups are allowed again.\n");
            } else if (r->abandoned) {
                // Only markers (an armed recovery that has not started): no journal was touched.
                printf("Recovery abandoned: no recovery was running, only its marker was removed. Backups are "
                       "allowed again.\n");
            } else {
                printf("Nothing to abandon: no recovery is in progress or armed.\n");
            }
            if (!left.left.empty()) {
                printf("WARNING: the host was left as the recovery had made it:\n");
                for (const auto& l : left.left)
                    printf("  - %s\n", printable(l).c_str());
            }
            if (!left.commands.empty()) {
                printf("To finish phase 2 by hand, run in this order (see \"Finishing phase 2 by hand\" in "
                       "upgrade-recovery(8)):\n");
                for (const auto& c : left.commands)
                    printf("  %s\n", printable(c).c_str());
            } else if (!left.left.empty()) {
                printf("See \"Finishing phase 2 by hand\" in upgrade-recovery(8).\n");
            }
        }
        return 0;
    }

    if (f->has("--initrd")) {
        // The initrd unit: log to the journal too (the console may be all there is).
        log::set_journal(true);
        const InitrdOptions io = initrd_options(args);
        auto r = run_initrd_phase1(*cfg, io, progress, cancel);
        progress.clear();
        if (!r) return report_error(args, r.error());
        if (r->ran && r->outcome.reboot_required && !r->outcome.phase1_done) {
            // The platform rollback made another deployment the default and phase 1 paused
            // before the files (they belong in that deployment; `armed` stays, so its
            // initramfs resumes). This boot must not go on into the failed deployment.
            fprintf(stderr, "upgrade-recovery: phase 1 changed the default deployment; rebooting into it\n");
            // The shutdown's SIGTERM must end the wait for it, not be taken for a cancel.
            on_signal.reset();
            const int err = reboot_from_initrd();
            // Going on would boot the failed deployment: fail the unit (emergency.target).
            return report_error(args, sys_error(err, "reboot into the rolled-back deployment"));
        }
        if (args.json)
            print_json(nlohmann::json({{"ran", r->ran},
                                       {"reason", r->reason},
                                       {"phase1_done", r->outcome.phase1_done},
                                       {"message", r->outcome.message}}));
        else if (r->ran)
            printf("upgrade-recovery: phase 1 %s on %s: %s\n", r->outcome.phase1_done ? "finished" : "paused",
                   printable(io.root).c_str(), printable_lines(r->outcome.message).c_str());
        else if (args.verbose || isatty(STDOUT_FILENO)) // quiet on every boot, not when typed in a shell
            printf("upgrade-recovery: nothing armed (%s)\n", printable(r->reason).c_str());
        return 0;
    }

    RecoveryOptions o;
    o.root = args.root;
    o.backup_id = f->value("--backup");
    o.resume = f->has("--resume");
    o.restart = f->has("--restart");
    o.step = f->has("--step");
    o.force = f->has("--force");
    o.reboot = f->has("--reboot");
    o.dry_run = f->has("--dry-run");
    o.checksum = f->has("--checksum");
    log::set_journal(true);
    auto r = run_recovery(*cfg, o, progress, cancel);
    progress.clear();
    if (!r) return report_error(args, r.error());
    // The phase 2 unit is Type=notify: a run that ends well before the step that
    // signals readiness (a resume with nothing left) must not fail the unit.
    // Repeating READY=1 is harmless; outside systemd it does nothing.
    sd_notify(0, "READY=1");
    if (args.json) {
        nlohmann::json j = {{"recovery_id", r->recovery_id},
                            {"backup_id", r->backup_id},
                            {"state", std::string(recovery_state_name(r->state))},
                            {"phase1_done", r->phase1_done},
                            {"complete", r->complete},
                            {"reboot_required", r->reboot_required},
                            {"rebooting", r->rebooting},
                            {"message", r->message},
                            {"planned", r->planned}};
        if (o.dry_run) {
            nlohmann::json changes = nlohmann::json::array();
            for (const auto& c : r->restore.changes)
                changes.push_back({{"action", c.action}, {"path", c.path}});
            j["changes"] = changes;
            j["refused"] = r->refusal ? nlohmann::json{{"error", std::string(error_kind_name(r->refusal->kind))},
                                                       {"message", r->refusal->message}}
                                      : nlohmann::json(nullptr);
        }
        print_json(j);
    } else {
        for (const auto& p : r->planned)
            printf("%s\n", printable(p).c_str());
        if (o.dry_run)
            for (const auto& c : r->restore.changes)
                printf("would %s %s\n", c.action.c_str(), printable(c.path).c_str());
        printf("%s\n", printable_lines(r->message).c_str());
    }
    if (!r->refusal) return 0;
    // As backup --dry-run: the plan on stdout, the error a run now would end with on
    // stderr, and its exit status, so a script can tell before it recovers.
    fprintf(stderr, "upgrade-recovery recover: dry run: a recovery now would stop: %s\n",
            printable(r->refusal->message).c_str());
    return exit_code(r->refusal->kind);
}

int cmd_arm(const Args& args)
{
    auto f = parse_flags(args.params, {"--reboot"}, {}, 1);
    if (!f) return kExitUsage;
    const auto given = f->positional.empty() ? std::nullopt : std::optional(f->positional[0]);
    if (invalid_backup_id(given, "arm", "leave it out for the latest backup")) return kExitUsage;
    auto session = open_session(args, StoreAccess::Write, true);
    if (!session) return report_error(args, session.error());
    Config* cfg = &(*session)->cfg;
    Store* store = &(*session)->store;
    auto id = backup_or_latest(*store, given);
    if (!id) return report_error(args, id.error());
    auto r = arm_recovery(*store, *id);
    if (!r) return report_error(args, r.error());
    // arm_recovery logs the kRecoveryArmed event itself.
    warn_without_initrd_module(args);
    warn_unit_enablement(args, false);

    if (f->has("--reboot")) {
        auto rebooted = [&]() -> Result<> {
            auto units = make_unit_manager(*cfg, args.root);
            if (!units) return std::unexpected(units.error());
            CancelToken cancel;
            return (*units)->reboot(cancel);
        }();
        if (!rebooted) {
            // Armed all the same: one document (the error's, saying so), not the success
            // one followed by the error, and the text says how to go on.
            if (!args.json)
                printf("Recovery armed with backup %s, but the reboot failed: reboot ('systemctl reboot') to run "
                       "phase 1, or 'upgrade-recovery disarm' to cancel.\n",
                       printable(*id).c_str());
            return report_error(args, rebooted.error(), {{"armed", *id}});
        }
        if (args.json)
            print_json(nlohmann::json({{"armed", *id}, {"reboot", true}}));
        else
            printf("Recovery armed with backup %s; rebooting.\n", printable(*id).c_str());
        return 0;
    }
    if (args.json)
        print_json(nlohmann::json({{"armed", *id}, {"reboot", false}}));
    else
        printf("Recovery armed with backup %s. Reboot ('systemctl reboot') to run phase 1 from the initramfs;\n"
               "phase 2 then runs by itself (upgrade-recovery-phase2.service). 'upgrade-recovery disarm' cancels.\n",
               printable(*id).c_str());
    return 0;
}

int cmd_disarm(const Args& args)
{
    if (!parse_flags(args.params, {}, {}, 0)) return kExitUsage;
    auto session = open_session(args, StoreAccess::Inspect, true);
    if (!session) return report_error(args, session.error());
    Store* store = &(*session)->store;
    log::set_journal(true);
    auto r = disarm_recovery(*store);
    if (!r) return report_error(args, r.error());
    if (args.json) {
        nlohmann::json j = {{"disarmed", r->backup_id ? nlohmann::json(*r->backup_id) : nlohmann::json(nullptr)}};
        if (!r->damaged.empty()) j["damaged_marker"] = r->damaged;
        print_json(j);
    } else if (r->backup_id) {
        printf("Recovery disarmed (it was armed with backup %s).\n", printable(*r->backup_id).c_str());
    } else if (!r->damaged.empty()) {
        printf("Removed a damaged armed marker: %s\n", printable(r->damaged).c_str()); // what it held
    } else {
        printf("Nothing was armed.\n");
    }
    return 0;
}

} // namespace ur::cli
