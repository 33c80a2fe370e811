// Bounds how much the backup has written but the kernel not yet written back.
//
// Until a file's dirty pages are written back, xfs holds a worst-case
// reservation for its block mapping (about 20 KiB per file). The kernel's own
// writeback starts after 30 s or gigabytes of dirty data, so a backup of many
// small files outruns it: 185k files took a 2.7 GiB partition to 99% "used"
// although it ends 48% full, and creating the next inode failed with ENOSPC.
// A thread syncs the filesystem every `files` files, in the background.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ur
{

class WritebackPacer
{
  public:
    WritebackPacer(int fd, uint64_t files); // fd: any fd on the target filesystem
    ~WritebackPacer();                      // waits for a sync in progress
    WritebackPacer(const WritebackPacer&) = delete;
    WritebackPacer& operator=(const WritebackPacer&) = delete;

    // A file was written (from any thread).
    void wrote_file();
    uint64_t syncs() const { return syncs_.load(); }

  private:
    void run();
    int fd_;
    uint64_t every_;
    std::atomic<uint64_t> pending_{0};
    std::atomic<uint64_t> syncs_{0};
    std::mutex m_;
    std::condition_variable cv_;
    bool wake_ = false;
    bool stop_ = false;
    std::vector<std::thread> thread_; // one, or none when the system refused it (no pacing then)
};

} // namespace ur
