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

Result<std::string> host_real_path(const std::string& root, const std::string& abs)
{
    const size_t slash = abs.find_last_of('/');
    if (abs.empty() || abs[0] != '/' || slash + 1 >= abs.size())
        return fail(ErrorKind::InvalidArgs, "'" + abs + "' is not an absolute file path");
    const std::string dir = slash == 0 ? "/" : abs.substr(0, slash);
    auto rootfd = open_at(AT_FDCWD, root.empty() ? "/" : root, O_PATH | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("root"));
    auto dirfd = open_in_root(rootfd->get(), dir, O_PATH | O_DIRECTORY);
    if (!dirfd) return std::unexpected(dirfd.error());
    auto root_real = fd_path(rootfd->get());
    if (!root_real) return std::unexpected(root_real.error());
    auto dir_real = fd_path(dirfd->get());
    if (!dir_real) return std::unexpected(dir_real.error());
    // RESOLVE_IN_ROOT keeps the result under the root.
    std::string rel = *root_real == "/" ? *dir_real : dir_real->substr(root_real->size());
    if (*root_real != "/" && dir_real->compare(0, root_real->size(), *root_real) != 0)
        return fail(ErrorKind::Internal, "'" + dir + "' resolved outside the root");
    if (rel.empty() || rel == "/") rel.clear();
    return rel + abs.substr(slash);
}

} // namespace ur
