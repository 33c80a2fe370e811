#include "cluster_backup.hpp"

#include "cluster_api.hpp"
#include "fd.hpp"
#include "process.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

namespace ur
{

namespace
{

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kDirtySuffix = "__POSSIBLY_DIRTY__";

bool path_exists(const std::string& p)
{
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

std::string parent_of(const std::string& p)
{
    auto s = p.rfind('/');
    if (s == std::string::npos) return ".";
    if (s == 0) return "/";
    return p.substr(0, s);
}

std::string base_of(const std::string& p)
{
    auto s = p.rfind('/');
    return s == std::string::npos ? p : p.substr(s + 1);
}

bool starts_with(const std::string& s, std::string_view p)
{
    return s.compare(0, p.size(), p) == 0;
}
bool ends_with(const std::string& s, std::string_view p)
{
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// The same "date +%F_%H%M%S" shape cluster-backup.sh uses, in UTC.
std::string timestamp()
{
    time_t t = ::time(nullptr);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%d_%H%M%S", &tm);
    return buf;
}

// One deadline for the whole cluster backup (etcd.timeout); each command gets what is left.
struct Budget {
    std::optional<Clock::time_point> end;
    explicit Budget(unsigned seconds)
    {
        if (seconds > 0) end = Clock::now() + std::chrono::seconds(seconds);
    }
    // Seconds for the next command; 0 means no own deadline (the CancelToken still bounds it).
    std::chrono::seconds left() const
    {
        if (!end) return std::chrono::seconds(0);
        auto s = std::chrono::ceil<std::chrono::seconds>(*end - Clock::now());
        return std::max(s, std::chrono::seconds(1));
    }
    Result<> check(const std::string& what) const
    {
        if (end && Clock::now() >= *end) return fail(ErrorKind::Timeout, what + ": etcd.timeout passed");
        return {};
    }
};

// Files this call created are removed unless it succeeds (as cluster-backup.sh's ERR trap does).
struct RemoveOnFailure {
    std::vector<std::string> paths;
    bool keep = false;
    ~RemoveOnFailure()
    {
        if (keep) return;
        for (const auto& p : paths)
            ::unlink(p.c_str());
    }
};

// etcdctl of the host: an absolute etcd.etcdctl is a host path (under root); a bare name
// is looked up in PATH and then in static-pod-resources/bin, where the etcd scripts'
// dl_etcdctl caches it on OpenShift nodes.
Command etcdctl_command(const Config& cfg, const std::string& root, std::vector<std::string> args,
                        std::chrono::seconds timeout)
{
    Command c;
    c.argv.push_back(cfg.etcdctl.find('/') != std::string::npos ? root_path(root, cfg.etcdctl) : cfg.etcdctl);
    for (auto& a : args)
        c.argv.push_back(std::move(a));
    const char* path = ::getenv("PATH");
    std::string p = path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    c.env_set["PATH"] = p + ":" + root_path(root, cfg.static_pod_resources + "/bin");
    c.env_set["ETCDCTL_API"] = "3";
    c.timeout = timeout;
    return c;
}

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string to_hex(const unsigned char* d, size_t n)
{
    static const char* k = "0123456789abcdef";
    std::string s;
    s.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        s += k[d[i] >> 4];
        s += k[d[i] & 15];
    }
    return s;
}

Result<MdCtx> new_sha256()
{
    MdCtx c(EVP_MD_CTX_new());
    if (!c || EVP_DigestInit_ex(c.get(), EVP_sha256(), nullptr) != 1)
        return fail(ErrorKind::Internal, "OpenSSL: cannot initialise sha256");
    return c;
}

struct FileDigest {
    uint64_t size = 0;
    std::string whole;          // sha256 of the file
    std::string before_trailer; // sha256 of all but the last 32 bytes
    std::string trailer;        // the last 32 bytes, hex
};

// One pass computes both the file digest and the digest the etcd trailer must equal.
Result<FileDigest> digest_file(const std::string& path, const CancelToken& cancel)
{
    auto fd = open_at(AT_FDCWD, path, O_RDONLY | O_NOCTTY);
    if (!fd) return std::unexpected(fd.error());
    struct stat st;
    if (::fstat(fd->get(), &st) < 0) return fail_errno("stat '" + path + "'");
    FileDigest d;
    d.size = static_cast<uint64_t>(st.st_size);
    const uint64_t body = d.size >= 32 ? d.size - 32 : 0;
    auto whole = new_sha256();
    if (!whole) return std::unexpected(whole.error());
    auto prefix = new_sha256();
    if (!prefix) return std::unexpected(prefix.error());
    std::string trailer;
    std::vector<unsigned char> buf(1 << 20);
    uint64_t off = 0;
    for (;;) {
        ssize_t n = ::read(fd->get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("read '" + path + "'");
        }
        if (n == 0) break;
        UR_TRY(cancel.check());
        size_t len = static_cast<size_t>(n);
        EVP_DigestUpdate(whole->get(), buf.data(), len);
        if (off < body) {
            size_t pre = static_cast<size_t>(std::min<uint64_t>(len, body - off));
            EVP_DigestUpdate(prefix->get(), buf.data(), pre);
            trailer.append(reinterpret_cast<const char*>(buf.data()) + pre, len - pre);
        } else {
            trailer.append(reinterpret_cast<const char*>(buf.data()), len);
        }
        off += len;
    }
    if (off != d.size) return fail(ErrorKind::Io, "'" + path + "' changed size while it was read");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(whole->get(), md, &mdlen);
    d.whole = to_hex(md, mdlen);
    EVP_DigestFinal_ex(prefix->get(), md, &mdlen);
    d.before_trailer = to_hex(md, mdlen);
    d.trailer = to_hex(reinterpret_cast<const unsigned char*>(trailer.data()), trailer.size());
    return d;
}

// Independent check of a tarball (W13): it must decompress and list, and not be empty.
Result<std::string> verify_tarball(const std::string& file, const Budget& budget, const CancelToken& cancel)
{
    Command c;
    c.argv = {"tar", "--list", "--gzip", "--file", file};
    c.timeout = budget.left();
    auto r = run_command(c, &cancel);
    if (!r) return std::unexpected(std::move(r.error()).context("verify '" + base_of(file) + "'"));
    if (r->exit_code != 0)
        return fail(ErrorKind::Corrupt, "'" + base_of(file) + "' is not a readable tar.gz: " + r->err.substr(0, 500));
    if (r->out.empty()) return fail(ErrorKind::Corrupt, "'" + base_of(file) + "' is an empty archive");
    auto d = digest_file(file, cancel);
    if (!d) return std::unexpected(d.error());
    return d->whole;
}

// The revision directory of each static pod: the one its manifest references
// (what cluster-backup.sh takes), else the highest-numbered one present.
// Empty when none of them exists (not an OpenShift control plane layout).
Result<std::vector<std::string>> static_pod_dirs(const std::string& spr, const std::string& manifests)
{
    std::vector<std::string> found, missing;
    for (const char* pod : kStaticPods) {
        const std::string prefix = std::string(pod) + "-";
        long best = -1;
        auto text = read_file_at(AT_FDCWD, manifests + "/" + pod + ".yaml", 16 << 20);
        if (text) {
            std::regex re("static-pod-resources/" + std::string(pod) + "-([0-9]+)");
            for (std::sregex_iterator it(text->begin(), text->end(), re), end; it != end; ++it) {
                long n = std::strtol((*it)[1].str().c_str(), nullptr, 10);
                if (n > best && path_exists(spr + "/" + prefix + std::to_string(n))) best = n;
            }
        }
        if (best < 0) {
            std::error_code ec;
            for (fs::directory_iterator it(spr, ec), end; !ec && it != end; it.increment(ec)) {
                std::string name = it->path().filename().string();
                if (!starts_with(name, prefix)) continue;
                std::string num = name.substr(prefix.size());
                if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
                if (!it->is_directory(ec)) continue;
                best = std::max(best, std::strtol(num.c_str(), nullptr, 10));
            }
        }
        if (best < 0)
            missing.push_back(pod);
        else
            found.push_back(prefix + std::to_string(best));
    }
    if (found.empty()) return found;
    if (!missing.empty()) {
        std::string m;
        for (const auto& x : missing)
            m += (m.empty() ? "" : ", ") + x;
        return fail(ErrorKind::NotFound, "no static pod resources for " + m + " in '" + spr + "'");
    }
    return found;
}

// The static_kuberesources tarball, laid out as cluster-backup.sh makes it
// (members "static-pod-resources/<pod>-<rev>/..." relative to /etc/kubernetes),
// keeping permissions, owners, xattrs, ACLs and SELinux labels.
Result<> make_static_tarball(const Config& cfg, const std::string& root, const std::string& file, const Budget& budget,
                             const CancelToken& cancel)
{
    const std::string spr = root_path(root, cfg.static_pod_resources);
    struct stat st;
    if (::stat(spr.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
        return fail(ErrorKind::NotFound,
                    "static pod resources '" + spr + "' not found (cluster-restore.sh needs them)");
    const std::string top = base_of(spr);
    const std::string manifests = root_path(root, parent_of(cfg.static_pod_resources) + "/manifests");
    auto dirs = static_pod_dirs(spr, manifests);
    if (!dirs) return std::unexpected(dirs.error());

    Command c;
    c.argv = {"tar",
              "--create",
              "--gzip",
              "--file",
              file,
              "--preserve-permissions",
              "--xattrs",
              "--xattrs-include=*",
              "--acls",
              "--selinux",
              "--numeric-owner",
              "-C",
              parent_of(spr)};
    if (dirs->empty()) {
        // No revision layout: everything but the cached binaries (bin/ holds etcdctl, not state).
        c.argv.push_back("--anchored");
        c.argv.push_back("--exclude=" + top + "/bin");
        c.argv.push_back("--");
        c.argv.push_back(top);
    } else {
        c.argv.push_back("--");
        for (const auto& d : *dirs)
            c.argv.push_back(top + "/" + d);
    }
    c.timeout = budget.left();
    UR_TRY_CTX(run_checked(c, &cancel), "static pod resources tarball");
    if (::chmod(file.c_str(), 0600) < 0) return fail_errno("chmod '" + file + "'");
    return {};
}

Result<std::vector<std::string>> list_matching(const std::string& dir, std::string_view prefix, std::string_view suffix)
{
    std::vector<std::string> out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) return fail_errno(ec.value(), "list '" + dir + "'");
    for (fs::directory_iterator end; it != end; it.increment(ec)) {
        if (ec) return fail_errno(ec.value(), "list '" + dir + "'");
        std::string n = it->path().filename().string();
        if (starts_with(n, prefix) && ends_with(n, suffix)) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<> make_dir(const std::string& dir)
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail_errno(ec.value(), "create '" + dir + "'");
    return {};
}

} // namespace

std::string resolve_etcd_mode(const Config& cfg, const std::string& root)
{
    const std::string& m = cfg.etcd_mode;
    if (m == "script" || m == "etcdctl") return m;
    if (m != "auto") return "off";
    if (path_exists(root_path(root, cfg.cluster_backup_script))) return "script";
    if (!cfg.etcd_endpoints.empty()) return "etcdctl";
    return "off";
}

bool cluster_backup_enabled(const Config& cfg, const std::string& root)
{
    return resolve_etcd_mode(cfg, root) != "off";
}

Result<uint64_t> estimate_cluster_backup(const Config& cfg, const std::string& root)
{
    if (!cluster_backup_enabled(cfg, root)) return 0;
    uint64_t total = 0;
    struct stat st;
    const std::string db = root_path(root, "/var/lib/etcd/member/snap/db");
    if (::stat(db.c_str(), &st) == 0)
        total += static_cast<uint64_t>(st.st_size);
    else if (errno != ENOENT)
        return fail_errno("stat '" + db + "'");

    // Apparent size of static pod resources without bin/ (an upper bound: the
    // tarball holds only the current revisions, compressed).
    const std::string spr = root_path(root, cfg.static_pod_resources);
    std::error_code ec;
    fs::recursive_directory_iterator it(spr, fs::directory_options::none, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return total;
        return fail_errno(ec.value(), "walk '" + spr + "'");
    }
    for (fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
        if (ec) return fail_errno(ec.value(), "walk '" + spr + "'");
        if (it.depth() == 0 && it->path().filename() == "bin") {
            it.disable_recursion_pending();
            continue;
        }
        if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
    }
    return total;
}

Result<SnapshotStatus> verify_etcd_snapshot(const Config& cfg, const std::string& root, const std::string& file,
                                            const CancelToken& cancel)
{
    const std::string name = base_of(file);
    SnapshotStatus s;
    // Our own check first: the sha256 trailer `etcdctl snapshot save` appends and
    // `snapshot restore` insists on. `snapshot status` alone reads a damaged db happily.
    auto d = digest_file(file, cancel);
    if (!d) return std::unexpected(std::move(d.error()).context("verify snapshot"));
    if (d->size <= 32) return fail(ErrorKind::Corrupt, "snapshot '" + name + "' is too small to be an etcd snapshot");
    if (d->before_trailer != d->trailer)
        return fail(ErrorKind::Corrupt, "snapshot '" + name + "' does not match its sha256 trailer (expected " +
                                            d->trailer + ", computed " + d->before_trailer + ")");
    s.sha256 = d->whole;
    s.size = d->size;

    auto r = run_command(etcdctl_command(cfg, root, {"snapshot", "status", "-w", "json", file},
                                         std::chrono::seconds(cancel.seconds_left(120))),
                         &cancel);
    if (!r) return std::unexpected(std::move(r.error()).context("verify snapshot '" + name + "'"));
    if (r->exit_code != 0) {
        std::string err = r->err.size() > 600 ? r->err.substr(r->err.size() - 600) : r->err;
        return fail(ErrorKind::Corrupt, "etcdctl snapshot status cannot read '" + name + "': " + err);
    }
    try {
        auto j = nlohmann::json::parse(r->out);
        s.hash = j.at("hash").get<uint32_t>();
        s.revision = j.at("revision").get<int64_t>();
        s.total_keys = j.at("totalKey").get<int64_t>();
    } catch (const std::exception& e) {
        return fail(ErrorKind::Corrupt, "etcdctl snapshot status of '" + name + "' gave unexpected output (" +
                                            e.what() + "): " + r->out.substr(0, 300));
    }
    return s;
}

namespace
{

// W12: a snapshot taken while a static pod operator rolls a revision out may not
// match the static pod resources saved next to it. cluster-backup.sh refuses then
// unless --force; the etcdctl mode asks the same operators through oc, as phase 2
// does. An API that cannot answer is an error too: nothing says the cluster is settled.
Result<> require_static_pods_settled(const Config& cfg, const std::string& root, const CancelToken& cancel)
{
    auto api = make_oc_cluster_api(cfg, root);
    for (const char* res : {"etcd", "kubeapiserver", "kubecontrollermanager", "kubescheduler"}) {
        auto st = api->operator_status(res, cancel);
        if (!st)
            return std::unexpected(std::move(st.error())
                                       .context(std::string("cannot tell whether ") + res +
                                                " is rolling out a revision (W12); 'backup --force' takes the "
                                                "snapshot anyway, marked possibly dirty"));
        if (!st->all_nodes_at_latest()) {
            const OperatorCondition* c = st->condition("NodeInstallerProgressing");
            return fail(ErrorKind::Refused,
                        std::string(res) + " is rolling out revision " + std::to_string(st->latest_available_revision) +
                            (c && !c->message.empty() ? " (" + c->message + ")" : "") +
                            ": an etcd snapshot now may not match its static pod resources; back up when the "
                            "rollout is done, or with 'backup --force' (the backup is then marked possibly dirty)");
        }
    }
    return {};
}

} // namespace

Result<> check_cluster_backup(const Config& cfg, const std::string& root)
{
    const std::string mode = resolve_etcd_mode(cfg, root);
    if (mode == "off") {
        if (cfg.etcd_mode != "off" && cfg.etcd_mode != "auto")
            return fail(ErrorKind::BadConfig, "unknown etcd.mode '" + cfg.etcd_mode + "'");
    } else if (mode == "script") {
        const std::string script = root_path(root, cfg.cluster_backup_script);
        if (::access(script.c_str(), X_OK) < 0) {
            // Said with what to do: with etcd.mode = "script" (the Ignition config's) a
            // node without the control plane's script gets no backup rather than one
            // that cannot bring etcd back.
            Error e = sys_error(errno, "etcd.mode is \"script\", but the cluster backup script '" + script + "'");
            if (e.err == ENOENT || e.err == EACCES)
                e.message += " (it comes with the OpenShift control plane; set etcd.backup_script to where it is, "
                             "etcd.mode = \"etcdctl\" with etcd.endpoints, or etcd.mode = \"off\" where a backup "
                             "without etcd is intended)";
            return std::unexpected(std::move(e));
        }
    } else if (cfg.etcd_endpoints.empty()) {
        return fail(ErrorKind::BadConfig, "etcd.mode = etcdctl needs etcd.endpoints");
    }
    return {};
}

Result<ClusterRecord> backup_cluster(const Config& cfg, const std::string& root, const std::string& cluster_dir,
                                     bool force_dirty, const CancelToken& cancel)
{
    ClusterRecord rec;
    UR_TRY(check_cluster_backup(cfg, root));
    const std::string mode = resolve_etcd_mode(cfg, root);
    if (mode == "off") return rec;
    if (cluster_dir.empty() || cluster_dir.front() != '/')
        return fail(ErrorKind::InvalidArgs, "cluster backup directory must be absolute: '" + cluster_dir + "'");
    const bool force = force_dirty || cfg.etcd_force;
    Budget budget(cfg.etcd_timeout);
    UR_TRY(cancel.check());
    UR_TRY(make_dir(cluster_dir));

    RemoveOnFailure cleanup;
    std::string snapshot, tarball; // file names inside cluster_dir
    if (mode == "script") {
        const std::string script = root_path(root, cfg.cluster_backup_script);
        auto before_snaps = list_matching(cluster_dir, "snapshot_", ".db");
        if (!before_snaps) return std::unexpected(before_snaps.error());
        auto before_tars = list_matching(cluster_dir, "static_kuberesources_", ".tar.gz");
        if (!before_tars) return std::unexpected(before_tars.error());
        if (!before_snaps->empty() || !before_tars->empty())
            return fail(ErrorKind::InvalidArgs, "cluster backup directory '" + cluster_dir + "' is not empty");

        Command c;
        c.argv.push_back(script);
        if (force) c.argv.push_back("--force");
        c.argv.push_back(cluster_dir);
        c.timeout = budget.left();
        auto run = run_checked(c, &cancel);
        // Whatever it left is ours to remove if anything below fails.
        auto snaps = list_matching(cluster_dir, "snapshot_", ".db");
        auto tars = list_matching(cluster_dir, "static_kuberesources_", ".tar.gz");
        if (snaps)
            for (const auto& n : *snaps)
                cleanup.paths.push_back(cluster_dir + "/" + n);
        if (tars)
            for (const auto& n : *tars)
                cleanup.paths.push_back(cluster_dir + "/" + n);
        if (!run) return std::unexpected(std::move(run.error()).context("cluster backup"));
        if (!snaps) return std::unexpected(snaps.error());
        if (!tars) return std::unexpected(tars.error());
        if (snaps->size() != 1 || tars->size() != 1)
            return fail(ErrorKind::ExternalFailed,
                        "cluster backup: '" + script + "' left " + std::to_string(snaps->size()) +
                            " snapshot_*.db and " + std::to_string(tars->size()) +
                            " static_kuberesources_*.tar.gz files, expected exactly one of each");
        snapshot = snaps->front();
        tarball = tars->front();
    } else {
        if (!force) UR_TRY(require_static_pods_settled(cfg, root, cancel));
        // `snapshot save` takes exactly one endpoint; on SNO there is one member anyway.
        std::string endpoint = cfg.etcd_endpoints.substr(0, cfg.etcd_endpoints.find(','));
        const std::string ts = timestamp() + (force ? kDirtySuffix : "");
        snapshot = "snapshot_" + ts + ".db";
        tarball = "static_kuberesources_" + ts + ".tar.gz";
        cleanup.paths = {cluster_dir + "/" + snapshot, cluster_dir + "/" + snapshot + ".part",
                         cluster_dir + "/" + tarball};

        // Static pod resources first, as cluster-backup.sh does: the snapshot is
        // then at least as new as the revisions it must run with.
        UR_TRY(make_static_tarball(cfg, root, cluster_dir + "/" + tarball, budget, cancel));
        UR_TRY(budget.check("cluster backup"));

        auto left = budget.left();
        std::vector<std::string> args = {"--endpoints=" + endpoint, "--dial-timeout=10s"};
        // etcdctl bounds `snapshot save` by --command-timeout (5 s by default): far too
        // short for a large db. It gets the rest of our deadline minus a little, so an
        // unreachable etcd ends with etcdctl's own error rather than our kill.
        long cmd_timeout = left.count() == 0 ? 3600 : left.count() > 4 ? left.count() - 2 : left.count();
        args.push_back("--command-timeout=" + std::to_string(cmd_timeout) + "s");
        if (!cfg.etcd_cacert.empty()) args.push_back("--cacert=" + root_path(root, cfg.etcd_cacert));
        if (!cfg.etcd_cert.empty()) args.push_back("--cert=" + root_path(root, cfg.etcd_cert));
        if (!cfg.etcd_key.empty()) args.push_back("--key=" + root_path(root, cfg.etcd_key));
        args.insert(args.end(), {"snapshot", "save", cluster_dir + "/" + snapshot});
        UR_TRY_CTX(run_checked(etcdctl_command(cfg, root, std::move(args), left), &cancel), "etcd snapshot");
        if (::chmod((cluster_dir + "/" + snapshot).c_str(), 0600) < 0) return fail_errno("chmod '" + snapshot + "'");
    }

    // W13: never trust the producer's exit status alone.
    UR_TRY(budget.check("cluster backup verification"));
    auto st = verify_etcd_snapshot(cfg, root, cluster_dir + "/" + snapshot, cancel);
    if (!st) return std::unexpected(std::move(st.error()).context("cluster backup"));
    auto tar_sha = verify_tarball(cluster_dir + "/" + tarball, budget, cancel);
    if (!tar_sha) return std::unexpected(std::move(tar_sha.error()).context("cluster backup"));

    rec.present = true;
    rec.method = mode;
    rec.dirty = force || snapshot.find(kDirtySuffix) != std::string::npos;
    rec.snapshot = snapshot;
    rec.snapshot_sha256 = st->sha256;
    rec.snapshot_size = st->size;
    rec.snapshot_hash = st->hash;
    rec.revision = st->revision;
    rec.total_keys = st->total_keys;
    rec.static_resources = tarball;
    rec.static_resources_sha256 = *tar_sha;
    cleanup.keep = true;
    return rec;
}

} // namespace ur
