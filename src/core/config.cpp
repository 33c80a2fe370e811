#include "config.hpp"

#include "fd.hpp"
#include "hostfs.hpp"
#include "metadata.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <toml++/toml.h>

namespace ur
{

std::vector<TreeSpec> Config::default_trees()
{
    return {
        {"etc", "/etc", {}, true},
        {"usrlocal", "/usr/local", {}, true},
        {"kubelet", "/var/lib/kubelet", {}, true},
    };
}

const TreeSpec* Config::tree(const std::string& name) const
{
    for (const auto& t : trees)
        if (t.name == name) return &t;
    return nullptr;
}

Result<uint64_t> parse_size(std::string_view s)
{
    size_t i = 0;
    uint64_t v = 0;
    if (s.empty()) return fail(ErrorKind::BadConfig, "empty size");
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return fail(ErrorKind::BadConfig, "size too large");
        v = v * 10 + static_cast<uint64_t>(s[i] - '0');
        i++;
    }
    if (i == 0) return fail(ErrorKind::BadConfig, "size '" + std::string(s) + "' does not start with a number");
    std::string unit(s.substr(i));
    static const std::map<std::string, uint64_t> units = {
        {"", 1},           {"B", 1},
        {"K", 1ull << 10}, {"KiB", 1ull << 10},
        {"M", 1ull << 20}, {"MiB", 1ull << 20},
        {"G", 1ull << 30}, {"GiB", 1ull << 30},
        {"T", 1ull << 40}, {"TiB", 1ull << 40},
    };
    auto it = units.find(unit);
    if (it == units.end())
        return fail(ErrorKind::BadConfig, "unknown size unit '" + unit + "' (use B, KiB, MiB, GiB, TiB)");
    if (v > UINT64_MAX / it->second) return fail(ErrorKind::BadConfig, "size '" + std::string(s) + "' is too large");
    return v * it->second;
}

namespace
{

std::string where(const std::string& file, const toml::source_region& r)
{
    std::ostringstream o;
    o << file << ":" << r.begin.line << ":" << r.begin.column;
    return o.str();
}

// Walks one table, applying known keys and rejecting unknown ones with their position.
class Section
{
  public:
    Section(const toml::table& t, std::string name, const std::string& file)
        : t_(t), name_(std::move(name)), file_(file)
    {
    }

