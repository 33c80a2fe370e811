// The two stat comparisons a backup relies on: unchanged_since (is a source file
// the inode the previous manifest recorded, untouched since?) and copy_matches
// (does the previous generation's copy still look as its entry says?).
#include "fsmeta.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>

using namespace ur;
using ur::test::TempDir;

namespace
{

struct Recorded {
    struct stat st = {};
    Entry entry;
};

Recorded record(const std::string& path)
{
    Recorded r;
    REQUIRE(::lstat(path.c_str(), &r.st) == 0);
    entry_from_stat(r.entry, r.st);
    return r;
}

} // namespace

TEST_CASE("unchanged_since: the same inode with the same ctime and metadata, nothing else", "[fsmeta]")
{
    TempDir t;
    const std::string f = t.path + "/f";
    std::ofstream(f) << "content";
    auto r = record(f);
    CHECK(unchanged_since(r.entry, r.st));
    CHECK(copy_matches(r.entry, r.st));

    // Each field a stat shows, changed alone, breaks both.
    auto changed = [&](auto mutate) {
        struct stat st = r.st;
        mutate(st);
        return std::pair{unchanged_since(r.entry, st), copy_matches(r.entry, st)};
    };
    const auto both_false = std::pair{false, false};
    CHECK(changed([](struct stat& s) { s.st_mode = (s.st_mode & ~07777) | 0600; }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_mode = S_IFDIR | (s.st_mode & 07777); }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_uid += 1; }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_gid += 1; }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_mtim.tv_nsec ^= 1; }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_mtim.tv_sec += 1; }) == both_false);
    CHECK(changed([](struct stat& s) { s.st_size += 1; }) == both_false);

    // What belongs to the source inode breaks only unchanged_since: a copy in the
    // previous generation has its own inode and ctime.
    const auto source_only = std::pair{false, true};
    CHECK(changed([](struct stat& s) { s.st_ino += 1; }) == source_only);
    CHECK(changed([](struct stat& s) { s.st_ctim.tv_nsec ^= 1; }) == source_only);
    CHECK(changed([](struct stat& s) { s.st_ctim.tv_sec += 1; }) == source_only);

    // An entry that changed during its copy, or was a mount point, is never unchanged.
    for (auto flag : {kChangedDuringCopy, kMountPoint}) {
        Entry e = r.entry;
        e.flags |= flag;
        CHECK_FALSE(unchanged_since(e, r.st));
        CHECK(copy_matches(e, r.st));
    }

    // A real write moves ctime: caught without any field being faked.
    std::ofstream(f, std::ios::app) << "x";
    struct stat now;
    REQUIRE(::lstat(f.c_str(), &now) == 0);
    CHECK_FALSE(unchanged_since(r.entry, now));
}

TEST_CASE("unchanged_since and copy_matches: a directory's size does not count, a device's number does", "[fsmeta]")
{
    TempDir t;
    auto d = record(t.path);
    struct stat grown = d.st;
    grown.st_size += 4096; // a directory's size follows its entries
    CHECK(unchanged_since(d.entry, grown));
    CHECK(copy_matches(d.entry, grown));

    Entry dev = d.entry;
    struct stat st = d.st;
    st.st_mode = S_IFCHR | 0600;
    st.st_rdev = makedev(1, 3);
    st.st_size = 0; // as a device node stats
    entry_from_stat(dev, st);
    CHECK(unchanged_since(dev, st));
    st.st_rdev = makedev(1, 5);
    CHECK_FALSE(unchanged_since(dev, st));
    CHECK_FALSE(copy_matches(dev, st));
}
