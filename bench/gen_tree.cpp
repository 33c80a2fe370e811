// ur-gen-tree: a deterministic generator of a Single Node OpenShift-like host
// root for the benchmark (bench/run.sh), plus the mutations the benchmark
// plays on it and a digest to prove two trees are equal.
//
//   ur-gen-tree generate ROOT [--scale F] [--scale-data F] [--seed N]
//   ur-gen-tree mutate ROOT --percent P [--seed N] [--kind touch|upgrade]
//   ur-gen-tree digest ROOT [--no-hardlinks] [--list]
//
// Everything is decided by a seeded PRNG and every time stamp is fixed, so
// two runs with the same arguments make trees that are equal in every byte,
// name, owner, mode, time and xattr (inode numbers and ctimes aside): the
// benchmark builds its second copy for rsync that way and checks the restored
// trees with `digest`.
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace
{

[[noreturn]] void die(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ur-gen-tree: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void check(bool ok, const std::string& what)
{
    if (!ok) die("%s: %s", what.c_str(), strerror(errno));
}

// ---------------------------------------------------------------- PRNG

// xoshiro256** seeded through splitmix64: fast, and the same on every machine.
class Rng
{
  public:
    explicit Rng(uint64_t seed)
    {
        for (auto& x : s_) {
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            x = z ^ (z >> 31);
        }
    }
    uint64_t next()
    {
        const uint64_t r = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return r;
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); } // inclusive
    bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
    template <class T> const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
    void fill(char* p, size_t n)
    {
        while (n >= 8) {
            uint64_t x = next();
            memcpy(p, &x, 8);
            p += 8;
            n -= 8;
        }
        if (n) {
            uint64_t x = next();
            memcpy(p, &x, n);
        }
    }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t s_[4];
};

// ---------------------------------------------------------------- constants

constexpr int64_t kBaseTime = 1700000000;    // generated files: 2023-11-14 + up to a year
constexpr int64_t kTouchTime = 1740000000;   // mutate --kind touch
constexpr int64_t kUpgradeTime = 1750000000; // mutate --kind upgrade
constexpr uint64_t KiB = 1024, MiB = 1024 * 1024;

// The trees the backup copies, relative to ROOT, and the MachineConfig files outside them.
const std::vector<std::string> kTrees = {"etc", "usr/local", "var/lib/kubelet"};
const std::vector<std::string> kExtraDirs = {"opt/mc", "var/lib/mco-extra"};

std::string label(const char* type, const std::string& mls = "s0")
{
    return std::string("system_u:object_r:") + type + ":" + mls;
}

// Paths mutate never changes: what the restore deliberately leaves alone
// (/etc excludes: tmpfiles.d entries, static pod manifests, .updated) and the
// benchmark's own config and MachineConfig state.
bool mutate_excluded(const std::string& rel)
{
    static const std::vector<std::string> prefixes = {
        "etc/tmpfiles-managed",      "etc/bench-localtime", "etc/NetworkManager/dispatcher.d/runtime",
        "etc/kubernetes/manifests",  "etc/.updated",        "etc/upgrade-recovery",
        "etc/machine-config-daemon", "etc/tmpfiles.d"};
    for (const auto& p : prefixes)
        if (rel == p || (rel.size() > p.size() && rel.compare(0, p.size(), p) == 0 && rel[p.size()] == '/'))
            return true;
    return false;
}

// ---------------------------------------------------------------- content

const char* const kWords[] = {
    "apiVersion", "kind",     "metadata", "name",     "namespace", "openshift", "kubelet",   "etcd",       "cluster",
    "node",       "master",   "config",   "enabled",  "true",      "false",     "server",    "https",      "port",
    "6443",       "2379",     "image",    "quay.io",  "release",   "sha256",    "volume",    "mount",      "secret",
    "configMap",  "data",     "spec",     "status",   "ready",     "container", "crio",      "runtime",    "systemd",
    "unit",       "service",  "network",  "ovn",      "kube",      "apiserver", "scheduler", "controller", "manager",
    "operator",   "revision", "pod",      "static",   "resources", "cert",      "key",       "ca",         "bundle",
    "tls",        "x509",     "labels",   "selector", "replicas",  "timeout",   "30s",       "info",       "debug"};
constexpr size_t kNumWords = sizeof kWords / sizeof kWords[0];

std::string text_content(Rng& rng, size_t size)
{
    std::string s;
    s.reserve(size + 64);
    while (s.size() < size) {
        unsigned indent = static_cast<unsigned>(rng.below(4)) * 2;
        s.append(indent, ' ');
        s += kWords[rng.below(kNumWords)];
        s += ": ";
        unsigned n = 1 + static_cast<unsigned>(rng.below(5));
        for (unsigned i = 0; i < n; i++) {
            if (i) s += rng.chance(0.3) ? "-" : " ";
            s += kWords[rng.below(kNumWords)];
        }
        if (rng.chance(0.2)) s += " " + std::to_string(rng.below(100000));
        s += '\n';
    }
    s.resize(size);
    if (size) s.back() = '\n';
    return s;
}

std::string binary_content(Rng& rng, size_t size)
{
    std::string s(size, '\0');
    rng.fill(s.data(), size);
    // An ELF-looking header, and some runs of zeros and strings like a real binary.
    if (size >= 64)
        memcpy(s.data(),
               "\x7f"
               "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
               16);
    for (size_t off = 4096; off + 512 < size; off += 65536 + rng.below(65536))
        memset(s.data() + off, 0, 256 + rng.below(256));
    return s;
}

// POSIX ACL in the system.posix_acl_access xattr format (linux/posix_acl_xattr.h).
std::string acl_xattr(const std::vector<std::tuple<uint16_t, uint16_t, uint32_t>>& entries)
{
    std::string s;
    auto put32 = [&](uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); };
    auto put16 = [&](uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); };
    put32(2); // POSIX_ACL_XATTR_VERSION
    for (auto [tag, perm, id] : entries) {
        put16(tag);
        put16(perm);
        put32(id);
    }
    return s;
}
constexpr uint16_t ACL_USER_OBJ = 1, ACL_USER = 2, ACL_GROUP_OBJ = 4, ACL_GROUP = 8, ACL_MASK = 0x10, ACL_OTHER = 0x20;
constexpr uint32_t ACL_UNDEF = 0xffffffffu;

// ---------------------------------------------------------------- metadata

struct Meta {
    mode_t mode = 0644;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string selinux;                                   // without the trailing NUL
    std::vector<std::pair<std::string, std::string>> user; // user.* and other extra xattrs
    std::string acl;                                       // system.posix_acl_access, binary
    std::string default_acl;                               // directories: system.posix_acl_default
};

// ---------------------------------------------------------------- generator

class Generator
{
  public:
    Generator(std::string root, uint64_t seed, double scale, double data_scale)
        : root_(std::move(root)), rng_(seed), scale_(scale), data_scale_(data_scale)
    {
    }

