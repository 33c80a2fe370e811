// RAII for file descriptors, and the small fd-relative file helpers every
// module uses (atomic replace with fsync, whole-file read).
#pragma once

#include "error.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace ur
{

class UniqueFd
{
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept
    {
        if (this != &o) reset(o.release());
        return *this;
    }
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release()
    {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1)
    {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

// Directory fds are shared by the walker and copy workers, so they are
// reference counted.
using SharedFd = std::shared_ptr<const UniqueFd>;

inline SharedFd share(UniqueFd fd)
{
    return std::make_shared<const UniqueFd>(std::move(fd));
}

// openat() returning a UniqueFd; O_CLOEXEC is always added.
Result<UniqueFd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// Open a directory below dirfd without following any symlink on the way and
// without leaving the tree (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS).
Result<UniqueFd> open_beneath(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// mkdir -p relative to dirfd (no symlinks followed), returns the opened directory.
Result<UniqueFd> mkdir_p_at(int dirfd, const std::string& path, mode_t mode = 0755);

// The entries of an open directory (not . and ..), in directory order, read
// through a private descriptor; `type` is d_type (DT_UNKNOWN on some filesystems).
struct DirEntry {
    std::string name;
    unsigned char type;
};
Result<std::vector<DirEntry>> read_dir(int dirfd);

// A regular file for reading (O_NONBLOCK, so a FIFO cannot hang the open); anything
// else is Corrupt, named. `flags` adds to O_RDONLY | O_NOCTTY | O_NONBLOCK.
Result<UniqueFd> open_regular_at(int dirfd, const std::string& path, int flags = 0);

// Read a regular file (open_regular_at) to its end, at most `limit` bytes.
Result<std::string> read_file_at(int dirfd, const std::string& path, size_t limit = 64 << 20);

// Read an open file to its end (at most `limit` bytes); `what` names it in errors.
Result<std::string> read_fd(int fd, const std::string& what, size_t limit = 64 << 20);

// Open a host path below a root directory, resolving symlinks as if the root
// were "/" (openat2 RESOLVE_IN_ROOT): an absolute link such as /usr/local ->
// /var/usrlocal stays inside the root. Leading slashes are optional.
Result<UniqueFd> open_in_root(int rootfd, const std::string& abs, int flags);

// Durable replace: write to a temporary in the same directory, fsync, rename
// over the name, fsync the directory. Readers see old or new, never torn.
Result<> write_file_atomic_at(int dirfd, const std::string& name, std::string_view data, mode_t mode = 0644);
// A temporary of write_file_atomic_at or replace_symlink_at (".NAME.<16 hex>.tmp"),
// left behind when the writer was killed between create and rename.
bool is_atomic_write_temp(std::string_view name);

// Point the symlink `name` at `target` atomically (symlink to a temporary name, rename, fsync dir).
Result<> replace_symlink_at(int dirfd, const std::string& name, const std::string& target);

// replace_symlink_at in two halves: the link is made under its temporary name now,
// and commit() renames it over `name` later. The rename allocates nothing, so a
// full disk cannot fail it once the link exists (the backup makes `latest` before
// it publishes). Removed again unless committed.
class PendingSymlink
{
  public:
    static Result<PendingSymlink> make(int dirfd, const std::string& name, const std::string& target);
    PendingSymlink(PendingSymlink&& o) noexcept;
    PendingSymlink& operator=(PendingSymlink&&) = delete;
    ~PendingSymlink();
    Result<> commit();

  private:
    PendingSymlink(int dirfd, std::string name, std::string tmp);
    int dirfd_;
    std::string name_, tmp_; // tmp_ empty: committed or moved from
};

Result<> fsync_fd(int fd, std::string_view what);

// The id of the mount `name` (in dirfd) is on; "" for dirfd itself. A mount point
// has another id than its parent directory, also when it is a bind mount of the same
// filesystem (same st_dev). 0 when the kernel does not report mount ids (< 5.8).
Result<uint64_t> mount_id_at(int dirfd, const std::string& name);

// lstat of `name` in dirfd ("" for dirfd itself), and its mount id in the same
// call when `mnt` is given (0 when the kernel does not report it).
Result<> stat_at(int dirfd, const std::string& name, struct stat& st, uint64_t* mnt = nullptr);

// Is an entry (st_dev `dev`, mount id `mnt`) on another mount than a directory
// (`top_dev`, `top_mnt`): another filesystem, or another mount of the same one
// (a bind mount)? Mount ids of 0 (kernel < 5.8) compare st_dev only.
inline bool other_mount(dev_t top_dev, uint64_t top_mnt, dev_t dev, uint64_t mnt)
{
    return dev != top_dev || (top_mnt && mnt && mnt != top_mnt);
}

// Is `name` in dirfd ("" for dirfd itself: never) on another mount than dirfd:
// another filesystem (st_dev) or another mount of the same one (a bind mount)?
Result<bool> is_mount_point(int dirfd, const std::string& name);

// rm -rf below dirfd without following symlinks. Missing is not an error.
// Any depth: iterative, with one directory of the tree open at a time.
// Never crosses into another mount: a mount point at or below `name` stops it
// with ErrorKind::Busy (EBUSY) before anything inside that mount is touched.
Result<> remove_tree_at(int dirfd, const std::string& name);

Result<> write_all(int fd, const void* buf, size_t len);

// Join a root prefix and an absolute path: ("/tmp/r", "/etc") -> "/tmp/r/etc".
std::string root_path(const std::string& root, std::string_view abs);

// Lexically normal path without a trailing slash ("/etc/../opt/x/" -> "/opt/x"),
// so a path cannot dodge a containment test with dots or doubled slashes.
std::string lexical_path(const std::string& p);

// Whether `path` is `dir` or lies below it, by name ("/var/lib" is below "/var",
// "/varx" is not; "/" holds every absolute path). Both as lexical_path gives them.
inline bool path_within(std::string_view path, std::string_view dir)
{
    if (dir == "/") return !path.empty() && path[0] == '/';
    return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
           (path.size() == dir.size() || path[dir.size()] == '/');
}

// The real absolute path of an open fd, as the kernel shows it (/proc/self/fd).
Result<std::string> fd_path(int fd);

} // namespace ur
