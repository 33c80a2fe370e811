// Copying and hashing file contents: sparse files keep their holes, the
// digest is over the logical content (holes read as zeros).
#pragma once

#include "error.hpp"
#include "manifest.hpp"

#include <string>
#include <sys/stat.h>
#include <vector>

namespace ur
{

using Buffer = std::vector<char>;
inline constexpr size_t kCopyBufferSize = 1 << 20;

// Copy `in` (size from `st`) to the start of `out`, truncating `out` to the
// size. Returns the sha256; adds the bytes written to *written.
Result<std::string> copy_content(int in, int out, const struct stat& st, Buffer& buf, uint64_t* written);

// sha256 of a file's content.
Result<std::string> hash_content(int fd, const struct stat& st, Buffer& buf);
// The same for dirfd/name (not followed when a symlink).
Result<std::string> file_sha256(int dirfd, const std::string& name, Buffer& buf);

struct CopiedFile {
    bool vanished = false; // gone (or no longer a regular file) before it could be read
    Entry entry;           // metadata of what was copied, digest included (path not set)
    uint64_t written = 0;
};

// Copy one regular file with all its metadata into dst_dir/name (which must
// not exist). When the source changes during the copy (size, mtime or ctime
// differ before and after) it is copied again, up to `retries` times; after
// that the entry carries kChangedDuringCopy. dst_dir must be a directory of a
// staging tree (Inode::Fresh: no default ACL, no set-group-id bit).
Result<CopiedFile> copy_regular_file(int src_dir, const std::string& name, int dst_dir, unsigned retries, Buffer& buf);

} // namespace ur
