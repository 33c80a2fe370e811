// Partition lookup and store location against a real GPT image on a loop
// device (partx partitions, xfs). Run through test-partition.sh, which builds
// the disk, exports UR_TEST_* and cleans up loops and mounts whatever happens:
//   partition 1 <label>-store  xfs
//   partition 2 <label>-other  xfs
//   partition 3 <label>-raw    no filesystem
#include "initrd_peek.hpp"
#include "partition.hpp"
#include "recovery.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <grp.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using ur::ErrorKind;

namespace
{

// Skip (77) before Catch2 starts when the fixture is not there.
const bool fixture_ready = [] {
    if (geteuid() != 0) {
        std::fprintf(stderr, "SKIP: needs root (loop devices, mount)\n");
        std::_Exit(77);
    }
    if (!std::getenv("UR_TEST_IMAGE") || !std::getenv("UR_TEST_LIB")) {
        std::fprintf(stderr, "SKIP: run through tests/integration/test-partition.sh (it builds the GPT disk)\n");
        std::_Exit(77);
    }
    return true;
}();

std::string env(const char* name)
{
    return std::getenv(name);
}
std::string label()
{
    return env("UR_TEST_LABEL");
}
std::string loop()
{
    return env("UR_TEST_LOOP");
}

// Run a lib.sh command line; returns its stdout without the final newline.
std::string lib(const std::string& cmd)
{
    std::string full = "bash -c '. \"$UR_TEST_LIB\" && set -e && " + cmd + "'";
    FILE* p = ::popen(full.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[256];
    while (size_t n = std::fread(buf, 1, sizeof buf, p))
        out.append(buf, n);
    int rc = ::pclose(p);
    INFO(cmd << ": " << out);
    REQUIRE(rc == 0);
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    return out;
}

dev_t rdev_of(const std::string& dev)
{
    struct stat st;
    REQUIRE(::stat(dev.c_str(), &st) == 0);
    REQUIRE(S_ISBLK(st.st_mode));
    return st.st_rdev;
}

// Read /proc/self/mountinfo directly (not through libmount, which the code
// under test uses): the device numbers of the mounts at `target`, in order.
std::vector<dev_t> mounts_at(const std::string& target)
{
    std::ifstream in("/proc/self/mountinfo");
    std::vector<dev_t> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string id, parent, majmin, root, mnt;
        ls >> id >> parent >> majmin >> root >> mnt;
        unsigned maj = 0, min = 0;
        if (mnt == target && std::sscanf(majmin.c_str(), "%u:%u", &maj, &min) == 2) out.push_back(makedev(maj, min));
    }
    return out;
}

// A --root for locate_store below the fixture's directory; unmounts whatever
// was mounted inside it (innermost first) and removes it.
struct TempRoot {
    std::string path;
    TempRoot()
    {
        std::string tmpl = env("UR_TEST_DIR") + "/root.XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = fs::canonical(tmpl).string();
    }
    ~TempRoot()
    {
        bool clean = true;
        for (int round = 0; round < 20; ++round) {
            std::ifstream in("/proc/self/mountinfo");
            std::string line, last;
            while (std::getline(in, line)) {
                std::istringstream ls(line);
                std::string a, b, c, d, mnt;
                ls >> a >> b >> c >> d >> mnt;
                if (mnt.rfind(path + "/", 0) == 0) last = mnt;
            }
            if (last.empty()) break;
            if (::umount2(last.c_str(), MNT_DETACH) != 0) {
                clean = false;
                break;
            }
        }
        std::error_code ec;
        if (clean) fs::remove_all(path, ec);
    }
    std::string at(const std::string& rel) const { return path + rel; }
};

// Another loop device on the same image; detached (partitions too) at scope end.
struct ExtraLoop {
    std::string dev;
    explicit ExtraLoop(bool with_partitions)
    {
        dev = lib("ur_loop_attach \"$UR_TEST_IMAGE\"");
        if (with_partitions) lib("ur_loop_partition " + dev + " 1 >/dev/null");
    }
    ~ExtraLoop() { lib("ur_cleanup_loop " + dev); }
};

ur::Config store_config(const std::string& suffix = "-store")
{
    ur::Config cfg;
    cfg.partition_label = label() + suffix;
    cfg.mount_point = "/var/recovery";
    cfg.filesystem = "xfs";
    return cfg;
}

mode_t mode_of(const std::string& path)
{
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

} // namespace

TEST_CASE("find_partition finds the partx-made partition device by its GPT name, with its fstype")
{
    auto p = ur::find_partition(label() + "-store");
    INFO((p ? std::string() : p.error().message));
    REQUIRE(p.has_value());
    CHECK(p->device == loop() + "p1");
    CHECK(p->devno == rdev_of(loop() + "p1"));
    CHECK(p->fstype == "xfs");
    CHECK(p->partlabel == label() + "-store");

    auto other = ur::find_partition(label() + "-other");
    INFO((other ? std::string() : other.error().message));
    REQUIRE(other.has_value());
    CHECK(other->device == loop() + "p2");
}

TEST_CASE("find_partition reports an unformatted partition with an empty fstype")
{
    auto p = ur::find_partition(label() + "-raw");
    INFO((p ? std::string() : p.error().message));
    REQUIRE(p.has_value());
    CHECK(p->device == loop() + "p3");
    CHECK(p->fstype.empty());
}

TEST_CASE("find_partition gives PartitionNotFound with advice for a name no partition has")
{
    auto p = ur::find_partition(label() + "-absent");
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error().kind == ErrorKind::PartitionNotFound);
    CHECK_THAT(p.error().message, Catch::Contains(label() + "-absent") && Catch::Contains("lsblk -o NAME,PARTLABEL"));
}

