#include "fd.hpp"

#include <cctype>
#include <climits>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <linux/openat2.h>
#include <random>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <utility>
#include <vector>

namespace ur
{

Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode)
{
    int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return fail_errno("open '" + path + "'");
    return UniqueFd(fd);
}

namespace
{
// openat2(2), with the one failure that needs more than strerror: without it no path
// under the root can be opened safely, and "Function not implemented" alone does not
// say why (an old kernel, or a seccomp filter: systemd's RestrictSUIDSGID= fails it).
Result<UniqueFd> openat2_fd(int dirfd, const std::string& path, const struct open_how& how, const std::string& what)
{
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
    if (fd >= 0) return UniqueFd(fd);
    const int err = errno;
    if (err != ENOSYS) return fail_errno(err, what);
    Error e = sys_error(err, what);
    e.message += " (openat2(2) is not available: a kernel older than 5.6, or a seccomp filter such as systemd's "
                 "RestrictSUIDSGID= blocks it; upgrade-recovery opens every path under the root with it, so remove "
                 "that setting from the unit)";
    return fail(std::move(e));
}
} // namespace

Result<UniqueFd> open_beneath(int dirfd, const std::string& path, int flags, mode_t mode)
{
    struct open_how how = {};
    how.flags = static_cast<__u64>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return openat2_fd(dirfd, path, how, "open '" + path + "'");
}

Result<UniqueFd> mkdir_p_at(int dirfd, const std::string& path, mode_t mode)
{
    auto cur = open_at(dirfd, ".", O_RDONLY | O_DIRECTORY);
    if (!cur) return cur;
    UniqueFd fd = std::move(*cur);
    size_t pos = 0;
    while (pos < path.size()) {
        size_t slash = path.find('/', pos);
        if (slash == std::string::npos) slash = path.size();
        std::string comp = path.substr(pos, slash - pos);
        pos = slash + 1;
        if (comp.empty() || comp == ".") continue;
        if (::mkdirat(fd.get(), comp.c_str(), mode) < 0 && errno != EEXIST) return fail_errno("mkdir '" + path + "'");
        auto next = open_at(fd.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!next) return std::unexpected(std::move(next.error()).context("mkdir '" + path + "'"));
        fd = std::move(*next);
    }
    return fd;
}

Result<> write_all(int fd, const void* buf, size_t len)
{
    const char* p = static_cast<const char*>(buf);
    while (len > 0) {
        ssize_t n = ::write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("write");
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return {};
}

Result<std::string> read_fd(int fd, const std::string& what, size_t limit)
{
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("read '" + what + "'");
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > limit) return fail(ErrorKind::Io, "'" + what + "' is larger than expected");
    }
    return out;
}

Result<UniqueFd> open_regular_at(int dirfd, const std::string& path, int flags)
{
    // O_NONBLOCK: a FIFO put where a file belongs must not hang the reader (the
    // initrd's look at `armed` included); it is refused below.
    auto fd = open_at(dirfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK | flags);
    if (!fd) return fd;
    struct stat st;
    if (::fstat(fd->get(), &st) < 0) return fail_errno("stat '" + path + "'");
    if (!S_ISREG(st.st_mode)) {
        const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "a device";
        return fail(ErrorKind::Corrupt, "'" + path + "' is " + kind + ", not a regular file");
    }
    return fd;
}

Result<std::string> read_file_at(int dirfd, const std::string& path, size_t limit)
{
    auto fd = open_regular_at(dirfd, path);
    if (!fd) return std::unexpected(fd.error());
    return read_fd(fd->get(), path, limit);
}

Result<std::string> fd_path(int fd)
{
    char buf[PATH_MAX];
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0) return fail_errno("readlink " + link);
    return std::string(buf, static_cast<size_t>(n));
}

Result<UniqueFd> open_in_root(int rootfd, const std::string& abs, int flags)
{
    size_t skip = abs.find_first_not_of('/');
    std::string rel = skip == std::string::npos ? "." : abs.substr(skip);
    struct open_how how = {};
    how.flags = static_cast<__u64>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return openat2_fd(rootfd, rel, how, "open '/" + (rel == "." ? std::string() : rel) + "'");
}

static std::string temp_name(const std::string& base)
{
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".%016llx", static_cast<unsigned long long>(rng()));
    return "." + base + suffix + ".tmp";
}

Result<> fsync_fd(int fd, std::string_view what)
{
    if (::fsync(fd) < 0) return fail_errno("fsync " + std::string(what));
    return {};
}

Result<> write_file_atomic_at(int dirfd, const std::string& name, std::string_view data, mode_t mode)
{
    std::string tmp = temp_name(name);
    auto fd = open_at(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    if (!fd) return std::unexpected(fd.error());
    auto cleanup = [&] { ::unlinkat(dirfd, tmp.c_str(), 0); };
    if (auto r = write_all(fd->get(), data.data(), data.size()); !r) {
        cleanup();
        return std::unexpected(std::move(r.error()).context("write '" + name + "'"));
    }
    if (::fchmod(fd->get(), mode) < 0 || ::fsync(fd->get()) < 0) {
        int e = errno;
        cleanup();
        return fail_errno(e, "sync '" + name + "'");
    }
    fd->reset();
    if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) < 0) {
        int e = errno;
        cleanup();
        return fail_errno(e, "rename to '" + name + "'");
    }
    return fsync_fd(dirfd, "directory of '" + name + "'");
}

