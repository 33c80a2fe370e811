#include "writeback_pacer.hpp"

#include "log.hpp"

#include <system_error>

#include <unistd.h>

namespace ur
{

WritebackPacer::WritebackPacer(int fd, uint64_t files) : fd_(fd), every_(files ? files : 1)
{
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        // Pacing only keeps xfs's reservations small; the backup's final syncfs does the rest.
        log::warning(std::string("writeback pacing: no thread (") + e.what() + "); going on without");
    }
}

WritebackPacer::~WritebackPacer()
{
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
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
