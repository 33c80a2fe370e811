#include "writeback_pacer.hpp"

#include "thread_pool.hpp"

#include <unistd.h>

namespace ur
{

WritebackPacer::WritebackPacer(int fd, uint64_t files) : fd_(fd), every_(files ? files : 1)
{
    // Pacing only keeps xfs's reservations small; without a thread the backup's final syncfs does the rest.
    start_threads(thread_, 1, "writeback pacing", [this](unsigned) { run(); });
}

WritebackPacer::~WritebackPacer()
{
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    cv_.notify_one();
    for (auto& t : thread_)
        t.join();
}

void WritebackPacer::wrote_file()
{
    if (pending_.fetch_add(1, std::memory_order_relaxed) + 1 == every_) {
        std::lock_guard lk(m_);
        wake_ = true;
        cv_.notify_one();
    }
}

void WritebackPacer::run()
{
    std::unique_lock lk(m_);
    for (;;) {
        cv_.wait(lk, [&] { return stop_ || wake_; });
        if (stop_) return;
        wake_ = false;
        pending_.store(0); // files written from now on count towards the next sync
        lk.unlock();
        ::syncfs(fd_); // best effort: the backup's own final syncfs reports errors
        syncs_.fetch_add(1);
        lk.lock();
    }
}

} // namespace ur
