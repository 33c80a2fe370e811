#include "recovery.hpp"

#include "control_plane_images.hpp"
#include "earlier_tooling.hpp"
#include "failpoint.hpp"
#include "fd.hpp"
#include "host_info.hpp"
#include "image_backup.hpp"
#include "initrd_peek.hpp"
#include "initrd_var.hpp"
#include "log.hpp"
#include "machineconfig.hpp"
#include "metadata.hpp"
#include "ostree_state.hpp"
#include "process.hpp"
#include "recovery_karg.hpp"
#include "store.hpp"
#include "text.hpp"
#include "upgrade_watchdog.hpp"
#include "verify.hpp"
#include "walk.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace ur
{

namespace
{
// Running, by this process in this boot: what recovery_interrupted() checks.
void mark_running(RecoveryJournal& j)
{
    j.state = RecoveryState::Running;
    j.runner_pid = ::getpid();
    j.runner_boot_id = read_boot_id();
}
} // namespace

namespace
{

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kPhase2Unit = "upgrade-recovery-phase2.service";
constexpr const char* kKubeletUnit = "kubelet.service";
constexpr const char* kCrioUnit = "crio.service";

// ---------------------------------------------------------------------------

// A step's own deadline on top of the caller's token, whose cancel and deadline
// it shares at once (a child token), so commands run under it stop with it.
class StepToken
{
  public:
    StepToken(const CancelToken& parent, std::chrono::seconds timeout) : tok_(&parent)
    {
        if (timeout.count() > 0) tok_.set_timeout(timeout);
    }
    StepToken(const StepToken&) = delete;
    StepToken& operator=(const StepToken&) = delete;

    const CancelToken& token() const { return tok_; }
    bool expired() const { return tok_.has_deadline() && Clock::now() >= tok_.deadline(); }
    bool cancelled() const { return tok_.cancelled(); }
    // Sleep up to `d`, never past the deadline; Cancelled ends it with an error.
    Result<> nap(std::chrono::milliseconds d) const
    {
        auto end = Clock::now() + d;
        if (tok_.has_deadline()) end = std::min(end, tok_.deadline());
        while (Clock::now() < end) {
            if (cancelled()) return fail(ErrorKind::Cancelled, "cancelled");
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
            std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, 100ms));
        }
        if (cancelled()) return fail(ErrorKind::Cancelled, "cancelled");
        return {};
    }

  private:
    CancelToken tok_;
};

// What a wait reports at its deadline: the last real observation, not the call
// our own deadline killed.
void note_failure(std::string& last, const Error& e, const StepToken& t)
{
    if (e.kind == ErrorKind::Timeout && t.expired() && !last.empty()) return;
    last = e.message;
}

// An aborted recovery leaves no marker behind: nothing retries it at the next
// boot and backups are possible again. Failures are logged, the caller's error wins.
void clear_markers(const JournalDir& dir)
{
    if (auto r = dir.clear_armed(); !r) log::error("journal: " + r.error().message);
    if (auto r = dir.clear_phase2_pending(); !r) log::error("journal: " + r.error().message);
}

std::chrono::milliseconds poll_interval(const Config& cfg)
{
    // 0 (tests) still polls, at a rate that does not spin.
    return cfg.poll_interval ? std::chrono::milliseconds(cfg.poll_interval * 1000ull) : 100ms;
}

std::string make_recovery_id()
{
    return make_backup_id(std::time(nullptr), {});
}

std::string short_id(const std::string& id)
{
    return id.size() > 13 ? id.substr(0, 13) : id;
}

struct StepResult {
    bool skipped = false;
    std::string note;
};

struct Ctx {
    const Config& cfg;
    const RecoveryOptions& opts;
    Progress& progress;
    const CancelToken& cancel;
    const Store& store;
    const JournalDir& dir;
    RecoveryJournal& j;
    BackupMetadata meta;
    std::string backup_dir;
    UnitManager& units;
    ContainerRuntime& runtime;
    ClusterApi& api;
    bool live = false;

    Result<> save() { return dir.save(j); }
};

// Failures the API or runtime may show while the cluster comes back: retried
// until the step's deadline; only a cancel ends the wait at once.
bool fatal_now(const Error& e)
{
    return e.kind == ErrorKind::Cancelled;
}

// Features 15 and 27: show what the cluster looks like, first and last, as A1's
// display_current_status did; also kept in the recovery directory, where it
// outlives the console. Live only: from the initramfs or against another root
// there is no API to ask. Never fails the recovery.
void record_cluster_status(Ctx& c, const char* file, const char* when)
{
    if (!c.live) return;
    auto rep = c.api.status_report(c.cancel);
    log::info("cluster status " + std::string(when) + ":\n" + rep.text);
    if (!rep.error.empty())
        c.progress.warning("cluster status " + std::string(when) + " incomplete (best effort): " + rep.error);
    if (auto w = write_file_atomic_at(c.dir.fd(), file, rep.text, 0640); !w)
        c.progress.warning("cannot keep the cluster status " + std::string(when) + ": " + w.error().message);
}

// ---------------------------------------------------------------------------
// Phase 1

// Where backup `meta` keeps the host file `path`, relative to the generation:
// "<tree name>/<rest>" of the innermost tree holding it by name (restore writes
// each tree back to its path; `extras`, the MachineConfig files, is the tree "/").
// Empty: no tree holds it, so no restore brings it back.
std::string backup_rel_path(const BackupMetadata& meta, const std::string& path)
{
    const std::string p = lexical_path(path);
    const TreeRecord* best = nullptr;
    std::string best_path;
    for (const auto& t : meta.trees) {
        const std::string tp = lexical_path(t.path);
        if (p != tp && path_within(p, tp) && (!best || tp.size() > best_path.size())) {
            best = &t;
            best_path = tp;
        }
    }
    if (!best) return {};
    return best->name + "/" + p.substr(best_path == "/" ? 1 : best_path.size() + 1);
}

// W18 for a restore script other than the default: why the backup cannot give
// phase 2 the executable file at `script` (empty: it can). Resolved beneath the
// generation without symlinks: one leading out must not pass for it.
std::string restore_script_problem(const Store& store, const BackupMetadata& meta, const std::string& script)
{
    const std::string what = "etcd.restore_script " + script;
    const std::string outside = what + " (in none of the backup's trees, nor among its MachineConfig files)";
    const std::string rel = backup_rel_path(meta, script);
    if (rel.empty()) return outside;
    auto fd = open_beneath(store.backups_fd.get(), meta.id + "/" + rel, O_PATH | O_NOFOLLOW);
    if (!fd && (fd.error().err == ENOENT || fd.error().err == ENOTDIR))
        return rel.starts_with(std::string(kExtrasTree) + "/") ? outside : what + " (" + rel + ": not in the backup)";
    if (!fd && fd.error().err == ELOOP) return what + " (" + rel + ": a symbolic link in the backup)";
    struct stat st {
    };
    if (!fd || ::fstat(fd->get(), &st) < 0)
        return what + " (" + rel + ": " + (fd ? std::string(strerror(errno)) : fd.error().message) + ")";
    if (!S_ISREG(st.st_mode)) return what + " (" + rel + ": not a regular file)";
    if ((st.st_mode & 0111) == 0) return what + " (" + rel + ": not executable)";
    return {};
}

