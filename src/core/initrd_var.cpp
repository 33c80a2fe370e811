#include "initrd_var.hpp"

#include "fd.hpp"
#include "hostfs.hpp"
#include "partition.hpp"

#include <libmount/libmount.h>

#include <cstdio>
#include <fcntl.h>
#include <memory>
#include <sstream>
#include <sys/stat.h>

namespace ur
{

namespace
{

struct TableFree {
    void operator()(libmnt_table* t) const { mnt_unref_table(t); }
};

bool has_option(const std::string& options, const char* name)
{
    return mnt_optstr_get_option(options.c_str(), name, nullptr, nullptr) == 0;
}

// Bind sources are paths of the real root (resolved inside it when mounting);
// devices and tags stay as they are.
VarSource finish(VarSource s)
{
    if (has_option(s.options, "bind") || has_option(s.options, "rbind")) {
        s.in_root = !s.what.empty() && s.what[0] == '/';
        if (s.fstype == "none") s.fstype.clear();
    }
    return s;
}

// The real root's files are read inside it: an absolute symlink such as
// /etc/fstab -> /usr/etc/fstab must not reach the initramfs' own.
Result<std::optional<std::string>> read_in_root(const std::string& root, const std::string& abs)
{
    auto text = read_host_file(root, abs, 1 << 20);
    if (text) return std::optional<std::string>(std::move(*text));
    if (text.error().err == ENOENT) return std::optional<std::string>{};
    return std::unexpected(std::move(text.error()).context(abs));
}

Result<std::optional<VarSource>> from_fstab(const std::string& root)
{
    auto text = read_in_root(root, "/etc/fstab");
    if (!text) return std::unexpected(text.error());
    if (!*text) return std::optional<VarSource>{};
    std::unique_ptr<libmnt_table, TableFree> tb(mnt_new_table());
    if (!tb) return fail_errno(ENOMEM, "mnt_new_table");
    FILE* f = ::fmemopen((*text)->data(), (*text)->size(), "r");
    if (!f) return fail_errno("read /etc/fstab");
    int rc = mnt_table_parse_stream(tb.get(), f, "/etc/fstab");
    ::fclose(f);
    if (rc != 0) return fail(ErrorKind::BadConfig, "cannot parse " + root + "/etc/fstab");
    libmnt_fs* fs = mnt_table_find_target(tb.get(), "/var", MNT_ITER_FORWARD);
    if (!fs) return std::optional<VarSource>{};
    VarSource s;
    s.what = mnt_fs_get_source(fs) ? mnt_fs_get_source(fs) : "";
    s.fstype = mnt_fs_get_fstype(fs) ? mnt_fs_get_fstype(fs) : "";
    s.options = mnt_fs_get_options(fs) ? mnt_fs_get_options(fs) : "";
    s.origin = "/etc/fstab";
    if (s.fstype == "auto") s.fstype.clear();
    return std::optional<VarSource>(finish(std::move(s)));
}

// The [Mount] section of a mount unit: What=, Type=, Options= (last one wins).
Result<std::optional<VarSource>> from_mount_unit(const std::string& root)
{
    const std::string abs = "/etc/systemd/system/var.mount";
    auto text = read_in_root(root, abs);
    if (!text) return std::unexpected(text.error());
    if (!*text) return std::optional<VarSource>{};
    VarSource s;
    s.origin = abs;
    std::stringstream ss(**text);
    std::string line, section;
    while (std::getline(ss, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.pop_back();
        size_t b = line.find_first_not_of(" \t");
        if (b == std::string::npos || line[b] == '#' || line[b] == ';') continue;
        line = line.substr(b);
        if (line[0] == '[') {
            section = line;
            continue;
        }
        if (section != "[Mount]") continue;
        size_t eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string key = line.substr(0, eq), value = line.substr(eq + 1);
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t'))
            key.pop_back();
        value.erase(0, value.find_first_not_of(" \t"));
        if (key == "What") s.what = value;
        if (key == "Type") s.fstype = value;
        if (key == "Options") s.options = value;
    }
    if (s.what.empty()) return fail(ErrorKind::BadConfig, abs + " has no What= in its [Mount] section");
    return std::optional<VarSource>(finish(std::move(s)));
}

} // namespace

std::string ostree_stateroot(std::string_view cmdline)
{
    // ostree=/ostree/boot.N/<stateroot>/<bootcsum>/<serial>
    size_t pos = 0;
    while (pos < cmdline.size()) {
        size_t end = cmdline.find_first_of(" \t\n", pos);
        if (end == std::string_view::npos) end = cmdline.size();
        std::string_view arg = cmdline.substr(pos, end - pos);
        if (arg.substr(0, 7) == "ostree=") {
            std::string_view v = arg.substr(7);
            if (v.substr(0, 8) != "/ostree/") return "";
            v.remove_prefix(8);
            size_t a = v.find('/');
            if (a == std::string_view::npos) return "";
            v.remove_prefix(a + 1); // boot.N/
            size_t b = v.find('/');
            std::string_view name = v.substr(0, b);
            if (name.empty() || name == "." || name == "..") return "";
            return std::string(name);
        }
        pos = end + 1;
    }
    return "";
}

Result<std::optional<VarSource>> find_real_var(const std::string& root, std::string_view cmdline)
{
    auto rootfd = open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("root"));
    struct stat vst;
    if (::fstatat(rootfd->get(), "var", &vst, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) return fail_errno("stat " + root + "/var");
    } else if (!S_ISDIR(vst.st_mode)) {
        // A symlink would be followed in the initramfs' own namespace: never mount through it.
        return fail(ErrorKind::Refused, root + "/var is not a directory; the real /var cannot be mounted there");
    } else {
        auto mounted = is_mount_point(rootfd->get(), "var");
        if (!mounted) return std::unexpected(mounted.error());
        if (*mounted) return std::optional<VarSource>{}; // already the real one
    }
    auto f = from_fstab(root);
    if (!f || *f) return f;
    auto u = from_mount_unit(root);
    if (!u || *u) return u;
    std::string stateroot = ostree_stateroot(cmdline);
    if (stateroot.empty()) return std::optional<VarSource>{};
    VarSource s;
    s.what = "/sysroot/ostree/deploy/" + stateroot + "/var"; // the physical root is <root>/sysroot
    s.in_root = true;
    s.options = "bind";
    s.origin = "ostree stateroot '" + stateroot + "' (ostree= on the kernel command line)";
    if (!open_in_root(rootfd->get(), s.what, O_PATH | O_DIRECTORY))
        return fail(ErrorKind::NotFound, "the kernel command line boots ostree stateroot '" + stateroot + "' but " +
                                             root + s.what + " is not a directory");
    return std::optional<VarSource>(std::move(s));
}

Result<MountGuard> mount_real_var(const std::string& root, const VarSource& src)
{
    std::string target = root_path(root, "/var");
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("create " + target);
    // A directory of the real root is mounted through an fd opened inside it.
    std::string what = src.what;
    UniqueFd dir;
    if (src.in_root) {
        auto rootfd = open_at(AT_FDCWD, root, O_PATH | O_DIRECTORY);
        if (!rootfd) return std::unexpected(rootfd.error());
        auto d = open_in_root(rootfd->get(), src.what, O_PATH | O_DIRECTORY);
        if (!d)
            return std::unexpected(std::move(d.error()).context("the real /var " + src.what + " (" + src.origin + ")"));
        dir = std::move(*d);
        what = "/proc/self/fd/" + std::to_string(dir.get());
    }
    auto r = mount_fs(what, target, src.fstype, src.options);
    if (!r)
        return std::unexpected(
            std::move(r.error()).context("mount the real /var (" + src.origin + ") for phase 1 in the initramfs"));
    return MountGuard(target);
}

} // namespace ur