TEST_CASE("find_partition refuses a name carried by two partition devices and names both")
{
    ExtraLoop second(true);
    auto p = ur::find_partition(label() + "-store");
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error().kind == ErrorKind::Refused);
    CHECK_THAT(p.error().message, Catch::Contains(loop() + "p1") && Catch::Contains(second.dev + "p1"));
}

TEST_CASE("find_partition ignores a GPT entry the kernel made no device for, and says to run partx")
{
    ExtraLoop bare(false); // same GPT, but no partx: no partition devices
    auto p = ur::find_partition(label() + "-store");
    INFO((p ? std::string() : p.error().message));
    REQUIRE(p.has_value()); // the entry on the bare disk is not a second match
    CHECK(p->device == loop() + "p1");

    // A disk whose only copy of the name has no kernel device.
    TempRoot dir;
    std::string img = dir.at("/nodev.img");
    lib("ur_gpt_image " + img + " 8M " + label() + "-nodev:0");
    std::string l = lib("ur_loop_attach " + img);
    auto q = ur::find_partition(label() + "-nodev");
    lib("ur_cleanup_loop " + l);
    REQUIRE_FALSE(q.has_value());
    CHECK(q.error().kind == ErrorKind::PartitionNotFound);
    CHECK_THAT(q.error().message, Catch::Contains(l + " partition 1") && Catch::Contains("partx -a " + l));
}

TEST_CASE("find_partition_in_image reads number, offset and size that match the kernel's partitions")
{
    std::string sys = "/sys/class/block/" + fs::path(loop()).filename().string();
    for (int n : {1, 2, 3}) {
        static const char* suffix[] = {"", "-store", "-other", "-raw"};
        auto p = ur::find_partition_in_image(env("UR_TEST_IMAGE"), label() + suffix[n]);
        INFO((p ? std::string() : p.error().message));
        REQUIRE(p.has_value());
        CHECK(p->number == n);
        std::string part = sys + "/" + fs::path(loop()).filename().string() + "p" + std::to_string(n);
        uint64_t start = 0, size = 0;
        std::ifstream(part + "/start") >> start; // 512-byte sectors
        std::ifstream(part + "/size") >> size;
        REQUIRE(size > 0);
        CHECK(p->offset == start * 512);
        CHECK(p->size == size * 512);
    }
    CHECK(ur::find_partition_in_image(env("UR_TEST_IMAGE"), label() + "-store")->offset == 1 << 20);
    CHECK(ur::find_partition_in_image(env("UR_TEST_IMAGE"), label() + "-store")->size == 320ull << 20);
}

