#include "host_info.hpp"

#include "hostfs.hpp"
#include "metrics_text.hpp"
#include "text.hpp"
#include "walk.hpp"

#include <algorithm>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <optional>
#include <sys/stat.h>

namespace ur
{

std::string read_boot_id(const std::string& path)
{
    auto t = read_file_at(AT_FDCWD, path, 4096);
    if (!t) return "";
    std::string s = *t;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

bool upgrade_recovery_process_running(int64_t pid, const std::string& boot_id)
{
    if (pid <= 0 || boot_id != read_boot_id()) return false;
    const std::string proc = "/proc/" + std::to_string(pid);
    // comm is 15 bytes: "upgrade-recover" for both upgrade-recovery and upgrade-recoveryd.
    auto comm = read_file_at(AT_FDCWD, proc + "/comm", 256);
    if (!comm || !comm->starts_with("upgrade-recover")) return false;
    // A zombie (killed, not yet reaped by its parent) keeps its comm but runs no more.
    // The daemon re-reads the moment its pidfd says the process exited, which is
    // before the parent reaps it. The state follows the last ')' (comm may hold one).
    auto stat = read_file_at(AT_FDCWD, proc + "/stat", 4096);
    if (!stat) return false;
    const size_t paren = stat->rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
    const char state = (*stat)[paren + 2];
    return state != 'Z' && state != 'X';
}

std::string machine_id_of(const std::string& root)
{
    auto t = read_host_file(root, "/etc/machine-id", 4096);
    if (!t) return "";
    std::string s = *t;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    // 32 lowercase hex digits (machine-id(5)); "uninitialized" and anything else: not known.
    const bool valid = s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
                           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                       });
    return valid ? s : "";
}

std::string other_installation_problem(const BackupMetadata& m, const std::string& root)
{
    if (m.machine_id.empty()) return ""; // an older backup, or a root without one then
    const std::string here = machine_id_of(root);
    if (here.empty() || here == m.machine_id) return "";
    return "backup " + m.id + " was taken on another installation (its /etc/machine-id is " + m.machine_id +
           ", this root's is " + here + "): restoring it would give this node another node's /etc (certificates, " +
           "kubelet identity, etcd member)";
}

namespace
{

// os-release: KEY=value, KEY="value" or KEY='value' (shell-like quoting, backslash escapes).
std::optional<std::string> os_release_field(const std::string& text, const std::string& key)
{
    for (std::string_view line : split_lines(text)) {
        if (!line.starts_with(key + "=")) continue;
        std::string v(line.substr(key.size() + 1));
        while (!v.empty() && (v.back() == '\r' || v.back() == ' '))
            v.pop_back();
        if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
            char q = v.front();
            std::string out;
            for (size_t i = 1; i + 1 < v.size(); ++i) {
                if (q == '"' && v[i] == '\\' && i + 2 < v.size()) ++i;
                out += v[i];
            }
            v = out;
        }
        return v;
    }
    return std::nullopt;
}

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};

// Earliest NotAfter of the certificates in one PEM file (it holds the cert and
// the key; the key blocks are skipped). nullopt when there is no certificate.
std::optional<std::tm> earliest_not_after(const std::string& pem)
{
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return std::nullopt;
    std::optional<std::tm> best;
    for (;;) {
        std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert) break;
        const ASN1_TIME* na = X509_get0_notAfter(cert.get());
        std::tm tm{};
        if (!na || ASN1_TIME_to_tm(na, &tm) != 1) continue;
        if (!best || timegm(&tm) < timegm(&*best)) best = tm;
    }
    return best;
}

std::string rfc3339(const std::tm& tm)
{
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Expand systemd-tmpfiles specifiers in a path. Those with a fixed meaning on a
// system instance are replaced; host-specific ones (%m machine id, %b boot id,
// %H host name, %v kernel, ...) become '*', so the entry stays a pattern that
// still covers what tmpfiles creates. nullopt for a malformed trailing '%'.
std::optional<std::string> expand_specifiers(const std::string& p)
{
    std::string out;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] != '%') {
            out += p[i];
            continue;
        }
        if (i + 1 >= p.size()) return std::nullopt;
        char c = p[++i];
        switch (c) {
        case '%': out += '%'; break;
        case 'E': out += "/etc"; break;
        case 'S': out += "/var/lib"; break;
        case 'C': out += "/var/cache"; break;
        case 'L': out += "/var/log"; break;
        case 't': out += "/run"; break;
        case 'T': out += "/tmp"; break;
        case 'V': out += "/var/tmp"; break;
        case 'h': out += "/root"; break;
        default: out += '*'; break;
        }
    }
    return out;
}

