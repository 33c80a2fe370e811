// The recovery partition: found by its GPT partition name with libblkid (no
// udev symlinks needed), mounted and verified with libmount (W1).
#pragma once

#include "config.hpp"
#include "error.hpp"

#include <string>
#include <sys/types.h>

namespace ur
{

struct PartitionInfo {
    std::string device; // "/dev/loop3p2", "/dev/vda4"
    dev_t devno = 0;    // st_rdev of the device node
    std::string fstype; // "xfs" (empty when unformatted)
    std::string partlabel;
};

// Scan the block devices the kernel knows (/proc/partitions) for a GPT
// partition named `label`. PartitionNotFound when there is none; an error
// naming both devices when there are several.
Result<PartitionInfo> find_partition(const std::string& label);

// Read the partition table of an image file or disk and return the partition
// named `label` (used by tests and the sandbox; start/size in bytes).
struct ImagePartition {
    int number = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
};
Result<ImagePartition> find_partition_in_image(const std::string& image, const std::string& label);

struct StoreLocation {
    std::string path;             // absolute path of the mount point, root prefix included
    bool plain_directory = false; // allow_plain_directory and no partition was used
    PartitionInfo partition;      // empty when plain_directory
    bool mounted_now = false;     // we mounted it in this call
    bool absent = false;          // plain_directory that does not exist yet (not created: only Create makes it)
};

enum class StoreAccess {
    Read,    // as found: an unmounted partition is NotMounted
    Inspect, // mounts the partition when needed, creates no layout (backup --dry-run; delete, disarm: they
             // only remove what is there)
    Write,   // mounts it, creates no layout either: what arm, recover and watchdog start write goes into
             // the store that holds their backup, so an id that names none changes nothing
    Create,  // mounts it, and creates the layout (and a missing plain directory): backup alone
};

// Mount `source` (a device, a LABEL=/UUID=/PARTLABEL= tag, or a directory with
// the "bind" option) on `target` with libmount, without mount helpers.
Result<> mount_fs(const std::string& source, const std::string& target, const std::string& fstype,
                  const std::string& options);

// A mount for as long as this lives: the destructor detaches it lazily, with
// everything mounted below it (open fds of ours may still pin it; the kernel
// finishes the unmount when the last one closes).
class MountGuard
{
  public:
    MountGuard() = default;
    explicit MountGuard(std::string target) : target_(std::move(target)) {}
    MountGuard(MountGuard&& o) noexcept : target_(std::move(o.target_)) { o.target_.clear(); }
    MountGuard& operator=(MountGuard&& o) noexcept;
    MountGuard(const MountGuard&) = delete;
    MountGuard& operator=(const MountGuard&) = delete;
    ~MountGuard() { release(); }
    void release();

  private:
    std::string target_;
};

// Resolve where backups live: <root><mount_point>. Inspect and Write mount the
// partition there when nothing is mounted. Refuses (NotMounted /
// PartitionNotFound) when the mount point is not a mount of that partition,
// naming what is mounted there instead; allow_plain_directory accepts a plain
// directory when no partition with the label exists; only Create creates it.
Result<StoreLocation> locate_store(const Config& cfg, const std::string& root, StoreAccess access);

} // namespace ur
