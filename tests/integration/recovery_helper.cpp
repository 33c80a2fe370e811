// A fresh process per recovery run for the crash tests: UR_FAILPOINT is read
// once per process, and a failpoint kills the whole process with SIGKILL.
//
//   recovery-helper --config FILE --root DIR [--resume] [--restart] [--force]
//                   [--step] [--dry-run] [--backup ID] [--boot-id FILE] [--systemctl STAND-IN]
//   recovery-helper --config FILE --root DIR --initrd --cmdline FILE [--boot-id FILE]
//   recovery-helper --config FILE --root DIR --backup-now ID
//   recovery-helper --config FILE --root DIR --abandon
//
// Prints one JSON line with the outcome; exit 0 on success, 1 + the error kind's
// name on stderr otherwise.
#include "backup.hpp"
#include "config.hpp"
#include "log.hpp"
#include "recovery.hpp"
#include "recovery_journal.hpp"
#include "store.hpp"

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

using namespace ur;

int main(int argc, char** argv)
{
    std::string config, root, cmdline, boot_id = "/proc/sys/kernel/random/boot_id", backup_now, systemctl;
    RecoveryOptions o;
    bool initrd = false, abandon = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", a.c_str());
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--config")
            config = next();
        else if (a == "--root")
            root = next();
        else if (a == "--resume")
            o.resume = true;
        else if (a == "--restart")
            o.restart = true;
        else if (a == "--force")
            o.force = true;
        else if (a == "--step")
            o.step = true;
        else if (a == "--dry-run")
            o.dry_run = true;
        else if (a == "--reboot")
            o.reboot = true;
        else if (a == "--backup")
            o.backup_id = next();
        else if (a == "--initrd")
            initrd = true;
        else if (a == "--cmdline")
            cmdline = next();
        else if (a == "--boot-id")
            boot_id = next();
        else if (a == "--backup-now")
            backup_now = next();
        else if (a == "--systemctl")
            systemctl = next();
        else if (a == "--abandon")
            abandon = true;
        else {
            fprintf(stderr, "unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    auto cfg = load_config(ConfigSource{root, config});
    if (!cfg) {
        fprintf(stderr, "config: %s\n", cfg.error().message.c_str());
        return 2;
    }
    log::set_verbose(false);
    // Warnings on stderr, as the CLI prints them, so tests can see them.
    struct WarningsToStderr final : Progress {
        void warning(const std::string& msg) override { fprintf(stderr, "warning: %s\n", msg.c_str()); }
    } progress;
    CancelToken cancel;
    auto report = [](const Error& e) {
        fprintf(stderr, "ERROR %s: %s\n", std::string(error_kind_name(e.kind)).c_str(), e.message.c_str());
        return 1;
    };
    if (!backup_now.empty()) {
        BackupOptions bo;
        bo.root = root;
        bo.id = backup_now;
        auto r = run_backup(*cfg, bo, progress, cancel);
        if (!r) return report(r.error());
        printf("%s\n", nlohmann::json({{"backup", r->meta.id}}).dump().c_str());
        return 0;
    }
    if (abandon) {
        auto store = open_store(*cfg, root, true);
        if (!store) return report(store.error());
        auto r = abandon_recovery(*store, "test");
        if (!r) return report(r.error());
        printf("%s\n", nlohmann::json({{"abandoned", r->abandoned}}).dump().c_str());
        return 0;
    }
    if (initrd) {
        InitrdOptions io;
        io.root = root;
        io.cmdline_path = cmdline;
        io.boot_id_path = boot_id;
        auto r = run_initrd_phase1(*cfg, io, progress, cancel);
        if (!r) return report(r.error());
        printf("%s\n", nlohmann::json({{"ran", r->ran},
                                       {"reason", r->reason},
                                       {"phase1_done", r->outcome.phase1_done},
                                       {"reboot_required", r->outcome.reboot_required},
                                       {"message", r->outcome.message}})
                           .dump()
                           .c_str());
        return 0;
    }
    o.root = root;
    o.boot_id_path = boot_id;
    // --systemctl: a systemctl-compatible stand-in plays the services (live mode on a test root).
    RecoveryBackends be;
    std::unique_ptr<UnitManager> units;
    if (!systemctl.empty()) {
        units = make_command_units(systemctl);
        be.units = units.get();
    }
    auto r = run_recovery(*cfg, o, be, progress, cancel);
    if (!r) return report(r.error());
    printf("%s\n", nlohmann::json({{"recovery_id", r->recovery_id},
                                   {"backup_id", r->backup_id},
                                   {"state", std::string(recovery_state_name(r->state))},
                                   {"phase1_done", r->phase1_done},
                                   {"complete", r->complete},
                                   {"stopped_before", r->stopped_before},
                                   {"rebooting", r->rebooting},
                                   {"planned", r->planned},
                                   {"changes", r->restore.changes.size()},
                                   {"message", r->message}})
                       .dump()
                       .c_str());
    return 0;
}
