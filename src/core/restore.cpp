// Delta restore: a recursive merge of each target directory's sorted listing
// with the manifest (both in compare_paths order). Only what differs is
// touched. Every target directory is opened O_NOFOLLOW from a tree root that
// was resolved inside the target root (RESOLVE_IN_ROOT), content is written to
// a temporary and renamed over the name, so nothing is ever written through
// a symlink or outside the root.
#include "restore.hpp"

#include "failpoint.hpp"
#include "file_copy.hpp"
#include "fsmeta.hpp"
#include "manifest.hpp"
#include "metadata.hpp"
#include "prefetch.hpp"
#include "store.hpp"
#include "walk.hpp"

#include <algorithm>
#include <cctype>
#include <deque>
#include <fcntl.h>
#include <map>
#include <random>
#include <unistd.h>

namespace ur
{

namespace
{

// Open `abs` inside the root, symlinks resolved as RESOLVE_IN_ROOT does.
Result<UniqueFd> resolve_in_root(int rootfd, const std::string& abs)
{
    return open_in_root(rootfd, abs, O_RDONLY | O_DIRECTORY);
}

// A tree root inside the target root, resolved as the backup resolved it (an
// absolute symlink target starts at the root: /usr/local -> ../var/usrlocal or
// /var/usrlocal both lead to <root>/var/usrlocal), with what is missing on the
// way created (`create`) or only looked at (a dry run: then an empty fd means
// "does not exist yet, would be created", and every error is the real run's).
// A ".." of a symlink that would climb above the root is refused rather than
// stopped there: the directory it meant is not in the root, and guessing one
// would restore the tree to a place the host does not look.
Result<UniqueFd> resolve_tree_root(int rootfd, const std::string& abs, bool create)
{
    auto fd = open_in_root(rootfd, abs, O_RDONLY | O_DIRECTORY);
    if (fd || fd.error().err != ENOENT) return fd;
    std::deque<std::string> todo;
    auto push_front = [&](const std::string& path) {
        std::vector<std::string> comps;
        for (size_t pos = 0; pos <= path.size();) {
            size_t slash = std::min(path.find('/', pos), path.size());
            if (slash > pos) comps.push_back(path.substr(pos, slash - pos));
            pos = slash + 1;
        }
        todo.insert(todo.begin(), comps.begin(), comps.end());
    };
    push_front(abs);
    std::vector<UniqueFd> dirs;  // the open directories below the root on the way
    std::vector<std::string> at; // their path in the root, for messages
    size_t missing = 0;          // dry run: levels that do not exist yet below dirs.back()
    int links = 0;
    auto here = [&] { return at.empty() ? std::string("/") : at.back(); };
    while (!todo.empty()) {
        std::string c = std::move(todo.front());
        todo.pop_front();
        if (c == ".") continue;
        if (c == "..") {
            if (missing)
                missing--;
            else if (dirs.empty())
                return fail(ErrorKind::Refused,
                            "'" + abs +
                                "' leads through a symlink whose target climbs above the root with '..'; "
                                "make that symlink point inside the root (or replace it by a directory), then run "
                                "recover again");
            else {
                dirs.pop_back();
                at.pop_back();
            }
            continue;
        }
        std::string path = here() == "/" ? "/" + c : here() + "/" + c;
        if (missing) {
            missing++;
            continue;
        }
        int cur = dirs.empty() ? rootfd : dirs.back().get();
        struct stat st;
        if (::fstatat(cur, c.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) return fail_errno("stat '" + path + "'");
            if (!create) {
                missing = 1;
                continue;
            }
            if (::mkdirat(cur, c.c_str(), 0700) < 0 && errno != EEXIST) return fail_errno("create '" + path + "'");
        } else if (S_ISLNK(st.st_mode)) {
            if (++links > 40) return fail_errno(ELOOP, "resolve '" + abs + "'");
            std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
            ssize_t n = ::readlinkat(cur, c.c_str(), target.data(), target.size());
            if (n < 0) return fail_errno("read link '" + path + "'");
            target.resize(static_cast<size_t>(n));
            if (target.empty()) return fail_errno(ENOENT, "resolve '" + path + "' (an empty symlink)");
            if (target.front() == '/') {
                dirs.clear();
                at.clear();
            }
            push_front(target);
            continue;
        }
        auto d = open_at(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!d) return std::unexpected(std::move(d.error()).context("resolve '" + abs + "'"));
        dirs.push_back(std::move(*d));
        at.push_back(path);
    }
    if (missing) return UniqueFd();
    if (dirs.empty()) return open_at(rootfd, ".", O_RDONLY | O_DIRECTORY);
    return std::move(dirs.back());
}

// A directory of the backup, opened on first use: a delta restore reads the
// backup only where a file has to be rewritten.
class BackupDir
{
  public:
    explicit BackupDir(SharedFd fd) : fd_(std::move(fd)) {}
    BackupDir(std::shared_ptr<BackupDir> parent, std::string name) : parent_(std::move(parent)), name_(std::move(name))
    {
    }

