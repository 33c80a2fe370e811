#include "ostree_state.hpp"

#include "fd.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <libmount/libmount.h>
#include <memory>
#include <ostree.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace ur
{

namespace
{

// ---------------------------------------------------------------- read-only mounts

bool path_exists(const std::string& p)
{
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// Remounts read-only mounts read-write for the duration of an operation and
// puts them back. /sysroot on RHCOS is a read-only *bind* (the filesystem
// itself is writable), so the per-mount flag is flipped alone; the superblock
// is remounted only when it is read-only itself.
class WritableMounts
{
  public:
    WritableMounts() = default;
    WritableMounts(const WritableMounts&) = delete;
    WritableMounts& operator=(const WritableMounts&) = delete;
    WritableMounts(WritableMounts&& o) noexcept : entries_(std::move(o.entries_)) { o.entries_.clear(); }
    ~WritableMounts()
    {
        if (auto r = restore(); !r) std::fprintf(stderr, "upgrade-recovery: %s\n", r.error().message.c_str());
    }

    static Result<WritableMounts> acquire(const std::vector<std::string>& paths)
    {
        WritableMounts g;
        for (const auto& p : paths) {
            if (!path_exists(p)) continue;
            UR_TRY_CTX(g.make_writable(p), "remount " + p + " read-write");
        }
        return g;
    }

    // Back to read-only, most recent first. Idempotent.
    Result<> restore()
    {
        std::string failed;
        while (!entries_.empty()) {
            Entry e = std::move(entries_.back());
            entries_.pop_back();
            if (auto r = put_back(e); !r) {
                if (!failed.empty()) failed += "; ";
                failed += r.error().message;
            }
        }
        if (!failed.empty()) return fail(ErrorKind::Io, failed);
        return {};
    }

  private:
    struct Entry {
        std::string target;
        unsigned long keep = 0; // per-mount flags to preserve (a bind remount replaces them)
        bool superblock = false;
        bool mount_was_ro = false;
    };
    std::vector<Entry> entries_;

    // A read-only remount fails with EBUSY while a file on it is open for
    // writing. libostree closes its fds before we get here, but the FIFREEZE
    // watchdog it forks (and daemonizes) for every write inherits them all,
    // the lock file included, and exits a moment after the write: retry
    // briefly instead of leaving the mount writable.
    static Result<> put_back(const Entry& e)
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            int rc;
            if (e.superblock) {
                // A superblock remount sets the mount's flags too.
                rc = ::mount(nullptr, e.target.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | e.keep, nullptr);
                if (rc == 0 && !e.mount_was_ro)
                    rc = ::mount(nullptr, e.target.c_str(), nullptr, MS_REMOUNT | MS_BIND | e.keep, nullptr);
            } else {
                rc = ::mount(nullptr, e.target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | e.keep, nullptr);
            }
            if (rc == 0) return {};
            if (errno != EBUSY || std::chrono::steady_clock::now() > deadline)
                return fail_errno("remount " + e.target + " read-only again");
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    Result<> make_writable(const std::string& path)
    {
        struct statvfs sv;
        if (::statvfs(path.c_str(), &sv) != 0) return fail_errno("statvfs");
        if (!(sv.f_flag & ST_RDONLY)) return {};

        std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
        if (!real) return fail_errno("realpath");
        std::unique_ptr<libmnt_table, decltype(&mnt_unref_table)> tb(mnt_new_table_from_file("/proc/self/mountinfo"),
                                                                     &mnt_unref_table);
        if (!tb) return fail(ErrorKind::Io, "cannot parse /proc/self/mountinfo");
        libmnt_fs* fs = mnt_table_find_mountpoint(tb.get(), real.get(), MNT_ITER_BACKWARD);
        if (!fs || !mnt_fs_get_target(fs)) return fail(ErrorKind::Io, "no mount found for it");

        Entry e;
        e.target = mnt_fs_get_target(fs);
        for (const auto& x : entries_)
            if (x.target == e.target) return {}; // boot/ on the same mount as the sysroot
        auto has_ro = [](const char* opts) { return opts && mnt_optstr_get_option(opts, "ro", nullptr, nullptr) == 0; };
        bool sb_ro = has_ro(mnt_fs_get_fs_options(fs));
        e.mount_was_ro = has_ro(mnt_fs_get_vfs_options(fs));
        if (sv.f_flag & ST_NOSUID) e.keep |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) e.keep |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) e.keep |= MS_NOEXEC;

        if (sb_ro) {
            if (::mount(nullptr, e.target.c_str(), nullptr, MS_REMOUNT | e.keep, nullptr) != 0)
                return fail_errno("remount " + e.target);
            e.superblock = true;
        } else {
            if (::mount(nullptr, e.target.c_str(), nullptr, MS_REMOUNT | MS_BIND | e.keep, nullptr) != 0)
                return fail_errno("bind remount " + e.target);
        }
        entries_.push_back(e);
        if (::statvfs(path.c_str(), &sv) != 0) return fail_errno("statvfs");
        if (sv.f_flag & ST_RDONLY) return fail(ErrorKind::Io, "still read-only after remounting " + e.target);
        return {};
    }
};

// ---------------------------------------------------------------- libostree helpers

Error gerror(const GError* e, std::string_view what)
{
    ErrorKind kind = ErrorKind::ExternalFailed;
    if (e && e->domain == G_IO_ERROR) {
        switch (e->code) {
        case G_IO_ERROR_NO_SPACE: kind = ErrorKind::NoSpace; break;
        case G_IO_ERROR_NOT_FOUND: kind = ErrorKind::NotFound; break;
        case G_IO_ERROR_PERMISSION_DENIED: kind = ErrorKind::PermissionDenied; break;
        default: break;
        }
    }
    return Error{kind, 0, std::string(what) + ": " + (e ? e->message : "unknown libostree error")};
}

struct SysrootLocation {
    std::string ostree_path;           // what libostree opens
    std::vector<std::string> writable; // mounts to make writable around writes
};

bool same_inode(const std::string& a, const std::string& b)
{
    struct stat sa, sb;
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

SysrootLocation locate(const Config& cfg, const std::string& root)
{
    std::string phys = root_path(root, cfg.sysroot);
    // Live booted host: "/" is the booted deployment and /ostree points into the
    // physical sysroot; only through "/" does libostree find booted and staged.
    if (root_path(root, "/") == "/" && cfg.ostree_booted.empty() && path_exists("/run/ostree-booted") &&
        same_inode("/ostree/repo", phys + "/ostree/repo"))
        return {"/", {phys, "/boot"}};
    return {phys, {phys, phys + "/boot"}};
}

// An opened, loaded OstreeSysroot; unlocks and releases every fd on destruction
// (a read-only remount fails with EBUSY while the lock file is open for writing).
class Sysroot
{
  public:
    Sysroot() = default;
    Sysroot(const Sysroot&) = delete;
    Sysroot& operator=(const Sysroot&) = delete;
    Sysroot(Sysroot&& o) noexcept : sr_(std::exchange(o.sr_, nullptr)), locked_(std::exchange(o.locked_, false)) {}
    ~Sysroot()
    {
        if (!sr_) return;
        if (locked_) ostree_sysroot_unlock(sr_);
        ostree_sysroot_unload(sr_);
        g_object_unref(sr_);
    }

    static Result<Sysroot> open(const std::string& path, bool lock)
    {
        if (!path_exists(path + "/ostree/repo"))
            return fail(ErrorKind::NotFound, "no ostree sysroot at " + path + " (no ostree/repo)");
        Sysroot s;
        g_autoptr(GFile) file = g_file_new_for_path(path.c_str());
        s.sr_ = ostree_sysroot_new(file);
        if (lock) UR_TRY(s.lock());
        UR_TRY(s.load());
        return s;
    }

    OstreeSysroot* get() const { return sr_; }

    Result<> load()
    {
        g_autoptr(GError) err = nullptr;
        if (!ostree_sysroot_load(sr_, nullptr, &err)) return std::unexpected(gerror(err, "load sysroot"));
        return {};
    }

  private:
    OstreeSysroot* sr_ = nullptr;
    bool locked_ = false;

    // rpm-ostreed or another tool may hold the lock for a while; wait, but not forever.
    Result<> lock()
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (;;) {
            gboolean acquired = FALSE;
            g_autoptr(GError) err = nullptr;
            if (!ostree_sysroot_try_lock(sr_, &acquired, &err)) return std::unexpected(gerror(err, "lock sysroot"));
            if (acquired) {
                locked_ = true;
                return {};
            }
            if (std::chrono::steady_clock::now() > deadline)
                return fail(ErrorKind::Busy, "the ostree sysroot is locked by another process (rpm-ostree?)");
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
};

struct Deployments {
    std::unique_ptr<GPtrArray, decltype(&g_ptr_array_unref)> arr{nullptr, &g_ptr_array_unref};
    std::vector<DeploymentInfo> infos; // infos[i] describes arr->pdata[i]
    int booted = -1;                   // index, -1 when unknown

    OstreeDeployment* at(size_t i) const { return static_cast<OstreeDeployment*>(arr->pdata[i]); }
};

// libostree knows the booted deployment only when it runs in the booted system
// ("/"). In the initramfs the root we work on (/sysroot) is the bind mount
// ostree-prepare-root made of the booted deployment's directory, so the root's
// inode names it; a root that is no deployment (a test tree) matches none.
OstreeDeployment* deployment_at_root(OstreeSysroot* sr, GPtrArray* deployments, const std::string& root)
{
    struct stat rs;
    if (root == "/" || ::stat(root.c_str(), &rs) != 0) return nullptr;
    for (guint i = 0; i < deployments->len; ++i) {
        auto* od = static_cast<OstreeDeployment*>(deployments->pdata[i]);
        g_autoptr(GFile) dir = ostree_sysroot_get_deployment_directory(sr, od);
        g_autofree char* path = g_file_get_path(dir);
        struct stat ds;
        if (path && ::stat(path, &ds) == 0 && ds.st_dev == rs.st_dev && ds.st_ino == rs.st_ino) return od;
    }
    return nullptr;
}

Result<Deployments> load_deployments(OstreeSysroot* sr, const Config& cfg, const std::string& root)
{
    Deployments d;
    d.arr.reset(ostree_sysroot_get_deployments(sr));
    OstreeDeployment* booted = nullptr;
    if (cfg.ostree_booted.empty()) {
        booted = ostree_sysroot_get_booted_deployment(sr);
        if (!booted) booted = deployment_at_root(sr, d.arr.get(), root);
    }
    for (guint i = 0; i < d.arr->len; ++i) {
        OstreeDeployment* od = d.at(i);
        DeploymentInfo info;
        info.osname = ostree_deployment_get_osname(od);
        info.checksum = ostree_deployment_get_csum(od);
        info.serial = ostree_deployment_get_deployserial(od);
        info.index = static_cast<int>(i);
        info.pinned = ostree_deployment_is_pinned(od);
        info.staged = ostree_deployment_is_staged(od);
        if (cfg.ostree_booted.empty()) {
            info.booted = booted && ostree_deployment_equal(od, booted);
        } else if (info.id() == cfg.ostree_booted) {
            if (d.booted >= 0)
                return fail(ErrorKind::InvalidArgs,
                            "ostree.booted " + cfg.ostree_booted + " names several deployments");
            info.booted = true;
        }
        if (info.booted) d.booted = static_cast<int>(i);
        d.infos.push_back(std::move(info));
    }
    if (!cfg.ostree_booted.empty() && d.booted < 0)
        return fail(ErrorKind::NotFound, "ostree.booted names " + cfg.ostree_booted + ", which is not deployed");
    return d;
}

Result<> write_deployments(OstreeSysroot* sr, const Deployments& cur, const std::vector<size_t>& keep)
{
    // Last line of defence under the plan logic: pinned and booted deployments stay.
    for (size_t i = 0; i < cur.infos.size(); ++i) {
        const auto& info = cur.infos[i];
        if ((info.pinned || info.booted) && std::find(keep.begin(), keep.end(), i) == keep.end())
            return fail(ErrorKind::Refused, "refusing to remove " + std::string(info.pinned ? "pinned" : "booted") +
                                                " deployment " + info.osname + " " + info.id());
    }
    std::unique_ptr<GPtrArray, decltype(&g_ptr_array_unref)> arr(g_ptr_array_new(), &g_ptr_array_unref);
    for (size_t i : keep)
        g_ptr_array_add(arr.get(), cur.at(i));
    OstreeSysrootWriteDeploymentsOpts opts = {};
    opts.do_postclean = TRUE; // remove the dropped deployment directories and their boot files now
    g_autoptr(GError) err = nullptr;
    if (!ostree_sysroot_write_deployments_with_options(sr, arr.get(), &opts, nullptr, &err))
        return std::unexpected(gerror(err, "write deployments"));
    return {};
}

std::string commit_version(OstreeSysroot* sr, const std::string& checksum)
{
    OstreeRepo* repo = ostree_sysroot_repo(sr);
    g_autoptr(GVariant) commit = nullptr;
    if (!repo || !ostree_repo_load_variant(repo, OSTREE_OBJECT_TYPE_COMMIT, checksum.c_str(), &commit, nullptr))
        return {};
    g_autoptr(GVariant) meta = g_variant_get_child_value(commit, 0);
    g_autoptr(GVariantDict) dict = g_variant_dict_new(meta);
    const char* v = nullptr;
    if (g_variant_dict_lookup(dict, OSTREE_COMMIT_META_KEY_VERSION, "&s", &v) && v) return v;
    return {};
}

// The boot entry's options without ostree= (it names the boot version and changes on every write).
std::string kernel_args(OstreeDeployment* d)
{
    OstreeBootconfigParser* bc = ostree_deployment_get_bootconfig(d);
    const char* opts = bc ? ostree_bootconfig_parser_get(bc, "options") : nullptr;
    if (!opts) return {};
    std::string out;
    std::string_view s(opts);
    while (!s.empty()) {
        size_t sp = s.find(' ');
        std::string_view arg = s.substr(0, sp);
        if (!arg.empty() && !arg.starts_with("ostree=")) {
            if (!out.empty()) out += ' ';
            out += arg;
        }
        if (sp == std::string_view::npos) break;
        s.remove_prefix(sp + 1);
    }
    return out;
}

int find_index(const Deployments& d, const std::string& osname, const std::string& id)
{
    for (size_t i = 0; i < d.infos.size(); ++i)
        if (d.infos[i].osname == osname && d.infos[i].id() == id) return static_cast<int>(i);
    return -1;
}

// The deployments a backup pins one of: the booted one must be known. Shared by
// the backup and its read-only check, so both refuse alike.
Result<Deployments> load_backup_deployments(OstreeSysroot* sr, const Config& cfg, const std::string& root)
{
    auto deps = load_deployments(sr, cfg, root);
    UR_TRY_CTX(deps, "ostree");
    if (deps->booted < 0)
        return fail(ErrorKind::NotFound, "ostree: no booted deployment (not booted into ostree and "
                                         "ostree.booted is not set)");
    return deps;
}

// Run `f` with the sysroot's mounts writable; the restore is checked, and a
// failure of `f` stays the reported error.
template <class F> auto with_writable(const SysrootLocation& loc, F&& f) -> decltype(f())
{
    auto guard = WritableMounts::acquire(loc.writable);
    if (!guard) return std::unexpected(std::move(guard.error()));
    auto r = f();
    auto restored = guard->restore();
    if (!restored) {
        if (r) return std::unexpected(std::move(restored.error()));
        r.error().message += "; also: " + restored.error().message;
    }
    return r;
}

} // namespace

bool ostree_enabled(const Config& cfg, const std::string& root)
{
    if (cfg.ostree_mode == "off") return false;
    if (cfg.ostree_mode == "on") return true;
    return path_exists(root_path(root, cfg.sysroot) + "/ostree/repo");
}

Result<OstreeRecord> ostree_prepare_for_backup(const Config& cfg, const std::string& root, const BeforePin& before_pin)
{
    const SysrootLocation loc = locate(cfg, root);
    return with_writable(loc, [&]() -> Result<OstreeRecord> {
        auto sysroot = Sysroot::open(loc.ostree_path, true);
        UR_TRY_CTX(sysroot, "ostree");
        OstreeSysroot* sr = sysroot->get();
        auto deps = load_backup_deployments(sr, cfg, root);
        if (!deps) return std::unexpected(deps.error());
        const DeploymentInfo booted = deps->infos[static_cast<size_t>(deps->booted)];

        if (!booted.pinned) {
            if (before_pin) {
                OstreeRecord intent;
                intent.present = true;
                intent.osname = booted.osname;
                intent.checksum = booted.checksum;
                intent.serial = booted.serial;
                intent.pinned = true;
                intent.pinned_by_backup = true;
                UR_TRY(before_pin(intent));
            }
            g_autoptr(GError) err = nullptr;
            if (!ostree_sysroot_deployment_set_pinned(sr, deps->at(static_cast<size_t>(deps->booted)), TRUE, &err))
                return std::unexpected(gerror(err, "ostree: pin " + booted.id()));
            // set_pinned rewrites the origin file but not the loaded objects.
            UR_TRY_CTX(sysroot->load(), "ostree");
            deps = load_deployments(sr, cfg, root);
            UR_TRY_CTX(deps, "ostree");
        }

        OstreeRecord rec;
        std::vector<size_t> keep;
        for (size_t i = 0; i < deps->infos.size(); ++i) {
            const auto& d = deps->infos[i];
            if (!d.staged && (d.booted || d.pinned))
                keep.push_back(i);
            else
                rec.removed.push_back(d.id());
        }
        if (!rec.removed.empty()) {
            UR_TRY_CTX(write_deployments(sr, *deps, keep), "ostree");
            UR_TRY_CTX(sysroot->load(), "ostree");
            deps = load_deployments(sr, cfg, root);
            UR_TRY_CTX(deps, "ostree");
        }

        int bi = find_index(*deps, booted.osname, booted.id());
        if (bi < 0) return fail(ErrorKind::Internal, "ostree: the booted deployment vanished while writing");
        OstreeDeployment* od = deps->at(static_cast<size_t>(bi));
        rec.present = true;
        rec.osname = booted.osname;
        rec.checksum = booted.checksum;
        rec.serial = booted.serial;
        rec.version = commit_version(sr, booted.checksum);
        rec.kernel_args = kernel_args(od);
        rec.pinned = deps->infos[static_cast<size_t>(bi)].pinned;
        rec.pinned_by_backup = !booted.pinned;
        if (!rec.pinned) return fail(ErrorKind::Internal, "ostree: " + booted.id() + " is not pinned after pinning");
        return rec;
    });
}

Result<> ostree_check_for_backup(const Config& cfg, const std::string& root)
{
    // No lock and no remount: this changes nothing, as a dry run must not.
    auto sysroot = Sysroot::open(locate(cfg, root).ostree_path, false);
    UR_TRY_CTX(sysroot, "ostree");
    auto deps = load_backup_deployments(sysroot->get(), cfg, root);
    if (!deps) return std::unexpected(deps.error());
    return {};
}

Result<std::vector<std::string>> ostree_release_pins(const Config& cfg, const std::string& root,
                                                     const std::vector<OstreeRecord>& released)
{
    if (released.empty()) return std::vector<std::string>{};
    const SysrootLocation loc = locate(cfg, root);
    return with_writable(loc, [&]() -> Result<std::vector<std::string>> {
        auto sysroot = Sysroot::open(loc.ostree_path, true);
        UR_TRY_CTX(sysroot, "ostree");
        OstreeSysroot* sr = sysroot->get();
        auto deps = load_deployments(sr, cfg, root);
        UR_TRY_CTX(deps, "ostree");
        std::vector<std::string> unpinned;
        for (const auto& rec : released) {
            const DeploymentRef ref{rec.osname, rec.checksum, rec.serial};
            for (size_t i = 0; i < deps->infos.size(); ++i) {
                const DeploymentInfo& d = deps->infos[i];
                if (!d.pinned || !same_deployment(d, ref)) continue;
                g_autoptr(GError) err = nullptr;
                if (!ostree_sysroot_deployment_set_pinned(sr, deps->at(i), FALSE, &err))
                    return std::unexpected(gerror(err, "ostree: unpin " + d.id()));
                unpinned.push_back(d.id());
            }
        }
        return unpinned;
    });
}

Result<std::vector<DeploymentInfo>> ostree_list_deployments(const Config& cfg, const std::string& root)
{
    auto sysroot = Sysroot::open(locate(cfg, root).ostree_path, false);
    UR_TRY_CTX(sysroot, "ostree");
    auto deps = load_deployments(sysroot->get(), cfg, root);
    UR_TRY_CTX(deps, "ostree");
    return std::move(deps->infos);
}

Result<RollbackPlan> compute_rollback_plan(const Config& cfg, const std::string& root, const OstreeRecord& recorded)
{
    DeploymentRef ref{recorded.osname, recorded.checksum, recorded.serial};
    if (!recorded.present) {
        // As the recovery does: nothing to roll back to, the step is skipped.
        RollbackPlan p;
        p.action = RollbackAction::Nothing;
        p.reason = "the backup recorded no ostree deployment (no ostree, or ostree.mode = off when it was taken): "
                   "a recovery skips the platform rollback";
        return p;
    }
    auto list = ostree_list_deployments(cfg, root);
    UR_TRY(list);
    return plan_rollback(*list, ref);
}

Result<ApplyResult> apply_rollback_plan(const Config& cfg, const std::string& root, const OstreeRecord& recorded)
{
    if (!recorded.present) return fail(ErrorKind::Refused, "the backup recorded no ostree deployment");
    const DeploymentRef ref{recorded.osname, recorded.checksum, recorded.serial};
    const SysrootLocation loc = locate(cfg, root);
    return with_writable(loc, [&]() -> Result<ApplyResult> {
        auto sysroot = Sysroot::open(loc.ostree_path, true);
        UR_TRY_CTX(sysroot, "ostree");
        OstreeSysroot* sr = sysroot->get();
        auto deps = load_deployments(sr, cfg, root);
        UR_TRY_CTX(deps, "ostree");

        ApplyResult res;
        res.plan = plan_rollback(deps->infos, ref);
        if (res.plan.action == RollbackAction::Refuse)
            return fail(ErrorKind::Refused, "rollback refused: " + res.plan.reason);

        if (res.plan.changes()) {
            std::vector<size_t> keep;
            for (const auto& d : res.plan.new_order)
                keep.push_back(static_cast<size_t>(d.index));
            for (const auto& d : deps->infos)
                if (std::find(keep.begin(), keep.end(), static_cast<size_t>(d.index)) == keep.end())
                    res.removed.push_back(d.id());
            UR_TRY_CTX(write_deployments(sr, *deps, keep), "ostree");
            res.changed = true;
            UR_TRY_CTX(sysroot->load(), "ostree");
            deps = load_deployments(sr, cfg, root);
            UR_TRY_CTX(deps, "ostree");
        }

        // What the bootloader starts next must be the recorded deployment, and nothing may be staged.
        if (deps->infos.empty() || deps->infos[0].staged || deps->infos[0].osname != ref.osname ||
            deps->infos[0].id() != ref.id())
            return fail(ErrorKind::Internal, "ostree: after writing, the default deployment is not " + ref.id());
        res.default_deployment = deps->infos[0];
        return res;
    });
}

} // namespace ur