// Column 2 of a tmpfiles.d line, honouring double/single quotes and backslash escapes.
std::optional<std::string> second_field(const std::string& line)
{
    size_t i = 0;
    auto skip_ws = [&] {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
            ++i;
    };
    auto word = [&]() -> std::optional<std::string> {
        skip_ws();
        if (i >= line.size()) return std::nullopt;
        std::string w;
        char quote = 0;
        for (; i < line.size(); ++i) {
            char c = line[i];
            if (quote) {
                if (c == quote)
                    quote = 0;
                else if (c == '\\' && quote == '"' && i + 1 < line.size())
                    w += line[++i];
                else
                    w += c;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == ' ' || c == '\t') {
                break;
            } else if (c == '\\' && i + 1 < line.size()) {
                w += line[++i];
            } else {
                w += c;
            }
        }
        if (quote) return std::nullopt;
        return w;
    };
    if (!word()) return std::nullopt;
    return word();
}

std::string normalize_rel(const std::string& p)
{
    std::string n = std::filesystem::path(p).lexically_normal().string();
    while (!n.empty() && n.back() == '/')
        n.pop_back();
    return n;
}

} // namespace

// What a node tells about its release without the API, best source first:
//  1. the rendered MachineConfig in /etc/machine-config-daemon/currentconfig carries the
//     annotation machineconfiguration.openshift.io/release-image-version (the full x.y.z,
//     added by MCO in 4.15-4.16);
//  2. RHCOS /etc/os-release (-> /usr/lib/os-release) has OPENSHIFT_VERSION: the minor version only
//     ("4.14"), since RHCOS is built per minor;
//  3. the release image pull spec is kept on disk only while a bootstrap cluster-version-operator
//     static pod manifest exists (its --release-image argument); otherwise it needs the API
//     (clusterversion/version), so it is recorded as unknown.
OpenShiftRecord read_openshift_info(const Config& cfg, const std::string& root)
{
    OpenShiftRecord rec;
    std::vector<std::string> why;

    if (auto text = read_host_file(root, cfg.machineconfig_current)) {
        try {
            auto doc = nlohmann::json::parse(*text);
            const auto& ann = doc.at("metadata").at("annotations");
            auto v = ann.find("machineconfiguration.openshift.io/release-image-version");
            if (v != ann.end() && v->is_string() && !v->get_ref<const std::string&>().empty()) {
                rec.version = v->get<std::string>();
                rec.version_source =
                    cfg.machineconfig_current + " annotation machineconfiguration.openshift.io/release-image-version";
            } else {
                why.push_back("no release-image-version annotation in " + cfg.machineconfig_current);
            }
        } catch (const nlohmann::json::exception&) {
            why.push_back(cfg.machineconfig_current + " has no readable annotations");
        }
    } else {
        why.push_back(cfg.machineconfig_current + " not readable");
    }

    if (rec.version.empty()) {
        std::optional<std::string> osrel;
        std::string osrel_path;
        for (const char* p : {"/etc/os-release", "/usr/lib/os-release"}) {
            if (auto t = read_host_file(root, p, 1 << 20)) {
                osrel = *t;
                osrel_path = p;
                break;
            }
        }
        if (!osrel) {
            why.push_back("no os-release");
        } else if (auto v = os_release_field(*osrel, "OPENSHIFT_VERSION"); v && !v->empty()) {
            rec.version = *v;
            rec.version_source = osrel_path + " OPENSHIFT_VERSION (minor version only)";
        } else {
            why.push_back(osrel_path + " has no OPENSHIFT_VERSION (not RHCOS)");
        }
    }
    if (rec.version.empty())
        rec.version_source = "unknown: " + [&] {
            std::string s;
            for (const auto& w : why)
                s += (s.empty() ? "" : "; ") + w;
            return s;
        }();

    // The release image, from a bootstrap CVO manifest if one is still there.
    const std::string manifests = "/etc/kubernetes/manifests";
    if (auto dir = open_host(root, manifests, O_RDONLY | O_DIRECTORY)) {
        if (auto names = list_own_dir(dir->get())) {
            for (const auto& n : *names) {
                if (n.size() <= 5 || n.compare(n.size() - 5, 5, ".yaml") != 0) continue;
                auto t = read_host_file(root, manifests + "/" + n, 4 << 20);
                if (!t) continue;
                auto at = t->find("--release-image=");
                if (at == std::string::npos) continue;
                size_t b = at + 16;
                size_t e = t->find_first_of(" \t\r\n\"'", b);
                rec.release_image = t->substr(b, e == std::string::npos ? std::string::npos : e - b);
                break;
            }
        }
    }

    std::optional<std::tm> earliest;
    for (const char* p :
         {"/var/lib/kubelet/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet-server-current.pem"}) {
        auto pem = read_host_file(root, p, 1 << 20);
        if (!pem) continue;
        auto t = earliest_not_after(*pem);
        if (t && (!earliest || timegm(&*t) < timegm(&*earliest))) earliest = t;
    }
    if (earliest) rec.cert_expiry = rfc3339(*earliest);
    return rec;
}

