// Restore's own recursion and the removal of target trees, at depths no real
// host has: a damaged or hand-made manifest deeper than kMaxTreeDepth is a
// clear error (it overflowed the stack at ~1,400 levels), and remove_tree_at
// deletes a tree of any depth with a few descriptors.
#include "fd.hpp"
#include "manifest.hpp"
#include "metadata.hpp"
#include "restore.hpp"
#include "walk.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;

namespace
{

Entry dir_entry(const std::string& path)
{
    Entry e;
    e.path = path;
    e.type = FileType::Dir;
    e.mode = 0755;
    e.mtime_sec = 1700000000;
    return e;
}

// backups/<id> with one tree "etc" whose manifest nests `depth` directories "d".
void hand_made_backup(const std::string& gen, int depth)
{
    int g = ::open(gen.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(g >= 0);
    UniqueFd gfd(g);
    REQUIRE(::mkdirat(g, "etc", 0755) == 0);
    auto m = open_at(g, "manifest", O_WRONLY | O_CREAT | O_EXCL, 0644);
    REQUIRE(m);
    ManifestWriter w(m->get());
    std::string path = "etc";
    REQUIRE(w.add(dir_entry(path)));
    for (int i = 0; i < depth; i++) {
        path += "/d";
        REQUIRE(w.add(dir_entry(path)));
    }
    auto sha = w.finish();
    REQUIRE(sha);
    BackupMetadata meta;
    meta.id = "20260101T000000Z";
    meta.created = "2026-01-01T00:00:00Z";
    meta.host = "test";
    meta.tool_version = "test";
    meta.manifest_sha256 = *sha;
    meta.manifest_entries = w.count();
    meta.trees.push_back({"etc", "/etc", w.count(), 0, {}});
    REQUIRE(write_file_atomic_at(g, "metadata.toml", metadata_to_toml(meta)));
}

struct RlimitNofile {
    struct rlimit saved {
    };
    explicit RlimitNofile(rlim_t soft)
    {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
        struct rlimit r = saved;
        r.rlim_cur = soft;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &r) == 0);
    }
    ~RlimitNofile() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

} // namespace

TEST_CASE("a manifest nested deeper than kMaxTreeDepth is refused, not a crash")
{
    TempDir gen("ur-restore-gen"), root("ur-restore-root");
    hand_made_backup(gen.path, 3000); // the old recursion overflowed the stack at ~1,400
    REQUIRE(::mkdir((root.path + "/etc").c_str(), 0755) == 0);
    for (bool dry_run : {true, false}) {
        INFO("dry run: " << dry_run);
        RestoreOptions o;
        o.target_root = root.path;
        o.dry_run = dry_run;
        Progress progress;
        CancelToken cancel;
        auto r = restore_backup(gen.path, o, progress, cancel);
        REQUIRE(!r);
        CHECK(r.error().kind == ErrorKind::Refused);
        CHECK_THAT(r.error().message, Catch::Contains("nested more than " + std::to_string(kMaxTreeDepth)));
    }
}

TEST_CASE("remove_tree_at removes a tree deeper than the descriptor limit")
{
    TempDir t("ur-remove-deep");
    int top = ::open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(top >= 0);
    UniqueFd topfd(top);
    constexpr int kDepth = 3000;
    {
        REQUIRE(::mkdirat(top, "tree", 0755) == 0);
        auto cur = open_at(top, "tree", O_RDONLY | O_DIRECTORY);
        REQUIRE(cur);
        for (int i = 0; i < kDepth; i++) {
            REQUIRE(::mkdirat(cur->get(), "d", 0755) == 0);
            REQUIRE(write_file_atomic_at(cur->get(), "f", "x"));
            auto next = open_at(cur->get(), "d", O_RDONLY | O_DIRECTORY);
            REQUIRE(next);
            *cur = std::move(*next);
        }
    }
    {
        RlimitNofile few(256); // one descriptor per level would run out at ~250
        auto r = remove_tree_at(top, "tree");
        INFO((r ? std::string() : r.error().message));
        REQUIRE(r);
    }
    CHECK(::faccessat(top, "tree", F_OK, AT_SYMLINK_NOFOLLOW) < 0);
}