    void run()
    {
        umask(0);
        struct stat st;
        if (::stat(root_.c_str(), &st) == 0) {
            DIR* d = opendir(root_.c_str());
            check(d != nullptr, "open " + root_);
            for (struct dirent* de; (de = readdir(d));) {
                std::string n = de->d_name;
                if (n == "." || n == "..") continue;
                if (n == "etc" || n == "usr" || n == "var" || n == "opt")
                    die("%s is not empty (has %s)", root_.c_str(), n.c_str());
            }
            closedir(d);
        } else {
            check(::mkdir(root_.c_str(), 0755) == 0, "create " + root_);
        }
        for (const char* d : {"usr", "var", "var/lib", "opt"})
            mkdir_plain(d);
        gen_etc();
        gen_usrlocal();
        gen_kubelet();
        gen_extras();
        finish_dirs();
        printf("generated %s: %llu files (%llu regular, %llu symlinks, %llu other), %llu directories, %.1f MiB of "
               "file data\n",
               root_.c_str(), ull(regular_ + symlinks_ + others_), ull(regular_), ull(symlinks_), ull(others_),
               ull(dirs_.size()), static_cast<double>(bytes_) / MiB);
    }

  private:
    static unsigned long long ull(uint64_t v) { return v; }
    std::string abs(const std::string& rel) const { return root_ + "/" + rel; }

    struct timespec fixed_time()
    {
        struct timespec t;
        t.tv_sec = kBaseTime + static_cast<time_t>(rng_.below(365ull * 86400));
        t.tv_nsec = rng_.chance(0.1) ? 0 : static_cast<long>(rng_.below(1000000000));
        return t;
    }

    void mkdir_plain(const std::string& rel)
    {
        if (::mkdir(abs(rel).c_str(), 0755) < 0 && errno != EEXIST) check(false, "mkdir " + rel);
    }