    Result<int> fd()
    {
        if (!fd_) {
            auto p = parent_->fd();
            if (!p) return std::unexpected(p.error());
            auto d = open_at(*p, name_, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (!d) return std::unexpected(d.error());
            fd_ = share(std::move(*d));
            parent_.reset();
        }
        return fd_->get();
    }

  private:
    std::shared_ptr<BackupDir> parent_;
    std::string name_;
    SharedFd fd_;
};
using BackupDirRef = std::shared_ptr<BackupDir>;

constexpr std::string_view kRestoreTempPrefix = ".ur-restore-";

std::string temp_name()
{
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char b[40];
    snprintf(b, sizeof b, "%s%016llx", kRestoreTempPrefix.data(), static_cast<unsigned long long>(rng()));
    return b;
}

bool is_restore_temp(const std::string& name)
{
    if (name.size() != kRestoreTempPrefix.size() + 16 || !name.starts_with(kRestoreTempPrefix)) return false;
    for (size_t i = kRestoreTempPrefix.size(); i < name.size(); i++)
        if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
    return true;
}

class Restorer
{
  public:
    Restorer(const RestoreOptions& o, RestoreStats& st, Progress& p, const CancelToken& c, ManifestReader& r,
             uint64_t total)
        : o_(o), st_(st), progress_(p), cancel_(c), reader_(r), total_(total ? total : 1)
    {
    }

    Result<const Entry*> peek()
    {
        if (!peeked_ && !eof_) {
            auto n = reader_.next();
            if (!n) return std::unexpected(n.error());
            if (!*n)
                eof_ = true;
            else
                peeked_ = std::move(**n);
        }
        return peeked_ ? &*peeked_ : nullptr;
    }

    Entry take()
    {
        Entry e = std::move(*peeked_);
        peeked_.reset();
        if ((++seen_ & 255) == 0)
            progress_.percent(static_cast<unsigned>(std::min<uint64_t>(99, seen_ * 100 / total_)));
        return e;
    }

    // Consume every manifest entry below `path`.
    Result<> skip_below(const std::string& path)
    {
        const std::string prefix = path + "/";
        for (;;) {
            auto p = peek();
            if (!p) return std::unexpected(p.error());
            if (!*p || (*p)->path.compare(0, prefix.size(), prefix) != 0) return {};
            take();
        }
    }

    Result<> tree(const TreeRecord& t, int rootfd, const SharedFd& gen)
    {
        tree_name_ = t.name;
        extras_ = t.name == kExtrasTree;
        // What the backup excluded was never in it: a restore must leave it alone, not delete it.
        excludes_ = t.exclude;
        if (t.name == "etc") excludes_.insert(excludes_.end(), o_.etc_excludes.begin(), o_.etc_excludes.end());
        // leaders_ is kept across the trees: a hard-link group can span them (/etc and /usr/local).
        // Entries of trees before this one (not selected) are skipped.
        for (;;) {
            auto p = peek();
            if (!p) return std::unexpected(p.error());
            if (!*p) return fail(ErrorKind::Corrupt, "manifest has no entry for tree '" + t.name + "'");
            int c = compare_paths((*p)->path, t.name);
            if (c == 0) break;
            if (c > 0) return fail(ErrorKind::Corrupt, "manifest has no entry for tree '" + t.name + "'");
            take();
        }
        Entry root = take();
        auto bt = open_at(gen->get(), t.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!bt) return std::unexpected(std::move(bt.error()).context("backup tree '" + t.name + "'"));
        auto bdir = std::make_shared<BackupDir>(share(std::move(*bt)));
        std::string target_abs = t.path;
        // A dry run resolves it the same way, so it fails where the run would.
        auto tt = resolve_tree_root(rootfd, t.path, !o_.dry_run);
        if (!tt) return std::unexpected(tt.error());
        SharedFd tdir;
        if (*tt)
            tdir = share(std::move(*tt));
        else
            change("create", t.path);
        struct stat rst {
        };
        if (tdir && ::fstat(tdir->get(), &rst) < 0) return fail_errno("stat " + t.path);
        root_dev_ = rst.st_dev;
        root_mnt_ = 0;
        if (tdir)
            if (auto m = mount_id_at(tdir->get(), ""); m) root_mnt_ = *m;
        UR_TRY(dir(tdir, bdir, root.path, t.path, 0));
        if (tdir && !extras_) UR_TRY(fix_metadata(tdir, AT_FDCWD, ".", root, t.path));
        if (tdir && !o_.dry_run && ::syncfs(tdir->get()) < 0) return fail_errno("sync " + t.path);
        return {};
    }