    Result<> str(const char* key, std::string& out)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            auto v = n.value<std::string>();
            if (!n.is_string() || !v) return type_error(key, n, "a string");
            // TOML allows \u0000; every use of ours ends at it (a path "/etc\0/x" is /etc).
            if (v->find('\0') != std::string::npos) return type_error(key, n, "a string without NUL (\\u0000)");
            out = *v;
            return {};
        });
    }
    // After str(): the value read must be an absolute path. Every host path is
    // taken under the root prefix (root_path), where a relative one names nothing
    // sensible: found at load, not as an odd failure in the middle of a backup.
    // `empty_ok`: empty means "not set" (the etcdctl TLS files).
    Result<> absolute_path(const char* key, const std::string& value, bool empty_ok = false)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (empty_ok && value.empty()) return {};
            if (value.empty() || value[0] != '/')
                return type_error(key, n, empty_ok ? "an absolute path, or empty" : "an absolute path");
            return {};
        });
    }
    // After str(): a name that must not be empty (a partition label).
    Result<> nonempty(const char* key, const std::string& value)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (value.empty()) return type_error(key, n, "a non-empty string");
            return {};
        });
    }
    // After str(): a command, looked up in PATH when a bare name. One with a
    // slash must be absolute: relative, it would depend on the caller's directory.
    Result<> command(const char* key, const std::string& value)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (value.empty() || (value.find('/') != std::string::npos && value[0] != '/'))
                return type_error(key, n, "a command name or an absolute path");
            return {};
        });
    }
    Result<> boolean(const char* key, bool& out)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (!n.is_boolean()) return type_error(key, n, "true or false");
            out = *n.value<bool>();
            return {};
        });
    }
    Result<> uint(const char* key, unsigned& out, unsigned min = 0, unsigned max = 0x7fffffff)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (!n.is_integer() || *n.value<int64_t>() < 0) return type_error(key, n, "a non-negative integer");
            // It is one: say the limit (upgrade-recovery.conf(5), Value types), not that it is none.
            if (*n.value<int64_t>() > 0x7fffffff) return type_error(key, n, "at most 2147483647");
            if (*n.value<int64_t>() < min) return type_error(key, n, ("at least " + std::to_string(min)).c_str());
            if (*n.value<int64_t>() > max) return type_error(key, n, ("at most " + std::to_string(max)).c_str());
            out = static_cast<unsigned>(*n.value<int64_t>());
            return {};
        });
    }
    Result<> size(const char* key, uint64_t& out)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            if (n.is_integer() && *n.value<int64_t>() >= 0) {
                out = static_cast<uint64_t>(*n.value<int64_t>());
                return {};
            }
            if (n.is_string()) {
                auto r = parse_size(*n.value<std::string>());
                if (!r)
                    return fail(ErrorKind::BadConfig,
                                where(file_, n.source()) + ": " + name_ + "." + key + ": " + r.error().message);
                out = *r;
                return {};
            }
            return type_error(key, n, "a size (bytes, or a string such as \"10GiB\")");
        });
    }
    // `problem`, when given, says why an element is refused (empty: accepted); the
    // error names that element's position.
    Result<> strings(const char* key, std::vector<std::string>& out,
                     const std::function<std::string(const std::string&)>& problem = {})
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            const toml::array* a = n.as_array();
            if (!a) return type_error(key, n, "an array of strings");
            std::vector<std::string> v;
            for (const auto& e : *a) {
                if (!e.is_string()) return type_error(key, e, "an array of strings");
                v.push_back(*e.value<std::string>());
                if (v.back().find('\0') != std::string::npos)
                    return type_error(key, e, "an array of strings without NUL (\\u0000)");
                if (problem)
                    if (auto why = problem(v.back()); !why.empty())
                        return fail(ErrorKind::BadConfig,
                                    where(file_, e.source()) + ": " + name_ + "." + key + ": " + why);
            }
            out = std::move(v);
            return {};
        });
    }
    Result<> oneof(const char* key, std::string& out, std::initializer_list<const char*> allowed)
    {
        return with(key, [&](const toml::node& n) -> Result<> {
            auto v = n.value<std::string>();
            if (!n.is_string() || !v) return type_error(key, n, "a string");
            for (const char* a : allowed)
                if (*v == a) {
                    out = *v;
                    return {};
                }
            std::string list;
            for (const char* a : allowed)
                list += std::string(list.empty() ? "" : ", ") + a;
            return fail(ErrorKind::BadConfig, where(file_, n.source()) + ": " + name_ + "." + key + " must be one of " +
                                                  list + ", not '" + *v + "'");
        });
    }
    Result<> custom(const char* key, const std::function<Result<>(const toml::node&)>& f) { return with(key, f); }

    // After all known keys were taken: anything left is unknown.
    Result<> finish() const
    {
        for (const auto& [k, v] : t_) {
            if (!seen_.count(std::string(k.str())))
                return fail(ErrorKind::BadConfig, where(file_, k.source()) + ": unknown key '" + std::string(k.str()) +
                                                      "' in [" + name_ + "]");
        }
        return {};
    }

    std::unexpected<Error> type_error(const char* key, const toml::node& n, const char* want) const
    {
        return std::unexpected(
            Error{ErrorKind::BadConfig, 0, where(file_, n.source()) + ": " + name_ + "." + key + " must be " + want});
    }

  private:
    template <class F> Result<> with(const char* key, F&& f)
    {
        seen_.insert(key);
        const toml::node* n = t_.get(key);
        if (!n) return {};
        return f(*n);
    }

    const toml::table& t_;
    std::string name_;
    const std::string& file_;
    std::set<std::string> seen_;
};

