// ur-tree-compare: an independent comparison of two directory trees for the
// integration tests. It uses none of the project's code (its own walk, plain
// syscalls), so a bug in the backup or restore engine cannot hide itself.
//
//   ur-tree-compare A B [--ignore-xattr NAME]... [--ignore-dir-mtime] [--exclude REL]...
//
// Compared for every name: file type, mode (all 12 permission bits), owner,
// group, mtime (ns), every xattr of every namespace (user, trusted, security
// incl. security.selinux, system.posix_acl_*), symlink target, device numbers,
// size and every byte of regular files, holes (a sparse file must stay sparse,
// and no hole of A may become much more allocated data in B) and the hard-link
// structure (the same groups of names share an inode on each side; link counts
// are not compared because a backup generation shares inodes with the previous
// one). XFS lists POSIX ACLs a second time as trusted.SGI_ACL_FILE/DEFAULT;
// those names are always ignored (the ACL itself is compared as system.posix_acl_*).
//
// Prints one line per difference ("DIFF <what> <path>: ...", names escaped as
// \xHH outside printable ASCII) and a summary; exits 0 when equal, 1 on any
// difference, 2 on a usage error or when a tree cannot be read.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <set>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace
{

struct Options {
    std::string a, b;
    std::set<std::string> ignore_xattr = {"trusted.SGI_ACL_FILE", "trusted.SGI_ACL_DEFAULT"};
    std::set<std::string> exclude;
    bool ignore_dir_mtime = false;
};

Options g_opt;
unsigned long g_diffs = 0;
unsigned long g_entries = 0;
unsigned long g_files = 0;
unsigned long long g_bytes = 0;
bool g_error = false;

std::string esc(const std::string& s)
{
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x21 || c > 0x7e || c == '\\') {
            char b[8];
            snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string show(const std::string& rel)
{
    return rel.empty() ? std::string(".") : esc(rel);
}

void diff(const char* what, const std::string& rel, const std::string& detail)
{
    g_diffs++;
    printf("DIFF %s %s: %s\n", what, show(rel).c_str(), detail.c_str());
}

void error(const std::string& rel, const std::string& what)
{
    g_error = true;
    fprintf(stderr, "ur-tree-compare: %s %s: %s\n", what.c_str(), show(rel).c_str(), strerror(errno));
}

std::string join(const std::string& dir, const std::string& name)
{
    return dir.empty() ? name : dir + "/" + name;
}

const char* type_name(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFDIR: return "directory";
    case S_IFREG: return "file";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "char-device";
    case S_IFBLK: return "block-device";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    }
    return "unknown";
}

// One side of the walk: the hard-link groups it saw (inode -> names).
struct Side {
    std::map<std::pair<dev_t, ino_t>, std::vector<std::string>> links;
};
Side g_side_a, g_side_b;

// Names of a directory, sorted bytewise; "." and ".." dropped.
bool list_dir(int dirfd, const std::string& rel, std::vector<std::string>& out)
{
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        error(rel, "open directory");
        return false;
    }
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        error(rel, "fdopendir");
        return false;
    }
    errno = 0;
    while (struct dirent* de = ::readdir(d)) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        out.emplace_back(de->d_name);
    }
    bool ok = errno == 0;
    if (!ok) error(rel, "readdir");
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return ok;
}