// W18: phase 2 runs the restored etcd.restore_script on the backup's cluster/ files;
// what of that the backup lacks (empty when it has no etcd snapshot).
std::vector<std::string> phase2_files_missing(const Config& cfg, const Store& store, const BackupMetadata& meta)
{
    std::vector<std::string> missing;
    if (!meta.cluster.present) return missing;
    // The default script: what the backup recorded when it was taken, as ever (older
    // backups too). Another one: looked up in the backup, where restore takes it from.
    if (lexical_path(cfg.cluster_restore_script) == Config{}.cluster_restore_script) {
        if (!meta.openshift.has_cluster_restore) missing.push_back("usr/local/bin/cluster-restore.sh");
    } else if (auto why = restore_script_problem(store, meta, cfg.cluster_restore_script); !why.empty()) {
        missing.push_back(why);
    }
    if (!meta.openshift.has_etcd_scripts) missing.push_back("the etcd-scripts directory");
    for (const auto& f : {meta.cluster.snapshot, meta.cluster.static_resources}) {
        std::string rel = meta.id + "/" + kClusterDir + "/" + f;
        struct stat st {
        };
        if (f.empty() || ::fstatat(store.backups_fd.get(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            missing.push_back(std::string(kClusterDir) + "/" + (f.empty() ? "(unnamed file)" : f));
    }
    return missing;
}

// The images the backup's static pod manifests name (in its /etc tree); NotFound
// when the backup has no /etc.
Result<std::vector<std::string>> backup_control_plane_images(const Store& store, const BackupMetadata& meta)
{
    auto etc =
        std::find_if(meta.trees.begin(), meta.trees.end(), [](const TreeRecord& tr) { return tr.path == "/etc"; });
    if (etc == meta.trees.end()) return fail(ErrorKind::NotFound, "/etc is not in the backup");
    return control_plane_images(store.backups_fd.get(), meta.id + "/" + etc->name + "/kubernetes/manifests");
}

struct ImagesCheck {
    std::string note;                 // what was found, for the step and the dry run
    std::string warning;              // shown; does not stop the recovery
    std::vector<std::string> missing; // not in the storage (when pulling: could not be pulled)
    std::vector<std::string> pulled;
    std::vector<std::string> restored; // copied from the backup's image layout
    std::string pull_error;            // the first failed pull's
    size_t needed = 0;
};

// W11: after the etcd restore, phase 2 runs the backup's control plane, and since
// CEO 4.14 cluster-restore.sh pulls the etcd image with podman. An image gone from
// the container storage (image garbage collection after the upgrade, or an upgrade
// that failed pulling) must come from a registry a disconnected SNO may not reach:
// "present or pullable" is what counts, found out before anything is stopped.
// `runtime` null: not checked, for `unchecked` (offline, CRI-O down). `pull`: pull
// each missing image once (the live verify step); without it only list (dry run).
Result<ImagesCheck> check_control_plane_images(const Config& cfg, const Store& store, const BackupMetadata& meta,
                                               ContainerRuntime* runtime, const std::string& unchecked, bool pull,
                                               const std::string& root, const CancelToken& cancel)
{
    ImagesCheck r;
    if (!meta.cluster.present) return r;
    auto needed = backup_control_plane_images(store, meta);
    if (!needed && needed.error().kind == ErrorKind::NotFound) {
        r.note = "control-plane images not checked: " + needed.error().message;
        return r;
    }
    if (!needed) {
        r.warning = "cannot tell which images the backup's control plane needs (" + needed.error().message +
                    "): not checked whether they are still in the container storage";
        r.note = "control-plane images not checked";
        return r;
    }
    r.needed = needed->size();
    const std::string n = std::to_string(r.needed);
    if (needed->empty()) {
        r.note = "no control-plane images named in the backup's manifests";
        return r;
    }
    if (cfg.wipe_images) {
        const size_t held = static_cast<size_t>(std::count_if(
            needed->begin(), needed->end(), [&](const std::string& i) { return meta.images.find(i) != nullptr; }));
        if (held < needed->size())
            r.warning = "recovery.wipe_images = true removes the " + n +
                        " images the backup's control plane needs: phase 2 pulls " +
                        (held ? std::to_string(needed->size() - held) + " of them" : std::string("them")) +
                        " again from their registries";
        r.note = "control-plane images: " + n + " to be " +
                 (held ? "copied back from the backup (" + std::to_string(held) + ") or pulled" : "pulled") +
                 " again in phase 2 (recovery.wipe_images)";
        return r;
    }
    if (!runtime) {
        r.note = "control-plane images: " + n + " not checked (" + unchecked + "; phase 2 pulls what is missing)";
        return r;
    }
    auto have = runtime->list_images(std::chrono::seconds(cfg.stop_timeout), cancel);
    if (!have) {
        if (have.error().kind == ErrorKind::Cancelled) return std::unexpected(have.error());
        r.warning = "cannot list the container images (" + have.error().message + "): not checked whether the " + n +
                    " images the backup's control plane needs are present (phase 2 pulls what is missing)";
        r.note = "control-plane images: " + n + " not checked";
        return r;
    }
    // The pulls together within recovery.pull_timeout: an administrator waits on them.
    const auto pull_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.pull_timeout);
    auto missing = missing_images(*needed, *have);
    // What the backup holds is copied back first: no registry needed (images.backup).
    if (pull && !missing.empty()) {
        const std::string backup_dir = store.path() + "/" + kBackupsDir + "/" + meta.id;
        bool copied = false;
        for (const auto& m : missing) {
            const HeldImage* h = meta.images.find(m);
            const auto left = std::chrono::ceil<std::chrono::seconds>(pull_deadline - std::chrono::steady_clock::now());
            if (!h || left.count() <= 0) continue;
            log::info("verify: copying " + m + " from backup " + meta.id + " into the container storage");
            auto c = restore_image(cfg, root, backup_dir, *h, std::min(left, std::chrono::seconds(cfg.images_timeout)),
                                   cancel);
            if (!c && c.error().kind == ErrorKind::Cancelled) return std::unexpected(c.error());
            if (!c)
                log::warning("verify: " + c.error().message + "; pulling it instead");
            else
                copied = true;
        }
        if (copied) {
            // Found by the runtime, as kubelet will look for it, or pulled below.
            auto again = runtime->list_images(std::chrono::seconds(cfg.stop_timeout), cancel);
            if (!again && again.error().kind == ErrorKind::Cancelled) return std::unexpected(again.error());
            if (again) {
                auto still = missing_images(missing, *again);
                for (const auto& m : missing)
                    if (std::find(still.begin(), still.end(), m) == still.end()) r.restored.push_back(m);
                missing = std::move(still);
            }
        }
    }
    for (const auto& m : missing) {
        const auto left = std::chrono::ceil<std::chrono::seconds>(pull_deadline - std::chrono::steady_clock::now());
        if (!pull || left.count() <= 0) {
            r.missing.push_back(m);
            if (pull && r.pull_error.empty())
                r.pull_error = "recovery.pull_timeout (" + std::to_string(cfg.pull_timeout) + "s) was used up";
            continue;
        }
        log::info("verify: pulling " + m + ", which the backup's control plane needs");
        auto p = runtime->pull_image(m, left, cancel);
        if (p) {
            r.pulled.push_back(m);
            continue;
        }
        if (p.error().kind == ErrorKind::Cancelled) return std::unexpected(p.error());
        r.missing.push_back(m);
        if (r.pull_error.empty()) r.pull_error = p.error().message;
    }
    const std::string k = std::to_string(r.missing.size());
    size_t held = 0;
    for (const auto& m : r.missing)
        held += meta.images.find(m) != nullptr;
    const std::string from_backup =
        !pull && held ? " (the verify step copies " + std::to_string(held) + " from the backup, pulls the rest)"
                      : " (the verify step pulls them)";
    if (!r.missing.empty())
        r.note = "control-plane images: " + k + " of " + n + (pull ? " cannot be pulled: " : " missing: ") +
                 join(r.missing, ", ") + (pull ? "" : from_backup);
    else if (!r.pulled.empty() || !r.restored.empty())
        r.note =
            "control-plane images: " +
            (r.restored.empty() ? std::string()
                                : "copied " + std::to_string(r.restored.size()) + " of " + n +
                                      " from the backup: " + join(r.restored, ", ") + (r.pulled.empty() ? "" : "; ")) +
            (r.pulled.empty() ? std::string()
                              : "pulled " + std::to_string(r.pulled.size()) + " of " + n + ": " + join(r.pulled, ", "));
    else
        r.note = "control-plane images: all " + n + " present";
    return r;
}

Result<StepResult> step_verify(Ctx& c, JournalStep&, const StepToken& t)
{
    StepResult r;
    // First, before anything is stopped: verify is a recovery's first step (on
    // --resume it runs again only if it failed, and then nothing was touched yet).
    record_cluster_status(c, kClusterStatusBefore, "before the recovery");
    // Before the long read: another installation's backup is refused whatever its state.
    std::string forced_other;
    if (auto other = other_installation_problem(c.meta, c.opts.root); !other.empty()) {
        if (!c.opts.force)
            return fail(ErrorKind::Refused,
                        other + "; a recovery restores a backup of this installation only (on the running host, "
                                "'upgrade-recovery recover --force' restores it anyway)");
        c.progress.warning(other + " (--force)");
        forced_other = "; another installation's, forced";
    }
    auto rep = verify_backup(c.store, c.j.backup_id, c.progress, t.token());
    if (!rep) return std::unexpected(std::move(rep.error()).context("verify backup " + c.j.backup_id));
    if (!rep->ok()) {
        std::string what = std::to_string(rep->mismatches.size()) + " of " + std::to_string(rep->checked) +
                           " entries differ from the manifest, first: " + rep->mismatches.front();
        if (!c.opts.force)
            return fail(ErrorKind::Corrupt,
                        "backup " + c.j.backup_id + " is corrupt: " + what + " (--force restores it anyway)");
        c.progress.warning("backup " + c.j.backup_id + " is corrupt, restoring it anyway (--force): " + what);
        r.note = "CORRUPT, forced: " + what;
    } else {
        r.note = std::to_string(rep->checked) + " entries verified";
    }
    r.note += forced_other;
    // W18: phase 2 runs the restored cluster-restore.sh; find out now, not after the reboot.
    if (auto missing = phase2_files_missing(c.cfg, c.store, c.meta); !missing.empty()) {
        if (!c.opts.force)
            return fail(ErrorKind::Corrupt,
                        "backup " + c.j.backup_id + " lacks what phase 2 needs: " + join(missing, ", "));
        c.progress.warning("backup lacks " + join(missing, ", ") + " (--force)");
        r.note += "; missing, forced: " + join(missing, ", ");
    }
    if (c.meta.cluster.present) {
        // W11, while nothing is stopped yet: live, with CRI-O running.
        ContainerRuntime* runtime = nullptr;
        std::string unchecked = "CRI-O does not run offline";
        if (c.live) {
            auto crio = c.units.active_state(kCrioUnit, t.token());
            if (!crio) return std::unexpected(crio.error());
            if (*crio == "active")
                runtime = &c.runtime;
            else
                unchecked = "crio.service is " + *crio;
        }
        auto images =
            check_control_plane_images(c.cfg, c.store, c.meta, runtime, unchecked, true, c.opts.root, t.token());
        if (!images) return std::unexpected(images.error());
        if (!images->warning.empty()) c.progress.warning(images->warning);
        if (!images->missing.empty()) {
            const std::string what = "cannot pull " + std::to_string(images->missing.size()) + " of the " +
                                     std::to_string(images->needed) +
                                     " images the backup's control plane needs, which the container storage lacks: " +
                                     join(images->missing, ", ") + " (" + images->pull_error + ")";
            if (!c.opts.force)
                return fail(ErrorKind::Refused,
                            what + "; make their registry reachable, or load them into the container storage, and "
                                   "start the recovery again (--force goes on without them: phase 2 tries again)");
            c.progress.warning(what + " (--force: phase 2 tries again)");
        }
        r.note += "; " + images->note + (images->missing.empty() || !c.opts.force ? "" : ", forced");
    } else {
        c.progress.warning("backup " + c.j.backup_id + " has no etcd snapshot: phase 2 will not restore etcd");
    }
    // Feature 34: past the rollback availability the recovery still helps, with a hand on the cluster.
    if (auto w = expired_certificates_warning(c.meta, std::time(nullptr)); !w.empty()) {
        c.progress.warning(w);
        r.note += "; kubelet certificates expired at " + c.meta.openshift.cert_expiry;
    }
    // W19: the MachineConfig files of the failed upgrade, read before /etc (and with it
    // currentconfig) is restored, and kept in the journal for a resumed restore.
    // Merged with what an interrupted recovery recorded (--restart after /etc was restored).
    auto mc = read_machineconfig_files(c.cfg, c.opts.root);
    if (mc) {
        c.j.mc_files.insert(c.j.mc_files.end(), mc->outside.begin(), mc->outside.end());
        std::sort(c.j.mc_files.begin(), c.j.mc_files.end());
        c.j.mc_files.erase(std::unique(c.j.mc_files.begin(), c.j.mc_files.end()), c.j.mc_files.end());
    } else {
        c.progress.warning("cannot read the current MachineConfig file list (" + mc.error().message +
                           "): files added by the failed upgrade outside the trees stay");
    }
    return r;
}

// After the reboot a platform rollback asked for: the deployment this boot started
// when it is not the recorded one (the files belong into the recorded one); empty
// when it is, or no rollback needed a reboot. Unknown is an error: the rollback may
// have run in an earlier boot, and restoring into the wrong deployment is what this
// check is for.
Result<std::string> booted_elsewhere(const Ctx& c)
{
    const JournalStep* rb = c.j.step("platform-rollback");
    if (!rb || rb->state != StepState::Done || !rb->data.count("reboot_needed")) return std::string();
    if (!c.meta.ostree.present || !ostree_enabled(c.cfg, c.opts.root)) return std::string();
    auto list = ostree_list_deployments(c.cfg, c.opts.root);
    if (!list) return std::unexpected(list.error());
    const DeploymentRef recorded{c.meta.ostree.osname, c.meta.ostree.checksum, c.meta.ostree.serial};
    for (const auto& d : *list)
        if (d.booted && !same_deployment(d, recorded)) return d.id();
    return std::string();
}

Result<StepResult> step_platform_rollback(Ctx& c, JournalStep& st, const StepToken&)
{
    if (!c.meta.ostree.present) return StepResult{true, "the backup recorded no ostree deployment"};
    if (!ostree_enabled(c.cfg, c.opts.root)) {
        c.progress.warning("the backup recorded ostree deployment " + c.meta.ostree.checksum + "." +
                           std::to_string(c.meta.ostree.serial) + " but there is no ostree sysroot under " +
                           c.opts.root + ": platform rollback skipped");
        return StepResult{true, "no ostree sysroot under the root"};
    }
    auto res = apply_rollback_plan(c.cfg, c.opts.root, c.meta.ostree);
    if (!res) return std::unexpected(std::move(res.error()).context("platform rollback"));
    StepResult r;
    r.note = std::string(rollback_action_name(res->plan.action)) + ": " + res->plan.reason;
    if (res->plan.reboot_needed) {
        // The files must go into the recorded deployment: it has to be the booted one first.
        st.data["reboot_needed"] = "1";
        st.data["boot_id"] = read_boot_id(c.opts.boot_id_path);
        r.note += "; reboot into " + res->default_deployment.id() + " needed";
    }
    if (res->changed)
        log::event(log::kRollbackApplied, log::Level::Info, "platform rollback: " + r.note,
                   {{"BACKUP_ID", c.j.backup_id}, {"STEP", "platform-rollback"}});
    return r;
}

std::chrono::seconds secs(unsigned s)
{
    return std::chrono::seconds(s);
}

Result<StepResult> step_stop_unit(Ctx& c, const char* unit, const StepToken& t)
{
    UR_TRY(c.units.stop(unit, secs(c.cfg.stop_timeout), t.token()));
    return StepResult{false, std::string(unit) + " stopped"};
}

Result<StepResult> step_remove_pods(Ctx& c, JournalStep&, const StepToken& t)
{
    auto st = c.units.active_state(kCrioUnit, t.token());
    if (!st) return std::unexpected(st.error());
    if (*st != "active") return StepResult{true, "crio.service is " + *st + ": no pods to remove"};
    auto n = c.runtime.remove_all_pods(secs(c.cfg.stop_timeout), t.token());
    if (!n) return std::unexpected(n.error());
    return StepResult{false, std::to_string(*n) + " pods removed"};
}

Result<StepResult> step_wipe(Ctx& c, JournalStep&, const StepToken& t)
{
    if (!c.cfg.wipe_images) return StepResult{true, "recovery.wipe_images is off: images kept (W11)"};
    UR_TRY(c.runtime.wipe_storage(secs(c.cfg.stop_timeout), t.token()));
    return StepResult{false, "container and image storage wiped"};
}

Result<StepResult> step_restore(Ctx& c, JournalStep&, const StepToken& t)
{
    RestoreOptions ro;
    ro.target_root = c.opts.root;
    ro.etc_excludes = c.meta.etc_excludes;
    ro.checksum = c.opts.checksum;
    ro.remove_stale_mc_files = true;
    ro.current_mc_files = c.j.mc_files;
    auto st = restore_backup(c.backup_dir, ro, c.progress, t.token());
    if (!st) return std::unexpected(std::move(st.error()).context("restore"));
    return StepResult{false, std::to_string(st->examined) + " examined, " + std::to_string(st->created) + " created, " +
                                 std::to_string(st->updated) + " rewritten, " + std::to_string(st->metadata) +
                                 " metadata, " + std::to_string(st->deleted) + " deleted"};
}

Result<StepResult> step_disable_kubelet(Ctx& c, JournalStep&, const StepToken& t)
{
    UR_TRY(c.units.disable(kKubeletUnit, t.token()));
    return StepResult{false, "kubelet.service disabled (" + c.units.mode() + ")"};
}

Result<StepResult> step_enable_phase2(Ctx& c, JournalStep&, const StepToken& t)
{
    UR_TRY(c.units.enable(kPhase2Unit, t.token()));
    return StepResult{false, std::string(kPhase2Unit) + " enabled (" + c.units.mode() + ")"};
}

Result<StepResult> step_phase1_done(Ctx& c, JournalStep&, const StepToken&)
{
    // Phase 2 must not run in the boot whose processes phase 1 stopped under them.
    c.j.phase1_boot_id = c.live ? read_boot_id(c.opts.boot_id_path) : "";
    UR_TRY(c.dir.set_phase2_pending(c.j.recovery_id));
    failpoint("recovery.phase1-done.pending");
    // `armed` goes only once the journal says this step is done (execute): before
    // that a power cut must find the partition armed, so the initrd resumes phase 1.
    return StepResult{false, "phase 2 pending"};
}

// ---------------------------------------------------------------------------
// Phase 2

// A live-only phase 1 step that an offline phase 1 (the initramfs, --root) skipped.
bool skipped_offline(const RecoveryJournal& j, const char* name)
{
    const JournalStep* s = j.step(name);
    return s && s->state == StepState::Skipped && s->data.count("offline");
}

// Phase 1 in the initramfs skips what needs CRI-O. The reboot since ended the failed
// upgrade's pods, but CRI-O may still hold them, and the wipe recovery.wipe_images asks
// for is still owed: both are done here, while kubelet (disabled by phase 1) runs nothing.
Result<StepResult> step_start_crio(Ctx& c, JournalStep&, const StepToken& t)
{
    std::string note;
    if (c.cfg.wipe_images && skipped_offline(c.j, "wipe-images")) {
        UR_TRY(c.units.stop(kCrioUnit, secs(c.cfg.stop_timeout), t.token()));
        UR_TRY(c.runtime.wipe_storage(secs(c.cfg.stop_timeout), t.token()));
        note = "container and image storage wiped (phase 1 ran offline); ";
    }
    auto st = c.units.active_state(kCrioUnit, t.token());
    if (!st) return std::unexpected(st.error());
    if (*st == "active") {
        note += "crio.service already active";
    } else {
        UR_TRY(c.units.start(kCrioUnit, secs(c.cfg.stop_timeout), t.token()));
        note += "crio.service started";
    }
    if (skipped_offline(c.j, "remove-pods")) {
        auto n = c.runtime.remove_all_pods(secs(c.cfg.stop_timeout), t.token());
        if (!n) return std::unexpected(n.error());
        note += "; " + std::to_string(*n) + " pods of the failed upgrade removed (phase 1 ran offline)";
    }
    return StepResult{false, note};
}

Result<StepResult> step_record_containers(Ctx& c, JournalStep& js, const StepToken& t)
{
    std::string last;
    for (;;) {
        auto all = c.runtime.list_containers(secs(c.cfg.api_request_timeout), t.token());
        if (all) {
            std::string note;
            for (const auto& n : kWaitContainers) {
                const auto* ct = newest_container(*all, n);
                js.data[n] = ct ? ct->id : "";
                note += (note.empty() ? "" : ", ") + n + "=" + (ct ? short_id(ct->id) : std::string("none"));
            }
            return StepResult{false, note};
        }
        if (fatal_now(all.error())) return std::unexpected(all.error());
        note_failure(last, all.error(), t);
        if (t.expired())
            return fail(ErrorKind::Timeout,
                        "could not list containers within " + std::to_string(c.cfg.stop_timeout) + "s: " + last);
        UR_TRY(t.nap(poll_interval(c.cfg)));
    }
}

// W11: the images the backup's control plane runs from here on, pulled when the
// storage lacks them (wiped, collected since, or unchecked by an offline phase 1).
// cluster-restore.sh would pull the etcd image with podman and kubelet the rest, but
// an unreachable registry then shows as a podman error, or as containers that never
// start until the waits time out. Here pulls are tried again every poll interval
// until recovery.pull_timeout, then the step fails naming the image, before etcd is
// touched. Its own step: the time pulls take never shortens cluster-restore.sh's.
// A storage that cannot be listed is not checked (as before this step existed).
Result<StepResult> step_pull_images(Ctx& c, JournalStep&, const StepToken& t)
{
    if (!c.meta.cluster.present) return StepResult{true, "the backup has no etcd snapshot"};
    auto needed = backup_control_plane_images(c.store, c.meta);
    if (!needed) {
        if (needed.error().kind != ErrorKind::NotFound)
            c.progress.warning("cannot tell which images the backup's control plane needs (" + needed.error().message +
                               "): none pulled");
        return StepResult{true, "not checked: " + needed.error().message};
    }
    if (needed->empty()) return StepResult{true, "no control-plane images named in the backup's manifests"};
    std::vector<std::string> pulled, restored;
    std::vector<std::string> tried; // copied from the backup once; a pull is the fallback after that
    std::string last;               // why the last round left an image missing
    auto gave_up = [&] {
        return fail(ErrorKind::Timeout, last + " within " + std::to_string(c.cfg.pull_timeout) +
                                            "s; the backup's control plane needs it: make its registry reachable, or "
                                            "load the image into the container storage, then run 'upgrade-recovery "
                                            "recover --resume'");
    };
    for (;;) {
        if (!last.empty() && t.expired()) return gave_up();
        auto have = c.runtime.list_images(secs(c.cfg.stop_timeout), t.token());
        if (!have) {
            if (fatal_now(have.error())) return std::unexpected(have.error());
            if (!last.empty()) return gave_up(); // pulls failed, and now the storage cannot be listed either
            c.progress.warning("cannot list the container images (" + have.error().message +
                               "): the backup's control-plane images are not checked");
            return StepResult{false, "not checked: cannot list the container images (" + have.error().message + ")"};
        }
        auto missing = missing_images(*needed, *have);
        if (missing.empty()) {
            std::string note = restored.empty()
                                   ? ""
                                   : "copied " + std::to_string(restored.size()) +
                                         " missing control-plane images from the backup: " + join(restored, ", ");
            if (!pulled.empty())
                note += (note.empty() ? "" : "; ") + ("pulled " + std::to_string(pulled.size()) +
                                                      " missing control-plane images: " + join(pulled, ", "));
            return StepResult{false, note.empty() ? "all " + std::to_string(needed->size()) + " present" : note};
        }
        // A try that the step's deadline cuts short (or leaves no time to start) says only
        // that; the reason of the round before, the registry's answer, is what to act on.
        const std::string previous = std::exchange(last, std::string());
        auto out_of_time = [&] {
            last = previous;
            return gave_up();
        };
        bool copied = false;
        // The backup's own copy first (images.backup): it needs no registry. The
        // backup is on the partition, mounted again after the reboot.
        for (const auto& m : missing) {
            const HeldImage* h = c.meta.images.find(m);
            if (!h || std::find(tried.begin(), tried.end(), m) != tried.end()) continue;
            tried.push_back(m);
            log::info("pull-images: copying " + m + " from backup " + c.meta.id + " into the container storage");
            auto r = restore_image(c.cfg, c.opts.root, c.backup_dir, *h, secs(c.cfg.images_timeout), t.token());
            if (r) {
                restored.push_back(m);
                copied = true;
            } else {
                if (fatal_now(r.error())) return std::unexpected(r.error());
                log::warning("pull-images: " + r.error().message + "; pulling it instead");
            }
        }
        if (copied) { // listed again: what the copies did not bring is pulled
            last = previous;
            continue;
        }
        for (const auto& m : missing) {
            if (std::find(restored.begin(), restored.end(), m) != restored.end() &&
                std::find(pulled.begin(), pulled.end(), m) == pulled.end()) {
                // Copied, yet not listed: the registry is the fallback.
                restored.erase(std::find(restored.begin(), restored.end(), m));
            }
            if (std::find(pulled.begin(), pulled.end(), m) != pulled.end()) {
                last = "pulled " + m + ", but the container storage does not list it";
                continue;
            }
            if (!previous.empty() && t.expired()) return out_of_time();
            log::info("pull-images: pulling " + m + ", which the backup's control plane needs");
            auto p = c.runtime.pull_image(m, secs(c.cfg.pull_timeout), t.token());
            if (p) {
                pulled.push_back(m);
            } else {
                if (fatal_now(p.error())) return std::unexpected(p.error());
                if (!previous.empty() && t.expired()) return out_of_time();
                last = "cannot pull " + m + " (" + p.error().message + ")";
            }
        }
        if (last.empty()) continue; // all pulled: listed again to confirm
        if (t.expired()) return gave_up();
        log::info("pull-images: " + last + "; trying again");
        UR_TRY(t.nap(poll_interval(c.cfg)));
    }
}

Result<StepResult> step_restore_etcd(Ctx& c, JournalStep&, const StepToken& t)
{
    if (!c.meta.cluster.present) return StepResult{true, "the backup has no etcd snapshot"};
    std::string script = root_path(c.opts.root, c.cfg.cluster_restore_script);
    if (::access(script.c_str(), X_OK) < 0)
        return fail(ErrorKind::NotFound, "the restored " + c.cfg.cluster_restore_script +
                                             " is missing or not "
                                             "executable (" +
                                             std::string(strerror(errno)) + ")");
    Command cmd;
    cmd.argv = {script, c.backup_dir + "/" + kClusterDir};
    cmd.timeout = secs(c.cfg.restore_script_timeout);
    cmd.capture_stdout = false; // the operator watches it; stderr is kept for the error message
    auto r = run_command(cmd, &t.token());
    if (!r) return std::unexpected(std::move(r.error()).context("cluster-restore.sh"));
    if (r->exit_code != 0) {
        std::string err = r->err;
        if (err.size() > 600) err = "..." + err.substr(err.size() - 600);
        while (!err.empty() && err.back() == '\n')
            err.pop_back();
        return fail(ErrorKind::ExternalFailed,
                    "cluster-restore.sh exited with " + std::to_string(r->exit_code) + (err.empty() ? "" : ": " + err));
    }
    return StepResult{false, "etcd restored from " + c.meta.cluster.snapshot};
}

Result<StepResult> step_start_kubelet(Ctx& c, JournalStep&, const StepToken& t)
{
    // W10: enabled before it is started, and crio is not restarted afterwards.
    UR_TRY(c.units.enable(kKubeletUnit, t.token()));
    UR_TRY(c.units.start(kKubeletUnit, secs(c.cfg.stop_timeout), t.token()));
    return StepResult{false, "kubelet.service enabled and started"};
}

Result<StepResult> step_wait_container(Ctx& c, const std::string& name, const StepToken& t)
{
    const JournalStep* rec = c.j.step("record-containers");
    std::string old = rec && rec->data.count(name) ? rec->data.at(name) : "";
    std::string last = "not seen yet";
    for (;;) {
        auto all = c.runtime.list_containers(secs(c.cfg.api_request_timeout), t.token());
        if (all) {
            const ContainerInfo* found = nullptr;
            for (const auto& ct : *all)
                if (ct.name == name && ct.running() && ct.id != old && (!found || ct.created_ns > found->created_ns))
                    found = &ct;
            if (found) return StepResult{false, name + " running as " + short_id(found->id)};
            const auto* n = newest_container(*all, name);
            last = n ? short_id(n->id) + " " + n->state + (n->id == old ? " (the old one)" : "") : "not present";
        } else {
            if (fatal_now(all.error())) return std::unexpected(all.error());
            note_failure(last, all.error(), t);
        }
        if (t.expired())
            return fail(ErrorKind::Timeout, "container " + name + " was not recreated and running within " +
                                                std::to_string(c.cfg.container_restart_timeout) +
                                                "s (last seen: " + last + "); please investigate");
        UR_TRY(t.nap(poll_interval(c.cfg)));
    }
}

std::string describe(const StaticPodOperatorStatus& s)
{
    std::string cur;
    for (auto r : s.current_revisions)
        cur += (cur.empty() ? "" : ",") + std::to_string(r);
    std::string out = "latestAvailableRevision " + std::to_string(s.latest_available_revision) + ", currentRevision " +
                      (cur.empty() ? "none" : cur);
    if (const auto* p = s.condition("NodeInstallerProgressing"))
        out += ", NodeInstallerProgressing " + p->reason + (p->message.empty() ? "" : " (" + p->message + ")");
    return out;
}

Result<StepResult> step_redeploy(Ctx& c, const std::string& res, JournalStep& js, const StepToken& t)
{
    std::string last;
    auto timeout_msg = [&](const std::string& what) {
        return fail(ErrorKind::Timeout, "failed to redeploy " + res + " within " +
                                            std::to_string(c.cfg.redeploy_timeout) + "s: " + what + " (last: " + last +
                                            "); please investigate");
    };
    // The revision before our patch: success needs a newer one, or the old
    // "AllNodesAtLatestRevision" would pass at once.
    while (!js.data.count("latest_before")) {
        auto s = c.api.operator_status(res, t.token());
        if (s) {
            js.data["latest_before"] = std::to_string(s->latest_available_revision);
            UR_TRY(c.save());
            break;
        }
        if (fatal_now(s.error())) return std::unexpected(s.error());
        note_failure(last, s.error(), t);
        if (t.expired()) return timeout_msg("the API did not answer");
        UR_TRY(t.nap(poll_interval(c.cfg)));
    }
    int64_t before = 0;
    {
        const std::string& v = js.data["latest_before"];
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), before);
        if (v.empty() || ec != std::errc() || end != v.data() + v.size())
            return fail(ErrorKind::Corrupt, "the journal's latest_before of this step is '" + v +
                                                "', not a revision; 'upgrade-recovery recover --restart' starts over");
    }
    if (!js.data.count("patched")) {
        if (!js.data.count("reason")) {
            js.data["reason"] = "recovery-" + rfc3339_now(true);
            UR_TRY(c.save());
        }
        for (;;) {
            auto p = c.api.force_redeployment(res, js.data["reason"], t.token());
            if (p) break;
            if (fatal_now(p.error())) return std::unexpected(p.error());
            note_failure(last, p.error(), t);
            if (t.expired()) return timeout_msg("the forceRedeploymentReason patch did not go through");
            UR_TRY(t.nap(poll_interval(c.cfg)));
        }
        js.data["patched"] = "1";
        UR_TRY(c.save());
    }
    for (;;) {
        auto s = c.api.operator_status(res, t.token());
        if (s) {
            // W9: a failing installer ends the wait at once instead of after the deadline.
            if (auto d = s->degraded(); !d.empty())
                return fail(ErrorKind::ExternalFailed,
                            "redeployment of " + res + " failed: " + d + " (" + describe(*s) + ")");
            if (s->latest_available_revision > before && s->all_nodes_at_latest())
                return StepResult{false, "all nodes at revision " + std::to_string(s->latest_available_revision)};
            last = describe(*s);
        } else {
            if (fatal_now(s.error())) return std::unexpected(s.error());
            note_failure(last, s.error(), t);
        }
        if (t.expired()) return timeout_msg("not all nodes reached the new revision");
        UR_TRY(t.nap(poll_interval(c.cfg)));
    }
}