// Why an exclude pattern of the tree at `tree_path` can never match (empty: it
// can). The walk matches patterns against paths relative to the tree's root,
// which never start with '/' and never hold a ".." component.
std::string exclude_problem(const std::string& pattern, const std::string& tree_path)
{
    const std::string tree = lexical_path(tree_path.empty() ? "/etc" : tree_path);
    const std::string example = tree == "/etc" ? "kubernetes/manifests" : "some/dir";
    const std::string relative = "patterns are relative to the tree's path " + tree + " (\"" + example +
                                 "\" leaves out " + (tree == "/" ? "" : tree) + "/" + example + ")";
    if (pattern.empty()) return "an empty pattern matches nothing; " + relative;
    if (pattern[0] == '/') {
        // Written as the host path: say what it should have been.
        const std::string lex = lexical_path(pattern);
        if (path_within(lex, tree) && lex != tree)
            return "'" + pattern + "' starts with '/' and matches nothing; " + relative + ": write \"" +
                   lex.substr(tree == "/" ? 1 : tree.size() + 1) + "\"";
        return "'" + pattern + "' starts with '/' and matches nothing; " + relative;
    }
    for (size_t b = 0; b <= pattern.size();) {
        size_t e = std::min(pattern.find('/', b), pattern.size());
        if (pattern.compare(b, e - b, "..") == 0)
            return "'" + pattern + "' has a '..' component and matches nothing (a pattern matches only below " +
                   "its tree); " + relative;
        b = e + 1;
    }
    return {};
}

Result<> apply_trees(const toml::node& n, std::vector<TreeSpec>& out, const std::string& file)
{
    const toml::array* a = n.as_array();
    if (!a)
        return fail(ErrorKind::BadConfig,
                    where(file, n.source()) + ": backup.trees must be an array of tables ([[backup.trees]])");
    // Refused here, where its position is known: a backup of no tree is no backup.
    if (a->empty())
        return fail(ErrorKind::BadConfig, where(file, n.source()) + ": backup.trees must name at least one tree");
    std::vector<TreeSpec> trees;
    std::vector<toml::source_region> positions; // of trees[i], for an overlap's message
    for (const auto& e : *a) {
        const toml::table* t = e.as_table();
        if (!t) return fail(ErrorKind::BadConfig, where(file, e.source()) + ": backup.trees entries must be tables");
        TreeSpec ts;
        Section s(*t, "backup.trees", file);
        UR_TRY(s.str("name", ts.name));
        UR_TRY(s.str("path", ts.path));
        UR_TRY(s.strings("exclude", ts.exclude, [&](const std::string& p) { return exclude_problem(p, ts.path); }));
        UR_TRY(s.boolean("one_file_system", ts.one_file_system));
        UR_TRY(s.finish());
        if (ts.name.empty() || ts.name.find('/') != std::string::npos || ts.name[0] == '.')
            return fail(ErrorKind::BadConfig,
                        where(file, e.source()) + ": backup.trees name must be a plain directory name");
        // The tree's directory in a generation: a backup's own file or the extras
        // tree under the same name would merge with it or refuse it halfway.
        if (auto why = tree_name_problem(ts.name); !why.empty() || ts.name == kExtrasTree || ts.name == kImagesDir)
            return fail(ErrorKind::BadConfig,
                        where(file, e.source()) + ": backup.trees name '" + ts.name + "' " +
                            (!why.empty()             ? why
                             : ts.name == kExtrasTree ? "is the tree the backup adds itself"
                                                      : "is where the backup keeps the control-plane images"));
        if (ts.path.empty() || ts.path[0] != '/')
            return fail(ErrorKind::BadConfig, where(file, e.source()) + ": backup.trees path must be absolute");
        for (const auto& o : trees)
            if (o.name == ts.name)
                return fail(ErrorKind::BadConfig, where(file, e.source()) + ": duplicate tree name '" + ts.name + "'");
        // A tree holding another copies the inner one twice into each backup, and
        // a recovery restores it twice. By name only: where the host really has a
        // path (a symlinked tree) is known only under the root, not here.
        const std::string lex = lexical_path(ts.path);
        for (size_t i = 0; i < trees.size(); i++) {
            const std::string other = lexical_path(trees[i].path);
            if (!path_within(lex, other) && !path_within(other, lex)) continue;
            const std::string how = lex == other              ? "is the same directory as"
                                    : path_within(lex, other) ? "lies inside"
                                                              : "holds";
            return fail(ErrorKind::BadConfig,
                        where(file, e.source()) + ": backup.trees '" + ts.name + "' (" + ts.path + ") " + how +
                            " the tree '" + trees[i].name + "' (" + trees[i].path + ", at " +
                            where(file, positions[i]) +
                            "): it would be copied and restored twice; keep one tree (its exclude patterns leave "
                            "parts out) or trees side by side");
        }
        trees.push_back(std::move(ts));
        positions.push_back(e.source());
    }
    out = std::move(trees);
    return {};
}