// xattrs of `name` in the directory `dirfd` (or of the directory itself when
// name is empty), read with the l* calls from inside the directory so symlinks
// and devices are read themselves and paths longer than PATH_MAX work.
bool read_xattrs(int dirfd, const std::string& name, const std::string& rel, std::map<std::string, std::string>& out)
{
    if (::fchdir(dirfd) < 0) {
        error(rel, "fchdir");
        return false;
    }
    const char* p = name.empty() ? "." : name.c_str();
    std::vector<char> names;
    for (;;) {
        ssize_t n = ::llistxattr(p, nullptr, 0);
        if (n < 0) {
            if (errno == ENOTSUP) return true;
            error(rel, "llistxattr");
            return false;
        }
        names.resize(static_cast<size_t>(n) + 1);
        n = ::llistxattr(p, names.data(), names.size());
        if (n >= 0) {
            names.resize(static_cast<size_t>(n));
            break;
        }
        if (errno != ERANGE) {
            error(rel, "llistxattr");
            return false;
        }
    }
    for (size_t pos = 0; pos < names.size();) {
        std::string x(names.data() + pos);
        pos += x.size() + 1;
        if (x.empty()) continue;
        std::string v;
        for (;;) {
            ssize_t n = ::lgetxattr(p, x.c_str(), nullptr, 0);
            if (n < 0) {
                error(rel, "lgetxattr " + x);
                return false;
            }
            v.resize(static_cast<size_t>(n) + 1);
            n = ::lgetxattr(p, x.c_str(), v.data(), v.size());
            if (n >= 0) {
                v.resize(static_cast<size_t>(n));
                break;
            }
            if (errno != ERANGE) {
                error(rel, "lgetxattr " + x);
                return false;
            }
        }
        out[x] = v;
    }
    return true;
}

