#include "walk.hpp"

#include <algorithm>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ur
{

bool name_less(const std::string& a, const std::string& b)
{
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
    });
}

Result<std::vector<std::string>> list_dir(int dirfd)
{
    // getdents64 on a private dup: readdir state must not leak between users of dirfd.
    auto fd = open_at(dirfd, ".", O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(fd.error());
    return list_own_dir(fd->get());
}

Result<std::vector<std::string>> list_own_dir(int fd)
{
    if (::lseek(fd, 0, SEEK_SET) < 0) return fail_errno("rewind directory");
    std::vector<std::string> names;
    alignas(8) char buf[32768];
    for (;;) {
        long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0) return fail_errno("read directory");
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<struct dirent64*>(buf + off);
            off += d->d_reclen;
            const char* nm = d->d_name;
            if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
            names.emplace_back(nm);
        }
    }
    std::sort(names.begin(), names.end(), name_less);
    return names;
}

bool path_excluded(const std::string& rel, const std::vector<std::string>& patterns)
{
    for (const auto& p : patterns) {
        if (fnmatch(p.c_str(), rel.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) return true;
        // A pattern naming a directory excludes everything below it too.
        size_t slash = rel.size();
        while ((slash = rel.rfind('/', slash - 1)) != std::string::npos && slash > 0) {
            if (fnmatch(p.c_str(), rel.substr(0, slash).c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) return true;
        }
    }
    return false;
}

namespace
{

enum class IncludeMatch { None, Ancestor, Selected };

IncludeMatch include_match(const std::string& rel, const std::vector<std::string>& include)
{
    if (include.empty()) return IncludeMatch::Selected;
    IncludeMatch best = IncludeMatch::None;
    for (const auto& inc : include) {
        if (rel == inc) return IncludeMatch::Selected;
        if (rel.empty()) {
            best = IncludeMatch::Ancestor;
            continue;
        }
        if (path_within(inc, rel)) best = IncludeMatch::Ancestor; // rel != inc: strictly above
        if (path_within(rel, inc)) return IncludeMatch::Selected;
    }
    return best;
}

struct Walk {
    const WalkOptions& opts;
    const WalkVisitor& v;
    const CancelToken* cancel;
    dev_t root_dev = 0;
    uint64_t root_mnt = 0; // mount id of the tree root (0: unknown)
    uint64_t visited = 0;

    // tree_rel: path relative to the tree root ("" for the root).
    Result<> dir(const WalkItem& item, const SharedFd& dirfd, const std::string& tree_rel, bool selected)
    {
        auto names = list_own_dir(dirfd->get()); // the walk opened it: nobody else reads it
        if (!names) {
            if (names.error().err == ENOENT) return {}; // removed under us
            return std::unexpected(std::move(names.error()).context("list '" + item.rel + "'"));
        }
        for (const auto& name : *names) {
            if (cancel && (++visited & 255) == 0) UR_TRY(cancel->check());
            std::string child_tree_rel = tree_rel.empty() ? name : tree_rel + "/" + name;
            if (!opts.exclude.empty() && path_excluded(child_tree_rel, opts.exclude)) continue;
            IncludeMatch m = selected ? IncludeMatch::Selected : include_match(child_tree_rel, opts.include);
            if (m == IncludeMatch::None) continue;
            WalkItem c;
            c.rel = item.rel + "/" + name;
            c.name = name;
            c.parent = dirfd;
            c.depth = item.depth + 1;
            uint64_t mnt = 0;
            if (auto r = stat_at(dirfd->get(), name, c.st, &mnt); !r) {
                if (r.error().err == ENOENT) {
                    if (v.vanished) v.vanished(c.rel);
                    continue;
                }
                return std::unexpected(std::move(r.error()).context("stat '" + c.rel + "'"));
            }
            bool is_dir = S_ISDIR(c.st.st_mode);
            if (!is_dir && m == IncludeMatch::Ancestor) continue; // not on the way to a selected path
            // A bind mount of the same filesystem has the same st_dev (W16).
            c.other_fs = is_dir && other_mount(root_dev, root_mnt, c.st.st_dev, mnt);
            if (is_dir && c.depth > kMaxTreeDepth)
                return fail(ErrorKind::Refused, "'" + c.rel + "' is nested more than " + std::to_string(kMaxTreeDepth) +
                                                    " directories deep, deeper than backup and restore support; "
                                                    "exclude it (the tree's exclude list in the configuration)");
            if (is_dir) {
                auto sub = open_at(dirfd->get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                if (!sub) {
                    if (sub.error().err == ENOENT || sub.error().err == ENOTDIR) {
                        if (v.vanished) v.vanished(c.rel);
                        continue;
                    }
                    return std::unexpected(std::move(sub.error()).context("open '" + c.rel + "'"));
                }
                SharedFd subfd = share(std::move(*sub));
                auto act = v.enter(c, subfd);
                if (!act) return std::unexpected(act.error());
                bool cross_ok = !opts.one_file_system || !c.other_fs;
                if (*act == WalkAction::Descend && cross_ok) {
                    UR_TRY(dir(c, subfd, child_tree_rel, m == IncludeMatch::Selected));
                    if (v.leave) UR_TRY(v.leave(c, subfd));
                } else if (*act == WalkAction::Descend && v.leave) {
                    UR_TRY(v.leave(c, subfd));
                }
            } else {
                auto act = v.enter(c, nullptr);
                if (!act) return std::unexpected(act.error());
            }
        }
        return {};
    }
};

} // namespace

Result<> walk_tree(const SharedFd& start, const std::string& root_name, const std::string& rel_prefix,
                   const WalkOptions& opts, const WalkVisitor& visitor, const CancelToken* cancel)
{
    WalkItem root;
    root.rel = rel_prefix;
    root.name = root_name;
    root.parent = start;
    auto fd = open_at(start->get(), root_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return std::unexpected(std::move(fd.error()).context("open tree '" + rel_prefix + "'"));
    if (::fstat(fd->get(), &root.st) < 0) return fail_errno("stat tree '" + rel_prefix + "'");
    SharedFd rootfd = share(std::move(*fd));
    auto root_mnt = mount_id_at(rootfd->get(), "");
    Walk w{opts, visitor, cancel, root.st.st_dev, root_mnt ? *root_mnt : 0, 0};
    auto act = visitor.enter(root, rootfd);
    if (!act) return std::unexpected(act.error());
    if (*act == WalkAction::Skip) return {};
    UR_TRY(w.dir(root, rootfd, "", opts.include.empty()));
    if (visitor.leave) UR_TRY(visitor.leave(root, rootfd));
    return {};
}

} // namespace ur
