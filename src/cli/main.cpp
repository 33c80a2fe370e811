// upgrade-recovery: the command line. Thin: parses arguments, calls the core,
// prints text or --json, maps error kinds to exit codes (docs/architecture.md).
#include "cli.hpp"
#include "process_limits.hpp"

#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <unistd.h>

using namespace ur;
using namespace ur::cli;

namespace
{

const char* kUsage = R"(Usage: upgrade-recovery [OPTIONS] COMMAND [ARGS]

Pre-upgrade backup and upgrade recovery for Single Node OpenShift hosts.

Commands:
  backup [--force] [--id ID] [--timeout SECONDS] [--dry-run]
                               take a backup onto the recovery partition
                               (--dry-run: only check the space it needs)
  list                         list backups
  status                       partition, latest backup and recovery state
  verify [ID]                  re-read a backup and compare it with its manifest
  delete [--force] ID          delete one backup (--force: also the only one)
  rollback-plan [--backup ID]  show the ostree rollback the recovery would apply
  recover [--resume|--restart] [--step] [--force] [--reboot] [--dry-run]
          [--checksum] [--backup ID]
                               recover the node to a backup (phase 1, then phase 2)
  recover --initrd             phase 1 in the initramfs when armed (its unit runs it)
  recover --abandon [--force]  give up on the recovery in progress
  arm [ID] [--reboot]          arm the recovery for the next boot
  disarm                       cancel an armed recovery
  watchdog start [ID] [--timeout SECONDS] | stop | monitor | trigger [--reason TEXT]
                               recover by itself when an upgrade does not
                               complete in time (start before the upgrade,
                               stop once it is complete)
  metrics [--output FILE]      the state in the Prometheus text format
                               (FILE: for node_exporter's textfile collector)

Options:
  --root DIR     host root to work on (default /)
  --config FILE  read FILE instead of /etc/upgrade-recovery/config.toml
  --dir DIR      backup directory (overrides partition.mount_point)
  --json         machine-readable output
  -v, --verbose  more messages
  -h, --help     this help
  --version      print the version

Exit codes: 0 ok, 1 failure, 2 usage, 3 bad config, 4 partition not found or
not mounted, 5 no space, 6 recovery in progress, 7 corrupt backup, 8 timeout,
9 busy, 10 cancelled, 11 refused by a safety rule.
)";

} // namespace

int main(int argc, char** argv)
{
    raise_fd_limit();
    Args args;
    std::vector<std::string> rest;
    std::set<std::string> seen;
    for (int i = 1; i < argc; i++) { // before any usage error; not an option's value
        const std::string_view a = argv[i];
        if (a == "--json") set_json_errors(true);
        if (a == "--root" || a == "--config" || a == "--dir" || is_valued_flag(a)) i++;
    }
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](const char* opt) -> std::optional<std::string> {
            // Twice is a script that composed two commands into one: which root was meant?
            if (!seen.insert(opt).second) {
                usage_error("upgrade-recovery: %s given twice\n", opt);
                return std::nullopt;
            }
            if (i + 1 >= argc) {
                usage_error("upgrade-recovery: %s needs a value\n", opt);
                return std::nullopt;
            }
            return std::string(argv[++i]);
        };
        if (a == "--root") {
            auto v = value("--root");
            if (!v) return kExitUsage;
            if (v->empty()) {
                // An unset variable in a script ("--root $ROOT") must not mean the live host.
                usage_error("upgrade-recovery: --root needs a directory ('/' for this host)\n");
                return kExitUsage;
            }
            args.root = *v;
        } else if (a == "--config") {
            auto v = value("--config");
            if (!v) return kExitUsage;
            args.config = *v;
        } else if (a == "--dir") {
            auto v = value("--dir");
            if (!v) return kExitUsage;
            args.dir = *v;
        } else if (a == "--json") {
            args.json = true;
        } else if (a == "-v" || a == "--verbose") {
            args.verbose = true;
        } else if (a == "-h" || a == "--help") {
            fputs(kUsage, stdout);
            return 0;
        } else if (a == "--version") {
            printf("upgrade-recovery %s\n", version());
            return 0;
        } else {
            rest.push_back(a);
            // A subcommand option's value is its own, whatever it looks like.
            if (rest.size() > 1 && is_valued_flag(a) && i + 1 < argc) rest.push_back(argv[++i]);
        }
    }
    if (rest.empty()) {
        fputs(kUsage, stderr);
        // --json promises one object on standard output, also for this failure.
        if (args.json) usage_error("upgrade-recovery: no command given (see --help)\n");
        return kExitUsage;
    }
    args.command = rest.front();
    args.params.assign(rest.begin() + 1, rest.end());
    log::set_verbose(args.verbose);
    return run_command(args);
}
