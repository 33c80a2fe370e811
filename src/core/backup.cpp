#include "backup.hpp"

#include "backup_attempt.hpp"
#include "backup_removal.hpp"
#include "cluster_backup.hpp"
#include "compat_script.hpp"
#include "earlier_tooling.hpp"
#include "failpoint.hpp"
#include "file_copy.hpp"
#include "fsmeta.hpp"
#include "host_info.hpp"
#include "hostfs.hpp"
#include "image_backup.hpp"
#include "log.hpp"
#include "machineconfig.hpp"
#include "manifest.hpp"
#include "ostree_state.hpp"
#include "prefetch.hpp"
#include "recovery_journal.hpp"
#include "recovery_karg.hpp"
#include "store.hpp"
#include "text.hpp"
#include "thread_pool.hpp"
#include "ur-build-config.h"
#include "walk.hpp"
#include "writeback_pacer.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <fcntl.h>
#include <map>
#include <unistd.h>

namespace ur
{

namespace
{

using Clock = std::chrono::steady_clock;

// ~40 MiB of xfs mapping reservations at most between two background syncs.
constexpr uint64_t kFilesPerWriteback = 2048;

// The context of the ostree and etcd steps' errors, which the dry run's checks
// of those steps give too: the same message either way.
constexpr std::string_view kPinContext = "pin the booted deployment";
constexpr std::string_view kSnapshotContext = "etcd snapshot";

// Reads the previous generation's manifest in step with a walk (both are in
// compare_paths order) to find the entry for a path without holding it all.
class PrevCursor
{
  public:
    PrevCursor() = default;
    explicit PrevCursor(ManifestReader r) : reader_(std::move(r)), active_(true) { advance(); }

    const Entry* find(const std::string& path)
    {
        while (active_ && cur_ && compare_paths(cur_->path, path) < 0)
            advance();
        if (active_ && cur_ && cur_->path == path) return &*cur_;
        return nullptr;
    }

  private:
    void advance()
    {
        auto n = reader_->next();
        if (!n || !*n) {
            // A damaged previous manifest only costs sharing, never correctness.
            active_ = false;
            cur_.reset();
            return;
        }
        cur_ = std::move(**n);
    }
    std::optional<ManifestReader> reader_;
    std::optional<Entry> cur_;
    bool active_ = false;
};

// A regular file whose previous copy can be hard-linked instead of copied.
bool shareable(const Entry& prev, const struct stat& st)
{
    return prev.type == FileType::Reg && !prev.digest.empty() && unchanged_since(prev, st);
}

struct TreeSource {
    TreeSpec spec;
    SharedFd fd;                      // the tree root (or the host root for extras)
    std::vector<std::string> include; // extras: selected paths relative to the host root
};

struct ScanTotals {
    uint64_t entries = 0;
    uint64_t dirs = 0;
    uint64_t total_bytes = 0;
    uint64_t new_bytes = 0; // bytes that must be written (allocated size of changed files)
    uint64_t new_files = 0;
    uint64_t shared_bytes = 0;
};

WalkOptions walk_options(const TreeSource& t)
{
    WalkOptions o;
    o.one_file_system = t.spec.one_file_system;
    o.exclude = t.spec.exclude;
    o.include = t.include;
    return o;
}

// Why the previous generation's manifest cannot be trusted for sharing, if it cannot:
// it must be the one its metadata names. An edited or damaged manifest would hand
// wrong digests (or the wrong files) to the new backup.
std::optional<std::string> previous_manifest_problem(const Store& store, const std::string& id)
{
    auto meta = read_metadata(store, id);
    if (!meta) return meta.error().message;
    auto gen = open_at(store.backups_fd.get(), id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!gen) return gen.error().message;
    Buffer buf(kCopyBufferSize);
    auto sha = file_sha256(gen->get(), kManifestFile, buf);
    if (!sha) return sha.error().message;
    if (*sha != meta->manifest_sha256) return "its manifest does not match the sha256 its metadata records";
    return std::nullopt;
}

// Stat-only pass: what the copy will write, counting what it will share (W17).
// Without sharing (backup.share_unchanged = false) every file counts as new.
Result<ScanTotals> scan(const std::vector<TreeSource>& trees, const std::optional<std::string>& prev_manifest,
                        bool share, int backups_fd, const CancelToken& cancel)
{
    ScanTotals t;
    PrevCursor prev;
    if (prev_manifest && share) {
        auto r = ManifestReader::open(backups_fd, *prev_manifest);
        if (r) prev = PrevCursor(std::move(*r));
    }
    std::map<std::pair<dev_t, ino_t>, bool> seen_links;
    for (const auto& tree : trees) {
        WalkVisitor v;
        v.enter = [&](const WalkItem& it, const SharedFd&) -> Result<WalkAction> {
            t.entries++;
            if (S_ISDIR(it.st.st_mode)) {
                t.dirs++;
                return WalkAction::Descend;
            }
            if (!S_ISREG(it.st.st_mode)) return WalkAction::Skip;
            uint64_t size = static_cast<uint64_t>(it.st.st_size);
            t.total_bytes += size;
            if (it.st.st_nlink > 1 && !seen_links.emplace(std::make_pair(it.st.st_dev, it.st.st_ino), true).second)
                return WalkAction::Skip;
            const Entry* p = prev.find(it.rel);
            if (p && shareable(*p, it.st)) {
                t.shared_bytes += size;
            } else {
                uint64_t alloc = static_cast<uint64_t>(it.st.st_blocks) * 512;
                t.new_bytes += std::min<uint64_t>(alloc, (size + 4095) & ~4095ull);
                t.new_files++;
            }
            return WalkAction::Skip;
        };
        UR_TRY_CTX(walk_tree(tree.fd, ".", tree.spec.name, walk_options(tree), v, &cancel), "scan " + tree.spec.path);
    }
    return t;
}

struct LinkLeader {
    SharedFd dst_dir;
    std::string name;
    std::string rel;
    std::optional<Entry> entry; // set once the leader's copy completed
};

// One slot of the ordered window: entries are written to the manifest in walk
// order although regular files are copied in parallel.
struct Slot {
    std::string rel;
    std::optional<std::future<Result<CopiedFile>>> copy;
    std::optional<Entry> ready;
    // Directory post-order fixup: metadata and times once all children exist.
    SharedFd dir_fd;
    std::optional<Entry> dir_entry;
    // Hard link to an earlier file of the same generation.
    std::optional<std::pair<dev_t, ino_t>> link_key;
    SharedFd link_src; // source directory, for when the group's first name vanished
    SharedFd link_dir;
    std::string link_name;
    std::pair<dev_t, ino_t> leader_key{};
    bool is_leader = false;
};

class TreeCopier
{
  public:
    TreeCopier(const Config& cfg, ManifestWriter& manifest, PrevCursor& prev, ThreadPool& pool, WritebackPacer& pacer,
               Progress& progress, const CancelToken& cancel, BackupMetadata& meta, uint64_t total_entries,
               uint64_t total_new_bytes)
        : cfg_(cfg), manifest_(manifest), prev_(prev), pool_(pool), pacer_(pacer), progress_(progress), cancel_(cancel),
          meta_(meta), total_entries_(total_entries ? total_entries : 1),
          total_bytes_(total_new_bytes ? total_new_bytes : 1)
    {
        bufs_.resize(pool.size() + 1);
    }

