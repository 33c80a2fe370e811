// The prefetcher reads exactly the queued trees: every name in them, nothing
// through a symlink, nothing on another mount (a bind mount of the same
// filesystem included, when we may mount), and it stops when destroyed.
#include "prefetch.hpp"

#include "temp_dir.hpp"
#include "test_skip.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/mount.h>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;
namespace fs = std::filesystem;

namespace
{

void touch(const fs::path& p)
{
    std::ofstream(p) << "x";
}

// n directories of n files each below `dir`: n + n*n names.
void fill(const fs::path& dir, int n)
{
    for (int i = 0; i < n; i++) {
        fs::create_directories(dir / ("d" + std::to_string(i)));
        for (int j = 0; j < n; j++)
            touch(dir / ("d" + std::to_string(i)) / ("f" + std::to_string(j)));
    }
}

uint64_t read_tree(int start, const std::string& name)
{
    Prefetcher p(kPrefetchThreads);
    p.add(start, name);
    p.wait_idle();
    return p.entries_read();
}

} // namespace

TEST_CASE("every name of the tree is read, nothing behind a symlink")
{
    TempDir t;
    fs::path tree = fs::path(t.path) / "tree", outside = fs::path(t.path) / "outside";
    fill(tree, 6);                                      // 6 + 36
    fill(outside, 5);                                   // not ours
    fs::create_directory_symlink(outside, tree / "to"); // + 1, not followed
    fs::create_directory_symlink("../outside", tree / "d0" / "rel");
    int fd = ::open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(read_tree(fd, "tree") == 6 + 36 + 2);
    CHECK(read_tree(fd, "outside") == 5 + 25);
    // The start itself is a symlink: refused, nothing read.
    fs::create_directory_symlink(outside, fs::path(t.path) / "link");
    CHECK(read_tree(fd, "link") == 0);
    ::close(fd);
}

TEST_CASE("a bind mount below the tree is not crossed")
{
    TempDir t;
    fs::path tree = fs::path(t.path) / "tree", outside = fs::path(t.path) / "outside";
    fill(tree, 4); // 4 + 16
    fill(outside, 5);
    fs::create_directory(tree / "mnt"); // + 1
    UR_RUN_ONLY_IF(::geteuid() == 0, "not root: the bind mount case");
    REQUIRE(::mount(outside.c_str(), (tree / "mnt").c_str(), nullptr, MS_BIND, nullptr) == 0);
    int fd = ::open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    uint64_t n = read_tree(fd, ".");
    ::umount2((tree / "mnt").c_str(), MNT_DETACH);
    ::close(fd);
    CHECK(n == 4 + 16 + 1);
}

TEST_CASE("destroying a prefetcher mid-walk stops it")
{
    TempDir t;
    fill(fs::path(t.path) / "big", 60); // 3660 names
    int fd = ::open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    {
        Prefetcher p(2);
        p.add(fd, "big");
    } // joins without waiting for the walk
    CHECK(read_tree(fd, "big") == 60 + 3600);
    ::close(fd);
}
