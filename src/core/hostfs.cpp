#include "hostfs.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ur
{

Result<UniqueFd> open_host(const std::string& root, const std::string& abs, int flags)
{
    auto rootfd = open_at(AT_FDCWD, root.empty() ? "/" : root, O_PATH | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("root"));
    std::string rel = abs;
    while (!rel.empty() && rel.front() == '/')
        rel.erase(0, 1);
    if (rel.empty()) rel = ".";
    struct open_how how = {};
    how.flags = static_cast<__u64>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, rootfd->get(), rel.c_str(), &how, sizeof how));
    if (fd < 0) return fail_errno("open '" + root_path(root, abs) + "'");
    return UniqueFd(fd);
}

Result<std::string> read_host_file(const std::string& root, const std::string& abs, size_t limit)
{
    auto fd = open_host(root, abs, O_RDONLY | O_NOCTTY);
    if (!fd) return std::unexpected(fd.error());
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd->get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("read '" + root_path(root, abs) + "'");
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > limit) return fail(ErrorKind::Io, "'" + root_path(root, abs) + "' is larger than expected");
    }
    return out;
}

Result<bool> host_path_exists(const std::string& root, const std::string& abs)
{
    auto fd = open_host(root, abs, O_PATH | O_NOFOLLOW);
    if (fd) return true;
    if (fd.error().err == ENOENT || fd.error().err == ENOTDIR) return false;
    return std::unexpected(fd.error());
}

} // namespace ur
