// A depth-first walk of one tree in manifest order (compare_paths), holding
// an open fd per directory level so paths longer than PATH_MAX work and no
// symlink is ever followed. Backup (source), verify (generation) and restore
// (target) all walk with this and merge against a manifest.
#pragma once

#include "error.hpp"
#include "fd.hpp"
#include "progress.hpp"

#include <functional>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace ur
{

struct WalkItem {
    std::string rel;  // path relative to the generation: "<tree>/a/b"
    std::string name; // last component ("" for the tree root itself)
    SharedFd parent;  // directory containing it (for the tree root: the fd the walk started from)
    struct stat st {
    };
    int depth = 0;
    bool other_fs = false; // a directory on another filesystem than the tree root
};

// The deepest directory nesting below a tree root that backup, verify and restore
// accept. Each level costs a few KiB of stack and two or three descriptors on the way down;
// this bound keeps both within an 8 MiB stack and a raised descriptor limit, and is
// far beyond any real /etc, /usr/local or /var/lib/kubelet. Deeper: a clear error.
inline constexpr int kMaxTreeDepth = 512;

enum class WalkAction { Descend, Skip };

struct WalkOptions {
    bool one_file_system = true;
    std::vector<std::string> exclude; // fnmatch patterns relative to the tree root
    // When not empty: only these paths (relative to the tree root), their
    // ancestors and their descendants are visited (MachineConfig extras).
    std::vector<std::string> include;
};

struct WalkVisitor {
    // Called in pre-order. For directories, returning Descend walks into them;
    // `dirfd` is then the opened directory (visitor may keep a reference).
    std::function<Result<WalkAction>(const WalkItem&, const SharedFd& dirfd)> enter;
    // Called after a directory's children (only for descended directories).
    std::function<Result<>(const WalkItem&, const SharedFd& dirfd)> leave;
    // A child vanished between listing and stat; default: ignored.
    std::function<void(const std::string& rel)> vanished;
};

// Walk the tree whose root is `root_name` inside `start` (a directory fd),
// reported as `rel_prefix` (the tree name). Missing root: NotFound.
Result<> walk_tree(const SharedFd& start, const std::string& root_name, const std::string& rel_prefix,
                   const WalkOptions& opts, const WalkVisitor& visitor, const CancelToken* cancel = nullptr);

// The order of names within a directory: bytes compared unsigned.
bool name_less(const std::string& a, const std::string& b);

// Sorted names of a directory (bytes, unsigned), without "." and "..".
Result<std::vector<std::string>> list_dir(int dirfd);
// The same, reading `fd` itself from its start: for an fd nobody else reads
// the directory through (its position moves). Saves an open and a close.
Result<std::vector<std::string>> list_own_dir(int fd);

// Is `rel` (relative to the tree root) excluded by the patterns?
bool path_excluded(const std::string& rel, const std::vector<std::string>& patterns);

} // namespace ur