    // user.* xattrs and ACLs exist only on regular files and directories.
    void apply_xattrs(int fd, const std::string& path, bool plain, const Meta& m)
    {
        auto set = [&](const std::string& name, const std::string& value) {
            int r = fd >= 0 ? ::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0)
                            : ::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0);
            check(r == 0, "set " + name + " on " + path);
        };
        if (!m.selinux.empty()) set("security.selinux", m.selinux + std::string(1, '\0'));
        if (plain) {
            for (const auto& [n, v] : m.user)
                set(n, v);
            if (!m.acl.empty()) set("system.posix_acl_access", m.acl);
        }
    }

    // Owner, mode, xattrs (ACL last: it rewrites the group bits), time.
    void apply(int fd, const std::string& rel, bool is_link, const Meta& m, bool times)
    {
        std::string p = abs(rel);
        if (fd >= 0) {
            check(::fchown(fd, m.uid, m.gid) == 0, "chown " + rel);
            check(::fchmod(fd, m.mode) == 0, "chmod " + rel);
        } else {
            check(::lchown(p.c_str(), m.uid, m.gid) == 0, "chown " + rel);
            if (!is_link) check(::chmod(p.c_str(), m.mode) == 0, "chmod " + rel);
        }
        struct stat st;
        bool plain = fd >= 0 || (::lstat(p.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)));
        apply_xattrs(fd, p, plain, m);
        if (times) {
            struct timespec ts[2] = {fixed_time(), {}};
            ts[1] = ts[0];
            if (fd >= 0)
                check(::futimens(fd, ts) == 0, "set times of " + rel);
            else
                check(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "set times of " + rel);
        }
    }

    // Create a directory (and its parents with defaults) once; times are set at the end.
    void dir(const std::string& rel, const Meta& m)
    {
        if (dir_index_.count(rel)) return;
        size_t slash = rel.rfind('/');
        if (slash != std::string::npos) {
            std::string parent = rel.substr(0, slash);
            if (!dir_index_.count(parent) && parent != "usr" && parent != "var" && parent != "var/lib" &&
                parent != "opt") {
                Meta pm = m;
                pm.user.clear();
                pm.acl.clear();
                pm.default_acl.clear();
                pm.mode = 0755;
                dir(parent, pm);
            }
        }
        check(::mkdir(abs(rel).c_str(), 0700) == 0 || errno == EEXIST, "mkdir " + rel);
        apply(-1, rel, false, m, false);
        dir_index_[rel] = dirs_.size();
        dirs_.push_back({rel, m.default_acl});
    }

    void ensure_parent(const std::string& rel, const Meta& m)
    {
        size_t slash = rel.rfind('/');
        if (slash == std::string::npos) return;
        std::string parent = rel.substr(0, slash);
        if (dir_index_.count(parent) || parent == "usr" || parent == "var" || parent == "var/lib" || parent == "opt")
            return;
        Meta dm;
        dm.mode = 0755;
        dm.uid = m.uid;
        dm.gid = m.gid;
        dm.selinux = m.selinux;
        dir(parent, dm);
    }

    void file(const std::string& rel, const std::string& content, const Meta& m)
    {
        ensure_parent(rel, m);
        int fd = ::open(abs(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        check(fd >= 0, "create " + rel);
        size_t off = 0;
        while (off < content.size()) {
            ssize_t n = ::write(fd, content.data() + off, content.size() - off);
            check(n > 0, "write " + rel);
            off += static_cast<size_t>(n);
        }
        apply(fd, rel, false, m, true);
        ::close(fd);
        regular_++;
        bytes_ += content.size();
    }

    // A sparse file: `size` apparent, a few data extents.
    void sparse_file(const std::string& rel, uint64_t size, unsigned extents, const Meta& m)
    {
        ensure_parent(rel, m);
        int fd = ::open(abs(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        check(fd >= 0, "create " + rel);
        check(::ftruncate(fd, static_cast<off_t>(size)) == 0, "truncate " + rel);
        for (unsigned i = 0; i < extents; i++) {
            uint64_t len = 64 * KiB * rng_.range(1, 16);
            uint64_t slot = size / extents;
            uint64_t off = i * slot + (rng_.below(slot > len ? (slot - len) / 4096 : 1)) * 4096;
            std::string d = binary_content(rng_, len);
            check(::pwrite(fd, d.data(), d.size(), static_cast<off_t>(off)) == static_cast<ssize_t>(d.size()),
                  "write " + rel);
            bytes_ += len;
        }
        apply(fd, rel, false, m, true);
        ::close(fd);
        regular_++;
    }

    void symlink(const std::string& rel, const std::string& target, const Meta& m)
    {
        ensure_parent(rel, m);
        check(::symlink(target.c_str(), abs(rel).c_str()) == 0, "symlink " + rel);
        apply(-1, rel, true, m, true);
        symlinks_++;
    }

    void hardlink(const std::string& existing, const std::string& rel)
    {
        Meta m;
        m.selinux = rel.compare(0, 4, "etc/") == 0   ? label("etc_t")
                    : rel.compare(0, 4, "usr/") == 0 ? label("usr_t")
                                                     : label("container_var_lib_t");
        ensure_parent(rel, m);
        check(::link(abs(existing).c_str(), abs(rel).c_str()) == 0, "link " + rel);
        regular_++;
    }

    void node(const std::string& rel, mode_t type, dev_t dev, const Meta& m)
    {
        ensure_parent(rel, m);
        check(::mknod(abs(rel).c_str(), type | 0600, dev) == 0, "mknod " + rel);
        apply(-1, rel, false, m, true);
        others_++;
    }

    // Directories: default ACLs and times last, deepest first, so creating
    // children never moves a time that was already set.
    void finish_dirs()
    {
        std::vector<size_t> order(dirs_.size());
        for (size_t i = 0; i < order.size(); i++)
            order[i] = i;
        auto depth = [&](size_t i) { return std::count(dirs_[i].rel.begin(), dirs_[i].rel.end(), '/'); };
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return depth(a) > depth(b); });
        for (size_t i : order) {
            const auto& d = dirs_[i];
            std::string p = abs(d.rel);
            if (!d.default_acl.empty())
                check(::setxattr(p.c_str(), "system.posix_acl_default", d.default_acl.data(), d.default_acl.size(),
                                 0) == 0,
                      "set default ACL on " + d.rel);
            struct timespec ts[2] = {fixed_time(), {}};
            ts[1] = ts[0];
            check(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0, "set times of " + d.rel);
        }
    }

    // ------------------------------------------------------------ /etc

    Meta etc_meta(const char* type = "etc_t", mode_t mode = 0644)
    {
        Meta m;
        m.mode = mode;
        m.selinux = label(type);
        if (rng_.chance(0.03)) m.user.push_back({"user.bench.origin", "rpm:" + std::to_string(rng_.below(1000))});
        return m;
    }

    size_t etc_size() { return static_cast<size_t>(rng_.range(100, 8 * KiB)); }

    void etc_text(const std::string& rel, Meta m) { file(rel, text_content(rng_, etc_size()), m); }

    void gen_etc()
    {
        const uint64_t want = static_cast<uint64_t>(std::llround(3000 * scale_));
        const uint64_t start = count();
        Meta root = etc_meta();
        root.mode = 0755;
        root.user.clear();
        dir("etc", root);

        // Well-known files.
        file("etc/hostname", "sno-bench.example.com\n", etc_meta());
        file("etc/os-release",
             "NAME=\"Red Hat Enterprise Linux CoreOS\"\nID=\"rhcos\"\nVERSION=\"416.94.202407081958-0\"\n"
             "OPENSHIFT_VERSION=\"4.16\"\nPRETTY_NAME=\"Red Hat Enterprise Linux CoreOS 416.94 (bench)\"\n",
             etc_meta());
        file("etc/passwd",
             "root:x:0:0:root:/root:/bin/bash\ncore:x:1000:1000:CoreOS Admin:/var/home/core:/bin/bash\n"
             "containers:x:998:995::/var/home/containers:/sbin/nologin\n",
             etc_meta("passwd_file_t"));
        file("etc/group", "root:x:0:\nwheel:x:10:core\ncore:x:1000:\n", etc_meta("passwd_file_t"));
        {
            Meta m = etc_meta("shadow_t", 0000);
            file("etc/shadow", "root:*:19000:0:99999:7:::\ncore:!!:19000::::::\n", m);
        }
        etc_text("etc/fstab", etc_meta());
        file("etc/.updated", "# This file was created by systemd-update-done.\nTIMESTAMP_NSEC=1700000000000000000\n",
             etc_meta());
        symlink("etc/localtime", "../usr/share/zoneinfo/UTC", etc_meta("locale_t"));
        symlink("etc/mtab", "/proc/self/mounts", etc_meta());
        symlink("etc/os-release-link", "os-release", etc_meta());
        node("etc/bench-null", S_IFCHR, makedev(1, 3), etc_meta("null_device_t", 0666));
        node("etc/bench.fifo", S_IFIFO, 0, etc_meta("etc_t", 0600));

        // Nasty names.
        etc_text("etc/bench-names/name with spaces.conf", etc_meta());
        etc_text("etc/bench-names/new\nline.conf", etc_meta());
        etc_text("etc/bench-names/caf\xe9-latin1.conf", etc_meta());
        etc_text("etc/bench-names/\xff\xfe invalid utf8 \x80.conf", etc_meta());
        etc_text("etc/bench-names/dir with space/tab\there.conf", etc_meta());

        // Modes, owners, ACLs, set-id bits.
        {
            Meta m = etc_meta("etc_t", 0640);
            m.uid = 0;
            m.gid = 1000;
            m.acl = acl_xattr({{ACL_USER_OBJ, 6, ACL_UNDEF},
                               {ACL_USER, 6, 998}, // canonical order: by tag, then by id
                               {ACL_USER, 4, 1000},
                               {ACL_GROUP_OBJ, 4, ACL_UNDEF},
                               {ACL_GROUP, 4, 995},
                               {ACL_MASK, 6, ACL_UNDEF},
                               {ACL_OTHER, 0, ACL_UNDEF}});
            for (int i = 0; i < 8; i++)
                etc_text("etc/bench-acl/acl-" + std::to_string(i) + ".conf", m);
            Meta d = etc_meta("etc_t", 0750);
            d.user.clear();
            d.default_acl = acl_xattr({{ACL_USER_OBJ, 7, ACL_UNDEF},
                                       {ACL_USER, 5, 1000},
                                       {ACL_GROUP_OBJ, 5, ACL_UNDEF},
                                       {ACL_MASK, 5, ACL_UNDEF},
                                       {ACL_OTHER, 0, ACL_UNDEF}});
            dir("etc/bench-acl/default-acl.d", d);
            etc_text("etc/bench-acl/default-acl.d/inherits.conf", etc_meta());
        }
        {
            Meta d = etc_meta("etc_t", 02775);
            d.user.clear();
            d.gid = 1000;
            dir("etc/bench-setgid.d", d);
            Meta f = etc_meta("etc_t", 0664);
            f.gid = 1000;
            etc_text("etc/bench-setgid.d/shared.conf", f);
            Meta ro = etc_meta("etc_t", 0555);
            ro.user.clear();
            dir("etc/bench-readonly.d", ro);
            etc_text("etc/bench-readonly.d/frozen.conf", etc_meta("etc_t", 0444));
        }
        {
            Meta m = etc_meta("etc_t", 0600);
            m.user.push_back({"user.bench.big", text_content(rng_, 2000)});
            m.user.push_back({"user.bench.binary", std::string("\x00\x01\x02\xff\xfe", 5)});
            etc_text("etc/bench-xattrs.conf", m);
        }

        // systemd units and enablement links.
        for (const char* u : {"kubelet.service", "crio-wipe.service", "nodeip-configuration.service",
                              "machine-config-daemon-firstboot.service", "mc-bench.service"}) {
            etc_text(std::string("etc/systemd/system/") + u, etc_meta("systemd_unit_file_t"));
            symlink(std::string("etc/systemd/system/multi-user.target.wants/") + u,
                    std::string("/etc/systemd/system/") + u, etc_meta("systemd_unit_file_t"));
        }
        etc_text("etc/systemd/system/kubelet.service.d/10-mco-default-env.conf", etc_meta("systemd_unit_file_t"));

        // NetworkManager, with the usual space in the name and secrets 0600.
        etc_text("etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
                 etc_meta("NetworkManager_etc_rw_t", 0600));
        etc_text("etc/NetworkManager/system-connections/br-ex.nmconnection", etc_meta("NetworkManager_etc_rw_t", 0600));
        etc_text("etc/NetworkManager/conf.d/99-bench.conf", etc_meta("NetworkManager_etc_t"));

        // crio, containers.
        etc_text("etc/crio/crio.conf.d/00-default", etc_meta("container_config_t"));
        etc_text("etc/containers/registries.conf", etc_meta("container_config_t"));
        etc_text("etc/containers/policy.json", etc_meta("container_config_t"));

        // systemd-tmpfiles: these name /etc paths the restore must leave alone.
        file("etc/tmpfiles.d/bench-runtime.conf",
             "# bench: paths systemd-tmpfiles recreates at boot\n"
             "d /etc/tmpfiles-managed 0755 root root -\n"
             "f /etc/tmpfiles-managed/state.conf 0644 root root - generated\n"
             "d /etc/tmpfiles-managed/%m 0755 root root -\n"
             "L /etc/bench-localtime - - - - /usr/share/zoneinfo/UTC\n",
             etc_meta());
        file("etc/tmpfiles.d/bench-nm.conf", "d \"/etc/NetworkManager/dispatcher.d/runtime\" 0755 root root -\n",
             etc_meta());
        etc_text("etc/tmpfiles-managed/state.conf", etc_meta());
        etc_text("etc/tmpfiles-managed/0123456789abcdef0123456789abcdef/instance.conf", etc_meta());
        symlink("etc/bench-localtime", "/usr/share/zoneinfo/UTC", etc_meta());
        etc_text("etc/NetworkManager/dispatcher.d/runtime/hook", etc_meta("NetworkManager_initrc_exec_t", 0755));

        // Static pod manifests (owned by cluster-restore.sh, excluded by the restore).
        for (const char* p : {"etcd-pod.yaml", "kube-apiserver-pod.yaml", "kube-controller-manager-pod.yaml",
                              "kube-scheduler-pod.yaml"})
            etc_text(std::string("etc/kubernetes/manifests/") + p, etc_meta("kubernetes_file_t"));
        etc_text("etc/kubernetes/kubelet.conf", etc_meta("kubernetes_file_t"));
        etc_text("etc/kubernetes/kubelet-ca.crt", etc_meta("kubernetes_file_t"));
        const std::string spr = "etc/kubernetes/static-pod-resources";
        for (const char* f : {"etcd.env", "etcd-common-tools", "cluster-restore.sh", "cluster-backup.sh"})
            etc_text(spr + "/etcd-certs/configmaps/etcd-scripts/" + f, etc_meta("kubernetes_file_t"));
        etc_text(spr + "/etcd-certs/configmaps/etcd-serving-ca/ca-bundle.crt", etc_meta("kubernetes_file_t"));
        etc_text(spr + "/etcd-certs/secrets/etcd-all-certs/etcd-peer-sno.key", etc_meta("kubernetes_file_t", 0600));

        // MachineConfig: what MCO wrote, with files inside and outside the trees.
        file("etc/machine-config-daemon/currentconfig", current_config(), etc_meta("etc_t", 0644));

        // Hard links inside /etc.
        etc_text("etc/pki/tls/certs/ca-bundle.crt", etc_meta("cert_t"));
        hardlink("etc/pki/tls/certs/ca-bundle.crt", "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem");
        hardlink("etc/pki/tls/certs/ca-bundle.crt", "etc/pki/tls/cert.pem");
        etc_text("etc/ssh/ssh_host_ed25519_key", etc_meta("sshd_key_t", 0600));
        hardlink("etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.bak");

        // Filler up to the wanted count, spread like a real SNO /etc.
        uint64_t have = count() - start;
        uint64_t left = want > have ? want - have : 0;
        uint64_t n_spr = left * 60 / 100, n_pki = left * 15 / 100, n_se = left * 10 / 100;
        uint64_t n_misc = left - n_spr - n_pki - n_se;
        static const char* const comps[] = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"};
        for (uint64_t i = 0; i < n_spr; i++) {
            uint64_t rev = i / 40 + 1;
            const char* comp = comps[(i / 10) % 4];
            bool secret = (i % 10) >= 7;
            std::string base =
                spr + "/" + comp + "-pod-" + std::to_string(rev) + (secret ? "/secrets/" : "/configmaps/");
            std::string obj = std::string(kWords[(i / 4) % kNumWords]) + "-" + (secret ? "certs" : "config");
            etc_text(base + obj + "/" + kWords[(i * 7) % kNumWords] + "-" + std::to_string(i) +
                         (secret ? ".key" : ".yaml"),
                     etc_meta("kubernetes_file_t", secret ? 0600 : 0644));
        }
        for (uint64_t i = 0; i < n_pki; i++)
            etc_text("etc/pki/ca-trust/source/anchors/bench-" + std::to_string(i / 100) + "/cert-" + std::to_string(i) +
                         ".pem",
                     etc_meta("cert_t"));
        for (uint64_t i = 0; i < n_se; i++)
            etc_text("etc/selinux/targeted/active/modules/100/" + std::string(kWords[i / 3 % kNumWords]) + "-" +
                         std::to_string(i / 3) + "/" +
                         (i % 3 == 0   ? "cil"
                          : i % 3 == 1 ? "hll"
                                       : "lang_ext"),
                     etc_meta("semanage_store_t", 0600));
        static const char* const misc[] = {
            "sysconfig", "security",     "ssh/sshd_config.d", "containers/registries.d", "sudoers.d", "modprobe.d",
            "sysctl.d",  "udev/rules.d", "profile.d",         "dnf/protected.d"};
        for (uint64_t i = 0; i < n_misc; i++) {
            const char* d = misc[i % 10];
            std::string sub = (i / 10) % 5 == 4 ? "/nested-" + std::to_string(i / 50) + "/deeper" : "";
            Meta m = etc_meta();
            if (rng_.chance(0.05)) m.mode = 0600;
            if (rng_.chance(0.05)) m.mode = 0755;
            if (rng_.chance(0.03)) {
                m.uid = 1000;
                m.gid = 1000;
            }
            if (rng_.chance(0.01)) {
                symlink(std::string("etc/") + d + sub + "/link-" + std::to_string(i),
                        "../" + std::string(kWords[i % kNumWords]), etc_meta());
                continue;
            }
            etc_text(std::string("etc/") + d + sub + "/" + kWords[i % kNumWords] + "-" + std::to_string(i) + ".conf",
                     m);
        }
    }

    std::string current_config()
    {
        return R"({"apiVersion":"machineconfiguration.openshift.io/v1","kind":"MachineConfig",)"
               R"("metadata":{"name":"rendered-master-0123456789abcdef","annotations":{)"
               R"("machineconfiguration.openshift.io/generated-by-controller-version":"bench",)"
               R"("machineconfiguration.openshift.io/release-image-version":"4.16.3"}},)"
               R"("spec":{"config":{"ignition":{"version":"3.4.0"},"storage":{"files":[)"
               R"({"path":"/etc/kubernetes/kubelet-ca.crt","contents":{"source":"data:,bench"},"mode":420},)"
               R"({"path":"/usr/local/bin/mc-helper.sh","contents":{"source":"data:,bench"},"mode":493},)"
               R"({"path":"/var/lib/mco-extra/a.conf","contents":{"source":"data:,a"},"mode":420},)"
               R"({"path":"/opt/mc/b.conf","contents":{"source":"data:,b"},"mode":420}]},)"
               R"("systemd":{"units":[{"name":"mc-bench.service","enabled":true,)"
               R"("contents":"[Unit]\nDescription=bench\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"},)"
               R"({"name":"kubelet.service","enabled":true}]}},"osImageURL":"quay.io/openshift/bench@sha256:00"}})"
               "\n";
    }

    // ------------------------------------------------------------ /usr/local

    void gen_usrlocal()
    {
        Meta d;
        d.mode = 0755;
        d.selinux = label("usr_t");
        dir("usr/local", d);
        Meta bd = d;
        bd.selinux = label("bin_t");
        dir("usr/local/bin", bd);
        auto bin_meta = [&](mode_t mode = 0755) {
            Meta m;
            m.mode = mode;
            m.selinux = label("bin_t");
            if (rng_.chance(0.1)) m.user.push_back({"user.bench.build-id", std::to_string(rng_.next())});
            return m;
        };
        file("usr/local/bin/cluster-backup.sh",
             "#!/usr/bin/env bash\n# bench stand-in for cluster-backup.sh\nset -euo pipefail\n"
             "echo \"cluster-backup: $*\"\n" +
                 text_content(rng_, 3000),
             bin_meta());
        file("usr/local/bin/cluster-restore.sh",
             "#!/usr/bin/env bash\n# bench stand-in for cluster-restore.sh\nset -euo pipefail\n"
             "echo \"cluster-restore: $*\"\n" +
                 text_content(rng_, 4000),
             bin_meta());
        file("usr/local/bin/mc-helper.sh", "#!/bin/sh\necho mc-helper\n", bin_meta());
        etc_like("usr/local/share/bench/README", label("usr_t"));
        etc_like("usr/local/share/bench/with space.txt", label("usr_t"));

        // Large binaries: count and total follow --scale-data (default: the scale, at most 1).
        const uint64_t n = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(50 * data_scale_)));
        static const char* const names[] = {
            "oc", "openshift-install", "crictl-bench", "butane", "etcdctl-bench", "kube-bench", "helm", "jq-bench"};
        for (uint64_t i = 0; i < n; i++) {
            size_t size = static_cast<size_t>(1 * MiB + rng_.below(6 * MiB) + rng_.below(4096));
            std::string rel = i < 8 ? std::string("usr/local/bin/") + names[i]
                                    : (i % 2 ? "usr/local/lib/libbench-" + std::to_string(i) + ".so"
                                             : "usr/local/bin/tool-" + std::to_string(i));
            Meta m = bin_meta(i % 2 && i >= 8 ? 0644 : 0755);
            if (rel.find("/lib/") != std::string::npos) m.selinux = label("lib_t");
            if (i == 5) m.mode = 04755; // a set-uid binary
            file(rel, binary_content(rng_, size), m);
        }
        hardlink("usr/local/bin/oc", "usr/local/bin/kubectl");
        symlink("usr/local/bin/openshift-client", "oc", bin_meta());
        Meta sm = bin_meta(0644);
        sm.selinux = label("usr_t");
        sparse_file("usr/local/share/bench/vm-disk.raw", 64 * MiB, 4, sm);
        sparse_file("usr/local/lib/bench/sparse-64m.img", 64 * MiB, 3, sm);
    }

    void etc_like(const std::string& rel, const std::string& se)
    {
        Meta m;
        m.selinux = se;
        file(rel, text_content(rng_, etc_size()), m);
    }

    // ------------------------------------------------------------ /var/lib/kubelet

    std::string uuid()
    {
        char b[40];
        uint64_t a = rng_.next(), c = rng_.next();
        snprintf(b, sizeof b, "%08llx-%04llx-%04llx-%04llx-%012llx", ull(a >> 32), ull((a >> 16) & 0xffff),
                 ull(a & 0xffff), ull(c >> 48), ull(c & 0xffffffffffffull));
        return b;
    }

    void gen_kubelet()
    {
        const uint64_t want = static_cast<uint64_t>(std::llround(20000 * scale_));
        const uint64_t start = count();
        const std::string k = "var/lib/kubelet";
        Meta d;
        d.mode = 0755;
        d.selinux = label("container_var_lib_t");
        dir(k, d);
        auto km = [&](mode_t mode = 0644) {
            Meta m;
            m.mode = mode;
            m.selinux = label("container_var_lib_t");
            return m;
        };
        file(k + "/config.json", text_content(rng_, 600), km(0600));
        file(k + "/kubeconfig", text_content(rng_, 2500), km(0600));
        file(k + "/cpu_manager_state", "{\"policyName\":\"none\",\"defaultCpuSet\":\"\",\"checksum\":1}\n", km());
        file(k + "/memory_manager_state", "{\"policyName\":\"None\",\"checksum\":2}\n", km());
        file(k + "/pki/kubelet-client-2024-07-01-10-00-00.pem", text_content(rng_, 2800), km(0600));
        symlink(k + "/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet-client-2024-07-01-10-00-00.pem",
                km());
        file(k + "/pki/kubelet-server-2024-07-01-10-00-00.pem", text_content(rng_, 2800), km(0600));
        symlink(k + "/pki/kubelet-server-current.pem", "kubelet-server-2024-07-01-10-00-00.pem", km());
        file(k + "/device-plugins/kubelet_internal_checkpoint", text_content(rng_, 200), km(0600));
        Meta sm = km(0644);
        sparse_file(k + "/plugins/bench/sparse-state.db", 16 * MiB, 2, sm);

        // Pods: ~100 names each, until the wanted count.
        uint64_t pod = 0;
        while (count() - start < want) {
            gen_pod(k + "/pods/" + uuid(), pod++, want - (count() - start));
        }
    }

    void gen_pod(const std::string& base, uint64_t index, uint64_t budget)
    {
        unsigned c1 = static_cast<unsigned>(rng_.below(1023)), c2 = static_cast<unsigned>(rng_.below(1023));
        if (c1 == c2) c2 = (c2 + 1) % 1024;
        if (c1 > c2) std::swap(c1, c2);
        const std::string mcs = "s0:c" + std::to_string(c1) + ",c" + std::to_string(c2);
        const uid_t pod_uid = 1000650000 + static_cast<uid_t>(index % 1000) * 10000;
        auto pm = [&](mode_t mode = 0644, uid_t uid = 0, gid_t gid = 0) {
            Meta m;
            m.mode = mode;
            m.uid = uid;
            m.gid = gid;
            m.selinux = label("container_file_t", mcs);
            if (rng_.chance(0.02)) m.user.push_back({"user.kubelet.bench", std::to_string(index)});
            return m;
        };
        auto size = [&] { return static_cast<size_t>(rng_.range(100, 4 * KiB)); };
        uint64_t made = 0;
        auto text = [&](const std::string& rel, const Meta& m) {
            if (made >= budget) return;
            file(rel, text_content(rng_, size()), m);
            made++;
        };
        Meta dm = pm(0750);
        dm.user.clear();
        dir(base, dm);
        text(base + "/etc-hosts", pm());
        for (int c = 0; c < 3; c++)
            text(base + "/containers/" + kWords[(index + c) % kNumWords] + "/" +
                     std::to_string(rng_.next() % 100000000),
                 pm(0644));
        // Secrets and config maps the kubelet's atomic writer way: ..<time>/files, ..data -> it, name -> ..data/name.
        const char* kinds[] = {"kubernetes.io~secret", "kubernetes.io~configmap", "kubernetes.io~projected"};
        for (int v = 0; v < 3 && made < budget; v++) {
            const char* kind = kinds[v % 3];
            std::string vol =
                base + "/volumes/" + kind + "/" + kWords[(index * 3 + v) % kNumWords] + "-vol-" + std::to_string(v);
            std::string ts = "..2024_07_01_10_00_00." + std::to_string(rng_.below(1000000000));
            unsigned keys = 3 + static_cast<unsigned>(rng_.below(8));
            for (unsigned i = 0; i < keys && made < budget; i++) {
                std::string key = std::string(kWords[(i * 5 + v) % kNumWords]) + (i % 4 == 3 ? ".crt" : ".yaml");
                text(vol + "/" + ts + "/" + key, pm(v % 3 == 0 ? 0600 : 0644, 0, pod_uid));
                if (made < budget) {
                    symlink(vol + "/" + key, "..data/" + key, pm());
                    made++;
                }
            }
            if (made < budget) {
                symlink(vol + "/..data", ts, pm());
                made++;
            }
        }
        // empty-dir volumes, owned by the pod's uid, up to ~100 names per pod.
        std::string ed = base + "/volumes/kubernetes.io~empty-dir/cache";
        for (unsigned e = 0; made < budget && (e < 10 || made < 100); e++) {
            std::string name = std::string(kWords[e % kNumWords]) + "-" + std::to_string(e);
            if (index % 50 == 7 && e == 0) name = "data \xff\xfe odd.bin"; // non-UTF-8
            if (index % 50 == 8 && e == 0) name = "line\nbreak with space.txt";
            text(ed + "/d" + std::to_string(e / 8) + "/" + name, pm(0664, pod_uid, pod_uid));
        }
        if (index % 40 == 3 && made + 1 < budget) {
            // A hard link inside a pod's volume.
            std::string a = ed + "/d0/hardlinked.dat";
            file(a, text_content(rng_, size()), pm(0644, pod_uid, pod_uid));
            hardlink(a, ed + "/d0/hardlinked-2.dat");
            made += 2;
        }
        if (index % 25 == 5 && made < budget) {
            node(base + "/volumes/kubernetes.io~empty-dir/cache/pipe", S_IFIFO, 0, pm(0660, pod_uid, pod_uid));
            made++;
        }
    }

    // ------------------------------------------------------------ MachineConfig files outside the trees

    void gen_extras()
    {
        Meta m;
        m.selinux = label("var_lib_t");
        file("var/lib/mco-extra/a.conf", "a = 1\n" + text_content(rng_, 300), m);
        m.selinux = label("usr_t");
        file("opt/mc/b.conf", "b = 2\n" + text_content(rng_, 300), m);
    }

    uint64_t count() const { return regular_ + symlinks_ + others_; }

    struct DirRec {
        std::string rel;
        std::string default_acl;
    };

    std::string root_;
    Rng rng_;
    double scale_;
    double data_scale_;
    std::vector<DirRec> dirs_;
    std::map<std::string, size_t> dir_index_;
    uint64_t regular_ = 0, symlinks_ = 0, others_ = 0, bytes_ = 0;
};

