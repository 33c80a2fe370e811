#include "control_plane_images.hpp"

#include "cluster_backup.hpp"
#include "fd.hpp"
#include "text.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <nlohmann/json.hpp>

namespace ur
{

namespace
{

void sort_unique(std::vector<std::string>& v)
{
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
}

// `image: ref`, `- image: "ref"`, `image: 'ref'  # comment`.
std::vector<std::string> yaml_images(std::string_view text)
{
    std::vector<std::string> out;
    for (std::string_view raw : split_lines(text)) {
        std::string_view line = trim(raw);
        if (!line.empty() && line.front() == '-') line = trim(line.substr(1));
        if (line.substr(0, 6) != "image:") continue;
        std::string_view v = trim(line.substr(6));
        if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
            size_t end = v.find(v.front(), 1);
            v = end == std::string_view::npos ? std::string_view() : v.substr(1, end - 1);
        } else if (size_t hash = v.find(" #"); hash != std::string_view::npos) {
            v = trim(v.substr(0, hash));
        }
        if (!v.empty()) out.emplace_back(v);
    }
    return out;
}

} // namespace

Result<std::vector<std::string>> images_in_manifest(std::string_view text)
{
    const size_t first = text.find_first_not_of(" \t\r\n");
    std::vector<std::string> out;
    if (first != std::string_view::npos && text[first] == '{') {
        std::string_view body = text.substr(first);
        try {
            auto o = nlohmann::json::parse(body);
            if (o.contains("spec") && o["spec"].is_object())
                for (const auto& spec = o["spec"]; const char* list : {"initContainers", "containers"}) {
                    if (!spec.contains(list) || !spec[list].is_array()) continue;
                    for (const auto& c : spec[list])
                        if (c.is_object() && c.contains("image") && c["image"].is_string())
                            out.push_back(c["image"].get<std::string>());
                }
        } catch (const nlohmann::json::exception& e) {
            return fail(ErrorKind::Corrupt, std::string("unreadable JSON: ") + e.what());
        }
    } else {
        out = yaml_images(text);
    }
    sort_unique(out);
    return out;
}

Result<std::vector<std::string>> control_plane_images(int dirfd, const std::string& manifests_dir)
{
    std::vector<std::string> out;
    for (const char* pod : kStaticPods) {
        const std::string path = manifests_dir + "/" + pod + ".yaml";
        auto text = read_file_at(dirfd, path, 16 << 20);
        if (!text) {
            if (text.error().err == ENOENT) continue;
            return std::unexpected(std::move(text.error()).context("read " + path));
        }
        auto imgs = images_in_manifest(*text);
        if (!imgs) return std::unexpected(std::move(imgs.error()).context(path));
        out.insert(out.end(), imgs->begin(), imgs->end());
    }
    sort_unique(out);
    return out;
}

bool image_present(const std::vector<ImageInfo>& images, const std::string& ref)
{
    for (const auto& i : images) {
        const auto& names = ref.find('@') != std::string::npos ? i.digests : i.tags;
        if (std::find(names.begin(), names.end(), ref) != names.end()) return true;
    }
    return false;
}

std::vector<std::string> missing_images(const std::vector<std::string>& needed, const std::vector<ImageInfo>& have)
{
    std::vector<std::string> out;
    for (const auto& n : needed)
        if (!image_present(have, n)) out.push_back(n);
    return out;
}

} // namespace ur
