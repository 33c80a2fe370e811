// Warms the kernel's dentry and inode caches for trees that a sequential walk
// is about to visit. Cold metadata reads are bound by storage latency, not by
// CPU; a few threads keep several reads in flight, so the ordered walk that
// follows (backup, restore, verify) mostly finds what it needs in memory.
// Read-only and best effort: errors are ignored, nothing is reported.
#pragma once

#include "fd.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ur
{

// Threads used by backup, restore and verify. Four reads in flight halved a
// cold walk on the development VM (bench/README.md); more did not help.
inline constexpr unsigned kPrefetchThreads = 4;

class Prefetcher
{
  public:
    explicit Prefetcher(unsigned threads);
    ~Prefetcher(); // stops the threads and waits for them
    Prefetcher(const Prefetcher&) = delete;
    Prefetcher& operator=(const Prefetcher&) = delete;

    // Queue the tree `name` below the directory `start` ("." for start itself).
    // Never leaves it: no symlink is followed and no mount point is crossed.
    void add(int start, const std::string& name);

    // Block until every queued tree has been read (tests, benchmarks).
    void wait_idle();

    // Names read so far (directories included, tree roots not).
    uint64_t entries_read() const { return entries_.load(); }

  private:
    struct Dir {
        SharedFd root;
        std::string rel;
    };
    void run();
    void read_dir(const Dir& d);

    std::mutex m_;
    std::condition_variable cv_;      // work arrived or stop
    std::condition_variable idle_cv_; // the last busy thread finished
    std::vector<Dir> stack_;          // depth first keeps the frontier small
    unsigned busy_ = 0;
    std::atomic<uint64_t> entries_{0};
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

} // namespace ur
