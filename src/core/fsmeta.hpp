// Reading and applying file metadata without following symlinks: xattrs
// (ACLs and security.selinux included, copied verbatim), owner, mode, times.
#pragma once

#include "error.hpp"
#include "fd.hpp"
#include "manifest.hpp"

#include <string>
#include <sys/stat.h>
#include <vector>

namespace ur
{

// All xattrs of the inode `fd` refers to (O_PATH fds included, via /proc/self/fd:
// there is no l*xattr taking an fd). Sorted by name.
Result<std::vector<Xattr>> read_xattrs(int fd, bool is_path_fd);

// Make the xattrs of `fd` exactly `want` (removes others).
Result<> apply_xattrs(int fd, bool is_path_fd, const std::vector<Xattr>& want);

// What the inode metadata is applied to.
enum class Inode {
    Existing, // anything may be set on it already
    // Created by us a moment ago, owned by our euid/egid, in a directory with
    // no default ACL and no set-group-id bit (a backup's staging tree): it can
    // carry no xattr but a policy label, so the current ones are not read
    // unless a label could be left behind.
    Fresh,
};

// Owner, xattrs, mode, mtime of `name` in `dirfd` in the order that keeps
// them all: chown first (it clears set-id bits and file capabilities), then
// xattrs (ACLs), then mode, then times. `fd` may be -1 (then an O_PATH fd is opened).
Result<> apply_metadata(int dirfd, const std::string& name, int fd, const Entry& e, Inode inode = Inode::Existing);

Result<> set_times(int dirfd, const std::string& name, int fd, const Entry& e);

// Fill the stat-derived fields of an Entry.
void entry_from_stat(Entry& e, const struct stat& st);

// Is `st` the very inode `recorded` describes (its source at backup time),
// unchanged since? Every write, chmod, chown, xattr or link change moves
// ctime, which no caller can set, so equal ino + ctime (+ type, mode, owner,
// mtime, size) means content and xattrs are as recorded too. Entries that
// changed during their copy or were mount points never match.
bool unchanged_since(const Entry& recorded, const struct stat& st);
// Whether a copy in a backup still has the metadata its manifest entry recorded
// (what a stat shows: type, mode, owner, mtime, size, device; not inode or ctime,
// which belong to the source).
bool copy_matches(const Entry& recorded, const struct stat& st);

} // namespace ur
