#include "hostfs.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace ur
{

Result<UniqueFd> open_host(const std::string& root, const std::string& abs, int flags)
{
    auto rootfd = open_at(AT_FDCWD, root.empty() ? "/" : root, O_PATH | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("root"));
    auto fd = open_in_root(rootfd->get(), abs, flags);
    if (!fd) return fail_errno(fd.error().err, "open '" + root_path(root, abs) + "'");
    return fd;
}

Result<std::string> read_host_file(const std::string& root, const std::string& abs, size_t limit)
{
    auto fd = open_host(root, abs, O_RDONLY | O_NOCTTY);
    if (!fd) return std::unexpected(fd.error());
    return read_fd(fd->get(), root_path(root, abs), limit);
}

Result<bool> host_path_exists(const std::string& root, const std::string& abs)
{
    auto fd = open_host(root, abs, O_PATH | O_NOFOLLOW);
    if (fd) return true;
    if (fd.error().err == ENOENT || fd.error().err == ENOTDIR) return false;
    return std::unexpected(fd.error());
}

} // namespace ur