// ---------------------------------------------------------------- walking

struct Item {
    std::string rel;
    struct stat st;
};

std::vector<std::string> sorted_names(const std::string& path)
{
    std::vector<std::string> names;
    DIR* d = opendir(path.c_str());
    check(d != nullptr, "open " + path);
    for (struct dirent* de; (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        names.emplace_back(de->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
        return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
            return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
        });
    });
    return names;
}

// Pre-order walk in byte order; `fn` sees every entry including `rel` itself.
template <class Fn> void walk(const std::string& root, const std::string& rel, Fn&& fn)
{
    Item it;
    it.rel = rel;
    if (::lstat((root + "/" + rel).c_str(), &it.st) < 0) {
        if (errno == ENOENT) return;
        check(false, "stat " + rel);
    }
    fn(it);
    if (!S_ISDIR(it.st.st_mode)) return;
    for (const auto& n : sorted_names(root + "/" + rel))
        walk(root, rel + "/" + n, fn);
}

std::vector<std::string> all_trees()
{
    std::vector<std::string> t = kTrees;
    t.insert(t.end(), kExtraDirs.begin(), kExtraDirs.end());
    return t;
}

// ---------------------------------------------------------------- mutate

void write_all(int fd, const std::string& data, off_t off, const std::string& what)
{
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, off + static_cast<off_t>(done));
        check(n > 0, "write " + what);
        done += static_cast<size_t>(n);
    }
}