TEST_CASE("find_partition_in_image gives PartitionNotFound for a missing name or a file without GPT")
{
    auto p = ur::find_partition_in_image(env("UR_TEST_IMAGE"), label() + "-absent");
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error().kind == ErrorKind::PartitionNotFound);
    CHECK_THAT(p.error().message, Catch::Contains("1:'" + label() + "-store'"));

    TempRoot dir;
    std::string plain = dir.at("/plain.img");
    std::ofstream(plain) << std::string(1 << 16, '\0');
    auto q = ur::find_partition_in_image(plain, label() + "-store");
    REQUIRE_FALSE(q.has_value());
    CHECK(q.error().kind == ErrorKind::PartitionNotFound);
    CHECK_THAT(q.error().message, Catch::Contains("no GPT"));
}

TEST_CASE("locate_store mounts the partition on a missing mount point, and a second call accepts the mount")
{
    TempRoot root;
    auto cfg = store_config();
    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    CHECK(loc->mounted_now);
    CHECK_FALSE(loc->plain_directory);
    CHECK(loc->path == root.at("/var/recovery"));
    CHECK(loc->partition.device == loop() + "p1");
    // The kernel agrees: the top mount there is the partition's device.
    auto m = mounts_at(root.at("/var/recovery"));
    REQUIRE(m.size() == 1);
    CHECK(m.back() == rdev_of(loop() + "p1"));
    struct stat st;
    REQUIRE(::stat(loc->path.c_str(), &st) == 0);
    CHECK(st.st_dev == rdev_of(loop() + "p1"));
    CHECK(mode_of(root.at("/var")) == 0755);

    auto again = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    INFO((again ? std::string() : again.error().message));
    REQUIRE(again.has_value());
    CHECK_FALSE(again->mounted_now);
    CHECK(again->path == loc->path);
    CHECK(mounts_at(root.at("/var/recovery")).size() == 1); // not mounted twice

    auto readonly = ur::locate_store(cfg, root.path, ur::StoreAccess::Read);
    INFO((readonly ? std::string() : readonly.error().message));
    REQUIRE(readonly.has_value());
    CHECK_FALSE(readonly->mounted_now);
}

TEST_CASE("locate_store creates a missing mount point with mode 0700 before mounting")
{
    TempRoot root;
    auto loc = ur::locate_store(store_config(), root.path, ur::StoreAccess::Write);
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    // The mount hides the directory's own mode; unmount to look at it.
    REQUIRE(::umount2(loc->path.c_str(), 0) == 0);
    CHECK(mounts_at(loc->path).empty());
    CHECK(mode_of(loc->path) == 0700);
}

TEST_CASE("locate_store passes mount_options to the kernel")
{
    TempRoot root;
    auto cfg = store_config();
    cfg.mount_options = "ro,noatime";
    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    std::ifstream in("/proc/self/mountinfo");
    std::string line, opts;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string a, b, c, d, mnt, o;
        ls >> a >> b >> c >> d >> mnt >> o;
        if (mnt == loc->path) opts = o;
    }
    CHECK_THAT(opts, Catch::StartsWith("ro,") && Catch::Contains("noatime"));
}

TEST_CASE("locate_store refuses an unmounted plain directory when told not to mount (NotMounted)")
{
    TempRoot root;
    fs::create_directories(root.at("/var/recovery"));
    auto loc = ur::locate_store(store_config(), root.path, ur::StoreAccess::Read);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::NotMounted);
    CHECK_THAT(loc.error().message, Catch::Contains(loop() + "p1") && Catch::Contains("not mounted"));
    CHECK(mounts_at(root.at("/var/recovery")).empty());

    // Same when the directory does not exist at all, and it is not created.
    TempRoot empty;
    auto none = ur::locate_store(store_config(), empty.path, ur::StoreAccess::Read);
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().kind == ErrorKind::NotMounted);
    CHECK_FALSE(fs::exists(empty.at("/var")));
}

TEST_CASE("locate_store refuses a tmpfs mounted on the mount point and names it")
{
    TempRoot root;
    fs::create_directories(root.at("/var/recovery"));
    REQUIRE(::mount("ur-impostor", root.at("/var/recovery").c_str(), "tmpfs", 0, "size=1m") == 0);
    for (auto access : {ur::StoreAccess::Read, ur::StoreAccess::Write}) {
        auto loc = ur::locate_store(store_config(), root.path, access);
        REQUIRE_FALSE(loc.has_value());
        CHECK(loc.error().kind == ErrorKind::NotMounted);
        CHECK_THAT(loc.error().message, Catch::Contains("ur-impostor (tmpfs") && Catch::Contains(loop() + "p1"));
    }
    CHECK(mounts_at(root.at("/var/recovery")).size() == 1); // nothing mounted over it
}