void check_backup_tools(OpenShiftRecord& rec, const std::string& staging_dir)
{
    struct stat st;
    rec.has_cluster_restore =
        ::lstat((staging_dir + "/usrlocal/bin/cluster-restore.sh").c_str(), &st) == 0 && S_ISREG(st.st_mode);
    rec.has_etcd_scripts =
        ::lstat((staging_dir + "/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts").c_str(),
                &st) == 0 &&
        S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> compute_etc_excludes(const std::string& root)
{
    // systemd-tmpfiles recreates these at boot; ConditionNeedsUpdate's stamp and
    // the static pod manifests (cluster-restore.sh owns them) are left alone too.
    std::vector<std::string> out = {".updated", "kubernetes/manifests"};
    const std::string dir = "/etc/tmpfiles.d";
    auto dfd = open_host(root, dir, O_RDONLY | O_DIRECTORY);
    if (!dfd) {
        if (dfd.error().err == ENOENT) return out;
        return std::unexpected(std::move(dfd.error()).context("etc excludes"));
    }
    auto files = list_own_dir(dfd->get());
    if (!files) return std::unexpected(std::move(files.error()).context("read '" + root_path(root, dir) + "'"));

    for (const auto& f : *files) {
        if (f.size() <= 5 || f.compare(f.size() - 5, 5, ".conf") != 0) continue;
        auto text = read_host_file(root, dir + "/" + f, 16 << 20);
        if (!text) {
            // A dangling symlink (a config masked or removed elsewhere) has nothing to say.
            if (text.error().err == ENOENT) continue;
            return std::unexpected(std::move(text.error()).context("etc excludes"));
        }
        size_t pos = 0;
        while (pos < text->size()) {
            size_t nl = text->find('\n', pos);
            if (nl == std::string::npos) nl = text->size();
            std::string line = text->substr(pos, nl - pos);
            pos = nl + 1;
            size_t first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') continue;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            auto path = second_field(line);
            if (!path) continue;
            auto expanded = expand_specifiers(*path);
            if (!expanded || expanded->compare(0, 5, "/etc/") != 0) continue;
            std::string rel = normalize_rel(expanded->substr(5));
            if (rel.empty() || rel == "." || rel.compare(0, 2, "..") == 0) continue;
            out.push_back(rel);
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::string expired_certificates_warning(const BackupMetadata& m, std::time_t now)
{
    auto t = rfc3339_to_epoch(m.openshift.cert_expiry);
    if (!t || *t >= static_cast<double>(now)) return {};
    // The node comes back with these certificates: its kubelet cannot reach the API
    // until new ones are approved, which takes a hand on the cluster.
    return "the kubelet certificates in backup " + m.id + " expired at " + m.openshift.cert_expiry +
           ": after a recovery to it, the kubelet cannot rejoin the cluster until its certificate signing "
           "requests are approved by hand (oc get csr; oc adm certificate approve)";
}

} // namespace ur