using SectionFn = std::function<Result<>(Section&, Config&, const std::string& file)>;

const std::vector<std::pair<std::string, std::vector<std::string>>>& schema_keys()
{
    static const std::vector<std::pair<std::string, std::vector<std::string>>> k = {
        {"partition", {"label", "mount_point", "filesystem", "mount_options", "allow_plain_directory"}},
        {"backup",
         {"retention", "free_space_margin", "timeout", "share_unchanged", "copy_threads", "change_retries", "trees"}},
        {"ostree", {"mode", "sysroot", "booted_deployment"}},
        {"etcd",
         {"mode", "backup_script", "restore_script", "force", "timeout", "etcdctl", "endpoints", "cacert", "cert",
          "key", "static_pod_resources"}},
        {"machineconfig", {"current_config", "required"}},
        {"recovery",
         {"wipe_images", "stop_timeout", "container_restart_timeout", "redeploy_timeout", "restore_script_timeout",
          "pull_timeout", "api_request_timeout", "poll_interval", "kubeconfig", "crictl", "oc", "systemctl"}},
        {"images", {"backup", "skopeo", "storage_conf", "authfile", "timeout"}},
        {"watchdog", {"max_boots"}},
        {"daemon", {"idle_exit"}},
    };
    return k;
}

Result<> apply_section(const std::string& name, Section& s, Config& c, const std::string& file)
{
    if (name == "partition") {
        UR_TRY(s.str("label", c.partition_label));
        UR_TRY(s.nonempty("label", c.partition_label));
        UR_TRY(s.str("mount_point", c.mount_point));
        UR_TRY(s.absolute_path("mount_point", c.mount_point));
        UR_TRY(s.str("filesystem", c.filesystem));
        UR_TRY(s.str("mount_options", c.mount_options));
        UR_TRY(s.boolean("allow_plain_directory", c.allow_plain_directory));
    } else if (name == "backup") {
        UR_TRY(s.uint("retention", c.retention, 1));
        UR_TRY(s.size("free_space_margin", c.free_space_margin));
        UR_TRY(s.uint("timeout", c.backup_timeout));
        UR_TRY(s.boolean("share_unchanged", c.share_unchanged));
        UR_TRY(s.uint("copy_threads", c.copy_threads));
        UR_TRY(s.uint("change_retries", c.change_retries));
        UR_TRY(s.custom("trees", [&](const toml::node& n) { return apply_trees(n, c.trees, file); }));
    } else if (name == "ostree") {
        UR_TRY(s.oneof("mode", c.ostree_mode, {"auto", "on", "off"}));
        UR_TRY(s.str("sysroot", c.sysroot));
        UR_TRY(s.absolute_path("sysroot", c.sysroot));
        UR_TRY(s.str("booted_deployment", c.ostree_booted));
    } else if (name == "etcd") {
        UR_TRY(s.oneof("mode", c.etcd_mode, {"auto", "script", "etcdctl", "off"}));
        UR_TRY(s.str("backup_script", c.cluster_backup_script));
        UR_TRY(s.absolute_path("backup_script", c.cluster_backup_script));
        UR_TRY(s.str("restore_script", c.cluster_restore_script));
        UR_TRY(s.absolute_path("restore_script", c.cluster_restore_script));
        UR_TRY(s.boolean("force", c.etcd_force));
        UR_TRY(s.uint("timeout", c.etcd_timeout, 1));
        UR_TRY(s.str("etcdctl", c.etcdctl));
        UR_TRY(s.command("etcdctl", c.etcdctl));
        UR_TRY(s.str("endpoints", c.etcd_endpoints));
        UR_TRY(s.str("cacert", c.etcd_cacert));
        UR_TRY(s.absolute_path("cacert", c.etcd_cacert, true));
        UR_TRY(s.str("cert", c.etcd_cert));
        UR_TRY(s.absolute_path("cert", c.etcd_cert, true));
        UR_TRY(s.str("key", c.etcd_key));
        UR_TRY(s.absolute_path("key", c.etcd_key, true));
        UR_TRY(s.str("static_pod_resources", c.static_pod_resources));
        UR_TRY(s.absolute_path("static_pod_resources", c.static_pod_resources));
    } else if (name == "machineconfig") {
        UR_TRY(s.str("current_config", c.machineconfig_current));
        UR_TRY(s.absolute_path("current_config", c.machineconfig_current));
        UR_TRY(s.boolean("required", c.machineconfig_required));
    } else if (name == "recovery") {
        UR_TRY(s.boolean("wipe_images", c.wipe_images));
        // W8: a deadline of 0 would be none (oc --request-timeout=0s waits forever) on
        // a node nobody is watching; backup.timeout alone may be 0, documented as none.
        UR_TRY(s.uint("stop_timeout", c.stop_timeout, 1));
        UR_TRY(s.uint("container_restart_timeout", c.container_restart_timeout, 1));
        UR_TRY(s.uint("redeploy_timeout", c.redeploy_timeout, 1));
        UR_TRY(s.uint("restore_script_timeout", c.restore_script_timeout, 1));
        UR_TRY(s.uint("pull_timeout", c.pull_timeout, 1));
        UR_TRY(s.uint("api_request_timeout", c.api_request_timeout, 1));
        UR_TRY(s.uint("poll_interval", c.poll_interval));
        UR_TRY(s.str("kubeconfig", c.kubeconfig));
        UR_TRY(s.absolute_path("kubeconfig", c.kubeconfig));
        UR_TRY(s.str("crictl", c.crictl));
        UR_TRY(s.command("crictl", c.crictl));
        UR_TRY(s.str("oc", c.oc));
        UR_TRY(s.command("oc", c.oc));
        UR_TRY(s.oneof("systemctl", c.systemctl_mode, {"auto", "dbus", "offline"}));
    } else if (name == "images") {
        UR_TRY(s.boolean("backup", c.images_backup));
        UR_TRY(s.str("skopeo", c.skopeo));
        UR_TRY(s.command("skopeo", c.skopeo));
        UR_TRY(s.str("storage_conf", c.images_storage_conf));
        UR_TRY(s.absolute_path("storage_conf", c.images_storage_conf, true));
        UR_TRY(s.str("authfile", c.images_authfile));
        UR_TRY(s.absolute_path("authfile", c.images_authfile, true));
        UR_TRY(s.uint("timeout", c.images_timeout, 1));
    } else if (name == "watchdog") {
        // At least 1: the upgrade's own reboot is a later boot. At most 1000: each
        // boot is a line of recovery/watchdog, read with a 64 KiB limit.
        UR_TRY(s.uint("max_boots", c.watchdog_max_boots, 1, 1000));
    } else if (name == "daemon") {
        UR_TRY(s.uint("idle_exit", c.idle_exit));
    }
    return s.finish();
}

} // namespace