bool is_atomic_write_temp(std::string_view n)
{
    // "." + base + "." + 16 hex digits + ".tmp", as temp_name() makes them
    constexpr size_t tail = 1 + 16 + 4;
    if (n.size() < 2 + tail || n[0] != '.' || !n.ends_with(".tmp") || n[n.size() - tail] != '.') return false;
    for (size_t i = n.size() - tail + 1; i < n.size() - 4; i++)
        if (!std::isxdigit(static_cast<unsigned char>(n[i]))) return false;
    return true;
}

Result<> replace_symlink_at(int dirfd, const std::string& name, const std::string& target)
{
    auto link = PendingSymlink::make(dirfd, name, target);
    if (!link) return std::unexpected(link.error());
    return link->commit();
}

PendingSymlink::PendingSymlink(int dirfd, std::string name, std::string tmp)
    : dirfd_(dirfd), name_(std::move(name)), tmp_(std::move(tmp))
{
}

PendingSymlink::PendingSymlink(PendingSymlink&& o) noexcept
    : dirfd_(o.dirfd_), name_(std::move(o.name_)), tmp_(std::exchange(o.tmp_, {}))
{
}

PendingSymlink::~PendingSymlink()
{
    if (!tmp_.empty()) ::unlinkat(dirfd_, tmp_.c_str(), 0);
}

Result<PendingSymlink> PendingSymlink::make(int dirfd, const std::string& name, const std::string& target)
{
    std::string tmp = temp_name(name);
    if (::symlinkat(target.c_str(), dirfd, tmp.c_str()) < 0) return fail_errno("symlink '" + name + "'");
    return PendingSymlink(dirfd, name, std::move(tmp));
}

Result<> PendingSymlink::commit()
{
    if (::renameat(dirfd_, tmp_.c_str(), dirfd_, name_.c_str()) < 0)
        return fail_errno("rename to '" + name_ + "'"); // the destructor removes the temporary
    tmp_.clear();
    return fsync_fd(dirfd_, "directory of '" + name_ + "'");
}

Result<uint64_t> mount_id_at(int dirfd, const std::string& name)
{
    struct statx sx = {};
    int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (name.empty() ? AT_EMPTY_PATH : 0);
    if (::statx(dirfd, name.c_str(), flags, STATX_MNT_ID, &sx) < 0) return fail_errno("statx '" + name + "'");
    return (sx.stx_mask & STATX_MNT_ID) ? static_cast<uint64_t>(sx.stx_mnt_id) : 0;
}