std::string hex(const std::string& v)
{
    std::string out;
    char b[4];
    for (unsigned char c : v.substr(0, 64)) {
        snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    if (v.size() > 64) out += "...";
    return out.empty() ? "(empty)" : out;
}

void compare_xattrs(int da, int db, const std::string& name, const std::string& rel)
{
    std::map<std::string, std::string> xa, xb;
    if (!read_xattrs(da, name, rel, xa) || !read_xattrs(db, name, rel, xb)) return;
    for (const auto& [k, v] : xa) {
        if (g_opt.ignore_xattr.count(k)) continue;
        auto it = xb.find(k);
        if (it == xb.end())
            diff("xattr", rel, "'" + esc(k) + "' only in A");
        else if (it->second != v)
            diff("xattr", rel, "'" + esc(k) + "' A=" + hex(v) + " B=" + hex(it->second));
    }
    for (const auto& [k, v] : xb)
        if (!g_opt.ignore_xattr.count(k) && !xa.count(k)) diff("xattr", rel, "'" + esc(k) + "' only in B");
}

struct Ranges {
    std::vector<std::pair<off_t, off_t>> data; // [start, end)
    unsigned long long total = 0;
};

Ranges data_ranges(int fd, off_t size)
{
    Ranges r;
    off_t pos = 0;
    while (pos < size) {
        off_t d = ::lseek(fd, pos, SEEK_DATA);
        if (d < 0) break; // ENXIO: only a hole up to the end
        off_t h = ::lseek(fd, d, SEEK_HOLE);
        if (h < 0) h = size;
        r.data.emplace_back(d, h);
        r.total += static_cast<unsigned long long>(h - d);
        pos = h;
    }
    return r;
}

void compare_content(int da, int db, const std::string& name, const std::string& rel, const struct stat& sa,
                     const struct stat& sb)
{
    int fa = ::openat(da, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fa < 0) {
        error(rel, "open A");
        return;
    }
    int fb = ::openat(db, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fb < 0) {
        error(rel, "open B");
        ::close(fa);
        return;
    }
    g_files++;
    static std::vector<char> ba(1 << 20), bb(1 << 20);
    off_t off = 0;
    bool same = true;
    for (;;) {
        ssize_t na = ::pread(fa, ba.data(), ba.size(), off);
        ssize_t nb = ::pread(fb, bb.data(), bb.size(), off);
        if (na < 0 || nb < 0) {
            error(rel, "read");
            same = false;
            break;
        }
        ssize_t n = std::min(na, nb);
        if (memcmp(ba.data(), bb.data(), static_cast<size_t>(n)) != 0) {
            ssize_t i = 0;
            while (ba[static_cast<size_t>(i)] == bb[static_cast<size_t>(i)])
                i++;
            diff("content", rel, "first difference at byte " + std::to_string(off + i));
            same = false;
            break;
        }
        g_bytes += static_cast<unsigned long long>(n);
        if (na != nb) {
            diff("content", rel, "one side ends at byte " + std::to_string(off + n));
            same = false;
            break;
        }
        if (na == 0) break;
        off += na;
    }
    if (same && sa.st_size > 0) {
        // Holes. Allocation granularity differs between filesystems (4 KiB blocks,
        // 64 KiB extents, speculative preallocation), so: a file that is sparse in A
        // (allocated much less than its size) must be sparse in B, and B may not
        // hold much more data in SEEK_DATA ranges than A does.
        const unsigned long long size = static_cast<unsigned long long>(sa.st_size);
        unsigned long long alloc_a = static_cast<unsigned long long>(sa.st_blocks) * 512;
        unsigned long long alloc_b = static_cast<unsigned long long>(sb.st_blocks) * 512;
        if (alloc_a * 2 < size && alloc_b * 2 >= size)
            diff("sparse", rel,
                 "size " + std::to_string(size) + ", A allocates " + std::to_string(alloc_a) + " bytes, B " +
                     std::to_string(alloc_b));
        Ranges ra = data_ranges(fa, sa.st_size), rb = data_ranges(fb, sb.st_size);
        const unsigned long long slack = (ra.data.size() * 2 + 2) * (1ull << 20);
        if (rb.total > ra.total + slack)
            diff("holes", rel,
                 "A has " + std::to_string(ra.total) + " bytes in " + std::to_string(ra.data.size()) +
                     " data ranges, B " + std::to_string(rb.total) + " in " + std::to_string(rb.data.size()));
    }
    ::close(fa);
    ::close(fb);
}

std::string fmt_time(const struct timespec& t)
{
    char b[48];
    snprintf(b, sizeof b, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
    return b;
}

std::string octal(mode_t m)
{
    char b[16];
    snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
    return b;
}

void compare_dir(int da, int db, const std::string& rel);

// Compare the entry `name` of the directories da/db (or the directories
// themselves when name is empty: the tree roots).
void compare_entry(int da, int db, const std::string& name, const std::string& rel)
{
    if (g_opt.exclude.count(rel)) return;
    g_entries++;
    struct stat sa, sb;
    const char* p = name.empty() ? "." : name.c_str();
    if (::fstatat(da, p, &sa, AT_SYMLINK_NOFOLLOW) < 0) {
        error(rel, "stat A");
        return;
    }
    if (::fstatat(db, p, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        error(rel, "stat B");
        return;
    }
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
        diff("type", rel, std::string("A is a ") + type_name(sa.st_mode) + ", B is a " + type_name(sb.st_mode));
        return;
    }
    const bool is_dir = S_ISDIR(sa.st_mode);
    if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
        diff("mode", rel, "A=" + octal(sa.st_mode) + " B=" + octal(sb.st_mode));
    if (sa.st_uid != sb.st_uid)
        diff("owner", rel, "A=" + std::to_string(sa.st_uid) + " B=" + std::to_string(sb.st_uid));
    if (sa.st_gid != sb.st_gid)
        diff("group", rel, "A=" + std::to_string(sa.st_gid) + " B=" + std::to_string(sb.st_gid));
    if (!(is_dir && g_opt.ignore_dir_mtime) &&
        (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec))
        diff("mtime", rel, "A=" + fmt_time(sa.st_mtim) + " B=" + fmt_time(sb.st_mtim));
    if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) {
        if (sa.st_rdev != sb.st_rdev)
            diff("rdev", rel,
                 "A=" + std::to_string(major(sa.st_rdev)) + ":" + std::to_string(minor(sa.st_rdev)) +
                     " B=" + std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev)));
    }
    if (!is_dir && sa.st_nlink > 1) g_side_a.links[{sa.st_dev, sa.st_ino}].push_back(rel);
    if (!is_dir && sb.st_nlink > 1) g_side_b.links[{sb.st_dev, sb.st_ino}].push_back(rel);
    if (S_ISLNK(sa.st_mode)) {
        std::string ta(static_cast<size_t>(sa.st_size) + 2, '\0'), tb(static_cast<size_t>(sb.st_size) + 2, '\0');
        ssize_t na = ::readlinkat(da, p, ta.data(), ta.size());
        ssize_t nb = ::readlinkat(db, p, tb.data(), tb.size());
        if (na < 0 || nb < 0) {
            error(rel, "readlink");
        } else {
            ta.resize(static_cast<size_t>(na));
            tb.resize(static_cast<size_t>(nb));
            if (ta != tb) diff("target", rel, "A='" + esc(ta) + "' B='" + esc(tb) + "'");
        }
    }
    if (S_ISREG(sa.st_mode)) {
        if (sa.st_size != sb.st_size)
            diff("size", rel, "A=" + std::to_string(sa.st_size) + " B=" + std::to_string(sb.st_size));
        compare_content(da, db, p, rel, sa, sb);
    }
    if (is_dir) {
        int ca = ::openat(da, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int cb = ::openat(db, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ca < 0 || cb < 0) {
            error(rel, "open directory");
        } else {
            compare_xattrs(ca, cb, "", rel);
            compare_dir(ca, cb, rel);
        }
        if (ca >= 0) ::close(ca);
        if (cb >= 0) ::close(cb);
    } else {
        compare_xattrs(da, db, name, rel);
    }
}