class Mutator
{
  public:
    Mutator(std::string root, uint64_t seed, double percent, std::string kind)
        : root_(std::move(root)), rng_(seed ^ (kind == "touch" ? 0x7f4a7c15ull : 0x1ce4e5b9ull)), percent_(percent),
          kind_(std::move(kind))
    {
    }

    void run()
    {
        umask(0);
        std::vector<Item> regs;
        for (const auto& t : all_trees())
            walk(root_, t, [&](const Item& it) {
                if (mutate_excluded(it.rel)) return;
                if (S_ISREG(it.st.st_mode)) regs.push_back(it);
                if (S_ISDIR(it.st.st_mode)) dirs_.push_back(it);
            });
        if (regs.empty()) die("no regular files under %s", root_.c_str());
        size_t n =
            std::max<size_t>(1, static_cast<size_t>(std::llround(static_cast<double>(regs.size()) * percent_ / 100.0)));
        n = std::min(n, regs.size());
        // Partial Fisher-Yates: the first n of a deterministic shuffle.
        std::vector<size_t> idx(regs.size());
        for (size_t i = 0; i < idx.size(); i++)
            idx[i] = i;
        for (size_t i = 0; i < n; i++)
            std::swap(idx[i], idx[i + rng_.below(idx.size() - i)]);
        std::vector<Item> picked;
        for (size_t i = 0; i < n; i++)
            picked.push_back(regs[idx[i]]);
        std::sort(picked.begin(), picked.end(), [](const Item& a, const Item& b) { return a.rel < b.rel; });

        if (kind_ == "touch") {
            for (size_t i = 0; i < picked.size(); i++)
                rewrite(picked[i], kTouchTime + static_cast<int64_t>(i));
            printf("mutate touch: rewrote %zu of %zu regular files (%.2f%%)\n", picked.size(), regs.size(),
                   100.0 * static_cast<double>(picked.size()) / static_cast<double>(regs.size()));
            return;
        }
        upgrade(picked, regs, idx, n);
    }

