#include "image_backup.hpp"

#include "control_plane_images.hpp"
#include "digest.hpp"
#include "fd.hpp"
#include "file_copy.hpp"
#include "fsmeta.hpp"
#include "log.hpp"
#include "process.hpp"
#include "walk.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace ur
{

namespace
{

using nlohmann::json;

constexpr const char* kBlobsDir = "blobs/sha256";
constexpr const char* kIndexFile = "index.json";
constexpr const char* kLayoutFile = "oci-layout";
constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

bool by_digest(const std::string& ref)
{
    return ref.find('@') != std::string::npos;
}

bool hex64(std::string_view s)
{
    return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// "sha256:<hex>" -> "<hex>"; empty when it is not one (only sha256 blobs are ours).
std::string blob_hex(const json& digest)
{
    if (!digest.is_string()) return {};
    const std::string d = digest.get<std::string>();
    if (d.rfind("sha256:", 0) != 0 || !hex64(std::string_view(d).substr(7))) return {};
    return d.substr(7);
}

struct Blob {
    std::string hex;
    uint64_t size = 0;
};

// The config and layers an image manifest names. An index (a manifest list) is
// not an image of one platform: not ours to share or count.
Result<std::vector<Blob>> manifest_blobs(std::string_view text)
{
    try {
        auto m = json::parse(text);
        if (!m.is_object() || !m.contains("config") || !m.contains("layers") || !m["layers"].is_array())
            return fail(ErrorKind::Corrupt, "not an image manifest");
        std::vector<Blob> out;
        auto add = [&](const json& d) -> Result<> {
            if (!d.is_object() || !d.contains("digest")) return fail(ErrorKind::Corrupt, "a descriptor without digest");
            std::string hex = blob_hex(d["digest"]);
            if (hex.empty()) return fail(ErrorKind::Corrupt, "a digest that is not sha256");
            out.push_back({hex, d.contains("size") && d["size"].is_number_unsigned() ? d["size"].get<uint64_t>() : 0});
            return {};
        };
        UR_TRY(add(m["config"]));
        for (const auto& l : m["layers"])
            UR_TRY(add(l));
        return out;
    } catch (const json::exception& e) {
        return fail(ErrorKind::Corrupt, std::string("unreadable manifest: ") + e.what());
    }
}

// index.json of a layout: the descriptor of each tag.
Result<std::map<std::string, json>> read_index(int layout_fd)
{
    auto text = read_file_at(layout_fd, kIndexFile, 16 << 20);
    if (!text) return std::unexpected(text.error());
    std::map<std::string, json> out;
    try {
        auto j = json::parse(*text);
        if (j.contains("manifests") && j["manifests"].is_array())
            for (const auto& d : j["manifests"])
                if (d.is_object() && d.contains("annotations") && d["annotations"].is_object() &&
                    d["annotations"].contains(kRefNameAnnotation) && d["annotations"][kRefNameAnnotation].is_string())
                    out[d["annotations"][kRefNameAnnotation].get<std::string>()] = d;
    } catch (const json::exception& e) {
        return fail(ErrorKind::Corrupt, std::string("index.json: ") + e.what());
    }
    return out;
}

Command skopeo_command(const Config& cfg, const std::string& root, std::vector<std::string> args,
                       std::chrono::seconds timeout)
{
    Command c;
    c.argv = {cfg.skopeo};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    // skopeo 1.9 has no option for it; the variable is what containers/storage reads.
    if (!cfg.images_storage_conf.empty())
        c.env_set["CONTAINERS_STORAGE_CONF"] = root_path(root, cfg.images_storage_conf);
    c.timeout = timeout;
    return c;
}

// What skopeo said: its fatal line's msg="..." when it has one, else the last line.
std::string skopeo_said(const CommandResult& r)
{
    std::string_view err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' '))
        err.remove_suffix(1);
    if (size_t nl = err.rfind('\n'); nl != std::string_view::npos) err = err.substr(nl + 1);
    if (size_t m = err.find("msg=\""); m != std::string_view::npos) {
        std::string_view msg = err.substr(m + 5);
        if (!msg.empty() && msg.back() == '"') msg.remove_suffix(1);
        err = msg;
    }
    std::string s(err.substr(0, 400));
    if (s.empty())
        s = r.exit_code < 0 ? "killed by signal " + std::to_string(r.signal) : "exit " + std::to_string(r.exit_code);
    return s;
}

// Runs skopeo; an exit other than 0 is ExternalFailed with what it said.
Result<CommandResult> run_skopeo(const Config& cfg, const std::string& root, std::vector<std::string> args,
                                 std::chrono::seconds timeout, const CancelToken& cancel)
{
    auto r = run_command(skopeo_command(cfg, root, std::move(args), timeout), &cancel);
    if (!r) return std::unexpected(std::move(r.error()).context(cfg.skopeo));
    if (r->exit_code != 0) return fail(ErrorKind::ExternalFailed, skopeo_said(*r));
    return r;
}

std::chrono::seconds call_timeout(const Config& cfg, const CancelToken& cancel)
{
    return std::chrono::seconds(cancel.seconds_left(cfg.images_timeout));
}

// What the previous generation holds, for sharing.
struct Previous {
    std::string id;
    ImagesRecord images;
    UniqueFd layout;                      // <previous>/images
    std::map<std::string, json> index;    // its index.json by tag
    std::map<std::string, Entry> entries; // its manifest's entries below images/
};

std::optional<Previous> open_previous(const Store& store, const std::string& id, std::vector<std::string>& warnings)
{
    auto meta = read_metadata(store, id);
    if (!meta || !meta->images.present) return std::nullopt;
    Previous p;
    p.id = id;
    p.images = meta->images;
    auto why = [&](const std::string& w) {
        warnings.push_back("previous backup " + id + ": its control-plane images cannot be shared (" + w +
                           "); they are copied again (run 'upgrade-recovery verify " + id + "')");
        return std::nullopt;
    };
    auto layout = open_at(store.backups_fd.get(), id + "/" + kImagesDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!layout) return why(layout.error().message);
    p.layout = std::move(*layout);
    auto index = read_index(p.layout.get());
    if (!index) return why(index.error().message);
    p.index = std::move(*index);
    auto reader = ManifestReader::open(store.backups_fd.get(), id + "/" + kManifestFile);
    if (!reader) return why(reader.error().message);
    const std::string prefix = std::string(kImagesDir) + "/";
    for (;;) {
        auto e = reader->next();
        if (!e) return why(e.error().message);
        if (!*e) break;
        if ((*e)->path.compare(0, prefix.size(), prefix) == 0) {
            std::string path = (*e)->path;
            p.entries.emplace(std::move(path), std::move(**e));
        } else if (compare_paths((*e)->path, kImagesDir) > 0 && !p.entries.empty()) {
            break; // past the layout: the rest is other trees
        }
    }
    return p;
}

// The blobs of `tag` in the previous layout, when each is still what its manifest
// entry recorded (the check the trees' sharing makes); why not, otherwise.
Result<ImageBackupPlan::Item> shareable(const Previous& p, const HeldImage& h)
{
    auto d = p.index.find(h.tag);
    if (d == p.index.end()) return fail(ErrorKind::Corrupt, "not in its index.json");
    const std::string mhex = blob_hex(d->second.value("digest", json()));
    if (mhex.empty() || "sha256:" + mhex != h.digest)
        return fail(ErrorKind::Corrupt, "its index.json names another manifest");
    auto text = read_file_at(p.layout.get(), std::string(kBlobsDir) + "/" + mhex, 16 << 20);
    if (!text) return std::unexpected(text.error());
    auto blobs = manifest_blobs(*text);
    if (!blobs) return std::unexpected(blobs.error());
    ImageBackupPlan::Item it{h.ref, h.tag, true, {mhex}, h.digest};
    for (const auto& b : *blobs)
        it.blobs.push_back(b.hex);
    for (const auto& hex : it.blobs) {
        const std::string rel = std::string(kImagesDir) + "/" + kBlobsDir + "/" + hex;
        auto e = p.entries.find(rel);
        if (e == p.entries.end()) return fail(ErrorKind::Corrupt, "blob " + hex + " is not in its manifest");
        struct stat st {
        };
        if (::fstatat(p.layout.get(), (std::string(kBlobsDir) + "/" + hex).c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !copy_matches(e->second, st))
            return fail(ErrorKind::Corrupt, "blob " + hex + " differs from its manifest");
    }
    return it;
}

Result<> ensure_dir(int dirfd, const std::string& name)
{
    if (::mkdirat(dirfd, name.c_str(), 0755) < 0 && errno != EEXIST) return fail_errno("create " + name);
    return {};
}

} // namespace

std::string image_tag(const std::string& ref)
{
    return sha256_hex(ref.data(), ref.size());
}

Result<ImageBackupPlan> plan_image_backup(const Config& cfg, const std::string& root, const Store& store,
                                          const std::optional<std::string>& previous, const CancelToken& cancel)
{
    ImageBackupPlan plan;
    auto rootfd = open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("host root"));
    // The live manifests: what the backup's /etc will hold, and so what recovery checks.
    auto dir = open_in_root(rootfd->get(), "/etc/kubernetes/manifests", O_RDONLY | O_DIRECTORY);
    if (!dir && dir.error().err == ENOENT) return plan;
    if (!dir) return std::unexpected(std::move(dir.error()).context("/etc/kubernetes/manifests"));
    auto refs = control_plane_images(dir->get(), ".");
    if (!refs) return std::unexpected(std::move(refs.error()).context("/etc/kubernetes/manifests"));

    std::optional<Previous> prev;
    if (previous && cfg.share_unchanged) prev = open_previous(store, *previous, plan.warnings);
    if (prev) plan.previous = prev->id;

    std::set<std::string> counted; // blobs already in the plan: linked, or counted once
    std::vector<std::string> to_inspect;
    for (const auto& ref : *refs) {
        const HeldImage* h = prev ? prev->images.find(ref) : nullptr;
        if (h) {
            auto it = shareable(*prev, *h);
            if (it) {
                counted.insert(it->blobs.begin(), it->blobs.end());
                plan.images.push_back(std::move(*it));
                continue;
            }
            plan.warnings.push_back("previous backup " + prev->id + ": image " + ref + " cannot be shared (" +
                                    it.error().message + "); copied again (run 'upgrade-recovery verify " + prev->id +
                                    "')");
        }
        to_inspect.push_back(ref);
    }
    for (const auto& ref : to_inspect) {
        // The stored manifest's sizes: what a copy that keeps the digest writes.
        auto r =
            run_skopeo(cfg, root, {"inspect", "--raw", "containers-storage:" + ref}, call_timeout(cfg, cancel), cancel);
        if (!r) {
            // Asked for and impossible: a backup without the images it was told to hold
            // would be taken for one with them.
            if (r.error().kind == ErrorKind::NotFound)
                return fail(ErrorKind::NotFound,
                            r.error().message + " (images.backup is on: install skopeo, or set images.backup = false)");
            if (r.error().kind != ErrorKind::ExternalFailed)
                return std::unexpected(std::move(r.error()).context("skopeo inspect " + ref));
            plan.missing.push_back(ref);
            plan.warnings.push_back("control-plane image " + ref +
                                    " is not in the container storage (skopeo: " + r.error().message +
                                    "): not in this backup; a recovery to it must pull it from its registry");
            continue;
        }
        plan.new_bytes += r->out.size();
        if (auto blobs = manifest_blobs(r->out); blobs) {
            for (const auto& b : *blobs)
                if (counted.insert(b.hex).second) plan.new_bytes += b.size;
        }
        plan.images.push_back({ref, image_tag(ref), false, {}, {}});
    }
    std::sort(plan.images.begin(), plan.images.end(),
              [](const ImageBackupPlan::Item& a, const ImageBackupPlan::Item& b) { return a.ref < b.ref; });
    return plan;
}