TEST_CASE("locate_store refuses another xfs partition mounted on the mount point and names it")
{
    TempRoot root;
    fs::create_directories(root.at("/var/recovery"));
    std::string other = loop() + "p2";
    REQUIRE(::mount(other.c_str(), root.at("/var/recovery").c_str(), "xfs", 0, nullptr) == 0);
    auto loc = ur::locate_store(store_config(), root.path, ur::StoreAccess::Write);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::NotMounted);
    CHECK_THAT(loc.error().message, Catch::Contains(other + " (xfs") && Catch::Contains(loop() + "p1"));
}

TEST_CASE("locate_store accepts the partition mounted over another mount (the visible one counts)")
{
    TempRoot root;
    fs::create_directories(root.at("/var/recovery"));
    REQUIRE(::mount("ur-under", root.at("/var/recovery").c_str(), "tmpfs", 0, "size=1m") == 0);
    std::string dev = loop() + "p1";
    int mrc = ::mount(dev.c_str(), root.at("/var/recovery").c_str(), "xfs", 0, nullptr);
    INFO("mount " << dev << ": " << (mrc == 0 ? "ok" : std::strerror(errno)));
    REQUIRE(mrc == 0);
    auto loc = ur::locate_store(store_config(), root.path, ur::StoreAccess::Read);
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    CHECK_FALSE(loc->mounted_now);
}

// The initramfs mounts the real /var over /sysroot/var: a partition mounted before
// at /sysroot/var/recovery is hidden, but the mount table still names it there. The
// path now leads to a directory of the other filesystem; taking that for the store
// read an empty "store" (nothing armed) and wrote backups onto the root disk.
TEST_CASE("locate_store does not take a partition mount hidden by a later mount over its parent")
{
    TempRoot root;
    fs::create_directories(root.at("/var/recovery"));
    std::string dev = loop() + "p1";
    REQUIRE(::mount(dev.c_str(), root.at("/var/recovery").c_str(), "xfs", 0, nullptr) == 0);
    REQUIRE(::mount("ur-real-var", root.at("/var").c_str(), "tmpfs", 0, "size=4m") == 0);
    fs::create_directories(root.at("/var/recovery"));

    auto ro = ur::locate_store(store_config(), root.path, ur::StoreAccess::Read);
    REQUIRE_FALSE(ro.has_value());
    CHECK(ro.error().kind == ErrorKind::NotMounted);
    CHECK_THAT(ro.error().message, Catch::Contains("is not mounted at " + root.at("/var/recovery")));

    auto rw = ur::locate_store(store_config(), root.path, ur::StoreAccess::Write);
    INFO((rw ? std::string() : rw.error().message));
    REQUIRE(rw.has_value());
    CHECK(rw->mounted_now); // mounted again where the path leads now
    struct stat st;
    REQUIRE(::stat(rw->path.c_str(), &st) == 0);
    CHECK(st.st_dev == rdev_of(dev));
}

TEST_CASE("locate_store resolves symlinks inside the root prefix and returns the real mount path")
{
    TempRoot root;
    // The root is reached through a symlink, and /var inside it is an absolute
    // symlink that must resolve inside the root (to <root>/data), not on the host.
    fs::create_directories(root.at("/real/data"));
    fs::create_symlink("/data", root.at("/real/var"));
    fs::create_symlink(root.at("/real"), root.at("/link"));
    auto loc = ur::locate_store(store_config(), root.at("/link"), ur::StoreAccess::Write);
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    CHECK(loc->mounted_now);
    CHECK(loc->path == root.at("/real/data/recovery"));
    REQUIRE(mounts_at(root.at("/real/data/recovery")).size() == 1);
    CHECK(mounts_at(root.at("/real/data/recovery")).front() == rdev_of(loop() + "p1"));
    CHECK_FALSE(fs::exists("/data/recovery"));
}