  private:
    std::string abs(const std::string& rel) const { return root_ + "/" + rel; }
    std::string parent_of(const std::string& rel) const { return rel.substr(0, rel.rfind('/')); }

    void rewrite(const Item& it, int64_t t)
    {
        std::string p = abs(it.rel);
        int fd = ::open(p.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        check(fd >= 0, "open " + it.rel);
        size_t size = static_cast<size_t>(it.st.st_size);
        bool sparse = static_cast<uint64_t>(it.st.st_blocks) * 512 < static_cast<uint64_t>(it.st.st_size);
        if (sparse) {
            // Keep the holes: new data in the first block only.
            write_all(fd, binary_content(rng_, std::min<size_t>(size, 4096)), 0, it.rel);
        } else {
            std::string data = size > 64 * KiB ? binary_content(rng_, size) : text_content(rng_, size ? size : 100);
            check(::ftruncate(fd, 0) == 0, "truncate " + it.rel);
            write_all(fd, data, 0, it.rel);
        }
        struct timespec ts[2] = {{t, static_cast<long>(rng_.below(1000000000))}, {}};
        ts[1] = ts[0];
        check(::futimens(fd, ts) == 0, "set times of " + it.rel);
        ::close(fd);
    }

    void touched_dir(const std::string& rel) { changed_dirs_.insert(rel); }

    void upgrade(const std::vector<Item>& picked, const std::vector<Item>& regs, const std::vector<size_t>& idx,
                 size_t n)
    {
        unsigned content = 0, deleted = 0, chmods = 0, chowns = 0, relabels = 0, added = 0;
        std::set<std::string> gone;
        for (size_t i = 0; i < picked.size(); i++) {
            const Item& it = picked[i];
            std::string p = abs(it.rel);
            unsigned bucket = static_cast<unsigned>(rng_.below(20));
            if (bucket < 10) {
                rewrite(it, kUpgradeTime + static_cast<int64_t>(i));
                content++;
            } else if (bucket < 13) {
                check(::unlink(p.c_str()) == 0, "delete " + it.rel);
                gone.insert(it.rel);
                touched_dir(parent_of(it.rel));
                deleted++;
            } else if (bucket < 15) {
                mode_t m = it.st.st_mode & 07777;
                check(::chmod(p.c_str(), m == 0777 ? 0755 : (m ^ 0022) | 0002) == 0, "chmod " + it.rel);
                chmods++;
            } else if (bucket < 17) {
                check(::lchown(p.c_str(), it.st.st_uid + 1, it.st.st_gid + 2) == 0, "chown " + it.rel);
                chowns++;
            } else {
                std::string l = label("unlabeled_t") + std::string(1, '\0');
                check(::lsetxattr(p.c_str(), "security.selinux", l.data(), l.size(), 0) == 0, "relabel " + it.rel);
                relabels++;
            }
        }
        // Added files: a fifth as many as touched, in existing directories, plus two new directories.
        std::vector<const Item*> dirs;
        for (const auto& d : dirs_)
            if (d.rel.find('/') != std::string::npos) dirs.push_back(&d);
        for (size_t i = 0; i < std::max<size_t>(1, picked.size() / 5); i++) {
            const Item* d = dirs[rng_.below(dirs.size())];
            std::string rel = d->rel + "/ur-upgrade-added-" + std::to_string(i) + ".conf";
            new_file(rel, text_content(rng_, static_cast<size_t>(rng_.range(100, 8 * KiB))));
            added++;
        }
        for (int i = 0; i < 5; i++)
            new_file("etc/upgrade-new.d/added-" + std::to_string(i) + ".conf", text_content(rng_, 500));
        for (int i = 0; i < 10; i++)
            new_file("var/lib/kubelet/pods/ffffffff-0000-4000-8000-00000000beef/volumes/kubernetes.io~empty-dir/x/f" +
                         std::to_string(i),
                     text_content(rng_, 1000));
        added += 15;

        // A file replaced by a symlink pointing outside the root, in /etc and in the kubelet tree.
        unsigned symlinked = 0;
        for (const char* tree : {"etc/", "var/lib/kubelet/"}) {
            for (size_t k = n; k < idx.size(); k++) {
                const Item& it = regs[idx[k]];
                if (it.rel.compare(0, strlen(tree), tree) != 0 || it.st.st_nlink > 1 || gone.count(it.rel)) continue;
                std::string p = abs(it.rel);
                check(::unlink(p.c_str()) == 0, "delete " + it.rel);
                check(::symlink("/etc/passwd", p.c_str()) == 0, "symlink " + it.rel);
                set_time(it.rel, true);
                gone.insert(it.rel);
                touched_dir(parent_of(it.rel));
                symlinked++;
                break;
            }
        }
        // A directory replaced by a file: a small leaf directory in each of /etc and the kubelet tree.
        unsigned replaced = 0;
        for (const char* tree : {"etc/", "var/lib/kubelet/"}) {
            std::vector<const Item*> leaves;
            for (const auto& d : dirs_) {
                if (d.rel.compare(0, strlen(tree), tree) != 0 || std::count(d.rel.begin(), d.rel.end(), '/') < 2)
                    continue;
                bool leaf = true;
                size_t entries = 0;
                for (const auto& nm : sorted_names(abs(d.rel))) {
                    struct stat st;
                    if (::lstat(abs(d.rel + "/" + nm).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) leaf = false;
                    entries++;
                }
                if (leaf && entries > 0 && entries <= 20) leaves.push_back(&d);
            }
            if (leaves.empty()) continue;
            const Item* d = leaves[rng_.below(leaves.size())];
            remove_tree(abs(d->rel));
            new_file(d->rel, "this was a directory before the upgrade\n");
            replaced++;
        }
        // Modified directories get a fixed time too, so two mutated copies stay identical.
        for (const auto& d : changed_dirs_) {
            struct stat st;
            if (::lstat(abs(d).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) set_time(d, false);
        }
        printf("mutate upgrade: %zu of %zu regular files touched (%.2f%%): %u rewritten, %u deleted, %u chmod, %u "
               "chown, %u relabelled; %u added, %u replaced by a symlink to /etc/passwd, %u directories replaced by "
               "a file\n",
               picked.size(), regs.size(),
               100.0 * static_cast<double>(picked.size()) / static_cast<double>(regs.size()), content, deleted, chmods,
               chowns, relabels, added, symlinked, replaced);
    }

    void set_time(const std::string& rel, bool nofollow)
    {
        struct timespec ts[2] = {{kUpgradeTime, 0}, {kUpgradeTime, 0}};
        check(::utimensat(AT_FDCWD, abs(rel).c_str(), ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0) == 0,
              "set times of " + rel);
    }

    void new_file(const std::string& rel, const std::string& content)
    {
        // Create missing parents (new directories of the upgrade).
        std::string parent = parent_of(rel);
        std::vector<std::string> chain;
        for (std::string p = parent; !p.empty(); p = p.find('/') == std::string::npos ? "" : parent_of(p)) {
            struct stat st;
            if (::lstat(abs(p).c_str(), &st) == 0) break;
            chain.push_back(p);
        }
        if (!chain.empty()) touched_dir(parent_of(chain.back()));
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            check(::mkdir(abs(*it).c_str(), 0755) == 0, "mkdir " + *it);
            touched_dir(*it);
        }
        int fd = ::open(abs(rel).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        check(fd >= 0, "create " + rel);
        write_all(fd, content, 0, rel);
        std::string l = label("etc_t") + std::string(1, '\0');
        check(::fsetxattr(fd, "security.selinux", l.data(), l.size(), 0) == 0, "label " + rel);
        ::close(fd);
        set_time(rel, true);
        touched_dir(parent);
    }

    void remove_tree(const std::string& path)
    {
        struct stat st;
        if (::lstat(path.c_str(), &st) < 0) return;
        if (S_ISDIR(st.st_mode)) {
            for (const auto& n : sorted_names(path))
                remove_tree(path + "/" + n);
            check(::rmdir(path.c_str()) == 0, "rmdir " + path);
        } else {
            check(::unlink(path.c_str()) == 0, "delete " + path);
        }
    }

    std::string root_;
    Rng rng_;
    double percent_;
    std::string kind_;
    std::vector<Item> dirs_;
    std::set<std::string> changed_dirs_;
};

// ---------------------------------------------------------------- digest

class Sha256
{
  public:
    Sha256() : ctx_(EVP_MD_CTX_new())
    {
        if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) die("sha256 init failed");
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::string hex()
    {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_DigestFinal_ex(ctx_, md, &len);
        std::string s;
        char b[3];
        for (unsigned i = 0; i < len; i++) {
            snprintf(b, sizeof b, "%02x", md[i]);
            s += b;
        }
        return s;
    }

  private:
    EVP_MD_CTX* ctx_;
};

std::string escape(const std::string& s)
{
    std::string o;
    for (unsigned char c : s) {
        if (c < 0x20 || c >= 0x7f || c == '\\' || c == ' ') {
            char b[5];
            snprintf(b, sizeof b, "\\x%02x", c);
            o += b;
        } else {
            o += static_cast<char>(c);
        }
    }
    return o;
}

std::string content_digest(const std::string& path, const std::string& rel)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    check(fd >= 0, "open " + rel);
    Sha256 h;
    static std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        check(n >= 0, "read " + rel);
        if (n == 0) break;
        h.update(buf.data(), static_cast<size_t>(n));
    }
    ::close(fd);
    return h.hex();
}

std::string xattr_list(const std::string& path, const std::string& rel)
{
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP)) return "";
    check(n >= 0, "list xattrs of " + rel);
    std::string names(static_cast<size_t>(n), '\0');
    n = ::llistxattr(path.c_str(), names.data(), names.size());
    check(n >= 0, "list xattrs of " + rel);
    names.resize(static_cast<size_t>(n));
    std::vector<std::string> v;
    for (size_t i = 0; i < names.size();) {
        size_t e = names.find('\0', i);
        v.push_back(names.substr(i, e - i));
        i = e + 1;
    }
    std::sort(v.begin(), v.end());
    std::string out;
    for (const auto& name : v) {
        ssize_t m = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
        check(m >= 0, "get " + name + " of " + rel);
        std::string val(static_cast<size_t>(m), '\0');
        m = ::lgetxattr(path.c_str(), name.c_str(), val.data(), val.size());
        check(m >= 0, "get " + name + " of " + rel);
        val.resize(static_cast<size_t>(m));
        out += " " + name + "=" + escape(val);
    }
    return out;
}