void compare_dir(int da, int db, const std::string& rel)
{
    std::vector<std::string> na, nb;
    if (!list_dir(da, rel, na) || !list_dir(db, rel, nb)) return;
    size_t i = 0, j = 0;
    while (i < na.size() || j < nb.size()) {
        if (j == nb.size() || (i < na.size() && na[i] < nb[j])) {
            if (!g_opt.exclude.count(join(rel, na[i]))) diff("missing", join(rel, na[i]), "only in A");
            i++;
        } else if (i == na.size() || nb[j] < na[i]) {
            if (!g_opt.exclude.count(join(rel, nb[j]))) diff("extra", join(rel, nb[j]), "only in B");
            j++;
        } else {
            compare_entry(da, db, na[i], join(rel, na[i]));
            i++;
            j++;
        }
    }
}

// Each name's group: the sorted list of names sharing its inode on that side.
std::map<std::string, std::string> groups(const Side& s)
{
    std::map<std::string, std::string> out;
    for (auto [key, names] : s.links) {
        std::sort(names.begin(), names.end());
        std::string g;
        for (const auto& n : names)
            g += (g.empty() ? "" : " ") + show(n);
        for (const auto& n : names)
            out[n] = g;
    }
    return out;
}

void compare_links()
{
    auto ga = groups(g_side_a), gb = groups(g_side_b);
    std::set<std::string> names;
    for (const auto& [n, g] : ga)
        names.insert(n);
    for (const auto& [n, g] : gb)
        names.insert(n);
    for (const auto& n : names) {
        auto a = ga.count(n) ? ga[n] : show(n);
        auto b = gb.count(n) ? gb[n] : show(n);
        if (a != b) diff("hardlinks", n, "A links {" + a + "} B links {" + b + "}");
    }
}

int usage()
{
    fprintf(stderr, "usage: ur-tree-compare A B [--ignore-xattr NAME]... [--ignore-dir-mtime] [--exclude REL]...\n");
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> pos;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--ignore-xattr" || a == "--exclude") {
            if (i + 1 >= argc) return usage();
            std::string v = argv[++i];
            if (a == "--ignore-xattr") {
                g_opt.ignore_xattr.insert(v);
            } else {
                while (v.size() > 1 && v.back() == '/')
                    v.pop_back();
                g_opt.exclude.insert(v);
            }
        } else if (a == "--ignore-dir-mtime") {
            g_opt.ignore_dir_mtime = true;
        } else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else if (!a.empty() && a[0] == '-') {
            return usage();
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() != 2) return usage();
    g_opt.a = pos[0];
    g_opt.b = pos[1];
    int ra = ::open(g_opt.a.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rb = ::open(g_opt.b.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ra < 0 || rb < 0) {
        fprintf(stderr, "ur-tree-compare: cannot open %s: %s\n", ra < 0 ? g_opt.a.c_str() : g_opt.b.c_str(),
                strerror(errno));
        return 2;
    }
    compare_entry(ra, rb, "", "");
    compare_links();
    printf("ur-tree-compare: %lu entries, %lu files, %llu bytes compared: %lu difference%s\n", g_entries, g_files,
           g_bytes, g_diffs, g_diffs == 1 ? "" : "s");
    if (g_error) return 2;
    return g_diffs ? 1 : 0;
}
