// A fixed pool of worker threads for file copies. Tasks must not touch sd-bus
// or other thread-unsafe state; results come back through futures.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ur
{

class ThreadPool
{
  public:
    explicit ThreadPool(unsigned threads)
    {
        if (threads < 1) threads = 1;
        for (unsigned i = 0; i < threads; i++)
            workers_.emplace_back([this, i] { run(i); });
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

    unsigned size() const { return static_cast<unsigned>(workers_.size()); }

    // f(worker_index) runs on a worker; the index lets tasks use per-worker buffers.
    template <class F> auto submit(F&& f) -> std::future<decltype(f(0u))>
    {
        using R = decltype(f(0u));
        auto task = std::make_shared<std::packaged_task<R(unsigned)>>(std::forward<F>(f));
        auto fut = task->get_future();
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