std::vector<std::string> config_keys()
{
    std::vector<std::string> out;
    for (const auto& [sec, keys] : schema_keys())
        for (const auto& k : keys)
            out.push_back(sec + "." + k);
    for (const char* k : {"name", "path", "exclude", "one_file_system"})
        out.push_back(std::string("backup.trees.") + k);
    return out;
}

Result<Config> parse_config_text(Config c, std::string_view text, const std::string& file)
{
    // The system toml++ is built with exceptions; they stop here.
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        return fail(ErrorKind::BadConfig, where(file, e.source()) + ": " + std::string(e.description()));
    }
    for (const auto& [k, v] : root) {
        std::string name(k.str());
        bool known = false;
        for (const auto& [sec, keys] : schema_keys())
            known |= sec == name;
        if (!known)
            return fail(ErrorKind::BadConfig, where(file, k.source()) + ": unknown section or key '" + name + "'");
        const toml::table* t = v.as_table();
        if (!t)
            return fail(ErrorKind::BadConfig,
                        where(file, v.source()) + ": '" + name + "' must be a table ([" + name + "])");
        Section s(*t, name, file);
        UR_TRY(apply_section(name, s, c, file));
    }
    // Every value, backup.trees' length included, is checked at its key.
    return c;
}

// Open flags for a configuration file: O_NONBLOCK, so a FIFO planted as a
// drop-in cannot hang every command (it is refused as not a regular file).
constexpr int kConfigOpenFlags = O_RDONLY | O_NOCTTY | O_NONBLOCK;

