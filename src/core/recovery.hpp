// Recovery: bring a node whose upgrade failed back to a backup.
//
// Phase 1 (files): verify -> platform rollback -> [live: stop kubelet, remove pods,
// stop crio, (wipe images)] -> restore the trees -> disable kubelet -> enable the
// phase 2 unit -> phase2-pending. Live on "/", or offline against any root (the
// initrd's /sysroot): the same restore, units by .wants editing, nothing stopped.
// Phase 2 (cluster, after the reboot, --resume from upgrade-recovery-phase2.service):
// start crio -> record container ids -> cluster-restore.sh -> enable+start kubelet
// -> wait for 5 containers to be recreated -> force redeployment of etcd,
// kubeapiserver, kubecontrollermanager, kubescheduler, each until all nodes are at
// the latest revision (W9) -> complete.
//
// Every step is journaled before and after it runs (recovery_journal.hpp), so
// --resume continues at the right step after a crash at any point.
#pragma once

#include "cluster_api.hpp"
#include "config.hpp"
#include "container_runtime.hpp"
#include "progress.hpp"
#include "recovery_journal.hpp"
#include "recovery_steps.hpp" // StepDef, recovery_steps(), find_step_def()
#include "restore.hpp"
#include "units.hpp"

#include <optional>
#include <string>
#include <vector>

namespace ur
{

struct RecoveryOptions {
    std::string root = "/";
    std::optional<std::string> backup_id; // default: the armed one, else `latest`
    bool resume = false;                  // continue the recovery in progress (required when one is)
    bool restart = false;                 // discard the journal and start over
    bool step = false;                    // stop after each stage (implies resume when one is in progress)
    bool force = false;                   // go on with a corrupt backup / missing tools / phase 2 in the same boot
    bool reboot = false;                  // reboot by itself when phase 1 (or a platform rollback) needs it
    bool dry_run = false;                 // change nothing: verify, show the rollback plan and the restore's changes
    bool checksum = false;                // restore compares contents, not only size and mtime
    bool initrd = false;                  // run from the initrd: offline, phase 1 only
    std::string boot_id_path = "/proc/sys/kernel/random/boot_id"; // test seam
};

// What the phases talk to; null members get the real implementation from the config
// (units per recovery.systemctl, crictl, oc). Tests and the sandbox pass stand-ins.
struct RecoveryBackends {
    UnitManager* units = nullptr;
    ContainerRuntime* runtime = nullptr;
    ClusterApi* api = nullptr;
};

struct RecoveryOutcome {
    std::string recovery_id;
    std::string backup_id;
    RecoveryState state = RecoveryState::Running;
    std::string stopped_before; // next step when paused
    bool phase1_done = false;   // phase 2 is pending
    bool complete = false;
    bool reboot_required = false; // the caller must reboot before anything else happens
    bool rebooting = false;       // a reboot was queued (--reboot)
    std::string message;          // exactly what happens or what to do next
    // dry run
    std::vector<std::string> planned; // "step: what it would do"
    RestoreStats restore;             // what the restore would change
    // What the run would stop with (the first, in the run's order): the start
    // refused, or the verify step's refusals without --force. Empty: it would go on.
    std::optional<Error> refusal;
};

Result<RecoveryOutcome> run_recovery(const Config& cfg, const RecoveryOptions& opts, Progress& progress,
                                     const CancelToken& cancel);
Result<RecoveryOutcome> run_recovery(const Config& cfg, const RecoveryOptions& opts, RecoveryBackends& backends,
                                     Progress& progress, const CancelToken& cancel);

// How a run starts given the journal (pure; unit-tested).
enum class StartKind { New, Resume, RefuseInProgress, NothingToResume, BackupMismatch };
struct StartDecision {
    StartKind kind;
    std::string message;
};
StartDecision decide_start(const std::optional<RecoveryJournal>& journal, const RecoveryOptions& opts);
// The error a run ends with at once for that decision; empty for New and Resume.
std::optional<Error> start_refusal(const StartDecision& decision);

// The initrd unit's entry point: returns at once (ran == false) unless the
// partition says `armed` or the kernel command line has upgrade_recovery=phase1;
// otherwise runs (or resumes) phase 1 offline against `root`. `armed` stays until
// phase 1 has completed, so a power cut in the middle resumes at the next boot.
struct InitrdOptions {
    std::string root = "/sysroot";
    std::string cmdline_path = "/proc/cmdline";
    std::string boot_id_path = "/proc/sys/kernel/random/boot_id";
    std::string peek_dir = "/run/upgrade-recovery-peek"; // initrd_peek.hpp
};
struct InitrdOutcome {
    bool ran = false;
    std::string reason; // why it did nothing, or what triggered it
    RecoveryOutcome outcome;
};
Result<InitrdOutcome> run_initrd_phase1(const Config& cfg, const InitrdOptions& opts, Progress& progress,
                                        const CancelToken& cancel);

// What a recovery given up with `recover --abandon` (which never touches the host)
// leaves there, read from its journal's steps: what phase 1 changed that phase 2 had
// not put back or done yet (kubelet disabled, etcd not restored, the control plane not
// redeployed, the phase 2 unit enabled), and the commands phase 2 would have run, in
// its order, for people to finish by hand. Both empty when nothing is left.
struct LeftBehind {
    std::vector<std::string> left;     // one sentence each
    std::vector<std::string> commands; // sh command lines
};
LeftBehind recovery_left_behind(const Config& cfg, const std::string& root, const Store& store,
                                const RecoveryJournal& j);
// The same for what abandon_recovery returned, as `recover --abandon` and the D-Bus
// AbandonRecovery report it: from the journal given up; a damaged journal (moved
// aside) cannot say, so only what to check. Empty when nothing was abandoned.
LeftBehind abandoned_left_behind(const Config& cfg, const std::string& root, const Store& store, const Abandoned& a);

// The initrd unit when the real root's configuration cannot be read: an
// ordinary boot goes on (a warning, ran == false), since a broken file must not
// keep a healthy node from booting; with upgrade_recovery=phase1 it is the error.
Result<InitrdOutcome> initrd_without_config(const Error& config_error, const InitrdOptions& opts);

} // namespace ur
