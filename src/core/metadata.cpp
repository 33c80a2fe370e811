#include "metadata.hpp"

#include "digest.hpp"
#include "fd.hpp"
#include "json_text.hpp"
#include "toml_data.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <sys/stat.h>
#include <toml++/toml.h>

namespace ur
{

namespace
{

// The last line: sha256 of everything before it. Restore and retention act on
// what this file says (which trees, where they go), so a file cut short (a
// whole [[trees]] table can go and still parse) or damaged must not pass.
constexpr std::string_view kChecksumPrefix = "# sha256 ";

struct CheckedText {
    std::string_view body;
    bool sealed = false; // it ended with a checksum line, which matched
};

// The text before a checksum line that matches it. Without one, all of it: format 1
// (written before the line existed) has none, format 2 must (metadata_from_toml).
Result<CheckedText> checked_body(std::string_view text, const std::string& name)
{
    const size_t line_len = kChecksumPrefix.size() + 64 + 1;
    size_t at = text.size() >= line_len ? text.size() - line_len : std::string_view::npos;
    if (at == std::string_view::npos || text.substr(at, kChecksumPrefix.size()) != kChecksumPrefix ||
        text.back() != '\n' || (at > 0 && text[at - 1] != '\n'))
        return CheckedText{text, false};
    std::string_view body = text.substr(0, at);
    std::string_view want = text.substr(at + kChecksumPrefix.size(), 64);
    if (sha256_hex(body.data(), body.size()) != want)
        return fail(ErrorKind::Corrupt, name + ": content does not match its checksum line (damaged or edited); "
                                               "the backup cannot be trusted");
    return CheckedText{body, true};
}

// TOML strings must be UTF-8; paths need not be. Bytes that are not printable
// ASCII are written as %XX (and '%' itself), like the manifest.
std::string enc(const std::string& s)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x20 || c >= 0x7f || c == '%') {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string dec(const std::string& s)
{
    std::string out;
    auto hv = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '%' && i + 2 < s.size() && hv(s[i + 1]) >= 0 && hv(s[i + 2]) >= 0) {
            out += static_cast<char>(hv(s[i + 1]) * 16 + hv(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

toml::array str_array(const std::vector<std::string>& v)
{
    toml::array a;
    for (const auto& s : v)
        a.push_back(enc(s));
    return a;
}

int64_t i64(uint64_t v)
{
    return static_cast<int64_t>(v);
}

} // namespace

std::string metadata_to_toml(const BackupMetadata& m)
{
    toml::table t;
    t.insert("format", kMetadataFormat); // the checksum line below: see kChecksumPrefix
    t.insert("id", m.id);
    t.insert("created", m.created);
    t.insert("host", enc(m.host));
    if (!m.machine_id.empty()) t.insert("machine_id", m.machine_id);
    t.insert("tool_version", m.tool_version);
    t.insert("duration_seconds", m.duration_seconds);
    t.insert("previous", m.previous);

    toml::table man;
    man.insert("sha256", m.manifest_sha256);
    man.insert("entries", i64(m.manifest_entries));
    t.insert("manifest", man);

    toml::table sizes;
    sizes.insert("total_bytes", i64(m.total_bytes));
    sizes.insert("copied_bytes", i64(m.copied_bytes));
    sizes.insert("shared_bytes", i64(m.shared_bytes));
    sizes.insert("shared_files", i64(m.shared_files));
    t.insert("sizes", sizes);

    toml::array trees;
    for (const auto& tr : m.trees) {
        toml::table x;
        x.insert("name", tr.name);
        x.insert("path", enc(tr.path));
        x.insert("files", i64(tr.files));
        x.insert("bytes", i64(tr.bytes));
        x.insert("exclude", str_array(tr.exclude));
        trees.push_back(x);
    }
    t.insert("trees", trees);
    t.insert("warnings", str_array(m.warnings));

    toml::table mc;
    mc.insert("files", str_array(m.mc_files));
    mc.insert("missing", str_array(m.mc_missing));
    t.insert("machineconfig", mc);

    toml::table etc;
    etc.insert("exclude", str_array(m.etc_excludes));
    t.insert("etc", etc);

    toml::table os;
    os.insert("present", m.ostree.present);
    os.insert("osname", m.ostree.osname);
    os.insert("checksum", m.ostree.checksum);
    os.insert("serial", m.ostree.serial);
    os.insert("version", enc(m.ostree.version));
    os.insert("kernel_args", enc(m.ostree.kernel_args));
    os.insert("pinned", m.ostree.pinned);
    os.insert("pinned_by_backup", m.ostree.pinned_by_backup);
    os.insert("removed", str_array(m.ostree.removed));
    t.insert("ostree", os);

    toml::table cl;
    cl.insert("present", m.cluster.present);
    cl.insert("method", m.cluster.method);
    cl.insert("dirty", m.cluster.dirty);
    cl.insert("snapshot", enc(m.cluster.snapshot));
    cl.insert("snapshot_sha256", m.cluster.snapshot_sha256);
    cl.insert("snapshot_size", i64(m.cluster.snapshot_size));
    cl.insert("snapshot_hash", static_cast<int64_t>(m.cluster.snapshot_hash));
    cl.insert("revision", m.cluster.revision);
    cl.insert("total_keys", m.cluster.total_keys);
    cl.insert("static_resources", enc(m.cluster.static_resources));
    cl.insert("static_resources_sha256", m.cluster.static_resources_sha256);
    t.insert("cluster", cl);

    toml::table oc;
    oc.insert("version", enc(m.openshift.version));
    oc.insert("release_image", enc(m.openshift.release_image));
    oc.insert("version_source", enc(m.openshift.version_source));
    oc.insert("cert_expiry", m.openshift.cert_expiry);
    oc.insert("has_cluster_restore", m.openshift.has_cluster_restore);
    oc.insert("has_etcd_scripts", m.openshift.has_etcd_scripts);
    t.insert("openshift", oc);

    if (m.images.present) { // older readers ignore the table; absent means none held
        toml::table im;
        im.insert("present", true);
        im.insert("files", i64(m.images.files));
        im.insert("bytes", i64(m.images.bytes));
        im.insert("copied_bytes", i64(m.images.copied_bytes));
        im.insert("missing", str_array(m.images.missing));
        toml::array held;
        for (const auto& h : m.images.held) {
            toml::table x;
            x.insert("ref", enc(h.ref));
            x.insert("tag", h.tag);
            x.insert("digest", h.digest);
            x.insert("bytes", i64(h.bytes));
            x.insert("shared", h.shared);
            held.push_back(x);
        }
        im.insert("held", held);
        t.insert("images", im);
    }

    std::ostringstream o;
    o << "# upgrade-recovery backup metadata (written once, never changed)\n";
    o << toml::toml_formatter(t) << "\n";
    std::string body = o.str();
    return body + std::string(kChecksumPrefix) + sha256_hex(body.data(), body.size()) + "\n";
}

namespace
{

// The keys of one table. An absent key reads as its default (older backups lack
// newer keys); one present with the wrong type or out of range is damage: the
// first is kept, named with the file, line and key, and fails the whole read.
class Reader
{
  public:
    Reader(const toml::table& t, std::string path, const std::string& file, std::optional<Error>& err)
        : t_(t), path_(std::move(path)), file_(file), err_(err)
    {
    }

    std::string s(const char* k) const
    {
        const toml::node* n = t_.get(k);
        if (!n) return {};
        if (auto v = n->value_exact<std::string>()) return dec(*v);
        damage(*n, k, "is not a string");
        return {};
    }
    int64_t i(const char* k, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const
    {
        const toml::node* n = t_.get(k);
        if (!n) return 0;
        auto v = n->value_exact<int64_t>();
        if (!v) {
            damage(*n, k, "is not an integer");
            return 0;
        }
        if (*v < lo || *v > hi) {
            damage(*n, k,
                   "= " + std::to_string(*v) +
                       (*v < 0 && lo == 0
                            ? " is negative (a size or count)"
                            : " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")"));
            return 0;
        }
        return *v;
    }
    // Sizes and counts: written from unsigned fields, so never negative.
    uint64_t u(const char* k, int64_t hi = INT64_MAX) const { return static_cast<uint64_t>(i(k, 0, hi)); }
    bool b(const char* k) const
    {
        const toml::node* n = t_.get(k);
        if (!n) return false;
        if (auto v = n->value_exact<bool>()) return *v;
        damage(*n, k, "is not a boolean");
        return false;
    }
    double seconds(const char* k) const
    {
        const toml::node* n = t_.get(k);
        if (!n) return 0;
        auto v = n->is_integer() ? n->value<double>() : n->value_exact<double>();
        if (!v || !std::isfinite(*v) || *v < 0) {
            damage(*n, k, "is not a number of seconds");
            return 0;
        }
        return *v;
    }
    std::vector<std::string> v(const char* k) const
    {
        std::vector<std::string> out;
        const toml::node* n = t_.get(k);
        if (!n) return out;
        const toml::array* a = n->as_array();
        if (!a) {
            damage(*n, k, "is not an array");
            return out;
        }
        for (const auto& e : *a) {
            auto s = e.value_exact<std::string>();
            if (!s) {
                damage(e, k, "holds an element that is not a string");
                return {};
            }
            out.push_back(dec(*s));
        }
        return out;
    }
    Reader sub(const char* k) const
    {
        static const toml::table empty;
        const toml::node* n = t_.get(k);
        const toml::table* x = n ? n->as_table() : nullptr;
        if (n && !x) damage(*n, k, "is not a table");
        return Reader(x ? *x : empty, key(k), file_, err_);
    }
    // The tables of an array of tables (`[[k]]`), each with its reader.
    std::vector<Reader> tables(const char* k) const
    {
        std::vector<Reader> out;
        const toml::node* n = t_.get(k);
        if (!n) return out;
        const toml::array* a = n->as_array();
        if (!a) {
            damage(*n, k, "is not an array of tables");
            return out;
        }
        for (size_t i = 0; i < a->size(); i++) {
            const std::string at = std::string(k) + "[" + std::to_string(i) + "]";
            const toml::table* x = (*a)[i].as_table();
            if (!x) {
                damage((*a)[i], at.c_str(), "is not a table");
                return {};
            }
            out.emplace_back(*x, key(at.c_str()), file_, err_);
        }
        return out;
    }
    // Damage found by the caller in the value of `k`.
    void damage(const char* k, const std::string& what) const
    {
        const toml::node* n = t_.get(k);
        if (n)
            damage(*n, k, what);
        else if (!err_)
            err_ = Error{ErrorKind::Corrupt, 0, file_ + ": " + key(k) + " " + what};
    }

  private:
    std::string key(const char* k) const { return path_.empty() ? k : path_ + "." + k; }
    void damage(const toml::node& n, const char* k, const std::string& what) const
    {
        if (!err_)
            err_ = Error{ErrorKind::Corrupt, 0,
                         file_ + ":" + std::to_string(n.source().begin.line) + ": " + key(k) + " " + what};
    }

    const toml::table& t_;
    std::string path_; // "sizes", "trees[2]"; "" at the top
    const std::string& file_;
    std::optional<Error>& err_;
};

} // namespace

const HeldImage* ImagesRecord::find(const std::string& ref) const
{
    for (const auto& h : held)
        if (h.ref == ref) return &h;
    return nullptr;
}

bool image_tag_ok(std::string_view tag)
{
    return tag.size() == 64 && tag.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string tree_name_problem(std::string_view name)
{
    if (name.empty() || name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos ||
        name[0] == '.')
        return "is not a plain directory name";
    for (const char* own : {kMetadataFile, kManifestFile, kClusterDir})
        if (name == own) return "is the name of the generation's own " + std::string(own);
    return {};
}

Result<BackupMetadata> metadata_from_toml(std::string_view text, const std::string& name)
{
    auto checked = checked_body(text, name);
    if (!checked) return std::unexpected(checked.error());
    auto parsed = parse_data_toml(checked->body, name);
    if (!parsed) return std::unexpected(parsed.error());
    std::optional<Error> err;
    Reader r(*parsed, "", name, err);
    BackupMetadata m;
    m.format = static_cast<int>(r.i("format", INT32_MIN, INT32_MAX));
    if (err) return fail(std::move(*err));
    if (m.format != 1 && m.format != kMetadataFormat)
        return fail(ErrorKind::Corrupt, name + ": unsupported metadata format " + std::to_string(m.format));
    if (m.format == kMetadataFormat && !checked->sealed)
        return fail(ErrorKind::Corrupt, name + ": no checksum line at its end (cut short, or not written by "
                                               "upgrade-recovery); the backup cannot be trusted");
    m.id = r.s("id");
    if (!err && m.id.empty()) return fail(ErrorKind::Corrupt, name + ": no backup id");
    m.created = r.s("created");
    m.host = r.s("host");
    m.machine_id = r.s("machine_id");
    m.tool_version = r.s("tool_version");
    m.duration_seconds = r.seconds("duration_seconds");
    m.previous = r.s("previous");
    auto man = r.sub("manifest");
    m.manifest_sha256 = man.s("sha256");
    m.manifest_entries = man.u("entries");
    auto sz = r.sub("sizes");
    m.total_bytes = sz.u("total_bytes");
    m.copied_bytes = sz.u("copied_bytes");
    m.shared_bytes = sz.u("shared_bytes");
    m.shared_files = sz.u("shared_files");
    for (const auto& tr : r.tables("trees")) {
        TreeRecord rec{tr.s("name"), tr.s("path"), tr.u("files"), tr.u("bytes"), tr.v("exclude")};
        // Each tree is a directory of its own in the generation, and verify and
        // restore open it by this name: never another tree's, the manifest, .., ...
        if (auto why = tree_name_problem(rec.name); !why.empty())
            tr.damage("name", "'" + rec.name.substr(0, 200) + "' " + why);
        for (const auto& o : m.trees)
            if (o.name == rec.name) tr.damage("name", "'" + rec.name + "' names a tree twice");
        if (rec.path.empty() || rec.path[0] != '/')
            tr.damage("path", "'" + rec.path.substr(0, 200) + "' is not absolute");
        m.trees.push_back(std::move(rec));
    }
    m.warnings = r.v("warnings");
    auto mc = r.sub("machineconfig");
    m.mc_files = mc.v("files");
    m.mc_missing = mc.v("missing");
    m.etc_excludes = r.sub("etc").v("exclude");
    auto os = r.sub("ostree");
    m.ostree.present = os.b("present");
    m.ostree.osname = os.s("osname");
    m.ostree.checksum = os.s("checksum");
    m.ostree.serial = static_cast<int>(os.i("serial", 0, INT32_MAX));
    m.ostree.version = os.s("version");
    m.ostree.kernel_args = os.s("kernel_args");
    m.ostree.pinned = os.b("pinned");
    m.ostree.pinned_by_backup = os.b("pinned_by_backup"); // absent in older backups: not ours
    m.ostree.removed = os.v("removed");
    auto cl = r.sub("cluster");
    m.cluster.present = cl.b("present");
    m.cluster.method = cl.s("method");
    m.cluster.dirty = cl.b("dirty");
    m.cluster.snapshot = cl.s("snapshot");
    m.cluster.snapshot_sha256 = cl.s("snapshot_sha256");
    m.cluster.snapshot_size = cl.u("snapshot_size");
    m.cluster.snapshot_hash = static_cast<uint32_t>(cl.u("snapshot_hash", UINT32_MAX));
    m.cluster.revision = cl.i("revision");
    m.cluster.total_keys = cl.i("total_keys");
    m.cluster.static_resources = cl.s("static_resources");
    m.cluster.static_resources_sha256 = cl.s("static_resources_sha256");
    auto oc = r.sub("openshift");
    m.openshift.version = oc.s("version");
    m.openshift.release_image = oc.s("release_image");
    m.openshift.version_source = oc.s("version_source");
    m.openshift.cert_expiry = oc.s("cert_expiry");
    m.openshift.has_cluster_restore = oc.b("has_cluster_restore");
    m.openshift.has_etcd_scripts = oc.b("has_etcd_scripts");
    auto im = r.sub("images");
    m.images.present = im.b("present");
    m.images.files = im.u("files");
    m.images.bytes = im.u("bytes");
    m.images.copied_bytes = im.u("copied_bytes");
    m.images.missing = im.v("missing");
    for (const auto& h : im.tables("held")) {
        HeldImage x{h.s("ref"), h.s("tag"), h.s("digest"), h.u("bytes"), h.b("shared")};
        // The tag is a name in the layout and goes into skopeo's oci: reference.
        if (!image_tag_ok(x.tag)) h.damage("tag", "'" + x.tag.substr(0, 200) + "' is not a layout tag of ours");
        if (x.ref.empty()) h.damage("ref", "is empty");
        m.images.held.push_back(std::move(x));
    }
    // A tree of an older backup may be called images; only one that holds images claims the name.
    if (m.images.present)
        for (size_t i = 0; i < m.trees.size(); i++)
            if (m.trees[i].name == kImagesDir)
                r.damage("images", "present, but a tree is called '" + std::string(kImagesDir) + "' too");
    if (err) return fail(std::move(*err));
    return m;
}

Result<BackupMetadata> read_metadata_file(int gen_fd, const std::string& name)
{
    // Written whole by us in a few KiB; more than this is not ours.
    constexpr size_t kLimit = 16 << 20;
    auto fd = open_regular_at(gen_fd, kMetadataFile, O_NOFOLLOW);
    if (!fd) {
        // The generation is there, so its metadata must be: damage, not an absent backup.
        if (fd.error().err == ENOENT) return fail(ErrorKind::Corrupt, name + " is missing");
        if (fd.error().err == ELOOP) return fail(ErrorKind::Corrupt, name + " is a symbolic link, not a regular file");
        if (fd.error().kind == ErrorKind::Corrupt) return fail(ErrorKind::Corrupt, name + ": " + fd.error().message);
        return std::unexpected(std::move(fd.error()).context(name));
    }
    struct stat st;
    if (::fstat(fd->get(), &st) < 0) return fail_errno("stat " + name);
    if (static_cast<uint64_t>(st.st_size) > kLimit)
        return fail(ErrorKind::Corrupt, name + " is larger than " + std::to_string(kLimit >> 20) + " MiB");
    auto text = read_fd(fd->get(), name, kLimit);
    if (!text) return std::unexpected(text.error());
    return metadata_from_toml(*text, name);
}

std::string metadata_to_json(const BackupMetadata& m)
{
    using nlohmann::json;
    auto strs = [](const std::vector<std::string>& v) {
        json a = json::array();
        for (const auto& s : v)
            a.push_back(enc(s));
        return a;
    };
    json trees = json::array();
    for (const auto& t : m.trees)
        trees.push_back({{"name", t.name},
                         {"path", enc(t.path)},
                         {"files", t.files},
                         {"bytes", t.bytes},
                         {"exclude", strs(t.exclude)}});
    json j = {
        {"id", m.id},
        {"created", m.created},
        {"host", enc(m.host)},
        {"machine_id", m.machine_id},
        {"tool_version", m.tool_version},
        {"duration_seconds", m.duration_seconds},
        {"previous", m.previous},
        {"manifest", {{"sha256", m.manifest_sha256}, {"entries", m.manifest_entries}}},
        {"sizes",
         {{"total_bytes", m.total_bytes},
          {"copied_bytes", m.copied_bytes},
          {"shared_bytes", m.shared_bytes},
          {"shared_files", m.shared_files}}},
        {"trees", trees},
        {"warnings", strs(m.warnings)},
        {"machineconfig", {{"files", strs(m.mc_files)}, {"missing", strs(m.mc_missing)}}},
        {"etc_excludes", strs(m.etc_excludes)},
        {"ostree",
         {{"present", m.ostree.present},
          {"osname", m.ostree.osname},
          {"checksum", m.ostree.checksum},
          {"serial", m.ostree.serial},
          {"version", enc(m.ostree.version)},
          {"kernel_args", enc(m.ostree.kernel_args)},
          {"pinned", m.ostree.pinned},
          {"pinned_by_backup", m.ostree.pinned_by_backup},
          {"removed", strs(m.ostree.removed)}}},
        {"cluster",
         {{"present", m.cluster.present},
          {"method", m.cluster.method},
          {"dirty", m.cluster.dirty},
          {"snapshot", enc(m.cluster.snapshot)},
          {"snapshot_sha256", m.cluster.snapshot_sha256},
          {"snapshot_size", m.cluster.snapshot_size},
          {"snapshot_hash", m.cluster.snapshot_hash},
          {"revision", m.cluster.revision},
          {"total_keys", m.cluster.total_keys},
          {"static_resources", enc(m.cluster.static_resources)},
          {"static_resources_sha256", m.cluster.static_resources_sha256}}},
        {"openshift",
         {{"version", enc(m.openshift.version)},
          {"release_image", enc(m.openshift.release_image)},
          {"version_source", enc(m.openshift.version_source)},
          {"cert_expiry", m.openshift.cert_expiry},
          {"has_cluster_restore", m.openshift.has_cluster_restore},
          {"has_etcd_scripts", m.openshift.has_etcd_scripts}}},
    };
    json held = json::array();
    for (const auto& h : m.images.held)
        held.push_back(
            {{"ref", enc(h.ref)}, {"tag", h.tag}, {"digest", h.digest}, {"bytes", h.bytes}, {"shared", h.shared}});
    j["images"] = {
        {"present", m.images.present},      {"count", m.images.held.size()},         {"files", m.images.files},
        {"bytes", m.images.bytes},          {"copied_bytes", m.images.copied_bytes}, {"held", held},
        {"missing", strs(m.images.missing)}};
    return json_text(j);
}

} // namespace ur
