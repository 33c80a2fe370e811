#include "prefetch.hpp"

#include "thread_pool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

namespace ur
{

Prefetcher::Prefetcher(unsigned threads)
{
    start_threads(threads_, threads, "read-ahead", [this](unsigned) { run(); }); // none: no read-ahead
}

Prefetcher::~Prefetcher()
{
    {
        std::lock_guard lk(m_);
        stop_ = true;
        stack_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_)
        t.join();
}

namespace
{

// Beneath `dir`, no symlinks, no other mounts (bind mounts included).
int open_dir_beneath(int dir, const char* rel)
{
    struct open_how how = {};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    return static_cast<int>(::syscall(SYS_openat2, dir, rel, &how, sizeof how));
}

} // namespace

void Prefetcher::add(int start, const std::string& name)
{
    if (threads_.empty()) return;
    UniqueFd root(open_dir_beneath(start, name.c_str()));
    if (!root) return;
    {
        std::lock_guard lk(m_);
        stack_.push_back({share(std::move(root)), "."});
    }
    cv_.notify_one();
}

void Prefetcher::wait_idle()
{
    std::unique_lock lk(m_);
    idle_cv_.wait(lk, [&] { return stop_ || (stack_.empty() && busy_ == 0); });
}

void Prefetcher::run()
{
    std::unique_lock lk(m_);
    for (;;) {
        cv_.wait(lk, [&] { return stop_ || !stack_.empty(); });
        if (stop_) return;
        Dir d = std::move(stack_.back());
        stack_.pop_back();
        busy_++;
        lk.unlock();
        read_dir(d);
        lk.lock();
        if (--busy_ == 0 && stack_.empty()) idle_cv_.notify_all();
    }
}

void Prefetcher::read_dir(const Dir& d)
{
    UniqueFd fd(open_dir_beneath(d.root->get(), d.rel.c_str()));
    if (!fd) return;
    std::vector<std::string> subdirs;
    alignas(8) char buf[32768];
    for (;;) {
        long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            auto* e = reinterpret_cast<struct dirent64*>(buf + off);
            off += e->d_reclen;
            const char* nm = e->d_name;
            if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
            entries_.fetch_add(1, std::memory_order_relaxed);
            bool dir = e->d_type == DT_DIR; // opening it later reads its inode
            if (!dir) {
                struct stat st;
                dir = ::fstatat(fd.get(), nm, &st, AT_SYMLINK_NOFOLLOW) == 0 && e->d_type == DT_UNKNOWN &&
                      S_ISDIR(st.st_mode);
            }
            if (dir) subdirs.emplace_back(d.rel == "." ? std::string(nm) : d.rel + "/" + nm);
        }
    }
    if (subdirs.empty()) return;
    {
        std::lock_guard lk(m_);
        if (stop_) return;
        for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it)
            stack_.push_back({d.root, std::move(*it)});
    }
    cv_.notify_all();
}

} // namespace ur
