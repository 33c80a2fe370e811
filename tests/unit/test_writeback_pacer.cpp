// The pacer syncs in the background once per `files` files written, from any
// thread, and a destroyed pacer stops cleanly.
#include "writeback_pacer.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fcntl.h>
#include <functional>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace ur;
using ur::test::TempDir;

namespace
{

bool eventually(const std::function<bool()>& f)
{
    for (int i = 0; i < 500; i++) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return f();
}

} // namespace

TEST_CASE("one background sync per `files` files, counted across threads")
{
    TempDir t("ur-pacer");
    int fd = ::open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    {
        WritebackPacer p(fd, 100);
        for (int i = 0; i < 99; i++)
            p.wrote_file();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK(p.syncs() == 0); // not yet
        p.wrote_file();
        CHECK(eventually([&] { return p.syncs() == 1; }));
        // 4 threads x 50 files: two more syncs' worth.
        std::vector<std::thread> ts;
        for (int k = 0; k < 4; k++)
            ts.emplace_back([&] {
                for (int i = 0; i < 50; i++)
                    p.wrote_file();
            });
        for (auto& th : ts)
            th.join();
        CHECK(eventually([&] { return p.syncs() >= 2; }));
        CHECK(p.syncs() <= 3);
    }
    ::close(fd);
}

TEST_CASE("destroying an idle or a busy pacer returns")
{
    TempDir t("ur-pacer");
    int fd = ::open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    {
        WritebackPacer idle(fd, 10);
    }
    {
        WritebackPacer busy(fd, 1);
        for (int i = 0; i < 1000; i++)
            busy.wrote_file();
    }
    SUCCEED("both destructors returned");
    ::close(fd);
}