Result<StepResult> step_finish(Ctx& c, JournalStep&, const StepToken&)
{
    // The cluster's state; its API calls may take minutes, and a power cut then must
    // find phase 2 still set to resume (unit enabled, marker there). Phase 2 is
    // retired after the journal says Complete (retire_phase2).
    record_cluster_status(c, kClusterStatusAfter, "after the recovery");
    return StepResult{false, "recovery complete"};
}

// Phase 2 is over: leave its unit as the backup had it (a node set up by Ignition has
// it enabled, so /etc stays equal to the backup; one where only this recovery enabled
// it gets it disabled again), then remove the marker, which switches the unit off for
// good. Called once the journal says Complete: a power cut before the marker is gone
// leaves a finished recovery whose next `recover --resume` (the unit, at the next
// boot) only does this, never a recovery in progress that nothing resumes.
// Phase 2 runs inside this unit; disabling it does not stop us. Failures are
// warnings: the recovery itself is complete. Returns what it did, for the log.
std::string retire_phase2(const JournalDir& dir, UnitManager& units, const std::string& backup_dir,
                          const CancelToken& cancel, Progress& progress)
{
    std::string note;
    // The generation's etc tree is <backup>/etc, so the generation reads like a root.
    auto in_backup = offline_unit_enabled(backup_dir, kPhase2Unit);
    if (!in_backup) {
        // Unknown: left enabled, which is harmless (the unit is conditioned on
        // phase2-pending), rather than making /etc differ from the backup unseen.
        progress.warning("left " + std::string(kPhase2Unit) + " enabled: cannot tell whether the backup had it (" +
                         in_backup.error().message + ")");
    } else if (!*in_backup) {
        if (auto r = units.disable(kPhase2Unit, cancel); !r)
            progress.warning("could not disable " + std::string(kPhase2Unit) + ": " + r.error().message);
        else
            note = std::string(kPhase2Unit) + " disabled again";
    }
    if (auto r = dir.clear_phase2_pending(); !r)
        progress.warning("could not remove recovery/phase2-pending (the next boot's phase 2 run does): " +
                         r.error().message);
    return note;
}