    Result<> copy_tree(const TreeSource& tree, const SharedFd& staging, const SharedFd& prev_gen)
    {
        TreeRecord rec{tree.spec.name, tree.spec.path, 0, 0, tree.spec.exclude};
        levels_.clear();
        cfg_one_fs_ = tree.spec.one_file_system;
        WalkVisitor v;
        v.vanished = [&](const std::string& rel) { warn("vanished during the backup: " + rel); };
        v.enter = [&](const WalkItem& it, const SharedFd& src_dir) -> Result<WalkAction> {
            rec.files++;
            if (S_ISREG(it.st.st_mode)) rec.bytes += static_cast<uint64_t>(it.st.st_size);
            return enter(it, src_dir, staging, prev_gen, tree.spec.name);
        };
        v.leave = [&](const WalkItem& it, const SharedFd&) -> Result<> { return leave(it); };
        auto r = walk_tree(tree.fd, ".", tree.spec.name, walk_options(tree), v, &cancel_);
        if (!r) {
            abandon();
            return std::unexpected(std::move(r.error()).context("copy " + tree.spec.path));
        }
        UR_TRY(drain(0));
        meta_.trees.push_back(rec);
        return {};
    }

    void abandon()
    {
        // Wait for in-flight copies so no worker writes after we return.
        for (auto& s : window_)
            if (s.copy) s.copy->wait();
        window_.clear();
    }

    uint64_t copied_bytes = 0;
    uint64_t shared_bytes = 0;
    uint64_t shared_files = 0;
    uint64_t damaged_previous = 0; // copies in the previous generation that no longer match its manifest

  private:
    struct Level {
        SharedFd dst;
        SharedFd prev; // same directory in the previous generation, if any
    };

    void warn(const std::string& w)
    {
        progress_.warning(w);
        if (meta_.warnings.size() < 1000) meta_.warnings.push_back(w);
    }

    // Links the previous generation's copy of `name` into the new one, unless that copy
    // no longer has the metadata its manifest recorded (changed or truncated on the
    // partition since): linking it would hand the damage on to every later backup.
    bool share_previous(const Level& parent, const std::string& name, const Entry& p)
    {
        struct stat cs;
        if (::fstatat(parent.prev->get(), name.c_str(), &cs, AT_SYMLINK_NOFOLLOW) < 0) return false;
        if (!copy_matches(p, cs)) {
            if (damaged_previous++ < 10)
                warn("previous backup " + meta_.previous + ": " + p.path +
                     " differs from its manifest; copied again instead of shared (run 'upgrade-recovery verify " +
                     meta_.previous + "')");
            return false;
        }
        return ::linkat(parent.prev->get(), name.c_str(), parent.dst->get(), name.c_str(), 0) == 0;
    }