  private:
    // Another filesystem, or a bind mount (same st_dev), is mounted on this
    // directory or file: `ts` and `mnt` from one stat_at. Never for extras: the backup
    // followed their listed paths across mounts, and so does the restore (on
    // RHCOS /var itself is a bind mount of the ostree stateroot's var).
    bool mount_point(const struct stat& ts, uint64_t mnt) const
    {
        if (extras_) return false;
        // A file (bound by a pod's subPath) only by its mount id: on overlayfs with
        // xino=off a file reports its layer's st_dev, a directory the overlay's.
        if (!S_ISDIR(ts.st_mode)) return root_mnt_ && mnt && mnt != root_mnt_;
        return other_mount(root_dev_, root_mnt_, ts.st_dev, mnt);
    }

    void change(const char* action, const std::string& path)
    {
        if (o_.dry_run || st_.changes.size() < 10000) st_.changes.push_back({action, path});
    }

    bool excluded(const std::string& gen_rel) const
    {
        if (excludes_.empty()) return false;
        std::string tree_rel = gen_rel.substr(tree_name_.size() + 1);
        return path_excluded(tree_rel, excludes_);
    }

    std::string abs_of(const std::string& dir_abs, const std::string& name) const
    {
        return dir_abs == "/" ? "/" + name : dir_abs + "/" + name;
    }

    // tdir: target directory (null in a dry run when it does not exist yet);
    // rel: its path in the generation; abs: its path in the target; depth: its
    // nesting below the tree root (0 for the root).
    Result<> dir(const SharedFd& tdir, const BackupDirRef& bdir, const std::string& rel, const std::string& abs,
                 int depth)
    {
        std::vector<std::string> names;
        if (tdir) {
            auto n = list_own_dir(tdir->get()); // opened by us, read by nobody else
            if (!n) return std::unexpected(std::move(n.error()).context("list " + abs));
            names = std::move(*n);
        }
        const std::string prefix = rel + "/";
        size_t idx = 0;
        for (;;) {
            UR_TRY(cancel_.check());
            auto p = peek();
            if (!p) return std::unexpected(p.error());
            const Entry* m = *p;
            bool child = m && m->path.compare(0, prefix.size(), prefix) == 0;
            std::string mname = child ? m->path.substr(prefix.size()) : std::string();
            if (child && mname.find('/') != std::string::npos)
                return fail(ErrorKind::Corrupt, "manifest is out of order at '" + m->path + "'");
            while (idx < names.size() && (!child || name_less(names[idx], mname))) {
                UR_TRY(extra(tdir, names[idx], rel + "/" + names[idx], abs_of(abs, names[idx])));
                idx++;
            }
            if (!child) return {};
            Entry e = take();
            bool has_target = idx < names.size() && names[idx] == mname;
            if (has_target) idx++;
            st_.examined++;
            if (excluded(e.path)) {
                UR_TRY(skip_below(e.path));
                continue;
            }
            UR_TRY(entry(tdir, bdir, e, mname, has_target, abs_of(abs, mname), depth + 1));
        }
    }