// Which timeout bounds a step.
unsigned step_timeout(const Config& cfg, const std::string& name)
{
    if (name.starts_with("wait-")) return cfg.container_restart_timeout;
    if (name.starts_with("redeploy-")) return cfg.redeploy_timeout;
    if (name == "restore-etcd") return cfg.restore_script_timeout;
    if (name == "pull-images") return cfg.pull_timeout;
    if (name == "verify" || name == "restore-files" || name == "platform-rollback" || name == "phase1-done" ||
        name == "finish")
        return 0; // bounded by the caller's token; their own I/O has no natural deadline
    return cfg.stop_timeout;
}

// upgrade-recovery-phase2.service is Type=notify and ordered Before=kubelet.service:
// kubelet may start once etcd is restored. Tell systemd so before any later step
// (also when a resumed run starts past start-kubelet), or kubelet's start job would
// wait for us while we wait for kubelet. A no-op when not run by systemd.
void notify_kubelet_may_start(const std::string& step)
{
    static bool sent = false;
    if (sent) return;
    if (step != "start-kubelet" && !step.starts_with("wait-") && !step.starts_with("redeploy-") && step != "finish")
        return;
    sd_notify(0, "READY=1\nSTATUS=etcd restored; kubelet may start");
    sent = true;
}

Result<StepResult> run_step(Ctx& c, JournalStep& js, const StepToken& t)
{
    const std::string& n = js.name;
    notify_kubelet_may_start(n);
    if (n == "verify") return step_verify(c, js, t);
    if (n == "platform-rollback") return step_platform_rollback(c, js, t);
    if (n == "stop-kubelet") return step_stop_unit(c, kKubeletUnit, t);
    if (n == "remove-pods") return step_remove_pods(c, js, t);
    if (n == "stop-crio") return step_stop_unit(c, kCrioUnit, t);
    if (n == "wipe-images") return step_wipe(c, js, t);
    if (n == "restore-files") return step_restore(c, js, t);
    if (n == "disable-kubelet") return step_disable_kubelet(c, js, t);
    if (n == "enable-phase2") return step_enable_phase2(c, js, t);
    if (n == "phase1-done") return step_phase1_done(c, js, t);
    if (n == "start-crio") return step_start_crio(c, js, t);
    if (n == "record-containers") return step_record_containers(c, js, t);
    if (n == "pull-images") return step_pull_images(c, js, t);
    if (n == "restore-etcd") return step_restore_etcd(c, js, t);
    if (n == "start-kubelet") return step_start_kubelet(c, js, t);
    if (n.starts_with("wait-")) return step_wait_container(c, n.substr(5), t);
    if (n.starts_with("redeploy-")) return step_redeploy(c, n.substr(9), js, t);
    if (n == "finish") return step_finish(c, js, t);
    return fail(ErrorKind::Corrupt, "unknown step '" + n + "' in the journal");
}

bool destructive_done(const RecoveryJournal& j)
{
    for (const auto& s : j.steps)
        if (s.name != "verify" && s.state == StepState::Done) return true;
    return false;
}

std::string next_message_phase1(const RecoveryJournal& j, bool live)
{
    if (live)
        return "Phase 1 of recovery " + j.recovery_id +
               " is complete. Reboot now with 'systemctl reboot'; "
               "upgrade-recovery-phase2.service runs phase 2 after the reboot (or run "
               "'upgrade-recovery recover --resume' once the node is up).";
    return "Phase 1 of recovery " + j.recovery_id + " is complete under " + j.root +
           ". Boot that root; upgrade-recovery-phase2.service runs phase 2 "
           "('upgrade-recovery recover --resume' on the booted node does the same).";
}

