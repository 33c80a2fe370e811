#include "fsmeta.hpp"

#include <algorithm>
#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

namespace ur
{

namespace
{

std::string proc_path(int fd)
{
    return "/proc/self/fd/" + std::to_string(fd);
}

ssize_t do_list(int fd, bool path_fd, char* buf, size_t size)
{
    return path_fd ? ::listxattr(proc_path(fd).c_str(), buf, size) : ::flistxattr(fd, buf, size);
}
ssize_t do_get(int fd, bool path_fd, const char* name, void* buf, size_t size)
{
    return path_fd ? ::getxattr(proc_path(fd).c_str(), name, buf, size) : ::fgetxattr(fd, name, buf, size);
}
int do_set(int fd, bool path_fd, const char* name, const void* v, size_t size)
{
    return path_fd ? ::setxattr(proc_path(fd).c_str(), name, v, size, 0) : ::fsetxattr(fd, name, v, size, 0);
}
int do_remove(int fd, bool path_fd, const char* name)
{
    return path_fd ? ::removexattr(proc_path(fd).c_str(), name) : ::fremovexattr(fd, name);
}

// A set that failed (errno). ENOSPC with room on the filesystem is its limit per
// inode (ext4 keeps all of a file's xattrs in one block), not a full disk: said so,
// rather than the no-space error whose remedy (delete backups) would not help.
Error set_error(int fd, const Xattr& w)
{
    const int e = errno;
    struct statfs sf;
    if ((e == ENOSPC || e == E2BIG) && ::fstatfs(fd, &sf) == 0 &&
        static_cast<uint64_t>(sf.f_bavail) * static_cast<uint64_t>(sf.f_bsize) > (1u << 20) + 16 * w.value.size())
        return Error{ErrorKind::Io, e,
                     "set xattr '" + w.name + "' (" + std::to_string(w.value.size()) +
                         " bytes): too large for this filesystem's xattr space per file, although it has room "
                         "(ext4 allows one block per file; the recovery partition should be xfs, see "
                         "upgrade-recovery(8) NOTES)"};
    return fail_errno(e, "set xattr '" + w.name + "'").error();
}

} // namespace

Result<std::vector<Xattr>> read_xattrs(int fd, bool path_fd)
{
    // One call per list and per value in the common case: try a buffer first and
    // only ask for the size when it is too small (ERANGE).
    // Buffers reused per thread: this runs for every entry a walk visits.
    thread_local std::string names_buf(4096, '\0'), value_buf(4096, '\0');
    std::vector<Xattr> out;
    std::string& names = names_buf;
    size_t listed = 0;
    for (int attempt = 0;; attempt++) {
        ssize_t n = do_list(fd, path_fd, names.data(), names.size());
        if (n >= 0) {
            listed = static_cast<size_t>(n);
            break;
        }
        if (errno == ENOTSUP || errno == ENODATA) return out;
        if (errno != ERANGE || attempt > 5) return fail_errno("list xattrs");
        ssize_t want = do_list(fd, path_fd, nullptr, 0);
        if (want < 0) return fail_errno("list xattrs");
        names.resize(static_cast<size_t>(want) + 256);
    }
    std::string& value = value_buf;
    for (size_t pos = 0; pos < listed;) {
        std::string name(names.c_str() + pos);
        pos += name.size() + 1;
        // XFS also lists POSIX ACLs as trusted.SGI_ACL_*; they are the same data as
        // system.posix_acl_*, which is what we copy.
        if (name.empty() || name == "trusted.SGI_ACL_FILE" || name == "trusted.SGI_ACL_DEFAULT") continue;
        for (int attempt = 0;; attempt++) {
            ssize_t n = do_get(fd, path_fd, name.c_str(), value.data(), value.size());
            if (n >= 0) {
                out.push_back({name, value.substr(0, static_cast<size_t>(n))});
                break;
            }
            if (errno == ENODATA) break; // removed meanwhile
            if (errno != ERANGE || attempt > 5) return fail_errno("read xattr '" + name + "'");
            ssize_t want = do_get(fd, path_fd, name.c_str(), nullptr, 0);
            if (want < 0) {
                if (errno == ENODATA) break;
                return fail_errno("read xattr '" + name + "'");
            }
            value.resize(static_cast<size_t>(want) + 256);
        }
    }
    std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
    return out;
}

namespace
{

bool selinux_enabled()
{
    static const bool on = ::access("/sys/fs/selinux/enforce", F_OK) == 0;
    return on;
}

Result<> apply_xattrs_to(int fd, bool path_fd, const std::vector<Xattr>& want, Inode inode)
{
    // A fresh inode's only possible xattr is the policy's label, which setting
    // ours replaces; without SELinux it has none.
    bool sets_label =
        std::any_of(want.begin(), want.end(), [](const Xattr& x) { return x.name == "security.selinux"; });
    if (inode == Inode::Fresh && (sets_label || !selinux_enabled())) {
        for (const auto& w : want)
            if (do_set(fd, path_fd, w.name.c_str(), w.value.data(), w.value.size()) < 0)
                return std::unexpected(set_error(fd, w));
        return {};
    }
    return apply_xattrs(fd, path_fd, want);
}

} // namespace

Result<> apply_xattrs(int fd, bool path_fd, const std::vector<Xattr>& want)
{
    auto have = read_xattrs(fd, path_fd);
    if (!have) return std::unexpected(have.error());
    for (const auto& h : *have) {
        bool keep = std::any_of(want.begin(), want.end(), [&](const Xattr& w) { return w.name == h.name; });
        if (!keep && do_remove(fd, path_fd, h.name.c_str()) < 0 && errno != ENODATA)
            return fail_errno("remove xattr '" + h.name + "'");
    }
    for (const auto& w : want) {
        auto it = std::find_if(have->begin(), have->end(), [&](const Xattr& h) { return h.name == w.name; });
        if (it != have->end() && it->value == w.value) continue;
        if (do_set(fd, path_fd, w.name.c_str(), w.value.data(), w.value.size()) < 0)
            return std::unexpected(set_error(fd, w));
    }
    return {};
}

Result<> set_times(int dirfd, const std::string& name, int fd, const Entry& e)
{
    struct timespec ts[2];
    ts[0].tv_sec = e.mtime_sec; // atime is not kept; mtime doubles for it
    ts[0].tv_nsec = e.mtime_nsec;
    ts[1].tv_sec = e.mtime_sec;
    ts[1].tv_nsec = e.mtime_nsec;
    if (fd >= 0 && e.type != FileType::Link) {
        if (::futimens(fd, ts) < 0) return fail_errno("set times");
        return {};
    }
    if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0) return fail_errno("set times");
    return {};
}