int digest(const std::string& root, bool hardlinks, bool list)
{
    Sha256 total;
    uint64_t entries = 0;
    std::map<std::pair<dev_t, ino_t>, std::string> first_name;
    for (const auto& t : all_trees()) {
        walk(root, t, [&](const Item& it) {
            const struct stat& st = it.st;
            std::string p = root + "/" + it.rel;
            char head[160];
            char type = S_ISDIR(st.st_mode)    ? 'd'
                        : S_ISREG(st.st_mode)  ? 'f'
                        : S_ISLNK(st.st_mode)  ? 'l'
                        : S_ISCHR(st.st_mode)  ? 'c'
                        : S_ISBLK(st.st_mode)  ? 'b'
                        : S_ISFIFO(st.st_mode) ? 'p'
                                               : 's';
            snprintf(head, sizeof head, "%c %04o %u:%u %lld.%09ld", type, static_cast<unsigned>(st.st_mode & 07777),
                     st.st_uid, st.st_gid, static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
            std::string rec = escape(it.rel) + " " + head;
            if (S_ISREG(st.st_mode)) {
                rec += " size=" + std::to_string(st.st_size);
                std::string link;
                if (hardlinks && st.st_nlink > 1) {
                    auto [pos, fresh] = first_name.emplace(std::make_pair(st.st_dev, st.st_ino), it.rel);
                    if (!fresh) link = pos->second;
                }
                rec += link.empty() ? " sha256=" + content_digest(p, it.rel) : " link=" + escape(link);
            } else if (S_ISLNK(st.st_mode)) {
                std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
                ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
                check(n >= 0, "readlink " + it.rel);
                target.resize(static_cast<size_t>(n));
                rec += " -> " + escape(target);
            } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
                rec += " rdev=" + std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
            }
            rec += xattr_list(p, it.rel);
            rec += '\n';
            total.update(rec);
            entries++;
            if (list) fputs(rec.c_str(), stdout);
        });
    }
    printf("%s %llu\n", total.hex().c_str(), static_cast<unsigned long long>(entries));
    return 0;
}