struct Runner {
    Runner(const Config& c, const RecoveryOptions& o, Progress& p, const CancelToken& k, const Store& s,
           RecoveryBackends b)
        : cfg(c), opts(o), progress(p), cancel(k), store(s), be(b)
    {
    }
    const Config& cfg;
    const RecoveryOptions& opts;
    Progress& progress;
    const CancelToken& cancel;
    const Store& store;
    JournalDir dir;
    RecoveryBackends be;
    bool live = false;
    std::string mode;

    std::unique_ptr<UnitManager> own_units;
    std::unique_ptr<ContainerRuntime> own_runtime;
    std::unique_ptr<ClusterApi> own_api;

    // One journald entry per step that ended well (done or skipped): with the recovery's
    // id, `journalctl UPGRADE_RECOVERY_RECOVERY_ID=<id>` lists every step, its result and
    // how long it took (fail_event has the one that failed).
    static void step_event(const RecoveryJournal& j, const JournalStep& js, double seconds)
    {
        const bool done = js.state == StepState::Done;
        char took[32];
        std::snprintf(took, sizeof took, "%.3f", seconds);
        log::event(log::kRecoveryStep, log::Level::Info, js.name + ": " + (done ? "" : "skipped: ") + js.note,
                   {{"BACKUP_ID", j.backup_id},
                    {"RECOVERY_ID", j.recovery_id},
                    {"STEP", js.name},
                    {"RESULT", done ? "done" : "skipped"},
                    {"DURATION_SECONDS", took}});
    }

    void fail_event(const RecoveryJournal& j, const std::string& step, const std::string& msg)
    {
        log::event(log::kRecoveryFailed, log::Level::Error,
                   "recovery " + j.recovery_id + " failed at " + step + ": " + msg,
                   {{"BACKUP_ID", j.backup_id}, {"RECOVERY_ID", j.recovery_id}, {"STEP", step}});
    }

    Result<RecoveryOutcome> pause(RecoveryJournal& j, RecoveryOutcome& out, const std::string& before,
                                  std::string message)
    {
        j.state = RecoveryState::Paused;
        UR_TRY(dir.save(j));
        out.state = j.state;
        out.stopped_before = before;
        out.message = std::move(message);
        return out;
    }

    Result<> maybe_reboot(RecoveryOutcome& out)
    {
        out.reboot_required = true;
        if (!opts.reboot) return {};
        if (opts.initrd || !be.units->can_control()) return {}; // the caller (initrd unit) reboots
        UR_TRY_CTX(be.units->reboot(cancel), "reboot");
        out.rebooting = true;
        return {};
    }

    Result<RecoveryOutcome> execute(RecoveryJournal& j, BackupMetadata meta)
    {
        RecoveryOutcome out;
        out.recovery_id = j.recovery_id;
        out.backup_id = j.backup_id;
        ScaledProgress step_progress(progress); // a step's own 0..100 stays within its share
        Ctx c{cfg,
              opts,
              step_progress,
              cancel,
              store,
              dir,
              j,
              std::move(meta),
              store.path() + "/" + kBackupsDir + "/" + j.backup_id,
              *be.units,
              *be.runtime,
              *be.api,
              live};
        std::string boot_id = read_boot_id(opts.boot_id_path);
        bool ran_any = false;
        bool booted_checked = false;
        std::string last_stage;
        size_t total = j.steps.size();
        for (size_t i = 0; i < total; i++) {
            JournalStep& js = j.steps[i];
            if (js.state == StepState::Done || js.state == StepState::Skipped) continue;
            const StepDef* def = find_step_def(js.name);
            if (!def) return fail(ErrorKind::Corrupt, "unknown step '" + js.name + "' in the journal");

            // Gate: a platform rollback that needs a reboot stops phase 1 until the node
            // runs the recorded deployment (the files belong into that one).
            if (const JournalStep* rb = j.step("platform-rollback");
                rb && rb->state == StepState::Done && rb->data.count("reboot_needed") && def->phase == 1 &&
                !boot_id.empty() && rb->data.count("boot_id") && rb->data.at("boot_id") == boot_id) {
                std::string msg = "The platform rollback made the recorded deployment the default; reboot into it "
                                  "now. Phase 1 continues in the initrd (the recovery is armed) or with "
                                  "'upgrade-recovery recover --resume' after the reboot.";
                if (!ran_any && !opts.force)
                    return fail(ErrorKind::Refused, "the node has not rebooted since the platform rollback: " + msg);
                if (ran_any) {
                    auto o = pause(j, out, js.name, msg);
                    if (!o) return o;
                    UR_TRY(maybe_reboot(*o));
                    return o;
                }
                progress.warning("continuing without the reboot the platform rollback needs (--force)");
            }
            if (!booted_checked && def->phase == 1 && !opts.force) {
                booted_checked = true;
                auto wrong = booted_elsewhere(c);
                if (!wrong) {
                    std::string msg = "cannot tell which ostree deployment this boot started (" +
                                      wrong.error().message +
                                      "), so nothing was restored: it might be the failed one. Fix that and run "
                                      "'upgrade-recovery recover --resume' (or the next boot continues in the "
                                      "initrd: the recovery is still armed); '--resume --force' restores without "
                                      "this check.";
                    progress.warning(msg);
                    return pause(j, out, js.name, msg);
                }
                if (!wrong->empty()) {
                    // Requesting another reboot could loop (a boot loader that keeps falling back);
                    // the node boots on, still armed, and the next boot of the right one continues.
                    std::string msg = "this boot started ostree deployment " + *wrong + ", not " +
                                      c.meta.ostree.checksum + "." + std::to_string(c.meta.ostree.serial) +
                                      ", which the backup was taken from and the platform rollback made the "
                                      "default (a boot menu choice, or a boot loader fallback?). Nothing was "
                                      "restored into it. Reboot into the default deployment: phase 1 continues "
                                      "in the initrd (the recovery is still armed) or with 'upgrade-recovery "
                                      "recover --resume'.";
                    progress.warning(msg);
                    return pause(j, out, js.name, msg);
                }
            }

            if (def->phase == 2) {
                if (ran_any && last_stage == "restore-files") {
                    // Phase 1 just finished here.
                    auto o = pause(j, out, js.name, next_message_phase1(j, live));
                    if (!o) return o;
                    o->phase1_done = true;
                    if (live) UR_TRY(maybe_reboot(*o));
                    if (o->rebooting)
                        o->message = "Phase 1 of recovery " + j.recovery_id +
                                     " is complete; the node reboots now, and upgrade-recovery-phase2.service "
                                     "runs phase 2 after the reboot.";
                    return o;
                }
                if (opts.initrd || !live) {
                    out.state = j.state;
                    out.phase1_done = true;
                    out.stopped_before = js.name;
                    out.message = "Phase 1 is done; phase 2 needs the booted system: "
                                  "upgrade-recovery-phase2.service runs it.";
                    return out;
                }
                if (j.mode == "live" && !j.phase1_boot_id.empty() && j.phase1_boot_id == boot_id) {
                    if (!opts.force)
                        return fail(ErrorKind::Refused, "phase 1 ran in this boot; reboot first ('systemctl reboot'), "
                                                        "phase 2 then runs from upgrade-recovery-phase2.service");
                    progress.warning("running phase 2 without a reboot after phase 1 (--force)");
                }
            }
            if (opts.step && ran_any && def->stage != last_stage) {
                return pause(j, out, js.name,
                             "Stage " + last_stage + " complete. Use --step (or --resume) to continue.");
            }

            UR_TRY(cancel.check());
            progress.stage(def->title);
            progress.percent(static_cast<unsigned>(i * 100 / total));
            step_progress.set_range(static_cast<unsigned>(i * 100 / total),
                                    static_cast<unsigned>((i + 1) * 100 / total));

            if (def->live_only && !live) {
                js.state = StepState::Skipped;
                js.note = "offline: nothing runs under the root";
                js.data["offline"] = "1";
                js.finished = rfc3339_now();
                UR_TRY(dir.save(j));
                step_event(j, js, 0);
                ran_any = true;
                last_stage = def->stage;
                continue;
            }

            // Recorded before it starts: a crash from here on re-runs this step.
            js.state = StepState::Started;
            js.attempts++;
            js.started = rfc3339_now();
            js.finished.clear();
            js.error.clear();
            mark_running(j);
            UR_TRY(dir.save(j));
            std::string fp = "recovery." + js.name;
            failpoint(fp.c_str());

            StepToken tok(cancel, secs(step_timeout(cfg, js.name)));
            const auto step_start = std::chrono::steady_clock::now();
            auto r = run_step(c, js, tok);
            const std::chrono::duration<double> took = std::chrono::steady_clock::now() - step_start;
            js.finished = rfc3339_now();
            if (!r) {
                Error e = std::move(r.error());
                js.state = StepState::Failed;
                js.error = e.message;
                j.error = js.name + ": " + e.message;
                // Nothing changed yet (a bad backup, a refused rollback plan): a final result,
                // so backups are possible again and the initrd does not retry on every boot.
                // Not when it was stopped (a signal, a deadline): that says nothing about the
                // backup, and the next boot or --resume must find the recovery still there.
                const bool stopped = e.kind == ErrorKind::Cancelled || e.kind == ErrorKind::Timeout;
                bool abort = !destructive_done(j) && !stopped &&
                             (js.name == "verify" || (js.name == "platform-rollback" && e.kind == ErrorKind::Refused));
                j.state = abort ? RecoveryState::Aborted : RecoveryState::Failed;
                if (abort) j.finished = js.finished;
                // The journal first: a crash before the markers are gone costs one more
                // attempt that ends the same way, never a recovery nobody can see.
                if (auto s = dir.save(j); !s) log::error("journal: " + s.error().message);
                if (abort) clear_markers(dir);
                fail_event(j, js.name, e.message);
                return std::unexpected(std::move(e).context(js.name));
            }
            js.state = r->skipped ? StepState::Skipped : StepState::Done;
            js.note = r->note;
            UR_TRY(dir.save(j));
            std::string fpd = "recovery." + js.name + ".done";
            failpoint(fpd.c_str());
            step_event(j, js, took.count());
            if (js.name == "phase1-done") {
                // A leftover marker is harmless: the next initrd sees phase 1 done and removes it.
                if (auto a = dir.clear_armed(); !a) log::error("journal: " + a.error().message);
                log::event(log::kPhase1Done, log::Level::Info, "recovery " + j.recovery_id + ": phase 1 done",
                           {{"BACKUP_ID", j.backup_id}, {"RECOVERY_ID", j.recovery_id}, {"STEP", js.name}});
            }
            ran_any = true;
            last_stage = def->stage;
        }
        j.state = RecoveryState::Complete;
        j.finished = rfc3339_now();
        j.error.clear();
        UR_TRY(dir.save(j));
        failpoint("recovery.complete");
        if (auto note = retire_phase2(dir, c.units, c.backup_dir, cancel, progress); !note.empty())
            log::info("finish: " + note);
        // The argument typed at the boot menu is gone at the next boot; one kept in a boot
        // entry restores again after the next backup (recovery_karg.hpp).
        if (auto w = persistent_karg_warning(opts.root); !w.empty()) {
            log::warning(w);
            progress.warning(w);
        }
        progress.percent(100);
        log::event(log::kPhase2Done, log::Level::Info,
                   "recovery " + j.recovery_id + " complete: the node runs backup " + j.backup_id,
                   {{"BACKUP_ID", j.backup_id}, {"RECOVERY_ID", j.recovery_id}, {"STEP", "finish"}});
        out.state = j.state;
        out.complete = true;
        out.phase1_done = true;
        out.message = "Recovery complete.";
        return out;
    }
};

