// A fixed pool of worker threads for file copies. Tasks must not touch sd-bus
// or other thread-unsafe state; results come back through futures.
#pragma once

#include "log.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace ur
{

// Start up to `n` threads running body(index) into `into`; how many started. A
// thread the system refuses (EAGAIN under TasksMax or a pids limit) is not an
// exception that ends the process: the work goes on with fewer, and says so.
inline void warn_fewer_threads(const char* what, unsigned started, unsigned wanted, const char* why) noexcept
{
    try {
        log::warning(std::string(what) + ": started " + std::to_string(started) + " of " + std::to_string(wanted) +
                     " threads (" + why + "); going on with " + std::to_string(started));
    } catch (...) {
    }
}

template <class Body> unsigned start_threads(std::vector<std::thread>& into, unsigned n, const char* what, Body body)
{
    // Nothing may escape: the caller's vector then holds joinable threads that use
    // the caller, and destroying it would be std::terminate.
    for (unsigned i = 0; i < n; i++) {
        try {
            into.emplace_back([body, i] { body(i); });
        } catch (const std::exception& e) {
            warn_fewer_threads(what, i, n, e.what());
            return i;
        } catch (...) {
            warn_fewer_threads(what, i, n, "unknown error");
            return i;
        }
    }
    return n;
}

class ThreadPool
{
  public:
    // With no thread at all, submit() runs each task at once in the caller (index 0).
    explicit ThreadPool(unsigned threads, const char* what = "thread pool")
    {
        start_threads(workers_, threads < 1 ? 1 : threads, what, [this](unsigned i) { run(i); });
    }
    ~ThreadPool()
    {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_)
            w.join();
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Worker indexes run from 0 to size() - 1 (at least 1, also when tasks run inline).
    unsigned size() const { return workers_.empty() ? 1 : static_cast<unsigned>(workers_.size()); }

    // f(worker_index) runs on a worker; the index lets tasks use per-worker buffers.
    template <class F> auto submit(F&& f) -> std::future<decltype(f(0u))>
    {
        using R = decltype(f(0u));
        auto task = std::make_shared<std::packaged_task<R(unsigned)>>(std::forward<F>(f));
        auto fut = task->get_future();
        if (workers_.empty()) {
            (*task)(0);
            return fut;
        }
        {
            std::lock_guard lk(m_);
            q_.emplace_back([task](unsigned w) { (*task)(w); });
        }
        cv_.notify_one();
        return fut;
    }

  private:
    void run(unsigned index)
    {
        for (;;) {
            std::function<void(unsigned)> job;
            {
                std::unique_lock lk(m_);
                cv_.wait(lk, [this] { return stop_ || !q_.empty(); });
                if (q_.empty()) return;
                job = std::move(q_.front());
                q_.pop_front();
            }
            job(index);
        }
    }

    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void(unsigned)>> q_;
    std::vector<std::thread> workers_;
    bool stop_ = false;
};

} // namespace ur
