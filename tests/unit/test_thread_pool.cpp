// start_threads starts what it can and lets nothing escape; the pool runs every
// task. (The pool without any thread, tasks run in the caller, is tested under a
// real pids limit in test-backup-badinput.sh.)
#include "thread_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <new>
#include <thread>
#include <vector>

using namespace ur;

namespace
{

// A body whose copy fails once `budget` copies were made: starting a thread
// copies it, so a start fails the way a refused thread or a full heap does.
template <class Exception> struct FailingCopyBody {
    std::shared_ptr<std::atomic<int>> budget = std::make_shared<std::atomic<int>>(0);
    std::shared_ptr<std::atomic<int>> ran = std::make_shared<std::atomic<int>>(0);

    FailingCopyBody() = default;
    FailingCopyBody(const FailingCopyBody& o) : budget(o.budget), ran(o.ran)
    {
        if (budget->fetch_sub(1) <= 0) throw Exception();
    }
    FailingCopyBody& operator=(const FailingCopyBody&) = delete;
    void operator()(unsigned) const { ++*ran; }
};

struct NotAStdException {
};

template <class Exception> void check_partial_start(int budget)
{
    FailingCopyBody<Exception> body;
    // One copy for the argument itself, the rest for the threads.
    *body.budget = budget + 1;
    std::vector<std::thread> threads;
    unsigned started = 8;
    REQUIRE_NOTHROW(started = start_threads(threads, 8, "test", body));
    INFO("budget " << budget << ", started " << started);
    CHECK(started < 8);
    CHECK(threads.size() == started);
    for (auto& t : threads)
        t.join();
    CHECK(*body.ran == static_cast<int>(started));
}

} // namespace

TEST_CASE("start_threads returns how many started when a start throws std::bad_alloc")
{
    for (int budget : {0, 1, 3, 7})
        check_partial_start<std::bad_alloc>(budget);
}

TEST_CASE("start_threads lets no exception escape, not even one outside std::exception")
{
    for (int budget : {0, 2, 5})
        check_partial_start<NotAStdException>(budget);
}

TEST_CASE("start_threads starts every thread when nothing fails")
{
    std::atomic<int> ran{0};
    std::vector<std::thread> threads;
    CHECK(start_threads(threads, 4, "test", [&](unsigned) { ++ran; }) == 4);
    for (auto& t : threads)
        t.join();
    CHECK(ran == 4);
}

TEST_CASE("ThreadPool runs every task on a worker, with indexes below size()")
{
    ThreadPool pool(3);
    REQUIRE(pool.size() == 3);
    const auto caller = std::this_thread::get_id();
    std::vector<std::future<std::pair<unsigned, bool>>> futures;
    for (int i = 0; i < 100; i++)
        futures.push_back(
            pool.submit([caller](unsigned w) { return std::make_pair(w, std::this_thread::get_id() != caller); }));
    for (auto& f : futures) {
        auto [w, on_worker] = f.get();
        CHECK(w < 3);
        CHECK(on_worker);
    }
}

TEST_CASE("A task's exception reaches its future, and the pool goes on")
{
    ThreadPool pool(2);
    auto bad = pool.submit([](unsigned) -> int { throw std::runtime_error("task failed"); });
    CHECK_THROWS_WITH(bad.get(), "task failed");
    CHECK(pool.submit([](unsigned) { return 42; }).get() == 42);
}