RecoveryJournal new_journal(const std::string& backup_id, const std::string& mode, const std::string& root)
{
    RecoveryJournal j;
    j.recovery_id = make_recovery_id();
    j.backup_id = backup_id;
    j.started = rfc3339_now();
    j.mode = mode;
    j.root = root;
    mark_running(j);
    for (const auto& d : recovery_steps()) {
        JournalStep s;
        s.name = d.name;
        j.steps.push_back(std::move(s));
    }
    return j;
}

Result<std::string> choose_backup(const Store& store, const JournalDir& dir, const RecoveryOptions& opts)
{
    if (opts.backup_id) return *opts.backup_id;
    auto armed = dir.armed();
    if (!armed) return std::unexpected(armed.error());
    if (*armed) return **armed;
    auto latest = latest_backup(store);
    if (!latest) return std::unexpected(latest.error());
    if (!*latest) return fail(ErrorKind::NotFound, "there is no backup to recover");
    return **latest;
}

Result<RecoveryOutcome> dry_run(const Config& cfg, const RecoveryOptions& opts, const Store& store,
                                const JournalDir& dir, const RecoveryBackends& backends, Progress& progress,
                                const CancelToken& cancel)
{
    RecoveryOutcome out;
    auto j = dir.load();
    if (!j && opts.restart && j.error().kind == ErrorKind::Corrupt) {
        out.planned.push_back("start over: the damaged journal would be moved aside (" + j.error().message + ")");
        j = std::optional<RecoveryJournal>{};
    }
    if (!j) return std::unexpected(j.error());
    auto d = decide_start(*j, opts);
    std::string id;
    if (d.kind == StartKind::Resume) {
        id = (*j)->backup_id;
        out.recovery_id = (*j)->recovery_id;
    } else {
        auto b = choose_backup(store, dir, opts);
        if (!b) return std::unexpected(b.error());
        id = *b;
    }
    out.backup_id = id;
    if (d.kind != StartKind::New && d.kind != StartKind::Resume) out.planned.push_back("refused: " + d.message);
    out.refusal = start_refusal(d);
    if (!out.refusal && d.kind == StartKind::New)
        if (auto e = check_no_earlier_recovery(store, kEarlierRefusesRecovery); !e) out.refusal = e.error();
    auto refuse_with = [&](ErrorKind kind, const std::string& why) {
        if (!out.refusal && !opts.force) out.refusal = Error{kind, 0, why};
    };
    auto meta = read_metadata(store, id);
    if (!meta) return std::unexpected(meta.error());
    auto rep = verify_backup(store, id, progress, cancel);
    if (!rep) return std::unexpected(rep.error());
    // Live as a run would be: the caller's service manager, else the configured one.
    bool live = false;
    if (!opts.initrd) {
        if (backends.units)
            live = backends.units->can_control();
        else if (auto u = make_unit_manager(cfg, opts.root); u)
            live = (*u)->can_control();
        else // a run stops there first, before its start is decided (recovery.systemctl = "dbus" on another root)
            out.refusal = u.error();
    }
    // The checks the verify step refuses on, with what a run would do about them.
    const std::string refuse = opts.force ? "; forced: " : "; REFUSED unless --force: ";
    std::string verify_line = "verify: " + (rep->ok() ? std::to_string(rep->checked) + " entries match the manifest"
                                                      : "CORRUPT: " + std::to_string(rep->mismatches.size()) +
                                                            " mismatches, first: " + rep->mismatches.front());
    // In the verify step's order, with its error kinds.
    if (auto other = other_installation_problem(*meta, opts.root); !other.empty()) {
        verify_line += refuse + other;
        refuse_with(ErrorKind::Refused, other + "; a recovery restores a backup of this installation only");
    }
    if (!rep->ok())
        refuse_with(ErrorKind::Corrupt, "backup " + id + " is corrupt: " + std::to_string(rep->mismatches.size()) +
                                            " of " + std::to_string(rep->checked) +
                                            " entries differ from the manifest, first: " + rep->mismatches.front() +
                                            " (--force restores it anyway)");
    if (auto missing = phase2_files_missing(cfg, store, *meta); !missing.empty()) {
        verify_line += refuse + "the backup lacks what phase 2 needs: " + join(missing, ", ");
        refuse_with(ErrorKind::Corrupt, "backup " + id + " lacks what phase 2 needs: " + join(missing, ", "));
    }
    // The images (W11) only listed, not pulled: a dry run changes nothing.
    auto images_note = [&]() -> Result<std::string> {
        if (!meta->cluster.present) return std::string();
        auto own_runtime = live && !backends.runtime ? make_crictl_runtime(cfg) : nullptr;
        ContainerRuntime* runtime = !live ? nullptr : backends.runtime ? backends.runtime : own_runtime.get();
        auto images = check_control_plane_images(cfg, store, *meta, runtime, "CRI-O does not run offline", false,
                                                 opts.root, cancel);
        if (!images) return std::unexpected(images.error());
        if (!images->warning.empty()) progress.warning(images->warning);
        return "; " + images->note;
    };
    std::string rollback_line = "platform-rollback: skipped (no ostree deployment recorded, or no sysroot)";
    if (meta->ostree.present && ostree_enabled(cfg, opts.root)) {
        auto plan = compute_rollback_plan(cfg, opts.root, meta->ostree);
        if (!plan) return std::unexpected(plan.error());
        rollback_line = "platform-rollback: " + std::string(rollback_action_name(plan->action)) + ": " + plan->reason;
    }
    RestoreOptions ro;
    ro.target_root = opts.root;
    ro.etc_excludes = meta->etc_excludes;
    ro.checksum = opts.checksum;
    ro.dry_run = true;
    if (auto mc = read_machineconfig_files(cfg, opts.root); mc) ro.current_mc_files = mc->outside;
    auto st = restore_backup(store.path() + "/" + kBackupsDir + "/" + id, ro, progress, cancel);
    if (!st) return std::unexpected(st.error());
    out.restore = std::move(*st);

    // Every step in the order a run takes them, with what is known now about
    // whether it would run: the same conditions the steps check.
    const JournalStep* resumed = nullptr;
    bool wipe_skipped_offline = false; // then phase 2's start-crio wipes (step_start_crio)
    for (const auto& sd : recovery_steps()) {
        const std::string n = sd.name;
        if (d.kind == StartKind::Resume && (resumed = (*j)->step(n)) &&
            (resumed->state == StepState::Done || resumed->state == StepState::Skipped) &&
            !(live && resumed->data.count("offline"))) {
            if (n == "wipe-images") wipe_skipped_offline = skipped_offline(**j, "wipe-images");
            out.planned.push_back(n + ": " + std::string(step_state_name(resumed->state)) + " already");
            continue;
        }
        if (n == "wipe-images") wipe_skipped_offline = sd.live_only && !live;
        std::string line;
        if (n == "verify") {
            auto images = images_note();
            if (!images) return std::unexpected(images.error());
            line = verify_line + *images;
        } else if (n == "platform-rollback")
            line = rollback_line;
        else if (n == "restore-files")
            line = "restore-files: " + std::to_string(out.restore.changes.size()) + " changes";
        else if (sd.live_only && !live)
            line = n + ": skipped (" + (opts.initrd ? "initrd" : "offline") + ": nothing runs there)";
        else if (n == "wipe-images" && !cfg.wipe_images)
            line = n + ": skipped (recovery.wipe_images is off)";
        else if ((n == "restore-etcd" || n == "pull-images") && !meta->cluster.present)
            line = n + ": skipped (the backup has no etcd snapshot)";
        else if (n == "start-crio" && cfg.wipe_images && wipe_skipped_offline)
            line = n + ": wipe the container storage (recovery.wipe_images, which phase 1 cannot do offline), then " +
                   sd.title;
        else
            line = n + ": " + sd.title;
        if (sd.phase == 2) line = "after the reboot, " + line;
        out.planned.push_back(std::move(line));
    }
    out.message = "dry run: nothing was changed";
    return out;
}