// ---------------------------------------------------------------- main

[[noreturn]] void usage()
{
    fputs("usage: ur-gen-tree generate ROOT [--scale F] [--scale-data F] [--seed N]\n"
          "       ur-gen-tree mutate ROOT --percent P [--seed N] [--kind touch|upgrade]\n"
          "       ur-gen-tree digest ROOT [--no-hardlinks] [--list]\n",
          stderr);
    exit(2);
}

double number(const char* s, const char* what)
{
    char* end = nullptr;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || v < 0 || !std::isfinite(v)) die("%s: not a number: '%s'", what, s);
    return v;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 3) usage();
    std::string cmd = argv[1], root = argv[2];
    while (root.size() > 1 && root.back() == '/')
        root.pop_back();
    double scale = 1, percent = -1;
    std::optional<double> scale_data;
    uint64_t seed = 1;
    std::string kind = "touch";
    bool hardlinks = true, list = false;
    for (int i = 3; i < argc; i++) {
        std::string a = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--scale")
            scale = number(val(), "--scale");
        else if (a == "--scale-data")
            scale_data = number(val(), "--scale-data");
        else if (a == "--seed")
            seed = static_cast<uint64_t>(number(val(), "--seed"));
        else if (a == "--percent")
            percent = number(val(), "--percent");
        else if (a == "--kind")
            kind = val();
        else if (a == "--no-hardlinks")
            hardlinks = false;
        else if (a == "--list")
            list = true;
        else
            usage();
    }
    if (cmd == "generate") {
        if (scale <= 0) die("--scale must be > 0");
        Generator g(root, seed, scale, scale_data ? *scale_data : std::min(scale, 1.0));
        g.run();
        return 0;
    }
    if (cmd == "mutate") {
        if (percent <= 0 || percent > 100) die("mutate needs --percent P with 0 < P <= 100");
        if (kind != "touch" && kind != "upgrade") die("--kind must be touch or upgrade");
        Mutator m(root, seed, percent, kind);
        m.run();
        return 0;
    }
    if (cmd == "digest") return digest(root, hardlinks, list);
    usage();
}