Result<ImageBackupResult> copy_images(const Config& cfg, const std::string& root, const ImageBackupPlan& plan,
                                      const Store& store, int staging_fd, const std::string& staging_path,
                                      Progress& progress, const CancelToken& cancel)
{
    ImageBackupResult res;
    res.record.present = true;
    res.record.missing = plan.missing;
    UR_TRY(ensure_dir(staging_fd, kImagesDir));
    auto layout_r = open_at(staging_fd, kImagesDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!layout_r) return std::unexpected(layout_r.error());
    const int layout = layout_r->get();
    const std::string dest = "oci:" + staging_path + "/" + kImagesDir + ":";

    // skopeo first, into a layout holding nothing of the previous generation: it
    // rewrites index.json and manifest blobs in place, which through a hard link
    // would change the previous backup.
    std::vector<const ImageBackupPlan::Item*> held;
    for (const auto& it : plan.images) {
        if (it.share) {
            held.push_back(&it);
            continue;
        }
        UR_TRY(cancel.check());
        progress.stage("copy image " + it.ref);
        const auto t0 = std::chrono::steady_clock::now();
        // A digest reference must keep its digest: CRI-O finds the image by it.
        std::vector<std::string> args = {"copy", "--quiet", "--remove-signatures"};
        if (by_digest(it.ref)) args.push_back("--preserve-digests");
        args.push_back("containers-storage:" + it.ref);
        args.push_back(dest + it.tag);
        auto local = run_skopeo(cfg, root, args, call_timeout(cfg, cancel), cancel);
        std::string source = "the container storage";
        if (!local && local.error().kind == ErrorKind::ExternalFailed && by_digest(it.ref)) {
            // Compressed layers (every registry image): the storage holds them
            // uncompressed and cannot give back the digest. The registry can.
            std::vector<std::string> reg = {"copy", "--quiet", "--remove-signatures", "--preserve-digests"};
            // The node's pull secret, as CRI-O uses it; none: skopeo's own default.
            if (const std::string auth = root_path(root, cfg.images_authfile);
                !cfg.images_authfile.empty() && ::access(auth.c_str(), R_OK) == 0)
                reg.insert(reg.end(), {"--src-authfile", auth});
            reg.push_back("docker://" + it.ref);
            reg.push_back(dest + it.tag);
            log::info("image " + it.ref + ": " + local.error().message + "; copying it from its registry");
            auto remote = run_skopeo(cfg, root, reg, call_timeout(cfg, cancel), cancel);
            if (remote) {
                local = std::move(remote);
                source = "its registry";
            } else if (remote.error().kind != ErrorKind::ExternalFailed) {
                return std::unexpected(std::move(remote.error()).context("skopeo copy " + it.ref));
            } else {
                local = fail(ErrorKind::ExternalFailed,
                             local.error().message + "; from its registry: " + remote.error().message);
            }
        }
        if (!local) {
            if (local.error().kind != ErrorKind::ExternalFailed)
                return std::unexpected(std::move(local.error()).context("skopeo copy " + it.ref));
            res.record.missing.push_back(it.ref);
            res.warnings.push_back("control-plane image " + it.ref + " cannot be copied into the backup (" +
                                   local.error().message +
                                   "): not in this backup; a recovery to it must pull it from its registry");
            continue;
        }
        log::info("image " + it.ref + " copied from " + source + " into the backup in " +
                  std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) + " s");
        held.push_back(&it);
    }
    std::sort(res.record.missing.begin(), res.record.missing.end());

    // What skopeo wrote, then the previous generation's blobs of the shared images.
    std::map<std::string, json> new_index;
    if (::faccessat(layout, kIndexFile, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        auto ni = read_index(layout);
        if (!ni) return std::unexpected(std::move(ni.error()).context("the new image layout"));
        new_index = std::move(*ni);
    }
    std::optional<Previous> prev;
    if (!plan.previous.empty()) {
        std::vector<std::string> ignored; // open_previous succeeded once already, in the plan
        prev = open_previous(store, plan.previous, ignored);
        if (!prev) return fail(ErrorKind::Io, "previous backup " + plan.previous + ": its image layout went away");
    }
    UR_TRY(ensure_dir(layout, "blobs"));
    UR_TRY(ensure_dir(layout, kBlobsDir));
    auto blobs_r = open_at(layout, kBlobsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!blobs_r) return std::unexpected(blobs_r.error());
    const int blobs = blobs_r->get();
    std::optional<UniqueFd> prev_blobs;
    if (prev) {
        auto pb = open_at(prev->layout.get(), kBlobsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!pb) return std::unexpected(pb.error());
        prev_blobs = std::move(*pb);
    }

    json manifests = json::array();
    std::set<std::string> referenced;
    Buffer buf(kCopyBufferSize);
    for (const auto* it : held) {
        HeldImage h{it->ref, it->tag, it->digest, 0, it->share};
        std::vector<std::string> hexes;
        if (it->share) {
            json d = prev->index.at(it->tag);
            manifests.push_back(d);
            hexes = it->blobs;
            for (const auto& hex : hexes) {
                if (::faccessat(blobs, hex.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) continue; // written by skopeo
                const std::string rel = std::string(kImagesDir) + "/" + kBlobsDir + "/" + hex;
                if (::linkat(prev_blobs->get(), hex.c_str(), blobs, hex.c_str(), 0) == 0) {
                    res.reused[rel] = prev->entries.at(rel);
                    continue;
                }
                if (errno != EMLINK) return fail_errno("hard link " + rel + " from backup " + prev->id);
                // The store takes no more links to that inode: a copy of its own.
                auto c = copy_regular_file(prev_blobs->get(), hex, blobs, 0, buf);
                if (!c) return std::unexpected(std::move(c.error()).context("copy " + rel));
            }
        } else {
            auto d = new_index.find(it->tag);
            if (d == new_index.end())
                return fail(ErrorKind::ExternalFailed, "skopeo copied " + it->ref + " but did not record it");
            const std::string mhex = blob_hex(d->second.value("digest", json()));
            if (mhex.empty()) return fail(ErrorKind::ExternalFailed, "skopeo recorded " + it->ref + " without digest");
            h.digest = "sha256:" + mhex;
            if (by_digest(it->ref) && it->ref.substr(it->ref.find('@') + 1) != h.digest)
                return fail(ErrorKind::ExternalFailed,
                            "skopeo stored " + it->ref + " under another digest, " + h.digest);
            auto text = read_file_at(blobs, mhex, 16 << 20);
            if (!text) return std::unexpected(std::move(text.error()).context("manifest of " + it->ref));
            auto bl = manifest_blobs(*text);
            if (!bl) return std::unexpected(std::move(bl.error()).context("manifest of " + it->ref));
            hexes.push_back(mhex);
            for (const auto& b : *bl)
                hexes.push_back(b.hex);
            manifests.push_back(d->second);
        }
        for (const auto& hex : hexes) {
            struct stat st {
            };
            if (::fstatat(blobs, hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno("image " + it->ref + ": blob " + hex);
            h.bytes += static_cast<uint64_t>(st.st_size);
            referenced.insert(hex);
        }
        res.record.held.push_back(std::move(h));
    }

    // Blobs of a copy that failed halfway are nobody's: not kept in the backup.
    auto names = read_dir(blobs);
    if (!names) return std::unexpected(names.error());
    for (const auto& n : *names)
        if (!referenced.count(n.name) && ::unlinkat(blobs, n.name.c_str(), 0) < 0)
            return fail_errno("remove unreferenced blob " + n.name);
    auto top = read_dir(layout);
    if (!top) return std::unexpected(top.error());
    for (const auto& n : *top)
        if (n.name != "blobs" && n.name != kIndexFile && n.name != kLayoutFile)
            UR_TRY_CTX(remove_tree_at(layout, n.name), "remove " + n.name + " from the image layout");

    // Our own index.json, a new file: the held images, in ref order.
    json index = {{"schemaVersion", 2}, {"manifests", manifests}};
    UR_TRY(write_file_atomic_at(layout, kIndexFile, index.dump(), 0644));
    if (::faccessat(layout, kLayoutFile, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        UR_TRY(write_file_atomic_at(layout, kLayoutFile, R"({"imageLayoutVersion": "1.0.0"})", 0644));
    return res;
}

Result<> add_image_entries(ManifestWriter& manifest, const SharedFd& staging, ImageBackupResult& r,
                           const CancelToken& cancel)
{
    Buffer buf(kCopyBufferSize);
    r.record.files = 0;
    r.record.bytes = 0;
    r.record.copied_bytes = 0;
    WalkOptions opts;
    opts.one_file_system = false;
    WalkVisitor v;
    v.enter = [&](const WalkItem& it, const SharedFd& dfd) -> Result<WalkAction> {
        Entry e;
        e.path = it.rel;
        entry_from_stat(e, it.st);
        r.record.files++;
        if (S_ISDIR(it.st.st_mode)) {
            auto x = read_xattrs(dfd->get(), false);
            if (!x) return std::unexpected(std::move(x.error()).context(it.rel));
            e.xattrs = std::move(*x);
            UR_TRY(manifest.add(e));
            return WalkAction::Descend;
        }
        if (!S_ISREG(it.st.st_mode)) return fail(ErrorKind::Io, it.rel + ": not a regular file in the image layout");
        auto fd = open_at(it.parent->get(), it.name, O_RDONLY | O_NOFOLLOW);
        if (!fd) return std::unexpected(fd.error());
        auto x = read_xattrs(fd->get(), false);
        if (!x) return std::unexpected(std::move(x.error()).context(it.rel));
        e.xattrs = std::move(*x);
        r.record.bytes += static_cast<uint64_t>(it.st.st_size);
        if (auto reused = r.reused.find(it.rel); reused != r.reused.end()) {
            e.digest = reused->second.digest; // checked against its entry when shared
        } else {
            auto d = hash_content(fd->get(), it.st, buf);
            if (!d) return std::unexpected(std::move(d.error()).context(it.rel));
            e.digest = *d;
            r.record.copied_bytes += static_cast<uint64_t>(it.st.st_size);
        }
        UR_TRY(manifest.add(e));
        return WalkAction::Skip;
    };
    return walk_tree(staging, kImagesDir, kImagesDir, opts, v, &cancel);
}

Result<> restore_image(const Config& cfg, const std::string& root, const std::string& backup_dir, const HeldImage& h,
                       std::chrono::seconds timeout, const CancelToken& cancel)
{
    if (!image_tag_ok(h.tag)) return fail(ErrorKind::Corrupt, "image " + h.ref + ": bad layout tag");
    auto r = run_skopeo(
        cfg, root,
        {"copy", "--quiet", "oci:" + backup_dir + "/" + kImagesDir + ":" + h.tag, "containers-storage:" + h.ref},
        timeout, cancel);
    if (!r) return std::unexpected(std::move(r.error()).context("skopeo copy of " + h.ref + " from the backup"));
    return {};
}

} // namespace ur