TEST_CASE("locate_store uses a plain directory when allowed and no partition has the label")
{
    TempRoot root;
    auto cfg = store_config("-absent");
    cfg.allow_plain_directory = true;

    auto reader = ur::locate_store(cfg, root.path, ur::StoreAccess::Read); // readers do not create it
    INFO((reader ? std::string() : reader.error().message));
    REQUIRE(reader.has_value());
    CHECK(reader->plain_directory);
    CHECK(reader->partition.device.empty());
    CHECK(reader->absent);
    CHECK_FALSE(fs::exists(root.at("/var/recovery")));

    auto dry = ur::locate_store(cfg, root.path, ur::StoreAccess::Inspect); // nor does the dry run
    REQUIRE(dry.has_value());
    CHECK(dry->absent);
    CHECK_FALSE(fs::exists(root.at("/var")));

    // Nor arm, recover or watchdog start: they write into the store that holds their backup.
    auto writer = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    REQUIRE(writer.has_value());
    CHECK(writer->absent);
    CHECK_FALSE(fs::exists(root.at("/var")));

    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Create); // the backup does
    INFO((loc ? std::string() : loc.error().message));
    REQUIRE(loc.has_value());
    CHECK(loc->plain_directory);
    CHECK_FALSE(loc->mounted_now);
    CHECK_FALSE(loc->absent);
    CHECK(loc->path == root.at("/var/recovery"));
    CHECK(mode_of(loc->path) == 0700);
    CHECK(mounts_at(loc->path).empty());
}

TEST_CASE("locate_store without allow_plain_directory gives PartitionNotFound when no partition has the label")
{
    TempRoot root;
    auto loc = ur::locate_store(store_config("-absent"), root.path, ur::StoreAccess::Write);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::PartitionNotFound);
    CHECK_FALSE(fs::exists(root.at("/var/recovery"))); // nothing created for a refused store
}

TEST_CASE("locate_store says the partition is unformatted instead of failing the mount")
{
    TempRoot root;
    auto cfg = store_config("-raw");
    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::NotMounted);
    CHECK_THAT(loc.error().message, Catch::Contains("no filesystem") && Catch::Contains("mkfs.xfs " + loop() + "p3"));
    // allow_plain_directory does not hide a partition that exists but is unusable.
    cfg.allow_plain_directory = true;
    CHECK_FALSE(ur::locate_store(cfg, root.path, ur::StoreAccess::Write).has_value());
}

TEST_CASE("locate_store refuses a partition whose filesystem differs from partition.filesystem")
{
    TempRoot root;
    auto cfg = store_config();
    cfg.filesystem = "ext4";
    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::BadConfig);
    CHECK_THAT(loc.error().message, Catch::Contains("holds xfs"));
    CHECK(mounts_at(root.at("/var/recovery")).empty());
}

TEST_CASE("locate_store reports a failed mount as NotMounted with the kernel's reason and leaves nothing mounted")
{
    TempRoot root;
    auto cfg = store_config();
    cfg.mount_options = "ur_bogus_option";
    auto loc = ur::locate_store(cfg, root.path, ur::StoreAccess::Write);
    REQUIRE_FALSE(loc.has_value());
    CHECK(loc.error().kind == ErrorKind::NotMounted);
    CHECK_THAT(loc.error().message, Catch::Contains("mount " + loop() + "p1") && Catch::Contains("ur_bogus_option") &&
                                        Catch::Contains("Invalid argument"));
    CHECK(mounts_at(root.at("/var/recovery")).empty());
}