    Result<WalkAction> enter(const WalkItem& it, const SharedFd& src_dir, const SharedFd& staging,
                             const SharedFd& prev_gen, const std::string& tree_name)
    {
        done_entries_++;
        const Entry* p = prev_.find(it.rel);
        const bool root = it.depth == 0;
        const Level parent = root ? Level{staging, prev_gen} : levels_[static_cast<size_t>(it.depth - 1)];
        const std::string name = root ? tree_name : it.name;
        const int src_parent = it.parent->get();

        Entry e;
        e.path = it.rel;
        entry_from_stat(e, it.st);

        if (S_ISDIR(it.st.st_mode)) {
            if (p && unchanged_since(*p, it.st)) {
                e.xattrs = p->xattrs;
            } else {
                auto x = read_xattrs(src_dir->get(), false);
                if (!x) return std::unexpected(std::move(x.error()).context("xattrs of '" + it.rel + "'"));
                e.xattrs = std::move(*x);
            }
            if (it.other_fs && cfg_one_fs_) e.flags |= kMountPoint;
            if (::mkdirat(parent.dst->get(), name.c_str(), 0700) < 0)
                return fail_errno("create directory '" + it.rel + "'");
            auto d = open_at(parent.dst->get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (!d) return std::unexpected(d.error());
            Level lv{share(std::move(*d)), nullptr};
            if (parent.prev && p && p->type == FileType::Dir) {
                auto pd = open_at(parent.prev->get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                if (pd) lv.prev = share(std::move(*pd));
            }
            if (levels_.size() <= static_cast<size_t>(it.depth)) levels_.resize(static_cast<size_t>(it.depth) + 1);
            levels_[static_cast<size_t>(it.depth)] = lv;
            Slot s;
            s.rel = it.rel;
            s.ready = e;
            UR_TRY(push(std::move(s)));
            return WalkAction::Descend;
        }

        if (S_ISREG(it.st.st_mode)) {
            std::pair<dev_t, ino_t> key{it.st.st_dev, it.st.st_ino};
            if (it.st.st_nlink > 1) {
                auto lt = leaders_.find(key);
                if (lt != leaders_.end()) {
                    Slot s;
                    s.rel = it.rel;
                    s.link_key = key;
                    s.link_src = it.parent;
                    s.link_dir = parent.dst;
                    s.link_name = name;
                    UR_TRY(push(std::move(s)));
                    return WalkAction::Skip;
                }
                leaders_[key] = LinkLeader{parent.dst, name, it.rel, std::nullopt};
            }
            Slot s;
            s.rel = it.rel;
            if (it.st.st_nlink > 1) {
                s.is_leader = true;
                s.leader_key = key;
            }
            if (p && parent.prev && cfg_.share_unchanged && shareable(*p, it.st) && share_previous(parent, name, *p)) {
                Entry shared = *p;
                shared.link.clear();
                shared.flags &= ~static_cast<uint32_t>(kLinkLeader); // set again if it leads a group now
                s.ready = std::move(shared);
                shared_bytes += p->size;
                shared_files++;
            } else {
                SharedFd src_keep = it.parent;
                SharedFd dst_keep = parent.dst;
                unsigned retries = cfg_.change_retries;
                s.copy = pool_.submit([this, src_keep, dst_keep, name, retries](unsigned w) -> Result<CopiedFile> {
                    if (auto c = cancel_.check(); !c) return std::unexpected(c.error());
                    failpoint("backup.copy-file");
                    auto c = copy_regular_file(src_keep->get(), name, dst_keep->get(), retries, bufs_[w]);
                    pacer_.wrote_file();
                    return c;
                });
            }
            UR_TRY(push(std::move(s)));
            return WalkAction::Skip;
        }

        // Symlinks, devices, fifos, sockets: done inline; unchanged ones are
        // shared like files (a hard link to a symlink links the symlink).
        if (p && parent.prev && cfg_.share_unchanged && unchanged_since(*p, it.st) &&
            share_previous(parent, name, *p)) {
            Slot s;
            s.rel = it.rel;
            s.ready = *p;
            UR_TRY(push(std::move(s)));
            return WalkAction::Skip;
        }
        if (S_ISLNK(it.st.st_mode)) {
            // A full buffer may be a cut target (the link changed since the stat, or
            // the filesystem reports no size): read again with more room.
            std::string target(static_cast<size_t>(it.st.st_size) + 1, '\0');
            ssize_t n;
            while ((n = ::readlinkat(src_parent, it.name.c_str(), target.data(), target.size())) >= 0 &&
                   static_cast<size_t>(n) == target.size() && target.size() < (1u << 20))
                target.resize(target.size() * 2 + 256);
            if (n >= 0 && static_cast<size_t>(n) == target.size())
                return fail(ErrorKind::Io, "the target of symlink '" + it.rel + "' is longer than 1 MiB");
            if (n < 0) {
                if (errno == ENOENT) {
                    warn("vanished during the backup: " + it.rel);
                    return WalkAction::Skip;
                }
                return fail_errno("read link '" + it.rel + "'");
            }
            target.resize(static_cast<size_t>(n));
            e.target = target;
            e.size = target.size();
            if (::symlinkat(target.c_str(), parent.dst->get(), name.c_str()) < 0)
                return fail_errno("create symlink '" + it.rel + "'");
        } else {
            if (::mknodat(parent.dst->get(), name.c_str(), file_type_to_mode(e.type) | 0600,
                          static_cast<dev_t>(e.rdev)) < 0)
                return fail_errno("create node '" + it.rel + "'");
        }
        auto pfd = open_at(src_parent, it.name, O_PATH | O_NOFOLLOW);
        if (!pfd) {
            if (pfd.error().err == ENOENT) {
                warn("vanished during the backup: " + it.rel);
                ::unlinkat(parent.dst->get(), name.c_str(), 0);
                return WalkAction::Skip;
            }
            return std::unexpected(pfd.error());
        }
        auto x = read_xattrs(pfd->get(), true);
        if (!x) return std::unexpected(std::move(x.error()).context("xattrs of '" + it.rel + "'"));
        e.xattrs = std::move(*x);
        UR_TRY_CTX(apply_metadata(parent.dst->get(), name, -1, e, Inode::Fresh), "metadata of '" + it.rel + "'");
        Slot s;
        s.rel = it.rel;
        s.ready = std::move(e);
        UR_TRY(push(std::move(s)));
        return WalkAction::Skip;
    }

    Result<> leave(const WalkItem& it)
    {
        Slot s;
        s.dir_fd = levels_[static_cast<size_t>(it.depth)].dst;
        Entry e;
        e.path = it.rel;
        entry_from_stat(e, it.st);
        s.dir_entry = std::move(e);
        return push(std::move(s));
    }

    Result<> push(Slot s)
    {
        window_.push_back(std::move(s));
        return drain(kWindow);
    }

    // Complete slots from the front until at most `keep` remain.
    Result<> drain(size_t keep)
    {
        while (window_.size() > keep) {
            Slot s = std::move(window_.front());
            window_.pop_front();
            auto r = complete(s);
            if (!r) {
                abandon();
                return r;
            }
        }
        return {};
    }

    Result<> complete(Slot& s)
    {
        if (s.dir_entry) {
            // Owner, xattrs (read at entry), mode and times, now that every child exists.
            Entry want = *s.dir_entry;
            auto it = dir_xattrs_.find(want.path);
            if (it != dir_xattrs_.end()) {
                want.xattrs = std::move(it->second);
                dir_xattrs_.erase(it);
            }
            UR_TRY_CTX(apply_metadata(AT_FDCWD, ".", s.dir_fd->get(), want, Inode::Fresh),
                       "metadata of '" + want.path + "'");
            return {};
        }
        Entry e;
        if (s.link_key) {
            auto lt = leaders_.find(*s.link_key);
            bool own_copy = lt == leaders_.end() || !lt->second.entry; // the group's first name vanished
            if (!own_copy) {
                auto& leader = lt->second;
                if (::linkat(leader.dst_dir->get(), leader.name.c_str(), s.link_dir->get(), s.link_name.c_str(), 0) ==
                    0) {
                    e = *leader.entry;
                    e.path = s.rel;
                    e.link = leader.rel;
                    e.flags &= ~static_cast<uint32_t>(kLinkLeader);
                } else if (errno == EMLINK) {
                    // The store's filesystem takes no more links to that inode (ext4: 65,000,
                    // reached sooner when the leader is shared with the previous backup's).
                    own_copy = true;
                } else {
                    return fail_errno("hard link '" + s.rel + "'");
                }
            }
            if (own_copy) {
                // Copied on its own, and the group's later names link to this copy.
                auto c = copy_regular_file(s.link_src->get(), s.link_name, s.link_dir->get(), cfg_.change_retries,
                                           bufs_.back());
                if (!c) return std::unexpected(std::move(c.error()).context("copy '" + s.rel + "'"));
                if (c->vanished) {
                    warn("vanished during the backup: " + s.rel);
                    return {};
                }
                c->entry.path = s.rel;
                c->entry.flags |= kLinkLeader; // the group's first name now: the later ones link to it
                copied_bytes += c->written;
                UR_TRY(manifest_.add(c->entry));
                leaders_[*s.link_key] = LinkLeader{s.link_dir, s.link_name, s.rel, c->entry};
                return {};
            }
        } else if (s.copy) {
            auto r = s.copy->get();
            if (!r) return std::unexpected(std::move(r.error()).context("copy '" + s.rel + "'"));
            if (r->vanished) {
                warn("vanished during the backup: " + s.rel);
                if (s.is_leader) leaders_.erase(s.leader_key); // followers then copy on their own
                return {};
            }
            if (r->entry.flags & kChangedDuringCopy)
                warn("kept changing during the backup (copied as last read): " + s.rel);
            copied_bytes += r->written;
            e = std::move(r->entry);
            e.path = s.rel;
            copied_done_ += r->written;
        } else {
            e = std::move(*s.ready);
            if (e.type == FileType::Dir) dir_xattrs_[e.path] = e.xattrs;
        }
        if (s.is_leader) {
            e.flags |= kLinkLeader;
            leaders_[s.leader_key].entry = e;
        }
        UR_TRY(manifest_.add(e));
        report();
        return {};
    }

    void report()
    {
        // Entries count for a quarter of the work, bytes for the rest.
        double f = 0.25 * static_cast<double>(done_entries_) / static_cast<double>(total_entries_) +
                   0.75 * static_cast<double>(copied_done_) / static_cast<double>(total_bytes_);
        unsigned pct = 10 + static_cast<unsigned>(std::min(1.0, f) * 85.0);
        if (pct != last_pct_) {
            last_pct_ = pct;
            progress_.percent(pct);
        }
    }

    static constexpr size_t kWindow = 512;
    const Config& cfg_;
    ManifestWriter& manifest_;
    PrevCursor& prev_;
    ThreadPool& pool_;
    WritebackPacer& pacer_;
    Progress& progress_;
    const CancelToken& cancel_;
    BackupMetadata& meta_;
    uint64_t total_entries_;
    uint64_t total_bytes_;
    uint64_t done_entries_ = 0;
    uint64_t copied_done_ = 0;
    unsigned last_pct_ = 0;
    bool cfg_one_fs_ = true;
    std::vector<Buffer> bufs_;
    std::vector<Level> levels_;
    std::deque<Slot> window_;
    std::map<std::pair<dev_t, ino_t>, LinkLeader> leaders_;
    std::map<std::string, std::vector<Xattr>> dir_xattrs_;
};

std::string hostname_of(const std::string& root)
{
    // Inside the root: its /etc may be a symlink (absolute ones mean the root's).
    std::string s;
    if (auto h = read_host_file(root, "/etc/hostname", 4096); h) s = *h;
    if (s.empty() && root_path(root, "/") == "/") { // this host's name only for this host
        char buf[256] = {};
        gethostname(buf, sizeof buf - 1);
        s = buf;
    }
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string self_binary()
{
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        std::string p(buf, static_cast<size_t>(n));
        if (p.size() >= 17 && p.compare(p.size() - 17, 17, "/upgrade-recovery") == 0) return p;
    }
    return std::string(UR_BINDIR) + "/upgrade-recovery";
}

} // namespace

Error no_space_error(const BackupEstimate& e)
{
    return Error{ErrorKind::NoSpace, 0,
                 "not enough space on " + e.store + ": " + human_size(e.free_bytes) + " free, the backup needs " +
                     human_size(e.need_bytes) + " (" + human_size(e.new_bytes) + " of new file data in " +
                     std::to_string(e.new_files) + " files, " + human_size(e.shared_bytes) +
                     " shared with the previous backup, " + human_size(e.cluster_bytes) + " for etcd, " +
                     (e.images_bytes ? human_size(e.images_bytes) + " of control-plane images, " : std::string()) +
                     human_size(e.metadata_bytes) + " of metadata, " + human_size(e.margin_bytes) +
                     " margin). Delete older backups ('upgrade-recovery delete ID') or lower "
                     "backup.free_space_margin." +
                     (e.earlier_backup.empty() ? std::string() : " Besides, " + e.earlier_backup + ".")};
}

namespace
{

// A requested id the store cannot take: check_requested_backup_id's reasons, or the
// name of a generation that is not a backup (damaged, unreadable).
Result<> check_id_for_store(const std::string& id, const Generations& g)
{
    UR_TRY(check_requested_backup_id(id, g.backups, time(nullptr)));
    if (g.has(id))
        return fail(ErrorKind::InvalidArgs,
                    "backup id '" + id + "' is taken by a damaged generation ('upgrade-recovery list' shows it)");
    return {};
}

// Everything after the lock. `chosen_id` learns the new generation's id.
namespace
{
// The default trees (/etc, /usr/local, /var/lib/kubelet) no configured tree holds:
// by name (the tree's path or a directory above it), or where the host has them,
// symlinks resolved inside the root (RHCOS has /usr/local -> ../var/usrlocal, so a
// tree at /var/usrlocal holds it).
std::vector<std::string> default_trees_left_out(const Config& cfg, const std::string& root)
{
    auto where = [&](const std::string& path) -> std::optional<std::string> {
        auto fd = open_host(root, path, O_PATH | O_DIRECTORY);
        if (!fd) return std::nullopt;
        auto p = fd_path(fd->get());
        return p ? std::optional<std::string>(*p) : std::nullopt;
    };
    std::vector<std::string> out;
    for (const auto& d : Config::default_trees()) {
        const auto d_real = where(d.path);
        const bool held = std::any_of(cfg.trees.begin(), cfg.trees.end(), [&](const TreeSpec& t) {
            if (path_within(lexical_path(d.path), lexical_path(t.path))) return true;
            const auto t_real = d_real ? where(t.path) : std::nullopt;
            return t_real && path_within(*d_real, *t_real);
        });
        if (!held) out.push_back(d.path);
    }
    return out;
}
} // namespace

Result<BackupResult> take_backup(const Config& cfg, const BackupOptions& opts, const Store& store, Clock::time_point t0,
                                 std::string& chosen_id, Progress& progress, const CancelToken& cancel)
{
    auto rec = recovery_in_progress(store);
    if (!rec) return std::unexpected(std::move(rec.error()).context("cannot tell whether a recovery is in progress"));
    if (*rec)
        return fail(ErrorKind::RecoveryInProgress,
                    "a recovery is in progress on " + store.path() +
                        "; a backup now could replace the generation being recovered (see 'upgrade-recovery status'; "
                        "'upgrade-recovery disarm' cancels an armed recovery, 'recover --abandon' ends one)");
    auto earlier = find_earlier_files(store);
    if (!earlier)
        return std::unexpected(std::move(earlier.error()).context("cannot tell whether a recovery is in progress"));
    if (earlier->progress) return std::unexpected(earlier_recovery_refusal(store, *earlier, kEarlierRefusesBackup));
    if (!opts.dry_run) {
        // With the ostree pins an interrupted delete left (backup_removal).
        auto left = remove_leftovers(cfg, opts.root, store);
        if (!left) return std::unexpected(left.error());
        if (left->leftovers)
            log::info("removed " + std::to_string(left->leftovers) +
                      " incomplete backup(s) or delete(s) left by an interrupted run");
        if (!left->warning.empty()) progress.warning(left->warning);
        if (auto t = remove_stale_store_temporaries(store); !t)
            log::warning("could not remove the temporaries of an interrupted write: " + t.error().message);
        else if (*t)
            log::info("removed " + std::to_string(*t) + " temporary file(s) left by an interrupted write");
    }

    auto generations = scan_generations(store);
    if (!generations) return std::unexpected(generations.error());
    const std::vector<std::string>& ids = generations->backups;
    // A generation that cannot be read now is no reason to go without a backup before an upgrade.
    for (const auto& u : generations->unreadable)
        progress.warning("backup " + u.id + " cannot be read (" + u.error.message +
                         "): not shared from, counted or pruned until it reads again");
    // Names that are not backups (list_backups) neither order nor share; they only keep their names.
    auto taken = [&](const std::string& i) { return generations->has(i); };
    // The generations are the truth and `latest` only names the newest: a damaged
    // link is shared from the newest backup instead, and publishing sets it again.
    auto latest = read_latest(store);
    if (!latest) return std::unexpected(latest.error());
    // Publishing renames a new link over it, which a directory refuses: refused
    // now, before anything is written, rather than after the copy.
    if (latest->directory) return std::unexpected(latest_error(store, *latest));
    std::optional<std::string> latest_id = latest->id;
    std::string latest_damage = latest->damage;
    if (latest_id && std::find(ids.begin(), ids.end(), *latest_id) == ids.end()) {
        latest_damage = "names " + *latest_id + ", which is not a complete backup";
        latest_id.reset();
    }
    if (!latest_damage.empty() && !ids.empty()) latest_id = ids.back();
    // An automatic id is new and in order by construction, and never a damaged one's
    // name; a requested one is checked.
    std::string id = opts.id ? *opts.id : make_backup_id(time(nullptr), ids);
    for (std::vector<std::string> before = ids; !opts.id && taken(id);) {
        before.push_back(id);
        id = make_backup_id(time(nullptr), before);
    }
    if (opts.id) UR_TRY(check_id_for_store(id, *generations));
    chosen_id = id;

    BackupMetadata meta;
    meta.id = id;
    meta.created = rfc3339_now();
    meta.host = hostname_of(opts.root);
    meta.machine_id = machine_id_of(opts.root);
    meta.tool_version = UR_VERSION;
    if (!opts.dry_run)
        log::event(log::kBackupStarted, log::Level::Info, "backup " + id + " started on " + store.path(),
                   {{"BACKUP_ID", id}, {"STEP", "start"}});

    if (!latest_damage.empty()) {
        std::string share = latest_id ? " and share files with the newest backup, " + *latest_id : "";
        meta.warnings.push_back("'" + store.path() + "/latest' " + latest_damage + "; this backup " +
                                (opts.dry_run ? "would" : "will") + " set it again" + share);
        progress.warning(meta.warnings.back());
    }

    // A [[backup.trees]] list replaces the default one whole (documented), so a
    // drop-in naming one tree silently dropped /etc, /usr/local or /var/lib/kubelet
    // from every backup, and from what a recovery puts back. Said, not refused:
    // leaving one out may be meant (the man page's example drops kubelet).
    {
        std::vector<std::string> uncovered = default_trees_left_out(cfg, opts.root);
        if (!uncovered.empty()) {
            const bool one = uncovered.size() == 1;
            meta.warnings.push_back("backup.trees leaves out " + join(uncovered, ", ") + ": " +
                                    (one ? "it is" : "they are") + " not in this backup, and a recovery will not " +
                                    "restore " + (one ? "it" : "them") +
                                    " (a [[backup.trees]] list replaces the default trees /etc, /usr/local and " +
                                    "/var/lib/kubelet; list again the ones to keep)");
            progress.warning(meta.warnings.back());
        }
    }

    // A boot entry that keeps upgrade_recovery=phase1 restores this backup at the next
    // boot, over the upgrade it is taken for (recovery_karg.hpp).
    if (auto w = persistent_karg_warning(opts.root); !w.empty()) {
        meta.warnings.push_back(std::move(w));
        progress.warning(meta.warnings.back());
    }

    // Sources, with the MachineConfig files outside the trees as one more tree.
    auto rootfd_r = open_at(AT_FDCWD, opts.root, O_RDONLY | O_DIRECTORY);
    if (!rootfd_r) return std::unexpected(std::move(rootfd_r.error()).context("host root"));
    SharedFd rootfd = share(std::move(*rootfd_r));
    std::vector<TreeSource> trees;
    for (const auto& spec : cfg.trees) {
        auto fd = open_in_root(rootfd->get(), spec.path, O_RDONLY | O_DIRECTORY);
        if (!fd) {
            if (fd.error().err == ENOENT) {
                meta.warnings.push_back("tree " + spec.path + " does not exist on this host; not backed up");
                progress.warning(meta.warnings.back());
                continue;
            }
            return std::unexpected(std::move(fd.error()).context("tree " + spec.path));
        }
        trees.push_back({spec, share(std::move(*fd)), {}});
    }
    auto mc = read_machineconfig_files(cfg, opts.root);
    if (!mc) return std::unexpected(std::move(mc.error()).context("MachineConfig files"));
    if (!mc->config_present) {
        // W6: said once per backup, not silently taken as "nothing outside the trees".
        meta.warnings.push_back("no MachineConfig at " + cfg.machineconfig_current +
                                ": files it places outside the backed-up trees are not in this backup (on an "
                                "MCO-managed node, machineconfig.required = true makes this an error)");
        progress.warning(meta.warnings.back());
    }
    for (const auto& m : mc->missing) {
        meta.warnings.push_back("MachineConfig file missing on disk: " + m);
        progress.warning(meta.warnings.back());
    }
    meta.mc_files = mc->outside;
    meta.mc_missing = mc->missing;
    {
        TreeSource extras{{kExtrasTree, "/", {}, false}, rootfd, {}};
        for (const auto& f : mc->copy)
            extras.include.push_back(f.substr(1));
        if (!extras.include.empty()) trees.push_back(std::move(extras));
    }
    std::sort(trees.begin(), trees.end(),
              [](const TreeSource& a, const TreeSource& b) { return compare_paths(a.spec.name, b.spec.name) < 0; });

    // Space check before anything is written (W17).
    progress.stage("estimate space");
    std::optional<std::string> prev_manifest;
    if (latest_id && cfg.share_unchanged) {
        if (auto bad = previous_manifest_problem(store, *latest_id)) {
            meta.warnings.push_back("previous backup " + *latest_id + ": " + *bad +
                                    "; nothing is shared with it, every file is copied (run 'upgrade-recovery "
                                    "verify " +
                                    *latest_id + "')");
            progress.warning(meta.warnings.back());
        } else {
            prev_manifest = *latest_id + "/" + kManifestFile;
        }
    }
    // The scan's cold walk is the slow part of a repeated backup: read ahead of
    // it, and of the copy's hard links into the previous generation (popped last).
    Prefetcher prefetch(kPrefetchThreads);
    if (latest_id && !opts.dry_run) prefetch.add(store.backups_fd.get(), *latest_id); // only the copy links into it
    for (const auto& t : trees)
        if (t.include.empty()) prefetch.add(t.fd->get(), ".");
    auto totals = scan(trees, prev_manifest, cfg.share_unchanged, store.backups_fd.get(), cancel);
    if (!totals) return std::unexpected(totals.error());
    BackupEstimate est;
    est.store = store.path();
    if (prev_manifest)
        est.previous = *latest_id;
    else
        est.unshared = !latest_id             ? "no earlier backup"
                       : !cfg.share_unchanged ? "backup.share_unchanged is off"
                                              : "backup " + *latest_id + " cannot be shared with, see the warning";
    est.entries = totals->entries;
    est.total_bytes = totals->total_bytes;
    est.new_files = totals->new_files;
    est.new_bytes = totals->new_bytes;
    est.shared_bytes = totals->shared_bytes;
    bool want_cluster = cluster_backup_enabled(cfg, opts.root);
    if (want_cluster) {
        auto cb = estimate_cluster_backup(cfg, opts.root);
        if (!cb) return std::unexpected(std::move(cb.error()).context("estimate cluster backup"));
        est.cluster_bytes = *cb;
    }
    // The control-plane images (images.backup): which, and what copying them needs.
    std::optional<ImageBackupPlan> image_plan;
    if (cfg.images_backup && !want_cluster) {
        meta.warnings.push_back("images.backup is on, but this backup has no etcd snapshot: no control-plane "
                                "images taken (a recovery without etcd does not restore the control plane)");
        progress.warning(meta.warnings.back());
    } else if (cfg.images_backup) {
        progress.stage("list control-plane images");
        auto plan = plan_image_backup(cfg, opts.root, store, prev_manifest ? latest_id : std::nullopt, cancel);
        if (!plan) return std::unexpected(std::move(plan.error()).context("control-plane images"));
        for (const auto& w : plan->warnings) {
            meta.warnings.push_back(w);
            progress.warning(w);
        }
        est.images_bytes = plan->new_bytes;
        image_plan = std::move(*plan);
    }
    if (!earlier->backup.empty()) {
        // Said at every backup until it goes: its space is not counted as free.
        auto bytes = earlier_backup_bytes(store, *earlier);
        if (!bytes) log::warning("cannot tell the earlier backup's size: " + bytes.error().message);
        est.earlier_backup = earlier_backup_note(store, *earlier, bytes ? std::optional(*bytes) : std::nullopt);
        meta.warnings.push_back(est.earlier_backup);
        progress.warning(meta.warnings.back());
    }
    auto usage = store_usage(store);
    if (!usage) return std::unexpected(usage.error());
    est.free_bytes = usage->free_bytes;
    est.metadata_bytes = totals->entries * 512 + totals->dirs * 4096 + totals->entries * 200;
    est.margin_bytes = cfg.free_space_margin;
    est.need_bytes = est.new_bytes + est.metadata_bytes + est.cluster_bytes + est.images_bytes + est.margin_bytes;
    if (opts.dry_run) {
        // What the steps below refuse before their first write is refused here by
        // the same code, in their order and with their context, after the space
        // check as there; a dry run that does not fit reports that alone (exit 5),
        // as the backup would fail on it first. Nothing pinned, no snapshot, no
        // cluster asked (the W12 rollout check is not cheap).
        if (est.fits()) {
            if (ostree_enabled(cfg, opts.root)) UR_TRY_CTX(ostree_check_for_backup(cfg, opts.root), kPinContext);
            if (want_cluster) UR_TRY_CTX(check_cluster_backup(cfg, opts.root), kSnapshotContext);
        }
        BackupResult result;
        result.meta = std::move(meta);
        result.estimate = std::move(est);
        return result;
    }
    if (!est.fits()) return fail(no_space_error(est));
    failpoint("backup.after-scan");
    UR_TRY(cancel.check());

    // Staging: everything below is dropped (now or by the next run) unless published.
    std::string staging_name = std::string(kStagingPrefix) + id;
    if (::mkdirat(store.backups_fd.get(), staging_name.c_str(), 0700) < 0) return fail_errno("create staging");
    struct StagingGuard {
        int dir;
        std::string name;
        bool keep = false;
        ~StagingGuard()
        {
            if (!keep) (void)remove_tree_at(dir, name);
        }
    } guard{store.backups_fd.get(), staging_name};
    auto staging_r = open_at(store.backups_fd.get(), staging_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!staging_r) return std::unexpected(staging_r.error());
    SharedFd staging = share(std::move(*staging_r));
    std::string staging_path = store.path() + "/" + kBackupsDir + "/" + staging_name;

    // Platform: pin the booted deployment, drop standby ones. A pin this run made
    // goes again unless the backup is published: no backup would record it, so
    // retention could never release it, and each such deployment would stay.
    struct PinGuard {
        const Config& cfg;
        const std::string& root;
        std::optional<OstreeRecord> made;
        ~PinGuard()
        {
            if (!made) return;
            if (auto r = ostree_release_pins(cfg, root, {*made}); !r)
                log::warning("the ostree pin of the failed backup stays: " + r.error().message);
        }
    } pin_guard{cfg, opts.root, std::nullopt};
    if (ostree_enabled(cfg, opts.root)) {
        progress.stage("pin ostree deployment");
        // Killed after the pin, the staging directory's metadata records it, and the
        // clean-up of leftovers (remove_leftovers) releases it.
        auto record_pin = [&](const OstreeRecord& pin) -> Result<> {
            BackupMetadata intent;
            intent.id = id;
            intent.created = meta.created;
            intent.tool_version = meta.tool_version;
            intent.ostree = pin;
            UR_TRY(fsync_fd(store.backups_fd.get(), "backups directory"));
            UR_TRY(write_file_atomic_at(staging->get(), kMetadataFile, metadata_to_toml(intent), 0600));
            // From here a failure of the preparation (the pin made, the standby
            // deployments not yet dropped) releases it too; a pin never made is no-op.
            pin_guard.made = pin;
            return {};
        };
        auto os = ostree_prepare_for_backup(cfg, opts.root, record_pin);
        if (!os) return std::unexpected(std::move(os.error()).context(kPinContext));
        if (os->pinned_by_backup) pin_guard.made = *os;
        meta.ostree = std::move(*os);
        // A pin an earlier backup made stays ours, so retention can release it later.
        // Unreadable backups: not known to be ours, so never released (the safe side).
        auto existing = read_all_metadata(store);
        meta.ostree.pinned_by_backup = pin_is_ours(meta.ostree, existing ? *existing : std::vector<BackupMetadata>{});
    }
    progress.percent(3);
    failpoint("backup.after-ostree");

    if (want_cluster) {
        progress.stage("etcd snapshot");
        std::string cdir = staging_path + "/" + kClusterDir;
        auto cl = backup_cluster(cfg, opts.root, cdir, opts.force_dirty || cfg.etcd_force, cancel);
        if (!cl) return std::unexpected(std::move(cl.error()).context(kSnapshotContext));
        meta.cluster = std::move(*cl);
    } else if (cfg.etcd_mode == "auto") {
        // Said, not silently left out: phase 2 of a recovery to this backup cannot bring etcd back.
        meta.warnings.push_back("no etcd snapshot: etcd.mode is auto and there is neither " +
                                cfg.cluster_backup_script +
                                " nor etcd.endpoints (set etcd.mode = \"off\" where that is intended)");
        progress.warning(meta.warnings.back());
    }
    std::optional<ImageBackupResult> images;
    if (image_plan) {
        auto r = copy_images(cfg, opts.root, *image_plan, store, staging->get(), staging_path, progress, cancel);
        if (!r) return std::unexpected(std::move(r.error()).context("control-plane images"));
        for (const auto& w : r->warnings) {
            meta.warnings.push_back(w);
            progress.warning(w);
        }
        images = std::move(*r);
    }
    progress.percent(10);
    failpoint("backup.after-cluster");

    // Trees, in manifest order, sharing unchanged files with the previous generation.
    auto mfd = open_at(staging->get(), kManifestFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!mfd) return std::unexpected(mfd.error());
    ManifestWriter manifest(mfd->release());
    PrevCursor prev;
    SharedFd prev_gen;
    if (prev_manifest) {
        auto r = ManifestReader::open(store.backups_fd.get(), *prev_manifest);
        auto g = open_at(store.backups_fd.get(), *latest_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (r && g) {
            prev = PrevCursor(std::move(*r));
            prev_gen = share(std::move(*g));
            meta.previous = *latest_id;
        }
    }
    // Cold small files are latency bound: keep more reads in flight than CPUs
    // (2 -> 4 threads cut a full backup of the bench tree by 15% on 2 CPUs).
    unsigned threads =
        cfg.copy_threads ? cfg.copy_threads : std::clamp(2 * std::thread::hardware_concurrency(), 4u, 16u);
    ThreadPool pool(std::min(threads, 16u), "file copy");
    // Small files outrun the kernel's writeback; xfs then reserves so much for
    // them that the partition looks full (writeback_pacer.hpp).
    WritebackPacer pacer(staging->get(), kFilesPerWriteback);
    TreeCopier copier(cfg, manifest, prev, pool, pacer, progress, cancel, meta, totals->entries, totals->new_bytes);
    // The image layout's entries go where its name sorts among the trees'.
    auto add_images = [&]() -> Result<> {
        if (!images || meta.images.present) return {};
        UR_TRY_CTX(add_image_entries(manifest, staging, *images, cancel), "control-plane images");
        meta.images = images->record;
        return {};
    };
    for (const auto& tree : trees) {
        if (compare_paths(kImagesDir, tree.spec.name) < 0) UR_TRY(add_images());
        progress.stage("copy " + tree.spec.path);
        UR_TRY(copier.copy_tree(tree, staging, prev_gen));
    }
    UR_TRY(add_images());
    meta.copied_bytes = copier.copied_bytes;
    meta.shared_bytes = copier.shared_bytes;
    meta.shared_files = copier.shared_files;
    if (copier.damaged_previous > 10) {
        meta.warnings.push_back("previous backup " + meta.previous + ": " + std::to_string(copier.damaged_previous) +
                                " copies differ from its manifest in all (the first 10 are named above); copied again");
        progress.warning(meta.warnings.back());
    }
    for (const auto& t : meta.trees)
        meta.total_bytes += t.bytes;
    failpoint("backup.before-manifest");
    auto sha = manifest.finish();
    if (!sha) return std::unexpected(sha.error());
    meta.manifest_sha256 = *sha;
    meta.manifest_entries = manifest.count();

    progress.stage("finish");
    auto excl = compute_etc_excludes(opts.root);
    if (!excl) return std::unexpected(std::move(excl.error()).context("/etc exclude list"));
    meta.etc_excludes = std::move(*excl);
    meta.openshift = read_openshift_info(cfg, opts.root);
    check_backup_tools(meta.openshift, staging_path);
    meta.duration_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    UR_TRY(write_file_atomic_at(staging->get(), kMetadataFile, metadata_to_toml(meta), 0600));
    failpoint("backup.after-metadata");
    UR_TRY(cancel.check());

    // Durable before visible: one syncfs covers every file and directory written.
    failpoint("backup.before-sync");
    if (::syncfs(staging->get()) < 0) return fail_errno("sync " + store.path());
    UR_TRY(fsync_fd(staging->get(), "staging directory"));
    // `latest`'s new link exists before the backup is visible: after the publish
    // only renames are left, which a full disk cannot refuse.
    auto latest_link = PendingSymlink::make(store.fd.get(), kLatestLink, std::string(kBackupsDir) + "/" + id);
    if (!latest_link) return std::unexpected(latest_link.error());
    failpoint("backup.before-publish");
    if (::renameat(store.backups_fd.get(), staging_name.c_str(), store.backups_fd.get(), id.c_str()) < 0)
        return fail_errno("publish backup " + id);
    guard.keep = true;
    pin_guard.made.reset(); // the published backup records it now
    UR_TRY(fsync_fd(store.backups_fd.get(), "backups directory"));
    failpoint("backup.after-publish");
    UR_TRY(latest_link->commit());
    failpoint("backup.after-latest");

    BackupResult result;
    result.meta = std::move(meta);
    auto pruned = prune_and_release(cfg, opts.root, store);
    if (!pruned) {
        log::warning("retention: " + pruned.error().message);
    } else {
        result.pruned = std::move(pruned->ids);
        result.unpinned = std::move(pruned->unpinned);
        if (!pruned->warning.empty()) progress.warning("retention: " + pruned->warning);
    }
    failpoint("backup.after-prune");
    // Our script takes the old one's name; the old one stays beside it, for the old backup.
    if (auto k = keep_earlier_script(store); !k)
        log::warning("could not keep the earlier upgrade-recovery.sh: " + k.error().message);
    else if (*k)
        log::info(std::string("kept the earlier upgrade-recovery.sh as ") + kEarlierScriptKept +
                  ", for its backup on the partition");
    if (auto w = write_compat_script(store.fd.get(), self_binary()); !w)
        log::warning("could not write upgrade-recovery.sh: " + w.error().message);
    progress.percent(100);
    log::event(log::kBackupSucceeded, log::Level::Info,
               "backup " + id + " complete: " + std::to_string(result.meta.manifest_entries) + " entries, " +
                   human_size(result.meta.copied_bytes) + " copied, " + human_size(result.meta.shared_bytes) +
                   " shared",
               {{"BACKUP_ID", id}, {"STEP", "done"}});
    return result;
}

} // namespace

Result<BackupResult> run_backup(const Config& cfg, const BackupOptions& opts, Progress& progress,
                                const CancelToken& cancel)
{
    const auto t0 = Clock::now();
    failpoint("backup.start");
    progress.stage("prepare");
    // What needs no store is refused before the store is made or mounted: an id that
    // is no backup id, or lies ahead of the clock (no backups to compare with yet).
    if (opts.id) UR_TRY(check_requested_backup_id(*opts.id, {}, time(nullptr)));
    // A dry run writes nothing on the store: no layout, no lock file. The backup is
    // the one writer that creates the store: every other one acts on a backup in it.
    auto store = open_store(cfg, opts.root, opts.dry_run ? StoreAccess::Inspect : StoreAccess::Create);
    if (!store) return std::unexpected(store.error());
    auto lock = lock_store(*store, !opts.dry_run);
    if (!lock) return std::unexpected(lock.error());
    std::string id;
    if (opts.dry_run) return take_backup(cfg, opts, *store, t0, id, progress, cancel);

    // A requested id the store cannot take is the caller's mistake: refused before the
    // attempt is recorded, as StartBackup refuses it before a job, so last-backup.json
    // (and an alert on its "failed") stays about backups that ran. take_backup checks
    // again after the leftovers of an interrupted run are gone.
    if (opts.id) {
        auto g = scan_generations(*store);
        if (!g) return std::unexpected(g.error());
        UR_TRY(check_id_for_store(*opts.id, *g));
    }

    // W20: the attempt's outcome on the partition, under the lock. Best effort: a
    // full partition may refuse even this small file; the backup's own error says more.
    BackupAttempt attempt;
    attempt.state = "running";
    attempt.started = rfc3339_now();
    attempt.pid = ::getpid();
    attempt.boot_id = read_boot_id();
    if (auto w = save_backup_attempt(store->fd.get(), attempt); !w)
        log::warning("cannot record the backup attempt: " + w.error().message);
    auto r = take_backup(cfg, opts, *store, t0, id, progress, cancel);
    attempt.backup_id = id;
    attempt.finished = rfc3339_now();
    attempt.duration_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r) {
        attempt.state = "succeeded";
    } else {
        attempt.state = "failed";
        attempt.error_kind = error_kind_name(r.error().kind);
        attempt.error = r.error().message;
    }
    if (auto w = save_backup_attempt(store->fd.get(), attempt); !w)
        log::warning("cannot record the backup's outcome: " + w.error().message);
    return r;
}

} // namespace ur
