#include "verify.hpp"

#include "digest.hpp"
#include "file_copy.hpp"
#include "fsmeta.hpp"
#include "manifest.hpp"
#include "prefetch.hpp"
#include "walk.hpp"

#include <fcntl.h>
#include <map>
#include <unistd.h>

namespace ur
{

namespace
{

std::string fmt_time(int64_t s, uint32_t ns)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%lld.%09u", static_cast<long long>(s), ns);
    return buf;
}

// Compare what is on disk with the manifest entry; append one line per difference.
void compare(const Entry& want, const Entry& have, std::vector<std::string>& out)
{
    auto add = [&](const std::string& what) { out.push_back(want.path + ": " + what); };
    if (want.type != have.type) {
        add(std::string("type is '") + static_cast<char>(have.type) + "', expected '" + static_cast<char>(want.type) +
            "'");
        return;
    }
    if (want.mode != have.mode) {
        char b[64];
        snprintf(b, sizeof b, "mode is %04o, expected %04o", have.mode, want.mode);
        add(b);
    }
    if (want.uid != have.uid || want.gid != have.gid)
        add("owner is " + std::to_string(have.uid) + ":" + std::to_string(have.gid) + ", expected " +
            std::to_string(want.uid) + ":" + std::to_string(want.gid));
    if (want.type != FileType::Dir && (want.mtime_sec != have.mtime_sec || want.mtime_nsec != have.mtime_nsec))
        add("mtime is " + fmt_time(have.mtime_sec, have.mtime_nsec) + ", expected " +
            fmt_time(want.mtime_sec, want.mtime_nsec));
    if (want.type == FileType::Dir && (want.mtime_sec != have.mtime_sec || want.mtime_nsec != have.mtime_nsec))
        add("directory mtime is " + fmt_time(have.mtime_sec, have.mtime_nsec) + ", expected " +
            fmt_time(want.mtime_sec, want.mtime_nsec));
    if ((want.type == FileType::Reg || want.type == FileType::Link) && want.size != have.size)
        add("size is " + std::to_string(have.size) + ", expected " + std::to_string(want.size));
    if (want.rdev != have.rdev) add("device number differs");
    if (want.target != have.target) add("symlink target is '" + have.target + "', expected '" + want.target + "'");
    if (want.xattrs != have.xattrs) {
        for (const auto& w : want.xattrs) {
            bool found = false;
            for (const auto& h : have.xattrs)
                if (h.name == w.name) {
                    found = true;
                    if (h.value != w.value) add("xattr " + w.name + " differs");
                }
            if (!found) add("xattr " + w.name + " is missing");
        }
        for (const auto& h : have.xattrs) {
            bool found = false;
            for (const auto& w : want.xattrs)
                found |= w.name == h.name;
            if (!found) add("unexpected xattr " + h.name);
        }
    }
    if (want.type == FileType::Reg && !have.digest.empty() && want.digest != have.digest)
        add("content differs (sha256 " + have.digest.substr(0, 16) + "..., expected " + want.digest.substr(0, 16) +
            "...)");
}

} // namespace

