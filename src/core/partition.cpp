// Partition lookup by GPT name with low-level libblkid probes (no udev, no
// blkid cache: both can be missing or stale in the initramfs and on test
// hosts), and mount verification by device number with libmount (W1).
#include "partition.hpp"

#include "fd.hpp"
#include "text.hpp"
#include "walk.hpp"

#include <blkid/blkid.h>
#include <libmount/libmount.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

namespace ur
{
namespace
{

struct ProbeFree {
    void operator()(blkid_probe p) const { blkid_free_probe(p); }
};
using Probe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, ProbeFree>;

struct TableFree {
    void operator()(libmnt_table* t) const { mnt_unref_table(t); }
};
struct IterFree {
    void operator()(libmnt_iter* i) const { mnt_free_iter(i); }
};
struct ContextFree {
    void operator()(libmnt_context* c) const { mnt_free_context(c); }
};

std::string devno_str(dev_t d)
{
    return std::to_string(major(d)) + ":" + std::to_string(minor(d));
}

// One GPT entry read from an image or a disk.
struct GptEntry {
    int number = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
    std::string name;
};

// Read the partition table of a file or block device. `gpt` is false when the
// device has no GPT (no table, or another type such as dos): not an error.
struct GptTable {
    bool gpt = false;
    std::vector<GptEntry> entries;
};

Result<GptTable> read_gpt(const std::string& path)
{
    errno = 0;
    Probe pr(blkid_new_probe_from_filename(path.c_str()));
    if (!pr) return fail_errno(errno ? errno : EIO, "open '" + path + "' for probing");
    blkid_probe_enable_superblocks(pr.get(), 0);
    blkid_probe_enable_partitions(pr.get(), 1);
    blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_ENTRY_DETAILS);
    GptTable out;
    blkid_partlist ls = blkid_probe_get_partitions(pr.get());
    if (!ls) return out; // no partition table at all
    blkid_parttable tab = blkid_partlist_get_table(ls);
    // PTTYPE from lookup_value is unreliable after get_partitions; ask the table.
    const char* type = tab ? blkid_parttable_get_type(tab) : nullptr;
    if (!type || std::string_view(type) != "gpt") return out;
    out.gpt = true;
    int n = blkid_partlist_numof_partitions(ls);
    for (int i = 0; i < n; ++i) {
        blkid_partition par = blkid_partlist_get_partition(ls, i);
        if (!par) continue;
        // Nested tables (e.g. a BSD label inside a partition) have no GPT names.
        if (blkid_partition_get_table(par) != tab) continue;
        GptEntry e;
        e.number = blkid_partition_get_partno(par);
        // libblkid reports start and size in 512-byte sectors whatever the device's sector size.
        e.offset = static_cast<uint64_t>(blkid_partition_get_start(par)) * 512;
        e.size = static_cast<uint64_t>(blkid_partition_get_size(par)) * 512;
        if (const char* nm = blkid_partition_get_name(par)) e.name = nm;
        out.entries.push_back(std::move(e));
    }
    return out;
}

// Filesystem signature of a device: "" when there is none.
Result<std::string> probe_fstype(const std::string& dev)
{
    errno = 0;
    Probe pr(blkid_new_probe_from_filename(dev.c_str()));
    if (!pr) return fail_errno(errno ? errno : EIO, "open '" + dev + "' for probing");
    blkid_probe_enable_partitions(pr.get(), 0);
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE);
    int rc = blkid_do_safeprobe(pr.get());
    if (rc == 1) return std::string();
    if (rc == -2)
        return fail(ErrorKind::Corrupt,
                    "several filesystem signatures on " + dev + "; inspect them with `wipefs -n " + dev + "`");
    if (rc < 0) return fail(ErrorKind::Io, "cannot probe " + dev + " for a filesystem");
    const char* type = nullptr;
    if (blkid_probe_lookup_value(pr.get(), "TYPE", &type, nullptr) != 0 || !type) return std::string();
    return std::string(type);
}

std::string read_sysfs(const std::string& path)
{
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
}

bool parse_devno(const std::string& s, dev_t& out)
{
    unsigned maj = 0, min = 0;
    if (std::sscanf(s.c_str(), "%u:%u", &maj, &min) != 2) return false;
    out = makedev(maj, min);
    return true;
}

struct KernelPart {
    std::string name; // sysfs name: "loop3p2"
    int number = 0;
    dev_t devno = 0;
};

