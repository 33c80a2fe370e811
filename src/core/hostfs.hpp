// Reading host paths under a root prefix. Symlinks on the host are often
// absolute (/var/lib/kubelet/pki/kubelet-client-current.pem -> /var/lib/...),
// so a plain open of root + path would follow them out of the root into the
// running system. These resolve every symlink as if root were "/"
// (openat2 RESOLVE_IN_ROOT).
#pragma once

#include "error.hpp"
#include "fd.hpp"

#include <string>

namespace ur
{

// Open `abs` (an absolute host path) under `root`; O_CLOEXEC is added.
Result<UniqueFd> open_host(const std::string& root, const std::string& abs, int flags);

Result<std::string> read_host_file(const std::string& root, const std::string& abs, size_t limit = 64 << 20);

// Whether `abs` exists under root (the last component is not followed: a dangling
// symlink exists). ENOENT and ENOTDIR are "no"; other errors are errors.
Result<bool> host_path_exists(const std::string& root, const std::string& abs);

// `abs` as the host really has it: the symlinks of its directories resolved
// inside `root` (RHCOS has /opt -> var/opt), the last component kept. A walk
// does not follow symlinks, so a file is copied by this path. ENOENT or
// ENOTDIR when a directory on the way is missing.
Result<std::string> host_real_path(const std::string& root, const std::string& abs);

} // namespace ur