Result<> stat_at(int dirfd, const std::string& name, struct stat& st, uint64_t* mnt)
{
    struct statx sx = {};
    unsigned mask = STATX_BASIC_STATS | (mnt ? STATX_MNT_ID : 0);
    int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (name.empty() ? AT_EMPTY_PATH : 0);
    if (::statx(dirfd, name.c_str(), flags, mask, &sx) < 0) return fail_errno("stat '" + name + "'");
    st = {};
    st.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st.st_ino = sx.stx_ino;
    st.st_mode = sx.stx_mode;
    st.st_nlink = sx.stx_nlink;
    st.st_uid = sx.stx_uid;
    st.st_gid = sx.stx_gid;
    st.st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st.st_size = static_cast<off_t>(sx.stx_size);
    st.st_blksize = sx.stx_blksize;
    st.st_blocks = static_cast<blkcnt_t>(sx.stx_blocks);
    st.st_atim = {sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
    st.st_mtim = {sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
    st.st_ctim = {sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
    if (mnt) *mnt = (sx.stx_mask & STATX_MNT_ID) ? static_cast<uint64_t>(sx.stx_mnt_id) : 0;
    return {};
}

Result<bool> is_mount_point(int dirfd, const std::string& name)
{
    struct stat here, there;
    uint64_t here_mnt = 0, there_mnt = 0;
    UR_TRY(stat_at(dirfd, "", here, &here_mnt));
    UR_TRY(stat_at(dirfd, name, there, &there_mnt));
    return other_mount(here.st_dev, here_mnt, there.st_dev, there_mnt);
}

// A mount point below dirfd: never descend into it (W16; a bind mount of a
// directory outside the tree would otherwise be emptied).
// `shown`: how the error names it (its path from where the removal started).
static Result<> refuse_mount_point(int dirfd, const std::string& name, const std::string& shown)
{
    auto m = is_mount_point(dirfd, name);
    if (!m) return std::unexpected(m.error());
    if (*m)
        return std::unexpected(
            Error{ErrorKind::Busy, EBUSY, "'" + shown + "' is a mount point; not removing what is mounted there"});
    return {};
}

Result<std::vector<DirEntry>> read_dir(int dirfd)
{
    int dupfd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) return fail_errno("dup");
    DIR* d = ::fdopendir(dupfd);
    if (!d) {
        ::close(dupfd);
        return fail_errno("fdopendir");
    }
    ::rewinddir(d); // the dup shares its position with dirfd
    std::vector<DirEntry> out;
    while (struct dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") out.push_back({std::move(n), de->d_type});
    }
    ::closedir(d);
    return out;
}

namespace
{

Result<std::vector<std::string>> dir_names(int dirfd)
{
    auto entries = read_dir(dirfd);
    if (!entries) return std::unexpected(entries.error());
    std::vector<std::string> names;
    names.reserve(entries->size());
    for (auto& e : *entries)
        names.push_back(std::move(e.name));
    return names;
}

} // namespace

// Iterative, with one directory open at a time: a tree of any depth (a failed
// upgrade's, or an old backup's) neither overflows the stack nor runs out of
// descriptors. Up is ".." of the directory just emptied, checked to be the
// directory we came down from (by device and inode) before anything in it is removed.
namespace
{

// EPERM from unlink(2) means a directory only on some systems; on a file it is
// chattr's immutable or append-only flag (or a sticky directory): say so.
bool is_directory_at(int dirfd, const std::string& name)
{
    struct stat st;
    return ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

std::unexpected<Error> removal_error(int err, const std::string& what)
{
    Error e = sys_error(err, "remove '" + what + "'");
    if (err == EPERM) e.message += " (immutable or append-only? 'lsattr' shows it, 'chattr -i -a' clears it)";
    return std::unexpected(std::move(e));
}

} // namespace

Result<> remove_tree_at(int dirfd, const std::string& name)
{
    if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
    const int err = errno;
    if (err == EBUSY) UR_TRY(refuse_mount_point(dirfd, name, name)); // a file mount point (bind mount)
    if (err != EISDIR && !(err == EPERM && is_directory_at(dirfd, name))) return removal_error(err, name);
    UR_TRY(refuse_mount_point(dirfd, name, name));
    struct Level {
        std::string name; // in its parent
        dev_t dev;
        ino_t ino;
        std::vector<std::string> names; // still to remove, from the back
    };
    std::vector<Level> levels;
    auto path = [&](const std::string& last) {
        std::string p;
        for (const auto& l : levels)
            p += l.name + "/";
        return p + last;
    };
    auto enter = [&](int parent, const std::string& n) -> Result<UniqueFd> {
        auto sub = open_at(parent, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!sub) return std::unexpected(std::move(sub.error()).context("remove '" + path(n) + "'"));
        struct stat st;
        if (::fstat(sub->get(), &st) < 0) return fail_errno("stat '" + path(n) + "'");
        auto names = dir_names(sub->get());
        if (!names) return std::unexpected(std::move(names.error()).context("remove '" + path(n) + "'"));
        levels.push_back({n, st.st_dev, st.st_ino, std::move(*names)});
        return sub;
    };
    auto top = enter(dirfd, name);
    if (!top) return std::unexpected(top.error());
    UniqueFd cur = std::move(*top);
    for (;;) {
        Level& l = levels.back();
        if (!l.names.empty()) {
            std::string n = std::move(l.names.back());
            l.names.pop_back();
            if (::unlinkat(cur.get(), n.c_str(), 0) == 0) continue;
            const int e = errno;
            if (e == ENOENT) continue;
            if (e == EBUSY) UR_TRY(refuse_mount_point(cur.get(), n, path(n))); // a file mount point (bind mount)
            if (e != EISDIR && !(e == EPERM && is_directory_at(cur.get(), n))) return removal_error(e, path(n));
            UR_TRY(refuse_mount_point(cur.get(), n, path(n)));
            auto sub = enter(cur.get(), n);
            if (!sub) return std::unexpected(sub.error());
            cur = std::move(*sub);
            continue;
        }
        const std::string done = l.name;
        levels.pop_back();
        if (levels.empty()) break;
        auto up = open_at(cur.get(), "..", O_RDONLY | O_DIRECTORY);
        if (!up) return std::unexpected(std::move(up.error()).context("remove '" + path(done) + "'"));
        struct stat st;
        if (::fstat(up->get(), &st) < 0) return fail_errno("stat '" + path("") + "'");
        if (st.st_dev != levels.back().dev || st.st_ino != levels.back().ino)
            return fail(ErrorKind::Io, "remove '" + path(done) + "': it was moved while being removed");
        cur = std::move(*up);
        if (::unlinkat(cur.get(), done.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
            return fail_errno("remove directory '" + path(done) + "'");
    }
    cur.reset();
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
        return fail_errno("remove directory '" + name + "'");
    return {};
}

std::string lexical_path(const std::string& p)
{
    std::string n = std::filesystem::path(p).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/')
        n.pop_back();
    return n;
}

std::string root_path(const std::string& root, std::string_view abs)
{
    std::string r = root;
    while (r.size() > 1 && r.back() == '/')
        r.pop_back();
    if (r == "/") r.clear();
    if (abs.empty() || abs.front() != '/') r += '/';
    r += abs;
    if (r.empty()) r = "/";
    return r;
}

} // namespace ur