TEST_CASE("find_partition run without root says so (PermissionDenied) instead of PartitionNotFound")
{
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // nobody: the loop partition nodes are root:disk 0660.
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0)
            std::_Exit(2);
        auto p = ur::find_partition(label() + "-store");
        bool ok = !p && p.error().kind == ErrorKind::PermissionDenied &&
                  p.error().message.find("run as root") != std::string::npos &&
                  // The cause first, and no advice to create a partition that may well exist.
                  p.error().message.rfind("cannot look for the GPT partition named", 0) == 0 &&
                  p.error().message.find("create it") == std::string::npos;
        std::_Exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("peek_armed reads the armed marker from a private mount and leaves nothing mounted")
{
    TempRoot root;
    const std::string peek = root.path + "/peek", m = root.path + "/m", dev = loop() + "p1";
    fs::create_directories(m);
    auto with_store = [&](const std::function<void()>& f) {
        REQUIRE(::mount(dev.c_str(), m.c_str(), "xfs", 0, nullptr) == 0);
        f();
        REQUIRE(::umount2(m.c_str(), 0) == 0);
    };
    with_store([&] {
        fs::create_directories(m + "/recovery");
        std::ofstream(m + "/recovery/armed") << "20240101T000000Z\n";
    });
    auto armed = ur::peek_armed(store_config(), peek);
    INFO((armed ? std::string() : armed.error().message));
    REQUIRE(armed.has_value());
    CHECK(*armed == ur::PeekResult::Armed);
    CHECK(mounts_at(peek).empty());

    with_store([&] { fs::remove(m + "/recovery/armed"); });
    auto not_armed = ur::peek_armed(store_config(), peek);
    REQUIRE(not_armed.has_value());
    CHECK(*not_armed == ur::PeekResult::NotArmed);
    CHECK(mounts_at(peek).empty());
    with_store([&] { fs::remove_all(m + "/recovery"); });

    // No such partition, or one without a file system.
    auto missing = ur::peek_armed(store_config("-missing"), peek);
    REQUIRE(missing.has_value());
    CHECK(*missing == ur::PeekResult::NoPartition);
    auto raw = ur::peek_armed(store_config("-raw"), peek);
    REQUIRE(raw.has_value());
    CHECK(*raw == ur::PeekResult::NoFilesystem);
    CHECK(mounts_at(peek).empty());
}

TEST_CASE("the initrd entry leaves the recovery partition it mounted unmounted, failed or not")
{
    // No separate /var in this root, so nothing else is detached on return: the
    // partition mounted at <root>/var/recovery must go by itself, or it survives the
    // switch root and var-recovery.mount finds it mounted with the initrd's options.
    TempRoot root;
    const std::string m = root.path + "/m", dev = loop() + "p1";
    fs::create_directories(m);
    REQUIRE(::mount(dev.c_str(), m.c_str(), "xfs", 0, nullptr) == 0);
    fs::create_directories(m + "/recovery");
    std::ofstream(m + "/recovery/armed") << "20240101T000000Z\n"; // a backup that is not there
    REQUIRE(::umount2(m.c_str(), 0) == 0);
    fs::create_directories(root.at("/var"));
    std::ofstream(root.at("/cmdline")) << "BOOT_IMAGE=/vmlinuz root=UUID=1 rw\n";
    std::ofstream(root.at("/boot_id")) << "boot-1\n";

    ur::InitrdOptions io;
    io.root = root.path;
    io.cmdline_path = root.at("/cmdline");
    io.boot_id_path = root.at("/boot_id");
    io.peek_dir = root.at("/peek");
    ur::Progress progress;
    ur::CancelToken cancel;
    // Armed, but the real /var named by the root's fstab cannot be mounted: phase 1
    // cannot run, a failure (emergency.target) with the partition mounted by then.
    fs::create_directories(root.at("/etc"));
    std::ofstream(root.at("/etc/fstab")) << "/dev/disk/by-partlabel/ur-no-such-var /var xfs defaults 0 0\n";
    auto r = ur::run_initrd_phase1(store_config(), io, progress, cancel);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message, Catch::Contains("phase 1 cannot run"));
    CHECK(mounts_at(root.at("/var/recovery")).empty());
    CHECK(mounts_at(io.peek_dir).empty());

    // Armed with a backup that does not exist: the recovery is ended before anything
    // changed (the marker goes) and the boot goes on; unmounted again.
    fs::remove(root.at("/etc/fstab"));
    auto aborted = ur::run_initrd_phase1(store_config(), io, progress, cancel);
    REQUIRE(aborted.has_value());
    CHECK_FALSE(aborted->ran);
    CHECK_THAT(aborted->reason, Catch::Contains("20240101T000000Z") && Catch::Contains("aborted before anything"));
    CHECK(mounts_at(root.at("/var/recovery")).empty());

    // The next boot is an ordinary one instead of the same failure.
    auto again = ur::run_initrd_phase1(store_config(), io, progress, cancel);
    REQUIRE(again.has_value());
    CHECK_FALSE(again->ran);
    CHECK(again->reason == "not armed");
    CHECK(mounts_at(root.at("/var/recovery")).empty());
}