Result<RecoveryOutcome> run_with_store(const Config& cfg, const RecoveryOptions& opts, const Store& store,
                                       RecoveryBackends& backends, Progress& progress, const CancelToken& cancel)
{
    Runner run(cfg, opts, progress, cancel, store, backends);
    // Not created yet: a start makes it once its backup is known to be there.
    auto dir = JournalDir::open(store, false);
    if (!dir) return std::unexpected(dir.error());
    run.dir = std::move(*dir);
    if (opts.dry_run) return dry_run(cfg, opts, store, run.dir, backends, progress, cancel);

    // Unattended (the phase 2 unit, the initrd, a resume), a store busy with a verify or
    // a backup is waited for: failing at once left kubelet disabled until someone came.
    auto lock = opts.resume || opts.initrd
                    ? lock_store_patiently(store, kStoreLockPatience,
                                           [&] {
                                               log::info("another upgrade-recovery operation holds " + store.path() +
                                                         "; waiting up to " +
                                                         std::to_string(kStoreLockPatience.count()) + " s for it");
                                           })
                    : lock_store(store);
    if (!lock) return std::unexpected(std::move(lock.error()).context("recovery"));
    if (auto t = remove_stale_store_temporaries(store); !t)
        log::warning("could not remove the temporaries of an interrupted write: " + t.error().message);

    if (!run.be.units) {
        if (opts.initrd) {
            run.own_units = make_offline_units(opts.root);
        } else {
            auto u = make_unit_manager(cfg, opts.root);
            if (!u) return std::unexpected(u.error());
            run.own_units = std::move(*u);
        }
        run.be.units = run.own_units.get();
    }
    if (!run.be.runtime) {
        run.own_runtime = make_crictl_runtime(cfg);
        run.be.runtime = run.own_runtime.get();
    }
    if (!run.be.api) {
        run.own_api = make_oc_cluster_api(cfg, opts.root);
        run.be.api = run.own_api.get();
    }
    run.live = !opts.initrd && run.be.units->can_control();
    run.mode = opts.initrd ? "initrd" : run.live ? "live" : "offline";

    auto loaded = run.dir.load();
    // Starting over needs nothing from the old journal: a damaged one is moved aside
    // (kept) in its place in the start below, instead of blocking the way out.
    bool damaged = false;
    if (!loaded && opts.restart && loaded.error().kind == ErrorKind::Corrupt) {
        progress.warning(strip_journal_remedy(loaded.error().message) + "; starting over");
        damaged = true;
        loaded = std::optional<RecoveryJournal>{};
    }
    if (!loaded) return std::unexpected(loaded.error());
    if (opts.resume && *loaded && (*loaded)->state == RecoveryState::Complete) {
        // Cut off between the journal's Complete and the end of retire_phase2: finish that.
        auto pending = run.dir.phase2_pending();
        if (!pending) return std::unexpected(pending.error());
        if (*pending) {
            const RecoveryJournal& done = **loaded;
            std::string note = retire_phase2(run.dir, *run.be.units,
                                             store.path() + "/" + kBackupsDir + "/" + done.backup_id, cancel, progress);
            RecoveryOutcome out;
            out.recovery_id = done.recovery_id;
            out.backup_id = done.backup_id;
            out.state = done.state;
            out.phase1_done = true;
            out.complete = true;
            out.message = "Recovery " + done.recovery_id + " was already complete (" + done.finished +
                          "); removed the phase2-pending marker it left" + (note.empty() ? "" : "; " + note) + ".";
            log::info(out.message);
            return out;
        }
    }
    auto decision = decide_start(*loaded, opts);
    if (auto refused = start_refusal(decision)) return std::unexpected(std::move(*refused));
    if (decision.kind == StartKind::New) UR_TRY(check_no_earlier_recovery(store, kEarlierRefusesRecovery));
    RecoveryJournal j;
    switch (decision.kind) {
    case StartKind::RefuseInProgress:
    case StartKind::NothingToResume:
    case StartKind::BackupMismatch: break; // start_refusal
    case StartKind::Resume: {
        j = std::move(**loaded);
        const JournalStep* next = j.next_step();
        log::info("resuming recovery " + j.recovery_id + " (backup " + j.backup_id + ") at " +
                  (next ? next->name : std::string("the end")) +
                  (j.state == RecoveryState::Running ? " after an interruption" : ""));
        break;
    }
    case StartKind::New: {
        auto id = choose_backup(store, run.dir, opts);
        if (!id) return std::unexpected(id.error());
        // A backup the caller named must be readable before anything changes: a
        // mistyped id must not retire the journal or drop an armed recovery.
        // (The armed or latest backup failing below still ends the recovery it
        // started, so a boot does not retry it for ever.)
        if (opts.backup_id)
            if (auto named = read_metadata(store, *id); !named)
                return std::unexpected(std::move(named.error()).context("backup " + *id));
        if (!run.dir.exists()) {
            auto made = JournalDir::open(store, true);
            if (!made) return std::unexpected(made.error());
            run.dir = std::move(*made);
        }
        // In an order that a power cut at any point leaves something the next boot
        // resumes: armed with the new backup first (beside an old recovery still in
        // progress, that one goes on), the old journal kept as journal.previous, the
        // new journal over it, and only then the old phase2-pending goes.
        auto armed_before = run.dir.armed();
        UR_TRY(run.dir.set_armed(*id));
        // A watchdog left by a cut between its firing and its removal must not fire
        // again after this recovery and start a second one: with the recovery armed
        // its job is done (a cut before this line: the next start removes it).
        if (auto w = stop_watchdog(store); !w)
            log::warning("could not remove the upgrade watchdog: " + w.error().message);
        else if (*w)
            log::info("upgrade watchdog removed: a recovery started");
        // A start that fails before its journal is written leaves `armed` as it was.
        auto start = [&]() -> Result<> {
            if (damaged) {
                auto kept = run.dir.move_damaged_aside();
                if (!kept) return std::unexpected(kept.error());
                if (!kept->empty())
                    log::warning("the damaged journal was moved aside to " + run.dir.path() + "/" + *kept);
            } else {
                UR_TRY(run.dir.keep_as_previous());
            }
            failpoint("recovery.new.previous-kept");
            j = new_journal(*id, run.mode, opts.root);
            // Starting over after /etc was restored: the failed upgrade's MachineConfig list
            // can no longer be read from the host, only from the old journal.
            if (*loaded && recovery_state_in_progress((*loaded)->state) && (*loaded)->backup_id == *id)
                j.mc_files = (*loaded)->mc_files;
            return run.dir.save(j);
        };
        if (auto st = start(); !st) {
            Result<> undo = armed_before && *armed_before ? run.dir.set_armed(**armed_before) : run.dir.clear_armed();
            if (!undo) log::error("journal: " + undo.error().message);
            return std::unexpected(st.error());
        }
        UR_TRY(run.dir.clear_phase2_pending());
        log::event(log::kRecoveryStarted, log::Level::Info,
                   "recovery " + j.recovery_id + " of backup " + j.backup_id + " started (" + run.mode + ")",
                   {{"BACKUP_ID", j.backup_id}, {"RECOVERY_ID", j.recovery_id}, {"STEP", "start"}});
        break;
    }
    }

    auto meta = read_metadata(store, j.backup_id);
    if (!meta) {
        j.error = "backup " + j.backup_id + ": " + meta.error().message;
        const bool abort = !destructive_done(j);
        if (abort) {
            j.state = RecoveryState::Aborted;
            j.finished = rfc3339_now();
        }
        if (auto s = run.dir.save(j); !s) log::error("journal: " + s.error().message);
        if (abort) clear_markers(run.dir);
        return std::unexpected(std::move(meta.error()).context("backup " + j.backup_id));
    }

    const JournalStep* next = j.next_step();
    const StepDef* nd = next ? find_step_def(next->name) : nullptr;
    if (nd && nd->phase == 1) {
        // A live run redoes what an earlier offline run skipped (it may have been the
        // initrd, and kubelet/crio run now), and the partition is armed until phase 1
        // completes so a power cut resumes in the initrd at the next boot.
        if (run.live)
            for (auto& s : j.steps)
                if (s.state == StepState::Skipped && s.data.count("offline")) {
                    s.state = StepState::Pending;
                    s.data.erase("offline");
                    s.note.clear();
                }
        j.mode = run.mode;
        j.root = opts.root;
        UR_TRY(run.dir.set_armed(j.backup_id));
    } else if (auto a = run.dir.armed(); a && *a && **a == j.backup_id) {
        // Phase 1 is done: its marker, left by a cut just after the journal said so, goes
        // (best effort, as in execute: the next initrd removes it too).
        if (auto c = run.dir.clear_armed(); !c) log::error("journal: " + c.error().message);
    }
    return run.execute(j, std::move(*meta));
}

} // namespace

std::optional<Error> start_refusal(const StartDecision& decision)
{
    switch (decision.kind) {
    case StartKind::RefuseInProgress: return Error{ErrorKind::RecoveryInProgress, 0, decision.message};
    case StartKind::NothingToResume: return Error{ErrorKind::NotFound, 0, decision.message};
    case StartKind::BackupMismatch: return Error{ErrorKind::InvalidArgs, 0, decision.message};
    case StartKind::New:
    case StartKind::Resume: break;
    }
    return std::nullopt;
}

StartDecision decide_start(const std::optional<RecoveryJournal>& journal, const RecoveryOptions& opts)
{
    bool in_progress = journal && recovery_state_in_progress(journal->state);
    if (opts.restart) return {StartKind::New, "starting over"};
    if (in_progress) {
        if (opts.backup_id && *opts.backup_id != journal->backup_id)
            return {StartKind::BackupMismatch,
                    "the recovery in progress uses backup " + journal->backup_id + ", not " + *opts.backup_id +
                        "; start over with restart (recover --restart, or the D-Bus option 'restart')"};
        if (opts.resume || opts.step || opts.initrd) return {StartKind::Resume, "resuming"};
        const JournalStep* next = journal->next_step();
        return {StartKind::RefuseInProgress,
                "Recovery " + journal->recovery_id + " of backup " + journal->backup_id +
                    " has already started (next step: " + (next ? next->name : std::string("none")) +
                    "). Continue it with resume, one stage with step, or start over with restart (recover --resume, "
                    "--step, --restart, or the D-Bus options of those names)."};
    }
    if (opts.resume) return {StartKind::NothingToResume, "there is no recovery in progress to resume"};
    return {StartKind::New, "new recovery"};
}

LeftBehind abandoned_left_behind(const Config& cfg, const std::string& root, const Store& store, const Abandoned& a)
{
    if (a.journal) return recovery_left_behind(cfg, root, store, *a.journal);
    LeftBehind out;
    if (!a.damaged_kept.empty())
        out.left.push_back("what the recovery changed on the host cannot be read from a damaged journal: "
                           "check kubelet.service ('systemctl is-enabled kubelet.service')");
    return out;
}

LeftBehind recovery_left_behind(const Config& cfg, const std::string& root, const Store& store,
                                const RecoveryJournal& j)
{
    auto state = [&](const std::string& n) {
        const JournalStep* s = j.step(n);
        return s ? s->state : StepState::Pending;
    };
    auto did = [&](const std::string& n) { return state(n) == StepState::Done; };
    auto over = [&](const std::string& n) { return did(n) || state(n) == StepState::Skipped; };
    auto sys = [](const std::string& args) { return "systemctl " + args; };
    LeftBehind out;
    const bool phase1 = did("phase1-done");
    const JournalStep* restore = j.step("restore-files");
    if (!phase1 && restore && restore->attempts > 0 && !did("restore-files"))
        out.left.push_back("the restore of the files did not finish: /etc, /usr/local and /var/lib/kubelet may hold "
                           "part of the backup and part of the failed upgrade");
    // Phase 2's order: crio, etcd, kubelet, the redeployments; the unit is retired last.
    const std::string backup_dir = store.path() + "/" + kBackupsDir + "/" + j.backup_id;
    auto meta = read_metadata(store, j.backup_id);
    // Unreadable metadata: the restore is named all the same (phase 2 would have read it).
    const bool etcd_owed = phase1 && !over("restore-etcd") && (!meta || meta->cluster.present);
    const bool kubelet_disabled = did("disable-kubelet") && !did("start-kubelet");
    const bool kubelet_stopped = did("stop-kubelet") && !did("start-kubelet");
    const bool crio_stopped = did("stop-crio") && !did("start-crio");
    if (crio_stopped)
        out.left.push_back(std::string(kCrioUnit) + " stopped by phase 1 (stop-crio), unless the node rebooted since");
    if ((crio_stopped || etcd_owed || kubelet_disabled) && !did("start-crio"))
        out.commands.push_back(sys("start " + std::string(kCrioUnit)));
    if (etcd_owed) {
        out.left.push_back("etcd not restored from backup " + j.backup_id + " (restore-etcd " +
                           std::string(step_state_name(state("restore-etcd"))) + ")");
        out.commands.push_back(sh_word(root_path(root, cfg.cluster_restore_script)) + " " +
                               sh_word(backup_dir + "/" + kClusterDir));
    }
    if (kubelet_disabled) {
        out.left.push_back(
            std::string(kKubeletUnit) + " disabled by phase 1 (disable-kubelet) and not enabled again (start-kubelet " +
            std::string(step_state_name(state("start-kubelet"))) + "): after the next reboot the node runs no kubelet");
        out.commands.push_back(sys("enable --now " + std::string(kKubeletUnit)));
    } else if (kubelet_stopped) {
        out.left.push_back(std::string(kKubeletUnit) +
                           " stopped by phase 1 (stop-kubelet), unless the node rebooted since");
        out.commands.push_back(sys("start " + std::string(kKubeletUnit)));
    }
    if (phase1) {
        std::vector<std::string> owed;
        const std::string fresh = "recovery-" + rfc3339_now(true);
        for (const auto& res : kRedeploy) {
            const JournalStep* s = j.step("redeploy-" + res);
            if (!s || over(s->name)) continue;
            owed.push_back(s->name);
            // The reason a started step recorded: patching with it again changes nothing.
            const std::string reason = s->data.count("reason") ? s->data.at("reason") : fresh;
            auto argv = oc_base_args(cfg, root);
            for (auto& a : force_redeployment_args(res, reason))
                argv.push_back(std::move(a));
            out.commands.push_back(sh_command(argv));
        }
        if (!owed.empty())
            out.left.push_back("the control plane not redeployed (" + join(owed, ", ") +
                               "): each patch, then wait until every node is at the new latestAvailableRevision");
    }
    if (did("enable-phase2") && !did("finish")) {
        // As retire_phase2: a node whose backup has the unit enabled keeps it (its /etc is
        // the backup's); the marker abandon removed keeps it from running.
        auto in_backup = offline_unit_enabled(backup_dir, kPhase2Unit);
        if (!in_backup || !*in_backup) {
            out.left.push_back(
                std::string(kPhase2Unit) +
                " enabled by phase 1 (enable-phase2); it no longer runs (recovery/phase2-pending is "
                "gone)" +
                (in_backup ? ""
                           : ", and whether the backup had it enabled cannot be read: " + in_backup.error().message));
            if (in_backup) out.commands.push_back(sys("disable " + std::string(kPhase2Unit)));
        }
    }
    return out;
}