// Parse one opened configuration file into `c`. `opened` failing with ENOENT
// means absent, which is fine where `may_be_absent`; any name that exists but
// cannot be read (a dangling symlink, a FIFO, a directory) is an error, since
// skipping it would run with settings nobody chose.
static Result<bool> apply_file(Config& c, Result<UniqueFd> opened, const std::string& shown, bool may_be_absent)
{
    if (!opened) {
        if (opened.error().err == ENOENT && may_be_absent) return false;
        if (opened.error().err == ENOENT)
            return fail(ErrorKind::BadConfig,
                        "cannot read config '" + shown +
                            "': it is a symlink to a file that does not exist (fix or remove it)");
        return fail(ErrorKind::BadConfig, "cannot read config '" + shown + "': " + strerror(opened.error().err));
    }
    struct stat st;
    if (::fstat(opened->get(), &st) < 0) return fail_errno("stat '" + shown + "'");
    if (!S_ISREG(st.st_mode))
        return fail(ErrorKind::BadConfig, "cannot read config '" + shown + "': not a regular file");
    auto text = read_fd(opened->get(), shown, 1 << 20);
    if (!text) return fail(ErrorKind::BadConfig, "cannot read config '" + shown + "': " + text.error().message);
    auto r = parse_config_text(c, *text, shown);
    if (!r) return std::unexpected(r.error());
    c = std::move(*r);
    return true;
}

// A file of the host root: symlinks resolve inside the root (an absolute link
// must not reach the running system's file), and a dangling link is not "absent".
static Result<bool> apply_host_file(Config& c, int rootfd, const std::string& root, const std::string& abs)
{
    auto fd = open_in_root(rootfd, abs, kConfigOpenFlags);
    bool may_be_absent = true;
    if (!fd && fd.error().err == ENOENT) {
        auto name = host_path_exists(root, abs); // the name itself, a dangling link included
        may_be_absent = !name || !*name;
    }
    return apply_file(c, std::move(fd), root_path(root, abs), may_be_absent);
}

Result<Config> load_config(const ConfigSource& src)
{
    Config c;
    auto rootfd = open_at(AT_FDCWD, src.root.empty() ? "/" : src.root, O_PATH | O_DIRECTORY);
    if (!rootfd) return fail(ErrorKind::BadConfig, "cannot open the root " + src.root + ": " + rootfd.error().message);
    UR_TRY(apply_host_file(c, rootfd->get(), src.root, "/usr/lib/upgrade-recovery/config.toml"));
    if (src.file) {
        // Given on the command line: read as given, not under the root.
        auto r = apply_file(c, open_at(AT_FDCWD, *src.file, kConfigOpenFlags), *src.file, true);
        if (!r) return std::unexpected(r.error());
        if (!*r) return fail(ErrorKind::BadConfig, "config file '" + *src.file + "' does not exist");
    } else {
        UR_TRY(apply_host_file(c, rootfd->get(), src.root, "/etc/upgrade-recovery/config.toml"));
    }
    const std::string dropins_abs = "/etc/upgrade-recovery/config.d";
    const std::string dropins = root_path(src.root, dropins_abs);
    auto dfd = open_in_root(rootfd->get(), dropins_abs, O_RDONLY | O_DIRECTORY);
    if (!dfd) {
        if (dfd.error().err == ENOENT) return c;
        // Skipping drop-ins we cannot read would run with settings nobody chose.
        return fail(ErrorKind::BadConfig,
                    "cannot read the drop-in directory " + dropins + ": " + strerror(dfd.error().err));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dfd->get()), ::closedir);
    if (!d) return fail(ErrorKind::BadConfig, "cannot read the drop-in directory " + dropins + ": " + strerror(errno));
    (void)dfd->release(); // owned by the DIR now
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* de = ::readdir(d.get())) {
        std::string n = de->d_name;
        if (n.size() > 5 && n.compare(n.size() - 5, 5, ".toml") == 0 && n[0] != '.') names.push_back(n);
    }
    if (errno)
        return fail(ErrorKind::BadConfig, "cannot read the drop-in directory " + dropins + ": " + strerror(errno));
    std::sort(names.begin(), names.end());
    // Listed, so present: a drop-in that cannot be opened is an error, never skipped.
    for (const auto& n : names)
        UR_TRY(apply_file(c, open_in_root(rootfd->get(), dropins_abs + "/" + n, kConfigOpenFlags), dropins + "/" + n,
                          false));
    return c;
}

} // namespace ur