Result<VerifyReport> verify_backup(const Store& store, const std::string& id, Progress& progress,
                                   const CancelToken& cancel)
{
    VerifyReport rep;
    rep.id = id;
    auto meta = read_metadata(store, id);
    if (!meta) {
        if (meta.error().kind == ErrorKind::Corrupt) {
            rep.mismatches.push_back("metadata.toml: " + meta.error().message);
            return rep;
        }
        return std::unexpected(meta.error());
    }
    auto gen_r = open_at(store.backups_fd.get(), id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!gen_r) return std::unexpected(gen_r.error());
    SharedFd gen = share(std::move(*gen_r));
    Buffer buf;

    auto reader = ManifestReader::open(gen->get(), kManifestFile);
    if (!reader) {
        rep.mismatches.push_back("manifest: " + reader.error().message);
        return rep;
    }
    std::optional<Entry> want;
    bool manifest_broken = false;
    auto advance = [&]() {
        auto n = reader->next();
        if (!n) {
            rep.mismatches.push_back("manifest: " + n.error().message);
            manifest_broken = true;
            want.reset();
            return;
        }
        want = std::move(*n);
    };
    advance();

    uint64_t total = meta->manifest_entries ? meta->manifest_entries : 1;
    auto report = [&] { progress.percent(static_cast<unsigned>(std::min<uint64_t>(99, rep.checked * 100 / total))); };

    // Everything in the manifest before `path` is missing from the generation.
    auto skip_missing = [&](const std::string& path) {
        while (want && compare_paths(want->path, path) < 0) {
            rep.mismatches.push_back(want->path + ": missing from the backup");
            advance();
        }
    };

    // Hard-link groups: the inode of each group's first name (kLinkLeader);
    // later names (<link> = the leader's path) must be that same inode.
    std::map<std::string, std::pair<dev_t, ino_t>> leaders;
    auto check_link_group = [&](const Entry& w, const struct stat& st) {
        if (w.type != FileType::Reg) return;
        if (w.flags & kLinkLeader) leaders[w.path] = {st.st_dev, st.st_ino};
        if (w.link.empty()) return;
        auto l = leaders.find(w.link);
        if (l == leaders.end())
            rep.mismatches.push_back(w.path + ": a hard link of " + w.link + ", which leads no group before it");
        else if (l->second.first != st.st_dev || l->second.second != st.st_ino)
            rep.mismatches.push_back(w.path + ": not a hard link of " + w.link + " as recorded");
    };

    std::vector<std::string> tree_names;
    for (const auto& t : meta->trees)
        tree_names.push_back(t.name);
    // The control-plane images' layout is in the manifest like a tree.
    if (meta->images.present) tree_names.push_back(kImagesDir);
    Prefetcher prefetch(kPrefetchThreads); // the generation's metadata, ahead of the walk
    for (const auto& t : tree_names)
        prefetch.add(gen->get(), t);
    std::sort(tree_names.begin(), tree_names.end(),
              [](const std::string& a, const std::string& b) { return compare_paths(a, b) < 0; });
    for (const auto& tname : tree_names) {
        WalkOptions opts;
        opts.one_file_system = false;
        WalkVisitor v;
        v.enter = [&](const WalkItem& it, const SharedFd& dfd) -> Result<WalkAction> {
            rep.checked++;
            if ((rep.checked & 1023) == 0) report();
            skip_missing(it.rel);
            if (!want || want->path != it.rel) {
                rep.mismatches.push_back(it.rel + ": in the backup but not in the manifest");
                return WalkAction::Skip;
            }
            Entry have;
            have.path = it.rel;
            entry_from_stat(have, it.st);
            const int parent = it.parent->get();
            if (S_ISDIR(it.st.st_mode)) {
                auto x = read_xattrs(dfd->get(), false);
                if (!x) return std::unexpected(x.error());
                have.xattrs = std::move(*x);
            } else {
                // Regular files are read through a real fd, everything else through O_PATH.
                bool path_fd = !S_ISREG(it.st.st_mode);
                auto rfd = open_at(parent, it.name, path_fd ? O_PATH | O_NOFOLLOW : O_RDONLY | O_NOFOLLOW);
                if (!rfd) return std::unexpected(rfd.error());
                auto x = read_xattrs(rfd->get(), path_fd);
                if (!x) return std::unexpected(x.error());
                have.xattrs = std::move(*x);
                if (S_ISLNK(it.st.st_mode)) {
                    std::string t(static_cast<size_t>(it.st.st_size) + 1, '\0');
                    ssize_t n = ::readlinkat(parent, it.name.c_str(), t.data(), t.size());
                    if (n < 0) return fail_errno("read link " + it.rel);
                    t.resize(static_cast<size_t>(n));
                    have.target = t;
                } else if (S_ISREG(it.st.st_mode)) {
                    auto d = hash_content(rfd->get(), it.st, buf);
                    if (!d) return std::unexpected(std::move(d.error()).context(it.rel));
                    have.digest = *d;
                }
            }
            compare(*want, have, rep.mismatches);
            check_link_group(*want, it.st);
            advance();
            UR_TRY(cancel.check());
            return S_ISDIR(it.st.st_mode) ? WalkAction::Descend : WalkAction::Skip;
        };
        auto r = walk_tree(gen, tname, tname, opts, v, &cancel);
        if (!r) {
            if (r.error().err == ENOENT) {
                skip_missing(tname + "/");
                continue;
            }
            return std::unexpected(r.error());
        }
        if (manifest_broken) break;
    }
    while (want && !manifest_broken) {
        rep.mismatches.push_back(want->path + ": missing from the backup");
        advance();
    }
    if (!manifest_broken && reader->sha256() != meta->manifest_sha256)
        rep.mismatches.push_back("manifest: sha256 " + reader->sha256() + " does not match metadata " +
                                 meta->manifest_sha256);

    // The cluster artefacts carry their own digests in the metadata.
    if (meta->cluster.present) {
        auto cdir = open_at(gen->get(), kClusterDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        auto check = [&](const std::string& name, const std::string& sha) {
            if (name.empty()) return;
            if (!cdir) {
                rep.mismatches.push_back("cluster/: missing");
                return;
            }
            auto d = file_sha256(cdir->get(), name, buf);
            if (!d)
                rep.mismatches.push_back("cluster/" + name + ": " + d.error().message);
            else if (*d != sha)
                rep.mismatches.push_back("cluster/" + name + ": content differs from the recorded sha256");
        };
        check(meta->cluster.snapshot, meta->cluster.snapshot_sha256);
        check(meta->cluster.static_resources, meta->cluster.static_resources_sha256);
    }
    progress.percent(100);
    return rep;
}

} // namespace ur