Result<RecoveryOutcome> run_recovery(const Config& cfg, const RecoveryOptions& opts, RecoveryBackends& backends,
                                     Progress& progress, const CancelToken& cancel)
{
    if (opts.resume && opts.restart) return fail(ErrorKind::InvalidArgs, "--resume and --restart exclude each other");
    // A dry run mounts the partition like backup --dry-run, and writes nothing on it.
    auto store = open_store(cfg, opts.root, opts.dry_run ? StoreAccess::Inspect : StoreAccess::Write);
    if (!store) return std::unexpected(store.error());
    return run_with_store(cfg, opts, *store, backends, progress, cancel);
}

Result<RecoveryOutcome> run_recovery(const Config& cfg, const RecoveryOptions& opts, Progress& progress,
                                     const CancelToken& cancel)
{
    RecoveryBackends none;
    return run_recovery(cfg, opts, none, progress, cancel);
}

namespace
{
// The kernel command line; unreadable counts as empty (no upgrade_recovery=phase1).
std::string read_cmdline(const InitrdOptions& io)
{
    auto t = read_file_at(AT_FDCWD, io.cmdline_path, 1 << 16);
    return t ? *t : std::string();
}
} // namespace

Result<InitrdOutcome> initrd_without_config(const Error& config_error, const InitrdOptions& io)
{
    if (cmdline_requests_recovery(read_cmdline(io))) return std::unexpected(config_error);
    log::warning("cannot read the configuration, so no recovery can run in this boot: " + config_error.message +
                 ". Fix it; an armed recovery then runs at the next boot, or with 'upgrade-recovery recover' "
                 "on the running host");
    InitrdOutcome out;
    out.reason = "configuration unreadable: " + config_error.message;
    return out;
}

Result<InitrdOutcome> run_initrd_phase1(const Config& cfg, const InitrdOptions& io, Progress& progress,
                                        const CancelToken& cancel)
{
    InitrdOutcome out;
    const std::string cmdline = read_cmdline(io);
    bool karg = cmdline_requests_recovery(cmdline);

    // An ordinary boot reads the partition's marker and nothing else (initrd_peek.hpp).
    bool known_armed = false;
    if (!karg) {
        auto peek = peek_armed(cfg, io.peek_dir);
        known_armed = peek && *peek == PeekResult::Armed;
        if (!peek) {
            log::warning("could not look at the recovery partition on its own (" + peek.error().message +
                         "); looking through the real root");
        } else if (*peek == PeekResult::NotArmed) {
            out.reason = "not armed";
            return out;
        } else if (*peek == PeekResult::NoPartition && !cfg.allow_plain_directory) {
            out.reason = "no recovery partition: no GPT partition named '" + cfg.partition_label + "'";
            return out;
        }
    }

    // The real /var first (initrd_var.hpp): the recovery partition's mount
    // point and /var/lib/kubelet are in it. Released (detached) on return.
    MountGuard var;
    std::optional<Error> var_error;
    if (auto src = find_real_var(io.root, cmdline); !src) {
        var_error = src.error();
    } else if (*src) {
        if (auto m = mount_real_var(io.root, **src); m) {
            var = std::move(*m);
            log::info("mounted the real /var from " + (*src)->what + " (" + (*src)->origin + ") at " + io.root +
                      "/var until the switch root (the recovery partition and phase 1 live there)");
        } else {
            var_error = m.error();
        }
    }

    // An ordinary boot goes on: a /var problem only stops a recovery.
    auto ordinary_boot = [&](std::string reason) {
        if (var_error) log::warning("the real /var could not be prepared: " + var_error->message);
        out.reason = std::move(reason);
        return out;
    };

    // Whether a recovery is armed cannot be told: unless it is known to be (or asked for
    // on the command line), the boot goes on. A node stuck in emergency.target at a
    // remote site is worse than one booted as it was, with the problem in the journal.
    auto unknown = [&](const Error& e, const std::string& what) -> Result<InitrdOutcome> {
        if (karg || known_armed) return std::unexpected(e);
        log::warning(what + ": " + e.message + "; an armed recovery could not be looked for in this boot");
        return ordinary_boot(what + ": " + e.message);
    };
    auto store = open_store(cfg, io.root, true);
    if (!store) {
        // No partition, nothing armed: the common boot. With the kernel argument it is an error.
        if (!karg && !known_armed &&
            (store.error().kind == ErrorKind::PartitionNotFound || store.error().kind == ErrorKind::NotMounted))
            return ordinary_boot("no recovery partition: " + store.error().message);
        return unknown(store.error(), "recovery partition unusable");
    }
    // Mounted here (no real /var above it was mounted, whose detach would take it
    // along): unmounted on return, so the booted system mounts it with its own unit.
    MountGuard partition_mount;
    if (store->location.mounted_now) partition_mount = MountGuard(store->path());
    auto dir = JournalDir::open(*store, false);
    if (!dir) return unknown(dir.error(), "recovery directory unreadable");
    auto armed = dir->armed();
    if (!armed) return unknown(armed.error(), "armed marker unreadable");
    if (!*armed && !karg) return ordinary_boot("not armed");
    if (var_error)
        return std::unexpected(
            std::move(*var_error)
                .context(
                    "phase 1 cannot run: it would restore into the deployment's own /var, which the real /var hides "
                    "after the switch root"));
    auto journal = dir->load();
    if (!journal) {
        if (journal.error().kind != ErrorKind::Corrupt) return std::unexpected(journal.error());
        // A damaged journal cannot say how far the recovery got. The markers say enough:
        // `armed` stays until the journal records phase1-done, so with it phase 1 may
        // have stopped half-way through restoring the files, and booting that root is
        // the one outcome worse than emergency.target: the boot stops here. Starting
        // phase 1 over unattended is no better: a fresh journal counts a failed verify
        // as "nothing changed yet", ends the recovery and boots the half-restored root.
        // Without `armed` (the kernel argument) but with phase2-pending, phase 1 is done
        // (phase1-done writes the marker before `armed` goes; a start over re-arms
        // first): the boot goes on, as with a readable journal, and phase 2 on the
        // booted host names the damage and its remedy.
        Error e = journal.error();
        e.message = strip_journal_remedy(std::move(e.message));
        const std::string cli = "'upgrade-recovery --root " + io.root;
        if (*armed)
            return std::unexpected(std::move(e).context(
                "recovery of backup " + **armed +
                " is armed, but whether its phase 1 is done cannot be told, and a half-restored root must not boot. "
                "From the emergency shell, " +
                cli + " recover --abandon --force' moves the journal aside (kept as recovery/" + kJournalDamagedPrefix +
                "TIME) and disarms: leaving the shell then boots the root as it is; " + cli + " arm " + **armed +
                "' and 'upgrade-recovery recover --initrd' after it restore the backup from the start"));
        auto p2 = dir->phase2_pending();
        if (p2 && *p2) {
            log::warning("kernel argument upgrade_recovery=phase1: " + e.message + "; phase 1 of recovery " + **p2 +
                         " is done (phase2-pending), so the boot goes on");
            out.reason = "journal damaged; phase 1 of recovery " + **p2 + " is already done";
            return out;
        }
        return std::unexpected(std::move(e).context(
            "kernel argument upgrade_recovery=phase1: whether the latest backup was recovered already cannot be told "
            "(on the running host, 'upgrade-recovery recover --abandon --force' moves the journal aside)"));
    }
    const RecoveryJournal* j = *journal ? &**journal : nullptr;
    bool in_progress = j && recovery_state_in_progress(j->state);
    const JournalStep* next = in_progress ? j->next_step() : nullptr;
    const StepDef* nd = next ? find_step_def(next->name) : nullptr;
    bool phase1_pending = in_progress && nd && nd->phase == 1;
    if (in_progress && !phase1_pending) {
        // Phase 1 is done (phase 2 runs in the booted root); a leftover `armed` goes.
        if (*armed && j->backup_id == **armed) UR_TRY(dir->clear_armed());
        out.reason = "phase 1 of recovery " + j->recovery_id + " is already done";
        return out;
    }
    if (!*armed && !in_progress && j && (j->state == RecoveryState::Complete || j->abandoned)) {
        // The kernel argument outlives the boot it was meant for when it was made
        // persistent. After a recovery that completed, or that someone abandoned to
        // finish by hand, restoring the same backup again would undo what was done
        // since; to recover it after all, arming it says so where the karg cannot.
        auto latest = latest_backup(*store);
        if (latest && *latest && **latest == j->backup_id) {
            const std::string what = j->abandoned ? "was abandoned" : "was already recovered";
            log::warning("kernel argument upgrade_recovery=phase1 ignored: the recovery of backup " + j->backup_id +
                         " " + what + " (" + j->finished + "); remove the argument from the boot entry" +
                         (j->abandoned ? "; to restore that backup after all, run 'upgrade-recovery arm " +
                                             j->backup_id + "' on the running host and reboot"
                                       : std::string()));
            out.reason = "stale kernel argument: backup " + j->backup_id + " " + what;
            return out;
        }
    }
    out.reason = *armed ? "armed with backup " + **armed : std::string("kernel argument upgrade_recovery=phase1");
    RecoveryOptions ro;
    ro.root = io.root;
    ro.initrd = true;
    ro.resume = in_progress;
    ro.boot_id_path = io.boot_id_path;
    // The armed backup is not passed as a named one: a caller's typo changes nothing, but
    // an armed backup that cannot be read ends its recovery (aborted, marker gone), so the
    // next boot does not fail the same way again (choose_backup reads `armed` itself).
    RecoveryBackends be;
    auto r = run_with_store(cfg, ro, *store, be, progress, cancel);
    if (!r) {
        // Nothing of the root changed in this boot: a refusal before the first change (the
        // journal says aborted), or a start that failed before its journal (a full
        // partition). The unchanged root boots, reachable, instead of emergency.target,
        // which needs hands on site; the journal, `status` and the event say why.
        auto after = dir->load();
        const RecoveryJournal* a = after && *after ? &**after : nullptr;
        const bool aborted_now = a && a->state == RecoveryState::Aborted &&
                                 !(j && j->state == RecoveryState::Aborted && j->recovery_id == a->recovery_id);
        const bool not_started = !in_progress && after && (!a || (j && a->recovery_id == j->recovery_id));
        if (!aborted_now && !not_started) return std::unexpected(r.error());
        out.reason = (aborted_now ? "recovery " + a->recovery_id + " aborted before anything changed: "
                                  : std::string("the recovery could not start: ")) +
                     r.error().message + "; the root boots as it was";
        log::error(out.reason);
        return out;
    }
    out.ran = true;
    out.outcome = std::move(*r);
    return out;
}

} // namespace ur