    // A target name the backup does not have: the failed upgrade added it.
    Result<> extra(const SharedFd& tdir, const std::string& name, const std::string& rel, const std::string& abs)
    {
        if (extras_) {
            // Only the listed files are ours, and the temporaries of our own replace()
            // that a kill left beside them (the other trees lose theirs as extra names).
            if (is_restore_temp(name)) {
                struct stat ts;
                if (::fstatat(tdir->get(), name.c_str(), &ts, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(ts.st_mode) &&
                    !o_.dry_run && ::unlinkat(tdir->get(), name.c_str(), 0) < 0 && errno != ENOENT)
                    return fail_errno("remove " + abs);
            }
            return {};
        }
        if (excluded(rel)) return {};
        struct stat ts;
        uint64_t mnt = 0;
        if (auto r = stat_at(tdir->get(), name, ts, &mnt); !r) {
            if (r.error().err == ENOENT) return {};
            return std::unexpected(std::move(r.error()).context(abs));
        }
        if (mount_point(ts, mnt)) return {}; // a mount (a directory, or a file: a pod's subPath): not ours
        change("delete", abs);
        st_.deleted++;
        if (o_.dry_run) return {};
        auto r = remove_tree_at(tdir->get(), name);
        if (!r && r.error().kind == ErrorKind::Busy) {
            // Something is mounted below it: what is mounted stays, and so does the path to it.
            progress_.warning("kept " + abs + ": " + r.error().message);
            return {};
        }
        return r;
    }

    Result<Entry> target_entry(int dirfd, const std::string& name, const struct stat& ts, int fd)
    {
        Entry t;
        entry_from_stat(t, ts);
        bool path_fd = !(S_ISREG(ts.st_mode) || S_ISDIR(ts.st_mode));
        UniqueFd own;
        if (fd < 0) {
            auto o = open_at(dirfd, name,
                             path_fd ? (O_PATH | O_NOFOLLOW)
                                     : (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | (S_ISDIR(ts.st_mode) ? O_DIRECTORY : 0)));
            if (!o) return std::unexpected(o.error());
            own = std::move(*o);
            fd = own.get();
        }
        auto x = read_xattrs(fd, path_fd);
        if (!x) return std::unexpected(x.error());
        t.xattrs = std::move(*x);
        return t;
    }

    static bool meta_equal(const Entry& want, const Entry& have)
    {
        return want.mode == have.mode && want.uid == have.uid && want.gid == have.gid &&
               want.mtime_sec == have.mtime_sec && want.mtime_nsec == have.mtime_nsec && want.xattrs == have.xattrs;
    }

    // Bring owner, mode, xattrs and times of an existing name in line with the manifest.
    // `known`: the caller's fresh stat of the name (saves a second fstatat per entry).
    Result<> fix_metadata(const SharedFd& tdir, int dirfd, const std::string& name, const Entry& want,
                          const std::string& abs, const struct stat* known = nullptr)
    {
        int fd = name == "." ? tdir->get() : -1;
        struct stat ts;
        if (known)
            ts = *known;
        else if ((fd >= 0 ? ::fstat(fd, &ts) : ::fstatat(dirfd, name.c_str(), &ts, AT_SYMLINK_NOFOLLOW)) < 0)
            return fail_errno("stat " + abs);
        if (!o_.checksum && unchanged_since(want, ts)) return {}; // as the backup read it
        auto have = target_entry(dirfd, name, ts, fd);
        if (!have) return std::unexpected(std::move(have.error()).context(abs));
        if (meta_equal(want, *have)) return {};
        change("metadata", abs);
        st_.metadata++;
        if (o_.dry_run) return {};
        UniqueFd own;
        if (fd < 0 && (want.type == FileType::Reg || want.type == FileType::Dir)) {
            auto o =
                open_at(dirfd, name, (want.type == FileType::Dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_NOFOLLOW);
            if (!o) return std::unexpected(o.error());
            own = std::move(*o);
            fd = own.get();
        }
        UR_TRY_CTX(apply_metadata(dirfd, name, fd, want), abs);
        return {};
    }

    // Write a new inode for `e` under a temporary name, then rename it over `name`.
    Result<> replace(const SharedFd& tdir, const BackupDirRef& bdir, const Entry& e, const std::string& name,
                     const std::string& abs)
    {
        const int d = tdir->get();
        std::string tmp = temp_name();
        auto cleanup = [&] { ::unlinkat(d, tmp.c_str(), 0); };
        switch (e.type) {
        case FileType::Reg: {
            if (!e.link.empty()) {
                // A leader on another mount cannot be linked to (EXDEV): then a copy of
                // its own, with the same content and metadata, as the backup has it.
                auto lt = leaders_.find(e.link);
                if (lt != leaders_.end() && lt->second.first &&
                    ::linkat(lt->second.first->get(), lt->second.second.c_str(), d, tmp.c_str(), 0) == 0)
                    break;
            }
            auto bfd = bdir->fd();
            if (!bfd) return std::unexpected(std::move(bfd.error()).context("backup directory of " + abs));
            auto src = open_at(*bfd, name, O_RDONLY | O_NOFOLLOW);
            if (!src) return std::unexpected(std::move(src.error()).context("backup copy of " + abs));
            struct stat ss;
            if (::fstat(src->get(), &ss) < 0) return fail_errno("stat backup copy of " + abs);
            auto out = open_at(d, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
            if (!out) return std::unexpected(out.error());
            uint64_t w = 0;
            auto dg = copy_content(src->get(), out->get(), ss, buf_, &w);
            if (!dg) {
                cleanup();
                return std::unexpected(std::move(dg.error()).context(abs));
            }
            if (*dg != e.digest) {
                cleanup();
                return fail(ErrorKind::Corrupt, "backup copy of " + abs + " does not match its manifest digest");
            }
            st_.bytes_written += w;
            if (auto r = apply_metadata(d, tmp, out->get(), e); !r) {
                cleanup();
                return std::unexpected(std::move(r.error()).context(abs));
            }
            break;
        }
        case FileType::Link:
            if (::symlinkat(e.target.c_str(), d, tmp.c_str()) < 0) return fail_errno("create symlink " + abs);
            if (auto r = apply_metadata(d, tmp, -1, e); !r) {
                cleanup();
                return std::unexpected(std::move(r.error()).context(abs));
            }
            break;
        case FileType::Chr:
        case FileType::Blk:
        case FileType::Fifo:
        case FileType::Sock:
            if (::mknodat(d, tmp.c_str(), file_type_to_mode(e.type) | 0600, static_cast<dev_t>(e.rdev)) < 0)
                return fail_errno("create node " + abs);
            if (auto r = apply_metadata(d, tmp, -1, e); !r) {
                cleanup();
                return std::unexpected(std::move(r.error()).context(abs));
            }
            break;
        case FileType::Dir: return fail(ErrorKind::Internal, "replace() is not for directories");
        }
        // Crash tests: a kill here leaves a complete temporary next to the old name.
        failpoint("restore.file");
        if (::renameat(d, tmp.c_str(), d, name.c_str()) < 0) {
            int err = errno;
            cleanup();
            return fail_errno(err, "rename into place " + abs);
        }
        return {};
    }

    Result<> entry(const SharedFd& tdir, const BackupDirRef& bdir, const Entry& e, const std::string& name,
                   bool has_target, const std::string& abs, int depth)
    {
        // Each level recurses (dir -> entry -> dir): the walk's bound keeps the stack
        // and the descriptors in limits. A backup cannot hold deeper directories;
        // a damaged or hand-made manifest can: a clear error, not a crash.
        if (e.type == FileType::Dir && depth > kMaxTreeDepth)
            return fail(ErrorKind::Refused, "the backup's '" + e.path + "' is nested more than " +
                                                std::to_string(kMaxTreeDepth) +
                                                " directories deep, deeper than restore supports; the manifest is "
                                                "damaged or was not written by backup: restore another backup");
        struct stat ts {
        };
        uint64_t mnt = 0;
        if (has_target) {
            if (auto r = stat_at(tdir->get(), name, ts, &mnt); !r) {
                if (r.error().err != ENOENT) return std::unexpected(std::move(r.error()).context(abs));
                has_target = false;
            }
        }
        // The very inode the backup read, untouched since: nothing to compare.
        const bool same = has_target && !o_.checksum && unchanged_since(e, ts);
        if (has_target) {
            auto tt = file_type_from_mode(ts.st_mode);
            if (mount_point(ts, mnt)) {
                // Something is mounted here (pod volumes, a file bound by a subPath, on a
                // live host): leave it alone; neither unlink nor rename can replace it.
                return skip_below(e.path);
            }
            if (!tt || *tt != e.type) {
                // A directory became a file, a file a symlink...: replace it whole.
                change("replace", abs);
                if (!o_.dry_run) UR_TRY(remove_tree_at(tdir->get(), name));
                has_target = false;
                st_.deleted++;
            }
        }

        if (e.type == FileType::Dir) {
            SharedFd child_t;
            if (!has_target) {
                change("create", abs);
                st_.created++;
                if (!o_.dry_run && ::mkdirat(tdir->get(), name.c_str(), 0700) < 0) return fail_errno("create " + abs);
            }
            if (!o_.dry_run || has_target) {
                auto c = open_at(tdir->get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                if (!c) return std::unexpected(c.error());
                child_t = share(std::move(*c));
            }
            auto child_b = std::make_shared<BackupDir>(bdir, name);
            UR_TRY(dir(child_t, child_b, e.path, abs, depth));
            if (child_t) UR_TRY(fix_metadata(child_t, AT_FDCWD, ".", e, abs));
            return {};
        }

        bool rewrite = !has_target;
        // A later name of a hard-link group is checked even when unchanged:
        // the group's first name may have been replaced by a new inode.
        if (has_target && (!same || !e.link.empty())) {
            switch (e.type) {
            case FileType::Reg: {
                if (!e.link.empty()) {
                    // Must be the same inode as the group's first name, where a link can
                    // reach it: on another mount (another tree may be) it stays a copy,
                    // and a rewrite would only make another copy on every restore.
                    auto lt = leaders_.find(e.link);
                    struct stat ls;
                    uint64_t lmnt = 0;
                    if (lt != leaders_.end() && lt->second.first &&
                        stat_at(lt->second.first->get(), lt->second.second, ls, &lmnt) &&
                        !other_mount(ts.st_dev, mnt, ls.st_dev, lmnt) && ls.st_ino != ts.st_ino)
                        rewrite = true;
                }
                if (static_cast<uint64_t>(ts.st_size) != e.size || ts.st_mtim.tv_sec != e.mtime_sec ||
                    static_cast<uint32_t>(ts.st_mtim.tv_nsec) != e.mtime_nsec)
                    rewrite = true;
                // Same size and mtime, but not provably the inode the backup
                // read (an mtime-preserving replacement looks like this): compare
                // contents. --checksum makes every file take this path.
                if (!rewrite && !same) {
                    auto fd = open_at(tdir->get(), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
                    if (!fd) return std::unexpected(fd.error());
                    auto d = hash_content(fd->get(), ts, buf_);
                    if (!d) return std::unexpected(std::move(d.error()).context(abs));
                    rewrite = *d != e.digest;
                }
                break;
            }
            case FileType::Link: {
                std::string t(static_cast<size_t>(ts.st_size) + 1, '\0');
                ssize_t n = ::readlinkat(tdir->get(), name.c_str(), t.data(), t.size());
                if (n < 0) return fail_errno("read link " + abs);
                t.resize(static_cast<size_t>(n));
                rewrite = t != e.target;
                break;
            }
            default:
                rewrite =
                    ts.st_rdev != static_cast<dev_t>(e.rdev) && (e.type == FileType::Chr || e.type == FileType::Blk);
            }
        }
        if (rewrite) {
            change(has_target ? "update" : "create", abs);
            (has_target ? st_.updated : st_.created)++;
            if (!o_.dry_run) UR_TRY(replace(tdir, bdir, e, name, abs));
        } else if (!same) {
            UR_TRY(fix_metadata(tdir, tdir->get(), name, e, abs, &ts));
        }
        if (e.flags & kLinkLeader) leaders_[e.path] = {tdir, name};
        return {};
    }

    const RestoreOptions& o_;
    RestoreStats& st_;
    Progress& progress_;
    const CancelToken& cancel_;
    ManifestReader& reader_;
    uint64_t total_;
    uint64_t seen_ = 0;
    std::optional<Entry> peeked_;
    bool eof_ = false;
    std::string tree_name_;
    bool extras_ = false;
    dev_t root_dev_ = 0;
    uint64_t root_mnt_ = 0;
    std::vector<std::string> excludes_;
    std::map<std::string, std::pair<SharedFd, std::string>> leaders_;
    Buffer buf_;
};

// W19: files outside the trees that the failed upgrade's MachineConfig places
// and the backup's did not. Whether such a file was there before the upgrade
// is not recorded (it was outside every tree); the old MachineConfig does not
// place it, so it goes, as the MCO would leave the node for that config.
Result<> remove_stale_mc_files(int rootfd, const BackupMetadata& meta, const RestoreOptions& o, RestoreStats& st)
{
    std::vector<std::string> candidates = o.current_mc_files;
    candidates.insert(candidates.end(), meta.mc_missing.begin(), meta.mc_missing.end());
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    for (const auto& p : candidates) {
        if (p.empty() || p[0] != '/') continue;
        bool backed_up = std::find(meta.mc_files.begin(), meta.mc_files.end(), p) != meta.mc_files.end() &&
                         std::find(meta.mc_missing.begin(), meta.mc_missing.end(), p) == meta.mc_missing.end();
        bool in_tree = false;
        for (const auto& t : meta.trees)
            if (t.name != kExtrasTree && (p == t.path || p.rfind(t.path + "/", 0) == 0)) in_tree = true;
        if (backed_up || in_tree) continue; // the tree restore already made these right
        size_t slash = p.rfind('/');
        auto parent = resolve_in_root(rootfd, slash == 0 ? "/" : p.substr(0, slash));
        if (!parent) {
            // Its directory is gone (or is no directory): so is the file. Anything else is
            // an error; a stale file left behind would be a silent difference (W19).
            if (parent.error().err == ENOENT || parent.error().err == ENOTDIR) continue;
            return std::unexpected(std::move(parent.error()).context("stale MachineConfig file " + p));
        }
        std::string name = p.substr(slash + 1);
        struct stat s;
        if (::fstatat(parent->get(), name.c_str(), &s, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) continue;
            return fail_errno("stat stale MachineConfig file " + p);
        }
        if (S_ISDIR(s.st_mode)) continue;
        st.changes.push_back({"delete", p});
        st.deleted++;
        if (!o.dry_run && ::unlinkat(parent->get(), name.c_str(), 0) < 0 && errno != ENOENT)
            return fail_errno("remove stale MachineConfig file " + p);
    }
    return {};
}

} // namespace

Result<RestoreStats> restore_backup(const std::string& backup_dir, const RestoreOptions& opts, Progress& progress,
                                    const CancelToken& cancel)
{
    RestoreStats st;
    auto gen_r = open_at(AT_FDCWD, backup_dir, O_RDONLY | O_DIRECTORY);
    if (!gen_r) return std::unexpected(std::move(gen_r.error()).context("backup"));
    SharedFd gen = share(std::move(*gen_r));
    auto meta = read_metadata_file(gen->get(), backup_dir + "/" + kMetadataFile);
    if (!meta) return std::unexpected(meta.error());
    auto rootfd = open_at(AT_FDCWD, opts.target_root, O_RDONLY | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("target root"));
    auto reader = ManifestReader::open(gen->get(), kManifestFile);
    if (!reader) return std::unexpected(reader.error());

    std::vector<TreeRecord> trees;
    for (const auto& t : meta->trees)
        if (opts.trees.empty() || std::find(opts.trees.begin(), opts.trees.end(), t.name) != opts.trees.end())
            trees.push_back(t);
    std::sort(trees.begin(), trees.end(),
              [](const TreeRecord& a, const TreeRecord& b) { return compare_paths(a.name, b.name) < 0; });
    // The target's cold metadata reads dominate a delta restore: read ahead.
    Prefetcher prefetch(kPrefetchThreads);
    for (const auto& t : trees)
        if (t.name != kExtrasTree)
            if (auto fd = open_in_root(rootfd->get(), t.path, O_RDONLY | O_DIRECTORY); fd) prefetch.add(fd->get(), ".");
    Restorer r(opts, st, progress, cancel, *reader, meta->manifest_entries);
    for (const auto& t : trees) {
        progress.stage("restore " + t.path);
        UR_TRY_CTX(r.tree(t, rootfd->get(), gen), "restore " + t.path);
    }
    if (opts.remove_stale_mc_files) UR_TRY(remove_stale_mc_files(rootfd->get(), *meta, opts, st));
    if (!opts.dry_run && ::syncfs(rootfd->get()) < 0) return fail_errno("sync target");
    progress.percent(100);
    return st;
}

} // namespace ur
