#include "units.hpp"

#include "fd.hpp"
#include "log.hpp"
#include "process.hpp"
#include "text.hpp"

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

namespace ur
{

namespace
{

bool is_host_root(const std::string& root)
{
    return root_path(root, "/") == "/";
}

// ---------------------------------------------------------------------------
// Offline: .wants/.requires/.upholds links under <root>/etc/systemd/system.

constexpr const char* kEtcUnitDir = "etc/systemd/system";
constexpr const char* kUnitDirs[] = {"etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system",
                                     "lib/systemd/system"};
constexpr const char* kDepSuffixes[] = {".wants", ".requires", ".upholds"};

struct InstallInfo {
    std::string file_name; // "foo@.service" for an instance of a template
    std::string path;      // absolute inside the root: "/usr/lib/systemd/system/foo.service"
    std::vector<std::string> wanted_by, required_by, upheld_by, alias, also;
    std::string default_instance;
    bool has_install() const
    {
        return !wanted_by.empty() || !required_by.empty() || !upheld_by.empty() || !alias.empty() || !also.empty();
    }
};

bool valid_unit_name(const std::string& u)
{
    if (u.empty() || u.size() > 255 || u.find('/') != std::string::npos || u.front() == '.') return false;
    auto dot = u.rfind('.');
    return dot != std::string::npos && dot > 0 && dot + 1 < u.size();
}

// "foo@bar.service" -> "foo@.service"; "" when not an instance.
std::string template_of(const std::string& unit)
{
    auto at = unit.find('@');
    auto dot = unit.rfind('.');
    if (at == std::string::npos || dot == std::string::npos || dot <= at + 1) return "";
    return unit.substr(0, at + 1) + unit.substr(dot);
}

bool is_template(const std::string& unit)
{
    auto at = unit.find('@');
    auto dot = unit.rfind('.');
    return at != std::string::npos && dot == at + 1;
}

Result<std::string> read_link_at(int dirfd, const std::string& name)
{
    char buf[4096];
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf, sizeof buf - 1);
    if (n < 0) return fail_errno("readlink '" + name + "'");
    return std::string(buf, static_cast<size_t>(n));
}

std::string basename_of(const std::string& p)
{
    auto s = p.rfind('/');
    return s == std::string::npos ? p : p.substr(s + 1);
}

// Sorted by name, with the type filled in where the filesystem leaves it unknown.
Result<std::vector<DirEntry>> list_dir(int dirfd)
{
    auto read = read_dir(dirfd);
    if (!read) return std::unexpected(read.error());
    std::vector<DirEntry> out = std::move(*read);
    for (auto& e : out) {
        if (e.type != DT_UNKNOWN) continue;
        struct stat st {
        };
        if (::fstatat(dirfd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
            e.type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
    }
    std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    return out;
}

std::vector<std::string> split_words(const std::string& v)
{
    std::vector<std::string> out;
    size_t i = 0;
    while (i < v.size()) {
        while (i < v.size() && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t j = i;
        while (j < v.size() && v[j] != ' ' && v[j] != '\t')
            j++;
        if (j > i) out.push_back(v.substr(i, j - i));
        i = j;
    }
    return out;
}

// The [Install] section of a unit file (continuation lines joined, comments skipped).
void parse_install(const std::string& text, InstallInfo& info)
{
    std::string section;
    std::string pending;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string line(trim(std::string_view(text).substr(pos, nl - pos)));
        pos = nl + 1;
        if (!pending.empty()) {
            line = pending + " " + line;
            pending.clear();
        }
        if (!line.empty() && line.back() == '\\') {
            line.pop_back();
            pending = line;
            continue;
        }
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line.front() == '[' && line.back() == ']') {
            section = line.substr(1, line.size() - 2);
            continue;
        }
        if (section != "Install") continue;
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string key(trim(std::string_view(line).substr(0, eq)));
        std::string val(trim(std::string_view(line).substr(eq + 1)));
        std::vector<std::string>* list = key == "WantedBy"     ? &info.wanted_by
                                         : key == "RequiredBy" ? &info.required_by
                                         : key == "UpheldBy"   ? &info.upheld_by
                                         : key == "Alias"      ? &info.alias
                                         : key == "Also"       ? &info.also
                                                               : nullptr;
        if (key == "DefaultInstance") info.default_instance = val;
        if (!list) continue;
        if (val.empty()) list->clear(); // an empty assignment resets the list, as in systemd
        for (auto& w : split_words(val))
            list->push_back(w);
    }
}

// Is <root>/etc|run/systemd/system/<name> a mask (a link to /dev/null or an empty file)?
bool is_masked(int rootfd, const std::string& name)
{
    for (const char* d : {"etc/systemd/system", "run/systemd/system"}) {
        std::string p = std::string(d) + "/" + name;
        struct stat st {
        };
        if (::fstatat(rootfd, p.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (S_ISLNK(st.st_mode)) {
            auto t = read_link_at(rootfd, p);
            if (t && *t == "/dev/null") return true;
        }
        if (S_ISCHR(st.st_mode)) return true;
        return false; // the highest-priority file decides
    }
    return false;
}

Result<InstallInfo> find_unit(int rootfd, const std::string& unit)
{
    if (!valid_unit_name(unit)) return fail(ErrorKind::InvalidArgs, "invalid unit name '" + unit + "'");
    if (is_masked(rootfd, unit)) return fail(ErrorKind::Refused, "unit " + unit + " is masked");
    std::vector<std::string> names = {unit};
    if (auto t = template_of(unit); !t.empty()) names.push_back(t);
    for (const auto& name : names) {
        for (const char* dir : kUnitDirs) {
            std::string rel = std::string(dir) + "/" + name;
            auto fd = open_in_root(rootfd, rel, O_RDONLY | O_NOCTTY);
            if (!fd) {
                if (fd.error().err == ENOENT || fd.error().err == ENOTDIR) continue;
                return std::unexpected(std::move(fd.error()).context("unit " + unit));
            }
            struct stat st {
            };
            if (::fstat(fd->get(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
            std::string content;
            char buf[8192];
            for (;;) {
                ssize_t n = ::read(fd->get(), buf, sizeof buf);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    return fail_errno("read unit " + rel);
                }
                if (n == 0) break;
                content.append(buf, static_cast<size_t>(n));
                if (content.size() > (1u << 20)) return fail(ErrorKind::Io, "unit " + rel + " is too large");
            }
            InstallInfo info;
            info.file_name = name;
            info.path = "/" + rel;
            parse_install(content, info);
            return info;
        }
    }
    return fail(ErrorKind::NotFound, "unit file " + unit + " not found under the root");
}

Result<UniqueFd> open_root(const std::string& root)
{
    auto fd = open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(std::move(fd.error()).context("root"));
    return fd;
}

// Do two link texts name the same unit file inside the root? (/lib/systemd/system/x
// and /usr/lib/systemd/system/x on a merged-/usr system.) A link `systemctl enable`
// made must not be rewritten: /etc would then differ from the backup it was restored from.
bool same_file_in_root(int rootfd, const std::string& link_dir, const std::string& a, const std::string& b)
{
    auto stat_in_root = [&](const std::string& text, struct stat& st) {
        auto fd = open_in_root(rootfd, !text.empty() && text[0] == '/' ? text : link_dir + "/" + text, O_PATH);
        return fd && ::fstat(fd->get(), &st) == 0;
    };
    struct stat sa, sb;
    return stat_in_root(a, sa) && stat_in_root(b, sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Create or correct the link <dir>/<name> -> target. Returns whether it changed.
Result<bool> ensure_link(int rootfd, const std::string& dir, const std::string& name, const std::string& target,
                         std::vector<std::string>& changed)
{
    bool existed = ::faccessat(rootfd, dir.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    auto dfd = mkdir_p_at(rootfd, dir, 0755);
    if (!dfd) return std::unexpected(std::move(dfd.error()).context("unit link directory /" + dir));
    if (!existed) {
        // Make the new directory's name durable: its parent is etc/systemd/system (or above).
        auto slash = dir.rfind('/');
        auto parent = open_beneath(rootfd, dir.substr(0, slash), O_RDONLY | O_DIRECTORY);
        if (parent) UR_TRY(fsync_fd(parent->get(), "/" + dir.substr(0, slash)));
    }
    struct stat st {
    };
    if (::fstatat(dfd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISLNK(st.st_mode))
            return fail(ErrorKind::Refused, "/" + dir + "/" + name + " exists and is not a symlink");
        auto cur = read_link_at(dfd->get(), name);
        if (cur && (*cur == target || same_file_in_root(rootfd, dir, *cur, target))) return false;
    }
    UR_TRY_CTX(replace_symlink_at(dfd->get(), name, target), "link /" + dir + "/" + name);
    changed.push_back("/" + dir + "/" + name);
    return true;
}

Result<> enable_rec(int rootfd, const std::string& unit, std::set<std::string>& seen, std::vector<std::string>& changed)
{
    if (!seen.insert(unit).second) return {};
    auto info = find_unit(rootfd, unit);
    if (!info) return std::unexpected(info.error());
    std::string link_name = unit;
    if (is_template(unit)) {
        if (info->default_instance.empty() && (info->has_install() && info->also.empty()))
            return fail(ErrorKind::InvalidArgs, "template " + unit + " needs an instance (no DefaultInstance=)");
        auto at = unit.find('@');
        link_name = unit.substr(0, at + 1) + info->default_instance + unit.substr(at + 1);
    }
    auto link_deps = [&](const std::vector<std::string>& targets, const char* suffix) -> Result<> {
        for (const auto& t : targets) {
            if (!valid_unit_name(t)) return fail(ErrorKind::Corrupt, "unit " + unit + ": bad target '" + t + "'");
            UR_TRY(ensure_link(rootfd, std::string(kEtcUnitDir) + "/" + t + suffix, link_name, info->path, changed));
        }
        return {};
    };
    UR_TRY(link_deps(info->wanted_by, ".wants"));
    UR_TRY(link_deps(info->required_by, ".requires"));
    UR_TRY(link_deps(info->upheld_by, ".upholds"));
    for (const auto& a : info->alias) {
        if (!valid_unit_name(a) || a == link_name) continue;
        UR_TRY(ensure_link(rootfd, kEtcUnitDir, a, info->path, changed));
    }
    for (const auto& also : info->also)
        UR_TRY(enable_rec(rootfd, also, seen, changed));
    return {};
}

Result<> disable_rec(int rootfd, const std::string& unit, std::set<std::string>& seen,
                     std::vector<std::string>& changed)
{
    if (!seen.insert(unit).second) return {};
    if (!valid_unit_name(unit)) return fail(ErrorKind::InvalidArgs, "invalid unit name '" + unit + "'");
    // Without a unit file we still remove the links by name (a unit deleted by the restore).
    std::set<std::string> names = {unit};
    std::string file_name = unit;
    std::vector<std::string> also;
    if (auto info = find_unit(rootfd, unit); info) {
        file_name = info->file_name;
        for (const auto& a : info->alias)
            names.insert(a);
        also = info->also;
    } else if (info.error().kind != ErrorKind::NotFound && info.error().kind != ErrorKind::Refused) {
        return std::unexpected(info.error());
    }
    // Links to the template itself match every instance only when the template is disabled.
    auto matches = [&](int dfd, const std::string& name) {
        if (names.count(name)) return true;
        auto t = read_link_at(dfd, name);
        return t && basename_of(*t) == file_name && (is_template(unit) || !is_template(file_name));
    };
    auto etc = open_beneath(rootfd, kEtcUnitDir, O_RDONLY | O_DIRECTORY);
    if (!etc) {
        if (etc.error().err == ENOENT) return {};
        return std::unexpected(std::move(etc.error()).context("/" + std::string(kEtcUnitDir)));
    }
    auto entries = list_dir(etc->get());
    if (!entries) return std::unexpected(entries.error());
    bool top_changed = false;
    for (const auto& e : *entries) {
        if (e.type == DT_LNK) {
            // Top level: aliases only; a link named like the unit is the unit file itself or a mask.
            if (e.name == unit) continue;
            auto t = read_link_at(etc->get(), e.name);
            if (!t || *t == "/dev/null") continue;
            if (!names.count(e.name) && basename_of(*t) != file_name) continue;
            if (::unlinkat(etc->get(), e.name.c_str(), 0) < 0 && errno != ENOENT)
                return fail_errno("remove /" + std::string(kEtcUnitDir) + "/" + e.name);
            changed.push_back("/" + std::string(kEtcUnitDir) + "/" + e.name);
            top_changed = true;
            continue;
        }
        if (e.type != DT_DIR) continue;
        bool dep_dir = false;
        for (const char* s : kDepSuffixes)
            if (e.name.size() > strlen(s) && e.name.ends_with(s)) dep_dir = true;
        if (!dep_dir) continue;
        auto sub = open_beneath(etc->get(), e.name, O_RDONLY | O_DIRECTORY);
        if (!sub) return std::unexpected(sub.error());
        auto links = list_dir(sub->get());
        if (!links) return std::unexpected(links.error());
        bool sub_changed = false;
        for (const auto& l : *links) {
            if (l.type != DT_LNK || !matches(sub->get(), l.name)) continue;
            if (::unlinkat(sub->get(), l.name.c_str(), 0) < 0 && errno != ENOENT)
                return fail_errno("remove /" + std::string(kEtcUnitDir) + "/" + e.name + "/" + l.name);
            changed.push_back("/" + std::string(kEtcUnitDir) + "/" + e.name + "/" + l.name);
            sub_changed = true;
        }
        if (sub_changed) UR_TRY(fsync_fd(sub->get(), e.name));
    }
    if (top_changed) UR_TRY(fsync_fd(etc->get(), kEtcUnitDir));
    for (const auto& a : also)
        UR_TRY(disable_rec(rootfd, a, seen, changed));
    return {};
}

class OfflineUnits final : public UnitManager
{
  public:
    explicit OfflineUnits(std::string root) : root_(std::move(root)) {}
    std::string mode() const override { return "offline"; }
    bool can_control() const override { return false; }
    Result<std::string> active_state(const std::string& unit, const CancelToken&) override
    {
        return refuse("query", unit);
    }
    Result<> start(const std::string& unit, std::chrono::seconds, const CancelToken&) override
    {
        return refuse("start", unit);
    }
    Result<> stop_job(const std::string& unit, std::chrono::seconds, const CancelToken&) override
    {
        return refuse("stop", unit);
    }
    Result<> restart(const std::string& unit, std::chrono::seconds, const CancelToken&) override
    {
        return refuse("restart", unit);
    }
    Result<> enable(const std::string& unit, const CancelToken&) override
    {
        auto r = offline_enable_unit(root_, unit);
        if (!r) return std::unexpected(r.error());
        return {};
    }
    Result<> disable(const std::string& unit, const CancelToken&) override
    {
        auto r = offline_disable_unit(root_, unit);
        if (!r) return std::unexpected(r.error());
        return {};
    }
    Result<bool> is_enabled(const std::string& unit, const CancelToken&) override
    {
        return offline_unit_enabled(root_, unit);
    }
    Result<> reboot(const CancelToken&) override { return refuse("reboot for", "the root " + root_); }

  private:
    std::unexpected<Error> refuse(const char* what, const std::string& unit) const
    {
        return fail(ErrorKind::Refused, std::string("cannot ") + what + " " + unit +
                                            ": no systemd to talk to (offline mode, root " + root_ + ")");
    }
    std::string root_;
};

// ---------------------------------------------------------------------------
// Live: org.freedesktop.systemd1 over the system bus.

constexpr const char* kSd = "org.freedesktop.systemd1";
constexpr const char* kSdPath = "/org/freedesktop/systemd1";
constexpr const char* kSdManager = "org.freedesktop.systemd1.Manager";

struct BusUnref {
    void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MsgUnref {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
struct SlotUnref {
    void operator()(sd_bus_slot* s) const { sd_bus_slot_unref(s); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
using MsgPtr = std::unique_ptr<sd_bus_message, MsgUnref>;
using SlotPtr = std::unique_ptr<sd_bus_slot, SlotUnref>;

struct BusError {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    BusError() = default;
    BusError(const BusError&) = delete;
    BusError& operator=(const BusError&) = delete;
    ~BusError() { sd_bus_error_free(&e); }
    std::string text(int r) const
    {
        if (e.message) return e.message;
        if (e.name) return e.name;
        return strerror(-r);
    }
};

std::unexpected<Error> bus_fail(int r, const BusError& err, const std::string& what)
{
    ErrorKind k = ErrorKind::ExternalFailed;
    if (r == -ETIMEDOUT) k = ErrorKind::Timeout;
    if (r == -EACCES || r == -EPERM) k = ErrorKind::PermissionDenied;
    return fail(k, what + ": " + err.text(r));
}

constexpr uint64_t kCallTimeoutUsec = 30ull * 1000 * 1000;

uint64_t call_timeout(const CancelToken& cancel)
{
    if (!cancel.has_deadline()) return kCallTimeoutUsec;
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(cancel.deadline() - CancelToken::Clock::now());
    uint64_t l = left.count() > 1000 ? static_cast<uint64_t>(left.count()) : 1000;
    return std::min(l, kCallTimeoutUsec);
}

class DbusUnits final : public UnitManager
{
  public:
    std::string mode() const override { return "dbus"; }
    bool can_control() const override { return true; }

    Result<std::string> active_state(const std::string& unit, const CancelToken& cancel) override
    {
        auto bus = get_bus();
        if (!bus) return std::unexpected(bus.error());
        // LoadUnit (unlike GetUnit) also answers for units that are not loaded right now.
        auto path = unit_path(unit, cancel);
        if (!path) return std::unexpected(path.error());
        BusError err;
        char* state = nullptr;
        int r = sd_bus_get_property_string(*bus, kSd, path->c_str(), "org.freedesktop.systemd1.Unit", "ActiveState",
                                           &err.e, &state);
        if (r < 0) return bus_fail(r, err, "ActiveState of " + unit);
        std::string s = state;
        free(state);
        return s;
    }

    Result<> start(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return run_job("StartUnit", unit, timeout, cancel);
    }
    Result<> stop_job(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return run_job("StopUnit", unit, timeout, cancel);
    }
    Result<> restart(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return run_job("RestartUnit", unit, timeout, cancel);
    }

    Result<> enable(const std::string& unit, const CancelToken& cancel) override
    {
        UR_TRY(unit_files("EnableUnitFiles", unit, cancel));
        return reload(cancel);
    }
    Result<> disable(const std::string& unit, const CancelToken& cancel) override
    {
        UR_TRY(unit_files("DisableUnitFiles", unit, cancel));
        return reload(cancel);
    }
    Result<bool> is_enabled(const std::string& unit, const CancelToken& cancel) override
    {
        auto bus = get_bus();
        if (!bus) return std::unexpected(bus.error());
        MsgPtr reply;
        UR_TRY(call(*bus, "GetUnitFileState", cancel, reply, "s", unit.c_str()));
        const char* state = nullptr;
        if (int r = sd_bus_message_read(reply.get(), "s", &state); r < 0)
            return fail(ErrorKind::ExternalFailed, "GetUnitFileState reply: " + std::string(strerror(-r)));
        std::string s = state;
        return s == "enabled" || s == "enabled-runtime";
    }

    Result<> reboot(const CancelToken& cancel) override
    {
        auto bus = get_bus();
        if (!bus) return std::unexpected(bus.error());
        MsgPtr reply;
        UR_TRY_CTX(call(*bus, "StartUnit", cancel, reply, "ss", "reboot.target", "replace-irreversibly"), "reboot");
        return {};
    }

  private:
    Result<sd_bus*> get_bus()
    {
        if (bus_) return bus_.get();
        sd_bus* b = nullptr;
        int r = sd_bus_open_system(&b);
        if (r < 0) return fail(ErrorKind::ExternalFailed, "connect to the system bus: " + std::string(strerror(-r)));
        bus_.reset(b);
        return b;
    }

    template <class... Args>
    Result<> call(sd_bus* bus, const char* method, const CancelToken& cancel, MsgPtr& reply, const char* sig,
                  Args... args)
    {
        UR_TRY(cancel.check());
        sd_bus_message* m = nullptr;
        int r = sd_bus_message_new_method_call(bus, &m, kSd, kSdPath, kSdManager, method);
        if (r < 0) return fail(ErrorKind::Internal, std::string(method) + ": " + strerror(-r));
        MsgPtr msg(m);
        if (sig && (r = sd_bus_message_append(m, sig, args...)) < 0)
            return fail(ErrorKind::Internal, std::string(method) + ": " + strerror(-r));
        BusError err;
        sd_bus_message* rep = nullptr;
        r = sd_bus_call(bus, m, call_timeout(cancel), &err.e, &rep);
        if (r < 0) return bus_fail(r, err, std::string("systemd ") + method);
        reply.reset(rep);
        return {};
    }

    Result<std::string> unit_path(const std::string& unit, const CancelToken& cancel)
    {
        MsgPtr reply;
        UR_TRY(call(bus_.get(), "LoadUnit", cancel, reply, "s", unit.c_str()));
        const char* p = nullptr;
        if (int r = sd_bus_message_read(reply.get(), "o", &p); r < 0)
            return fail(ErrorKind::ExternalFailed, "LoadUnit reply: " + std::string(strerror(-r)));
        return std::string(p);
    }

    Result<> reload(const CancelToken& cancel)
    {
        MsgPtr reply;
        return call(bus_.get(), "Reload", cancel, reply, nullptr);
    }

    Result<> unit_files(const char* method, const std::string& unit, const CancelToken& cancel)
    {
        auto bus = get_bus();
        if (!bus) return std::unexpected(bus.error());
        UR_TRY(cancel.check());
        sd_bus_message* m = nullptr;
        int r = sd_bus_message_new_method_call(*bus, &m, kSd, kSdPath, kSdManager, method);
        if (r < 0) return fail(ErrorKind::Internal, strerror(-r));
        MsgPtr msg(m);
        const char* names[] = {unit.c_str(), nullptr};
        r = sd_bus_message_append_strv(m, const_cast<char**>(names));
        if (r >= 0)
            r = std::string(method) == "EnableUnitFiles" ? sd_bus_message_append(m, "bb", 0, 1)
                                                         : sd_bus_message_append(m, "b", 0);
        if (r < 0) return fail(ErrorKind::Internal, strerror(-r));
        BusError err;
        sd_bus_message* rep = nullptr;
        r = sd_bus_call(*bus, m, call_timeout(cancel), &err.e, &rep);
        if (r < 0) return bus_fail(r, err, std::string("systemd ") + method + " " + unit);
        sd_bus_message_unref(rep);
        return {};
    }

    struct JobWait {
        std::string path;
        bool done = false;
        std::string result;
    };

    static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*)
    {
        auto* w = static_cast<JobWait*>(userdata);
        uint32_t id = 0;
        const char *path = nullptr, *unit = nullptr, *result = nullptr;
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0) return 0;
        if (!w->path.empty() && w->path == path) {
            w->done = true;
            w->result = result;
        }
        return 0;
    }

    Result<> run_job(const char* method, const std::string& unit, std::chrono::seconds timeout,
                     const CancelToken& cancel)
    {
        auto bus = get_bus();
        if (!bus) return std::unexpected(bus.error());
        auto deadline = CancelToken::Clock::now() + timeout;
        if (cancel.has_deadline() && cancel.deadline() < deadline) deadline = cancel.deadline();
        JobWait wait;
        // Match before queueing the job so its JobRemoved cannot slip past us.
        sd_bus_slot* s = nullptr;
        int r = sd_bus_match_signal(*bus, &s, kSd, kSdPath, kSdManager, "JobRemoved", on_job_removed, &wait);
        if (r < 0) return fail(ErrorKind::ExternalFailed, "subscribe to JobRemoved: " + std::string(strerror(-r)));
        SlotPtr slot(s);
        MsgPtr sub;
        (void)call(*bus, "Subscribe", cancel, sub, nullptr); // already subscribed is fine
        MsgPtr reply;
        UR_TRY(call(*bus, method, cancel, reply, "ss", unit.c_str(), "replace"));
        const char* job = nullptr;
        if ((r = sd_bus_message_read(reply.get(), "o", &job)) < 0)
            return fail(ErrorKind::ExternalFailed, std::string(method) + " reply: " + strerror(-r));
        wait.path = job;
        while (!wait.done) {
            UR_TRY(cancel.check());
            r = sd_bus_process(*bus, nullptr);
            if (r < 0) return fail(ErrorKind::ExternalFailed, "system bus: " + std::string(strerror(-r)));
            if (r > 0) continue;
            auto now = CancelToken::Clock::now();
            if (now >= deadline)
                return fail(ErrorKind::Timeout, std::string(method) + " " + unit + ": job " + wait.path +
                                                    " did not finish within " + std::to_string(timeout.count()) + "s");
            auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
            r = sd_bus_wait(*bus, static_cast<uint64_t>(std::min<long long>(left, 200000)));
            if (r < 0 && r != -EINTR)
                return fail(ErrorKind::ExternalFailed, "system bus: " + std::string(strerror(-r)));
        }
        if (wait.result != "done")
            return fail(ErrorKind::ExternalFailed,
                        std::string(method) + " " + unit + ": job ended '" + wait.result + "'");
        return {};
    }

    BusPtr bus_;
};

// ---------------------------------------------------------------------------
// Command: a systemctl-compatible program.

class CommandUnits final : public UnitManager
{
  public:
    explicit CommandUnits(std::string argv0) : argv0_(std::move(argv0)) {}
    std::string mode() const override { return "command"; }
    bool can_control() const override { return true; }

    Result<std::string> active_state(const std::string& unit, const CancelToken& cancel) override
    {
        auto r = run({"is-active", unit}, std::chrono::seconds(30), cancel);
        if (!r) return std::unexpected(r.error());
        std::string s(trim(r->out));
        if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
        if (s.empty()) s = r->exit_code == 0 ? "active" : "inactive";
        return s;
    }
    Result<> start(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return checked({"start", unit}, timeout, cancel);
    }
    Result<> stop_job(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return checked({"stop", unit}, timeout, cancel);
    }
    Result<> restart(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        return checked({"restart", unit}, timeout, cancel);
    }
    Result<> enable(const std::string& unit, const CancelToken& cancel) override
    {
        return checked({"enable", unit}, std::chrono::seconds(60), cancel);
    }
    Result<> disable(const std::string& unit, const CancelToken& cancel) override
    {
        return checked({"disable", unit}, std::chrono::seconds(60), cancel);
    }
    Result<bool> is_enabled(const std::string& unit, const CancelToken& cancel) override
    {
        auto r = run({"is-enabled", unit}, std::chrono::seconds(30), cancel);
        if (!r) return std::unexpected(r.error());
        return r->exit_code == 0;
    }
    Result<> reboot(const CancelToken& cancel) override
    {
        return checked({"reboot"}, std::chrono::seconds(60), cancel);
    }

  private:
    Result<CommandResult> run(std::vector<std::string> args, std::chrono::seconds timeout, const CancelToken& cancel)
    {
        Command c;
        c.argv = {argv0_};
        for (auto& a : args)
            c.argv.push_back(std::move(a));
        c.timeout = timeout.count() > 0 ? timeout : std::chrono::seconds(60);
        return run_command(c, &cancel);
    }
    Result<> checked(std::vector<std::string> args, std::chrono::seconds timeout, const CancelToken& cancel)
    {
        std::string what = argv0_;
        for (const auto& a : args)
            what += " " + a;
        auto r = run(std::move(args), timeout, cancel);
        if (!r) return std::unexpected(std::move(r.error()).context(what));
        if (r->exit_code != 0)
            return fail(ErrorKind::ExternalFailed, what + ": exit " + std::to_string(r->exit_code) +
                                                       (r->err.empty() ? "" : ": " + std::string(trim(r->err))));
        return {};
    }
    std::string argv0_;
};

} // namespace

Result<> UnitManager::stop(const std::string& unit, std::chrono::seconds timeout, const CancelToken& cancel)
{
    UR_TRY(stop_job(unit, timeout, cancel));
    auto st = active_state(unit, cancel);
    if (!st) return std::unexpected(st.error());
    if (*st != "inactive" && *st != "failed")
        return fail(ErrorKind::ExternalFailed, unit + " is still " + *st + " after its stop job");
    return {};
}

Result<std::vector<std::string>> offline_enable_unit(const std::string& root, const std::string& unit)
{
    auto rootfd = open_root(root);
    if (!rootfd) return std::unexpected(rootfd.error());
    std::vector<std::string> changed;
    std::set<std::string> seen;
    UR_TRY_CTX(enable_rec(rootfd->get(), unit, seen, changed), "enable " + unit);
    return changed;
}

Result<std::vector<std::string>> offline_disable_unit(const std::string& root, const std::string& unit)
{
    auto rootfd = open_root(root);
    if (!rootfd) return std::unexpected(rootfd.error());
    std::vector<std::string> changed;
    std::set<std::string> seen;
    UR_TRY_CTX(disable_rec(rootfd->get(), unit, seen, changed), "disable " + unit);
    return changed;
}

Result<bool> offline_unit_enabled(const std::string& root, const std::string& unit)
{
    auto rootfd = open_root(root);
    if (!rootfd) return std::unexpected(rootfd.error());
    auto etc = open_beneath(rootfd->get(), kEtcUnitDir, O_RDONLY | O_DIRECTORY);
    if (!etc) {
        if (etc.error().err == ENOENT) return false;
        return std::unexpected(etc.error());
    }
    auto entries = list_dir(etc->get());
    if (!entries) return std::unexpected(entries.error());
    for (const auto& e : *entries) {
        if (e.type != DT_DIR) continue;
        bool dep_dir = false;
        for (const char* s : kDepSuffixes)
            if (e.name.ends_with(s)) dep_dir = true;
        if (!dep_dir) continue;
        std::string p = e.name + "/" + unit;
        struct stat st {
        };
        if (::fstatat(etc->get(), p.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) return true;
    }
    return false;
}

std::unique_ptr<UnitManager> make_offline_units(const std::string& root)
{
    return std::make_unique<OfflineUnits>(root);
}
std::unique_ptr<UnitManager> make_dbus_units()
{
    return std::make_unique<DbusUnits>();
}
std::unique_ptr<UnitManager> make_command_units(const std::string& systemctl)
{
    return std::make_unique<CommandUnits>(systemctl);
}

Result<std::unique_ptr<UnitManager>> make_unit_manager(const Config& cfg, const std::string& root)
{
    if (cfg.systemctl_mode == "offline") return make_offline_units(root);
    if (cfg.systemctl_mode == "dbus") {
        if (!is_host_root(root))
            return fail(ErrorKind::InvalidArgs, "recovery.systemctl = \"dbus\" controls the running system; it "
                                                "cannot act on the root " +
                                                    root);
        return make_dbus_units();
    }
    if (is_host_root(root) && ::access("/run/systemd/system", F_OK) == 0) return make_dbus_units();
    return make_offline_units(root);
}

} // namespace ur
