#include "initrd_peek.hpp"

#include "partition.hpp"
#include "recovery_journal.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>

namespace ur
{

Result<PeekResult> peek_armed(const Config& cfg, const std::string& peek_dir)
{
    auto part = find_partition(cfg.partition_label);
    if (!part) {
        if (part.error().kind == ErrorKind::PartitionNotFound) return PeekResult::NoPartition;
        return std::unexpected(part.error());
    }
    if (part->fstype.empty()) return PeekResult::NoFilesystem;
    if (::mkdir(peek_dir.c_str(), 0700) != 0 && errno != EEXIST) return fail_errno("create " + peek_dir);
    UR_TRY_CTX(mount_fs(part->device, peek_dir, part->fstype, "ro"), "look for an armed recovery");
    MountGuard guard(peek_dir);
    std::string marker = peek_dir + "/" + kRecoveryDir + "/" + kArmedFile;
    struct stat st;
    if (::fstatat(AT_FDCWD, marker.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return PeekResult::Armed;
    if (errno == ENOENT) return PeekResult::NotArmed;
    return fail_errno("stat " + marker);
}

} // namespace ur
