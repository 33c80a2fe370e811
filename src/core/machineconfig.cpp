#include "machineconfig.hpp"

#include "hostfs.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ur
{

namespace
{

using json = nlohmann::json;

bool under(const std::string& path, const std::string& tree)
{
    return path_within(path, lexical_path(tree));
}

// A field that, when present, must have the given JSON type.
const json* optional_field(const json& obj, const char* key, json::value_t type, const std::string& where,
                           std::string& err)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    bool ok =
        it->type() == type || (type == json::value_t::number_unsigned && it->type() == json::value_t::number_integer);
    if (!ok) {
        err = where + "." + key + " has type " + it->type_name();
        return nullptr;
    }
    return &*it;
}

bool has_content(const json& obj)
{
    auto it = obj.find("contents");
    return it != obj.end() && !it->is_null() && !(it->is_string() && it->get_ref<const std::string&>().empty());
}

// Paths MCO writes for spec.config (Ignition 2 and 3 use the same names here):
// storage.files[].path; a unit with contents is written to /etc/systemd/system/<name>
// and a masked one becomes a symlink there; each dropin with contents is
// /etc/systemd/system/<name>.d/<dropin>. Units with neither are system units MCO only
// enables, and enablement links are left to the /etc tree.
Result<std::vector<std::string>> config_paths(const json& doc)
{
    std::string err;
    auto bad = [&](const std::string& m) { return fail(ErrorKind::Corrupt, "unexpected structure: " + m); };
    if (!doc.is_object()) return bad("the document is not an object");
    const json* spec = optional_field(doc, "spec", json::value_t::object, "", err);
    if (!err.empty()) return bad(err);
    if (!spec) return bad("no spec");
    const json* config = optional_field(*spec, "config", json::value_t::object, "spec", err);
    if (!err.empty()) return bad(err);
    if (!config) return bad("no spec.config");

    std::vector<std::string> out;
    auto add = [&](const std::string& p, const std::string& where) -> Result<> {
        if (p.empty() || p.front() != '/') return bad(where + " is not an absolute path: '" + p + "'");
        out.push_back(lexical_path(p));
        return {};
    };

    if (const json* storage = optional_field(*config, "storage", json::value_t::object, "spec.config", err)) {
        if (const json* files = optional_field(*storage, "files", json::value_t::array, "spec.config.storage", err)) {
            for (size_t i = 0; i < files->size(); ++i) {
                const json& f = (*files)[i];
                std::string where = "spec.config.storage.files[" + std::to_string(i) + "]";
                if (!f.is_object()) return bad(where + " is not an object");
                auto p = f.find("path");
                if (p == f.end() || !p->is_string()) return bad(where + ".path is missing or not a string");
                UR_TRY(add(p->get<std::string>(), where + ".path"));
            }
        }
    }
    if (!err.empty()) return bad(err);

    if (const json* systemd = optional_field(*config, "systemd", json::value_t::object, "spec.config", err)) {
        if (const json* units = optional_field(*systemd, "units", json::value_t::array, "spec.config.systemd", err)) {
            for (size_t i = 0; i < units->size(); ++i) {
                const json& u = (*units)[i];
                std::string where = "spec.config.systemd.units[" + std::to_string(i) + "]";
                if (!u.is_object()) return bad(where + " is not an object");
                auto n = u.find("name");
                if (n == u.end() || !n->is_string() || n->get_ref<const std::string&>().empty() ||
                    n->get_ref<const std::string&>().find('/') != std::string::npos)
                    return bad(where + ".name is missing or not a unit name");
                const std::string name = n->get<std::string>();
                auto mask = u.find("mask");
                if (has_content(u) || (mask != u.end() && mask->is_boolean() && mask->get<bool>()))
                    UR_TRY(add("/etc/systemd/system/" + name, where));
                const json* dropins = optional_field(u, "dropins", json::value_t::array, where, err);
                if (!err.empty()) return bad(err);
                if (!dropins) continue;
                for (size_t k = 0; k < dropins->size(); ++k) {
                    const json& d = (*dropins)[k];
                    std::string dwhere = where + ".dropins[" + std::to_string(k) + "]";
                    if (!d.is_object()) return bad(dwhere + " is not an object");
                    auto dn = d.find("name");
                    if (dn == d.end() || !dn->is_string() || dn->get_ref<const std::string&>().empty() ||
                        dn->get_ref<const std::string&>().find('/') != std::string::npos)
                        return bad(dwhere + ".name is missing or not a file name");
                    if (has_content(d))
                        UR_TRY(add("/etc/systemd/system/" + name + ".d/" + dn->get<std::string>(), dwhere));
                }
            }
        }
    }
    if (!err.empty()) return bad(err);
    return out;
}

} // namespace

Result<MachineConfigFiles> read_machineconfig_files(const Config& cfg, const std::string& root)
{
    MachineConfigFiles res;
    const std::string shown = root_path(root, cfg.machineconfig_current);
    auto text = read_host_file(root, cfg.machineconfig_current);
    if (!text) {
        if (text.error().err == ENOENT) {
            if (cfg.machineconfig_required)
                return fail(ErrorKind::NotFound,
                            "MachineConfig '" + shown + "' does not exist (machineconfig.required is set)");
            return res; // not an MCO-managed node: nothing to add
        }
        return std::unexpected(std::move(text.error()).context("MachineConfig"));
    }
    res.config_present = true;

    std::vector<std::string> paths;
    try {
        json doc = json::parse(*text);
        auto p = config_paths(doc);
        if (!p) return std::unexpected(std::move(p.error()).context("MachineConfig '" + shown + "'"));
        paths = std::move(*p);
    } catch (const json::exception& e) {
        return fail(ErrorKind::Corrupt, "MachineConfig '" + shown + "' is not valid JSON: " + e.what());
    }

    for (const auto& p : paths) {
        bool inside =
            std::any_of(cfg.trees.begin(), cfg.trees.end(), [&](const TreeSpec& t) { return under(p, t.path); });
        if (!inside) res.outside.push_back(p);
    }
    std::sort(res.outside.begin(), res.outside.end());
    res.outside.erase(std::unique(res.outside.begin(), res.outside.end()), res.outside.end());

    for (const auto& p : res.outside) {
        auto real = host_real_path(root, p);
        if (!real && (real.error().err == ENOENT || real.error().err == ENOTDIR)) {
            res.missing.push_back(p);
            continue;
        }
        if (!real) return std::unexpected(std::move(real.error()).context("MachineConfig file " + p));
        auto e = host_path_exists(root, *real);
        if (!e) return std::unexpected(std::move(e.error()).context("MachineConfig file"));
        if (!*e)
            res.missing.push_back(p);
        else if (std::none_of(cfg.trees.begin(), cfg.trees.end(),
                              [&](const TreeSpec& t) { return under(*real, t.path); }))
            res.copy.push_back(*real);
    }
    return res;
}

} // namespace ur