// The partitions the kernel created for a whole disk (sysfs children with a "partition" file).
std::vector<KernelPart> kernel_partitions(const std::string& sys_disk)
{
    std::vector<KernelPart> out;
    std::string dir = "/sys/class/block/" + sys_disk;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (struct dirent* de = ::readdir(d)) {
        std::string name = de->d_name;
        if (name == "." || name == "..") continue;
        std::string num = read_sysfs(dir + "/" + name + "/partition");
        if (num.empty()) continue;
        KernelPart kp;
        kp.name = name;
        kp.number = std::atoi(num.c_str());
        if (!parse_devno(read_sysfs(dir + "/" + name + "/dev"), kp.devno)) continue;
        out.push_back(std::move(kp));
    }
    ::closedir(d);
    return out;
}

struct BlockDev {
    std::string name; // as in /proc/partitions: "vda", "cciss/c0d0"
    unsigned long long blocks = 0;
};

Result<std::vector<BlockDev>> proc_partitions()
{
    std::ifstream in("/proc/partitions");
    if (!in) return fail_errno("open /proc/partitions");
    std::vector<BlockDev> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        unsigned maj = 0, min = 0;
        BlockDev b;
        if (!(ls >> maj >> min >> b.blocks >> b.name)) continue; // header and blank line
        out.push_back(std::move(b));
    }
    return out;
}

bool is_permission(int err)
{
    return err == EACCES || err == EPERM;
}

// Resolve `abs` inside `rootfd` as if rootfd were "/" (absolute symlinks stay
// inside the root). With `create`, missing components are made: parents 0755,
// the last one `last_mode`. Returns an O_PATH fd of the directory, or ENOENT.
Result<UniqueFd> open_dir_in_root(int rootfd, const std::string& abs, bool create, mode_t last_mode)
{
    std::vector<std::string> comps;
    std::istringstream ss(abs);
    for (std::string c; std::getline(ss, c, '/');)
        if (!c.empty() && c != ".") comps.push_back(c);

    auto open_prefix = [&](size_t n) -> Result<UniqueFd> {
        std::string rel = ".";
        for (size_t i = 0; i < n; ++i)
            rel += "/" + comps[i];
        auto fd = open_in_root(rootfd, rel, O_PATH | O_DIRECTORY);
        if (!fd) return fail_errno(fd.error().err, "open '" + abs + "'");
        return fd;
    };

    auto whole = open_prefix(comps.size());
    if (whole || !create || whole.error().err != ENOENT) return whole;

    // Walk down, creating what is missing; each step resolves from the root again
    // so a symlink component keeps pointing inside it.
    UniqueFd parent;
    for (size_t i = 1; i <= comps.size(); ++i) {
        auto cur = open_prefix(i);
        if (!cur && cur.error().err == ENOENT) {
            int pfd = i == 1 ? rootfd : parent.get();
            mode_t mode = i == comps.size() ? last_mode : 0755;
            if (::mkdirat(pfd, comps[i - 1].c_str(), mode) < 0 && errno != EEXIST)
                return fail_errno("create directory '" + abs + "'");
            cur = open_prefix(i);
        }
        if (!cur) return cur;
        parent = std::move(*cur);
    }
    return parent;
}

struct MountEntry {
    std::string source;
    std::string fstype;
    dev_t devno = 0;
    dev_t source_rdev = 0; // st_rdev of the source when it is a device node
};

MountEntry mount_entry(libmnt_fs* fs)
{
    MountEntry e;
    if (const char* s = mnt_fs_get_source(fs)) e.source = s;
    if (const char* s = mnt_fs_get_fstype(fs)) e.fstype = s;
    e.devno = mnt_fs_get_devno(fs);
    struct stat st;
    if (const char* sp = mnt_fs_get_srcpath(fs); sp && ::stat(sp, &st) == 0 && S_ISBLK(st.st_mode))
        e.source_rdev = st.st_rdev;
    return e;
}