Result<> apply_metadata(int dirfd, const std::string& name, int fd, const Entry& e, Inode inode)
{
    UniqueFd own;
    bool path_fd = false;
    // Regular files and directories are opened for real by callers; other
    // types (symlinks, devices, fifos) are only ever touched through O_PATH.
    if (fd < 0 || e.type == FileType::Link || e.type == FileType::Chr || e.type == FileType::Blk ||
        e.type == FileType::Fifo || e.type == FileType::Sock) {
        if (fd < 0 || e.type == FileType::Link) {
            auto o = open_at(dirfd, name, O_PATH | O_NOFOLLOW);
            if (!o) return std::unexpected(o.error());
            own = std::move(*o);
            fd = own.get();
        }
        path_fd = e.type != FileType::Reg && e.type != FileType::Dir;
        if (!path_fd && own) {
            // A regular file or directory opened with O_PATH here: reopen readable.
            auto o = open_at(dirfd, name, (e.type == FileType::Dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_NOFOLLOW);
            if (!o) return std::unexpected(o.error());
            own = std::move(*o);
            fd = own.get();
        }
    }
    bool owned = inode == Inode::Fresh && e.uid == ::geteuid() && e.gid == ::getegid();
    if (owned) {
        // Nothing to change, and no set-id bit or capability to clear yet.
    } else if (path_fd) {
        if (::fchownat(dirfd, name.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) < 0) return fail_errno("chown");
    } else if (::fchown(fd, e.uid, e.gid) < 0) {
        return fail_errno("chown");
    }
    UR_TRY(apply_xattrs_to(fd, path_fd, e.xattrs, inode));
    if (e.type != FileType::Link) {
        if (path_fd) {
            if (::fchmodat(dirfd, name.c_str(), e.mode, 0) < 0) return fail_errno("chmod");
        } else if (::fchmod(fd, e.mode) < 0) {
            return fail_errno("chmod");
        }
    }
    UR_TRY(set_times(dirfd, name, path_fd ? -1 : fd, e));
    return {};
}

void entry_from_stat(Entry& e, const struct stat& st)
{
    e.type = *file_type_from_mode(st.st_mode);
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = (e.type == FileType::Reg || e.type == FileType::Link) ? static_cast<uint64_t>(st.st_size) : 0;
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    e.rdev = (e.type == FileType::Chr || e.type == FileType::Blk) ? st.st_rdev : 0;
    e.ino = st.st_ino;
    e.ctime_sec = st.st_ctim.tv_sec;
    e.ctime_nsec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
}

bool copy_matches(const Entry& recorded, const struct stat& st)
{
    auto t = file_type_from_mode(st.st_mode);
    return t && *t == recorded.type && recorded.mode == (st.st_mode & 07777) && recorded.uid == st.st_uid &&
           recorded.gid == st.st_gid && recorded.mtime_sec == st.st_mtim.tv_sec &&
           recorded.mtime_nsec == static_cast<uint32_t>(st.st_mtim.tv_nsec) &&
           (recorded.type == FileType::Dir || recorded.size == static_cast<uint64_t>(st.st_size)) &&
           recorded.rdev == ((recorded.type == FileType::Chr || recorded.type == FileType::Blk) ? st.st_rdev : 0);
}

bool unchanged_since(const Entry& recorded, const struct stat& st)
{
    return (recorded.flags & (kChangedDuringCopy | kMountPoint)) == 0 && recorded.ino == st.st_ino &&
           recorded.ctime_sec == st.st_ctim.tv_sec &&
           recorded.ctime_nsec == static_cast<uint32_t>(st.st_ctim.tv_nsec) && copy_matches(recorded, st);
}

} // namespace ur
