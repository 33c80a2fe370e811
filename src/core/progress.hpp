// Progress reporting and cancellation for long operations. The CLI draws a
// bar on a terminal, the daemon mirrors it into a Job's Progress property.
#pragma once

#include "error.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace ur
{

class Progress
{
  public:
    virtual ~Progress() = default;
    // A new stage begins ("pin ostree deployment", "copy etc", ...).
    virtual void stage(const std::string& name) { (void)name; }
    // Overall fraction done, 0..100 (monotonic per operation).
    virtual void percent(unsigned pct) { (void)pct; }
    // A non-fatal problem the user should see (a vanished file, a missing MachineConfig file).
    virtual void warning(const std::string& msg) { (void)msg; }
};

// A part of a longer operation: its 0..100 fills [lo, hi] of the whole (a recovery
// step's verify or restore, which report their own 0..100). The rest passes through.
class ScaledProgress : public Progress
{
  public:
    explicit ScaledProgress(Progress& whole) : whole_(whole) {}
    void set_range(unsigned lo, unsigned hi)
    {
        lo_ = lo;
        hi_ = hi < lo ? lo : hi;
    }
    void stage(const std::string& name) override { whole_.stage(name); }
    void percent(unsigned pct) override { whole_.percent(lo_ + (hi_ - lo_) * (pct > 100 ? 100 : pct) / 100); }
    void warning(const std::string& msg) override { whole_.warning(msg); }

  private:
    Progress& whole_;
    unsigned lo_ = 0, hi_ = 100;
};

// Cancellation plus an optional deadline; checked by long loops. Thread-safe.
// A token made with a parent is also cancelled, and also expires, when the parent
// is: at the parent's first check, not after a watcher's next look, so work done
// under a child token stops at the same point as under the parent.
class CancelToken
{
  public:
    using Clock = std::chrono::steady_clock;

    CancelToken() = default;
    // A child of `parent`, which must outlive it.
    explicit CancelToken(const CancelToken* parent) : parent_(parent) {}
    CancelToken(const CancelToken&) = delete;
    CancelToken& operator=(const CancelToken&) = delete;

    void cancel() { cancelled_.store(true); }
    void set_deadline(Clock::time_point t) { deadline_ns_.store(t.time_since_epoch().count()); }
    void set_timeout(std::chrono::seconds s)
    {
        if (s.count() > 0) set_deadline(Clock::now() + s);
    }
    bool has_deadline() const { return deadline_ns_.load() != 0 || (parent_ && parent_->has_deadline()); }
    // The earlier of its own deadline and the parent's; only when has_deadline().
    Clock::time_point deadline() const
    {
        auto own = deadline_ns_.load();
        auto d = own ? Clock::time_point(Clock::duration(own)) : Clock::time_point::max();
        if (parent_ && parent_->has_deadline()) d = std::min(d, parent_->deadline());
        return d;
    }

    // Ok, or Cancelled / Timeout.
    Result<> check() const
    {
        if (cancelled()) return fail(ErrorKind::Cancelled, "cancelled");
        if (has_deadline() && Clock::now() >= deadline()) return fail(ErrorKind::Timeout, "deadline passed");
        return {};
    }
    bool cancelled() const { return cancelled_.load() || (parent_ && parent_->cancelled()); }

    // Seconds left before the deadline (or `fallback` when there is none), at least 1.
    unsigned seconds_left(unsigned fallback) const
    {
        if (!has_deadline()) return fallback;
        auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline() - Clock::now()).count();
        if (left < 1) left = 1;
        return fallback && static_cast<unsigned>(left) > fallback ? fallback : static_cast<unsigned>(left);
    }

  private:
    const CancelToken* parent_ = nullptr;
    std::atomic<bool> cancelled_{false};
    std::atomic<Clock::rep> deadline_ns_{0};
};

} // namespace ur