// The mount whose root is the open directory `dirfd` (at `path`), if it is one.
// By the kernel's mount id, not by the target's name: a mount hidden by a later
// mount over a parent (the real /var over /sysroot/var in the initramfs) keeps its
// name in the mount table, while `path` now leads to a plain directory of the
// other filesystem, which must not pass for the partition.
Result<std::optional<MountEntry>> mount_at(int dirfd, const std::string& path)
{
    struct statx sx = {};
    if (::statx(dirfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0) return fail_errno(errno, "statx " + path);
    if ((sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && !(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return std::optional<MountEntry>();
    const bool by_id = sx.stx_mask & STATX_MNT_ID; // Linux >= 5.8
    const dev_t dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    std::unique_ptr<libmnt_table, TableFree> tb(mnt_new_table_from_file("/proc/self/mountinfo"));
    if (!tb) return fail(ErrorKind::Io, "cannot parse /proc/self/mountinfo");
    std::unique_ptr<libmnt_iter, IterFree> it(mnt_new_iter(MNT_ITER_BACKWARD));
    if (!it) return fail_errno(ENOMEM, "mnt_new_iter");
    libmnt_fs* fs = nullptr;
    while (mnt_table_next_fs(tb.get(), it.get(), &fs) == 0) {
        if (by_id) {
            if (static_cast<uint64_t>(mnt_fs_get_id(fs)) == sx.stx_mnt_id)
                return std::optional<MountEntry>(mount_entry(fs));
            continue;
        }
        // Older kernels: the last mount by that name, if the directory is on it.
        const char* t = mnt_fs_get_target(fs);
        if (!t || path != t) continue;
        if (mnt_fs_get_devno(fs) != dev) break;
        return std::optional<MountEntry>(mount_entry(fs));
    }
    return std::optional<MountEntry>();
}

// A mount is of the partition when the superblock's device is the partition, or
// (filesystems with anonymous st_dev such as btrfs) its source node is.
bool is_mount_of(const MountEntry& m, const PartitionInfo& p)
{
    return m.devno == p.devno || (m.source_rdev != 0 && m.source_rdev == p.devno);
}

Result<> mount_partition(const PartitionInfo& part, const std::string& target, const std::string& fstype,
                         const std::string& options)
{
    auto r = mount_fs(part.device, target, fstype, options);
    if (!r && (r.error().kind == ErrorKind::NotFound || r.error().kind == ErrorKind::Io))
        r.error().kind = ErrorKind::NotMounted;
    return r;
}

std::string describe(const PartitionInfo& p)
{
    return p.device + " (PARTLABEL=" + p.partlabel + ", " + devno_str(p.devno) + ")";
}

} // namespace

Result<> mount_fs(const std::string& source, const std::string& target, const std::string& fstype,
                  const std::string& options)
{
    std::unique_ptr<libmnt_context, ContextFree> cxt(mnt_new_context());
    if (!cxt) return fail_errno(ENOMEM, "mnt_new_context");
    // No /sbin/mount.* helpers: nothing external without a deadline. Source and
    // target are given, so no fstab of the running system is consulted.
    mnt_context_disable_helpers(cxt.get(), 1);
    mnt_context_set_optsmode(cxt.get(), MNT_OMODE_NOTAB);
    // Paths as given: a /proc/self/fd/N source must reach mount(2) as the magic
    // link, not as a path string resolved again.
    mnt_context_disable_canonicalize(cxt.get(), 1);
    if (mnt_context_set_source(cxt.get(), source.c_str()) != 0 ||
        mnt_context_set_target(cxt.get(), target.c_str()) != 0 ||
        (!fstype.empty() && mnt_context_set_fstype(cxt.get(), fstype.c_str()) != 0) ||
        (!options.empty() && mnt_context_set_options(cxt.get(), options.c_str()) != 0))
        return fail(ErrorKind::Internal, "cannot set up the mount of " + source);
    int rc = mnt_context_mount(cxt.get());
    if (rc != 0 || mnt_context_get_status(cxt.get()) != 1) {
        int err = mnt_context_syscall_called(cxt.get()) ? mnt_context_get_syscall_errno(cxt.get()) : 0;
        char buf[512] = "";
        mnt_context_get_excode(cxt.get(), rc, buf, sizeof buf);
        std::string what = "mount " + source + (fstype.empty() ? "" : " (" + fstype + ")") + " on " + target;
        if (!options.empty()) what += " with options '" + options + "'";
        Error e = err ? sys_error(err, what) : Error{ErrorKind::ExternalFailed, 0, what + ": failed"};
        if (buf[0]) e.message += " (" + std::string(buf) + ")";
        return fail(std::move(e));
    }
    return {};
}

Result<PartitionInfo> find_partition(const std::string& label)
{
    if (label.empty()) return fail(ErrorKind::BadConfig, "partition.label is empty");
    auto devs = proc_partitions();
    if (!devs) return fail(std::move(devs.error()));

    std::vector<PartitionInfo> found;
    std::vector<std::string> no_kernel_dev; // GPT entries the kernel made no device for
    std::vector<std::string> unreadable;
    int denied = 0;
    for (const auto& b : *devs) {
        if (b.blocks == 0) continue;
        std::string sys_name = b.name;
        for (char& c : sys_name)
            if (c == '/') c = '!';
        // Only whole disks carry a partition table; partitions are mapped from it.
        struct stat st;
        if (::stat(("/sys/class/block/" + sys_name + "/partition").c_str(), &st) == 0) continue;
        std::string disk = "/dev/" + b.name;
        auto tab = read_gpt(disk);
        if (!tab) {
            if (is_permission(tab.error().err)) ++denied;
            unreadable.push_back(disk + " (" + std::strerror(tab.error().err) + ")");
            continue;
        }
        if (!tab->gpt) continue;
        std::vector<KernelPart> kparts;
        bool listed = false;
        for (const auto& e : tab->entries) {
            if (e.name != label) continue;
            if (!listed) {
                kparts = kernel_partitions(sys_name);
                listed = true;
            }
            const KernelPart* kp = nullptr;
            for (const auto& k : kparts)
                if (k.number == e.number) kp = &k;
            if (!kp) {
                no_kernel_dev.push_back(disk + " partition " + std::to_string(e.number) + " has that name but the " +
                                        "kernel made no device for it (run `partx -a " + disk + "` or reboot)");
                continue;
            }
            PartitionInfo p;
            p.device = "/dev/" + kp->name;
            for (char& c : p.device)
                if (c == '!') c = '/';
            p.devno = kp->devno;
            p.partlabel = e.name;
            struct stat ds;
            if (::stat(p.device.c_str(), &ds) != 0 || !S_ISBLK(ds.st_mode) || ds.st_rdev != kp->devno)
                return fail(ErrorKind::PartitionNotFound, "the kernel has partition " + kp->name + " (" +
                                                              devno_str(kp->devno) + ") named '" + label + "' but " +
                                                              p.device + " is not its device node");
            found.push_back(std::move(p));
        }
    }

    if (found.size() > 1) {
        std::vector<std::string> names;
        for (const auto& p : found)
            names.push_back(p.device);
        return fail(ErrorKind::Refused, "several partitions are named '" + label + "': " + join(names, ", ") +
                                            "; rename all but one (sgdisk -c N:NAME DISK) so the recovery "
                                            "partition is unambiguous");
    }
    if (found.empty()) {
        // Root can be denied too (a container's device cgroup); only a non-root
        // caller is told that privileges are the problem, first: the partition may
        // well be there, and "create it" would send them the wrong way.
        if (denied > 0 && ::geteuid() != 0)
            return fail(ErrorKind::PermissionDenied, "cannot look for the GPT partition named '" + label +
                                                         "': reading the disks needs root (could not read " +
                                                         join(unreadable, ", ") + "); run as root");
        std::string msg = "no GPT partition named '" + label + "' on any block device";
        if (!no_kernel_dev.empty())
            msg += "; " + join(no_kernel_dev, "; ");
        else
            msg += "; create it (the Ignition config's storage.disks partition with label '" + label +
                   "') and check with `lsblk -o NAME,PARTLABEL`";
        if (!unreadable.empty()) msg += "; could not read " + join(unreadable, ", ");
        return fail(ErrorKind::PartitionNotFound, msg);
    }

    PartitionInfo p = std::move(found.front());
    auto fstype = probe_fstype(p.device);
    if (!fstype) return fail(std::move(fstype.error()));
    p.fstype = std::move(*fstype);
    return p;
}

Result<ImagePartition> find_partition_in_image(const std::string& image, const std::string& label)
{
    auto tab = read_gpt(image);
    if (!tab) return fail(std::move(tab.error()));
    if (!tab->gpt) return fail(ErrorKind::PartitionNotFound, image + " has no GPT partition table");
    std::vector<const GptEntry*> matches;
    std::vector<std::string> names;
    for (const auto& e : tab->entries) {
        names.push_back(std::to_string(e.number) + ":'" + e.name + "'");
        if (e.name == label) matches.push_back(&e);
    }
    if (matches.empty())
        return fail(ErrorKind::PartitionNotFound, "no partition named '" + label + "' in the GPT of " + image +
                                                      " (partitions: " + (names.empty() ? "none" : join(names, ", ")) +
                                                      ")");
    if (matches.size() > 1)
        return fail(ErrorKind::Refused, "several partitions are named '" + label + "' in the GPT of " + image);
    return ImagePartition{matches.front()->number, matches.front()->offset, matches.front()->size};
}

namespace
{

// Whether one absolute path is the other or lies below it ("/var" and "/var/recovery").
bool paths_overlap(const std::string& a, const std::string& b)
{
    const std::string x = lexical_path(a), y = lexical_path(b);
    return path_within(x, y) || path_within(y, x);
}

// `abs` where the host really has it, as a host path: the longest part that exists
// resolved inside the root (RHCOS has /usr/local -> ../var/usrlocal), the rest
// appended. Empty when that cannot be told (an error other than a missing name).
std::string host_resolved_path(int rootfd, const std::string& root_real, const std::string& abs)
{
    std::string head = lexical_path(abs), tail;
    for (;;) {
        auto fd = open_in_root(rootfd, head, O_PATH);
        if (fd) {
            auto real = fd_path(fd->get());
            if (!real || !path_within(*real, root_real)) return {};
            std::string host = root_real == "/" ? *real : real->substr(root_real.size());
            if (host.empty()) host = "/";
            return tail.empty() ? host : lexical_path(host + "/" + tail);
        }
        if (fd.error().err != ENOENT || head == "/") return {};
        const size_t slash = head.rfind('/');
        tail = head.substr(slash + 1) + (tail.empty() ? "" : "/" + tail);
        head = slash == 0 ? "/" : head.substr(0, slash);
    }
}

// A few names of a directory, for an error message; empty when it has none.
Result<std::string> some_entries(int dirfd)
{
    auto names = list_dir(dirfd);
    if (!names) return std::unexpected(std::move(names.error()).context("read the mount point"));
    std::string shown;
    for (size_t i = 0; i < names->size() && i < 3; i++)
        shown += (i ? ", '" : "'") + (*names)[i] + "'";
    if (names->size() > 3) shown += " and " + std::to_string(names->size() - 3) + " more";
    return shown;
}

} // namespace

Result<StoreLocation> locate_store(const Config& cfg, const std::string& root, StoreAccess access)
{
    const bool mount_if_needed = access != StoreAccess::Read;
    if (cfg.mount_point.empty() || cfg.mount_point.front() != '/')
        return fail(ErrorKind::BadConfig,
                    "partition.mount_point must be an absolute path, not '" + cfg.mount_point + "'");
    // The store inside a tree would back itself up; a tree inside the store, or
    // the partition mounted over one, would hide the host's files.
    for (const auto& t : cfg.trees)
        if (paths_overlap(cfg.mount_point, t.path))
            return fail(ErrorKind::BadConfig, "the backup directory " + cfg.mount_point +
                                                  " (partition.mount_point or --dir) overlaps the backed-up tree '" +
                                                  t.name + "' (" + t.path + "); choose a directory outside every tree");
    StoreLocation loc;
    loc.path = root_path(root, cfg.mount_point);

    auto rootfd = open_at(AT_FDCWD, root.empty() ? "/" : root, O_PATH | O_DIRECTORY);
    if (!rootfd) return fail(std::move(rootfd.error()).context("root"));
    // The same where the host really has them: a store at /var/usrlocal/recovery
    // copied itself into the tree /usr/local (-> ../var/usrlocal) until the depth limit.
    if (auto root_real = fd_path(rootfd->get())) {
        const std::string store_at = host_resolved_path(rootfd->get(), *root_real, cfg.mount_point);
        for (const auto& t : cfg.trees) {
            const std::string tree_at = host_resolved_path(rootfd->get(), *root_real, t.path);
            if (!store_at.empty() && !tree_at.empty() && paths_overlap(store_at, tree_at))
                return fail(ErrorKind::BadConfig,
                            "the backup directory " + cfg.mount_point + " (partition.mount_point or --dir" +
                                (store_at != lexical_path(cfg.mount_point) ? ", on the host " + store_at : "") +
                                ") overlaps the backed-up tree '" + t.name + "' (" + t.path +
                                (tree_at != lexical_path(t.path) ? ", on the host " + tree_at : "") +
                                "); choose a directory outside every tree");
        }
    }

    auto part = find_partition(cfg.partition_label);
    if (!part) {
        if (part.error().kind != ErrorKind::PartitionNotFound || !cfg.allow_plain_directory)
            return fail(std::move(part.error()));
        // Configured fallback: backups go to a plain directory. Missing is fine
        // for readers, the dry run and the writers that need a backup (none yet); a backup creates it.
        loc.plain_directory = true;
        auto dir = open_dir_in_root(rootfd->get(), cfg.mount_point, access == StoreAccess::Create, 0700);
        if (!dir) {
            if (dir.error().err != ENOENT) return fail(std::move(dir.error()));
            loc.absent = true;
            return loc;
        }
        auto real = fd_path(dir->get());
        if (!real) return fail(std::move(real.error()));
        loc.path = std::move(*real);
        return loc;
    }
    loc.partition = std::move(*part);
    const PartitionInfo& p = loc.partition;
    const std::string want = "the recovery partition " + describe(p);

    auto dir = open_dir_in_root(rootfd->get(), cfg.mount_point, false, 0);
    std::optional<MountEntry> mounted;
    if (dir) {
        auto real = fd_path(dir->get());
        if (!real) return fail(std::move(real.error()));
        loc.path = std::move(*real);
        auto m = mount_at(dir->get(), loc.path);
        if (!m) return fail(std::move(m.error()));
        mounted = std::move(*m);
    } else if (dir.error().err != ENOENT) {
        return fail(std::move(dir.error()).context("mount point"));
    }

    if (mounted) {
        // Mounted (var-recovery.mount does at boot) it carries the same file system as
        // unmounted: checked here too, or the key would hold only before the first mount.
        if (is_mount_of(*mounted, p) && !cfg.filesystem.empty() && cfg.filesystem != mounted->fstype)
            return fail(ErrorKind::BadConfig, want + ", mounted at " + loc.path + ", holds " + mounted->fstype +
                                                  " but partition.filesystem is " + cfg.filesystem);
        if (is_mount_of(*mounted, p)) return loc;
        return fail(ErrorKind::NotMounted, loc.path + " is a mount of " + mounted->source + " (" + mounted->fstype +
                                               ", " + devno_str(mounted->devno) + "), not of " + want +
                                               "; unmount it or fix partition.mount_point");
    }

    if (p.fstype.empty())
        return fail(ErrorKind::NotMounted, want + " has no filesystem; format it (mkfs." +
                                               (cfg.filesystem.empty() ? "xfs" : cfg.filesystem) + " " + p.device +
                                               ") before taking a backup");
    if (!cfg.filesystem.empty() && cfg.filesystem != p.fstype)
        return fail(ErrorKind::BadConfig,
                    want + " holds " + p.fstype + " but partition.filesystem is " + cfg.filesystem);
    if (!mount_if_needed)
        return fail(ErrorKind::NotMounted,
                    want + " is not mounted at " + loc.path + "; start var-recovery.mount or mount it there");

    auto made = open_dir_in_root(rootfd->get(), cfg.mount_point, true, 0700);
    if (!made) return fail(std::move(made.error()).context("mount point"));
    auto real = fd_path(made->get());
    if (!real) return fail(std::move(real.error()));
    loc.path = std::move(*real);
    // Mounting over files would hide them (and whatever uses them) until unmounted.
    auto held = some_entries(made->get());
    if (!held) return fail(std::move(held.error()));
    if (!held->empty())
        return fail(ErrorKind::NotMounted, want + " is not mounted at " + loc.path +
                                               ", and is not mounted there now: the directory is not empty (" + *held +
                                               "); move those away, or mount the partition there yourself");

    UR_TRY(mount_partition(p, loc.path, p.fstype, cfg.mount_options));
    loc.mounted_now = true;

    // Check what the kernel shows now, as a later caller would.
    auto now = open_dir_in_root(rootfd->get(), cfg.mount_point, false, 0);
    if (!now) return fail(std::move(now.error()).context("mount point"));
    auto after = mount_at(now->get(), loc.path);
    if (!after) return fail(std::move(after.error()));
    if (!*after || !is_mount_of(**after, p)) {
        ::umount2(loc.path.c_str(), UMOUNT_NOFOLLOW); // do not leave a mount we cannot vouch for
        return fail(ErrorKind::NotMounted,
                    "mounted " + p.device + " on " + loc.path + " but the mount table does not show it there");
    }
    return loc;
}

MountGuard& MountGuard::operator=(MountGuard&& o) noexcept
{
    if (this != &o) {
        release();
        target_ = std::move(o.target_);
        o.target_.clear();
    }
    return *this;
}

void MountGuard::release()
{
    if (target_.empty()) return;
    ::umount2(target_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    target_.clear();
}

} // namespace ur
