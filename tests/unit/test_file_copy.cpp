// copy_regular_file when the source changes under it (W16: a backup of a
// running node reads files that are being written): retried, then recorded
// as changed, with the digest and size of exactly what was written.
#include "file_copy.hpp"

#include "digest.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <fcntl.h>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;

namespace
{

int open_dir(const std::string& p)
{
    int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    return fd;
}

std::string slurp(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("a file that keeps changing is copied again, then recorded as changed with what was written")
{
    TempDir t;
    const std::string src = t.path + "/src", dst = t.path + "/dst";
    ::mkdir(src.c_str(), 0755);
    ::mkdir(dst.c_str(), 0755);
    {
        std::ofstream f(src + "/log", std::ios::binary);
        f << std::string(16 << 20, 'a'); // long enough that every copy overlaps the writer
    }
    int sfd = open_dir(src), dfd = open_dir(dst);
    Buffer buf(kCopyBufferSize);

    // A writer appends for as long as the copy runs (each append changes the size).
    // On a loaded machine the writer may not get a CPU during all three attempts of
    // one copy: the scenario is tried again (up to 10 times) until it overlapped them.
    Result<CopiedFile> r = fail(ErrorKind::Io, "not run");
    std::string copied;
    for (int trial = 0; trial < 10; trial++) {
        ::unlinkat(dfd, "log", 0);
        std::atomic<bool> stop{false};
        std::atomic<unsigned> appends{0};
        std::thread writer([&] {
            int fd = ::open((src + "/log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
            while (!stop.load()) {
                if (::write(fd, "b", 1) == 1) appends++;
            }
            ::close(fd);
        });
        while (appends.load() == 0)
            std::this_thread::yield();
        r = copy_regular_file(sfd, "log", dfd, 2, buf);
        stop = true;
        writer.join();

        REQUIRE(r);
        CHECK_FALSE(r->vanished);
        // The entry describes the copy, not a source that has moved on since (flagged or not).
        copied = slurp(dst + "/log");
        CHECK(r->entry.size == copied.size());
        CHECK(r->entry.digest == sha256_hex(copied.data(), copied.size()));
        if (r->entry.flags & kChangedDuringCopy) break;
    }
    CHECK((r->entry.flags & kChangedDuringCopy) != 0);
    CHECK(copied.size() >= (16u << 20));

    // Left alone, the same file copies cleanly and is not flagged.
    auto again = copy_regular_file(sfd, "log", dfd, 2, buf);
    REQUIRE_FALSE(again); // the destination name exists: never overwritten
    ::unlinkat(dfd, "log", 0);
    auto clean = copy_regular_file(sfd, "log", dfd, 2, buf);
    REQUIRE(clean);
    CHECK((clean->entry.flags & kChangedDuringCopy) == 0);
    const std::string now = slurp(src + "/log");
    CHECK(clean->entry.digest == sha256_hex(now.data(), now.size()));
    ::close(sfd);
    ::close(dfd);
}
