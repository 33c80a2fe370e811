#include "initrd_peek.hpp"

#include "partition.hpp"
#include "recovery_journal.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

namespace ur
{

namespace
{

// Unmounts on scope exit. Lazily: nothing of ours stays open below it, and a
// stray reference must not keep the boot waiting.
class PeekMount
{
  public:
    explicit PeekMount(std::string target) : target_(std::move(target)) {}
    PeekMount(const PeekMount&) = delete;
    PeekMount& operator=(const PeekMount&) = delete;
    ~PeekMount() { ::umount2(target_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW); }

  private:
    std::string target_;
};

} // namespace

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
    PeekMount guard(peek_dir);
    std::string marker = peek_dir + "/" + kRecoveryDir + "/" + kArmedFile;
    struct stat st;
    if (::fstatat(AT_FDCWD, marker.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return PeekResult::Armed;
    if (errno == ENOENT) return PeekResult::NotArmed;
    return fail_errno("stat " + marker);
}

} // namespace ur
