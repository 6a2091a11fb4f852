// Clock: the one source of time for every component of billing-gateway.
//
// Flow-control parts (queue, bucket, breaker, rate controller), the Kill Bill
// stand-in's capacity model and the dispatcher never read time on their own:
// they receive a `Clock*` in their constructor. Production code passes
// `SteadyClock::Instance()`; tests pass a `FakeClock` and advance it
// explicitly, so no test ever sleeps to let time pass.
//
// Time is steady (monotonic) time: it never jumps with the wall clock.
//
// Thread-safety: both implementations are safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace bg {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Blocks the calling thread until Now() >= t: the only way product code
  // waits for time to pass (a token, a retry backoff), so tests drive it.
  virtual void SleepUntil(TimePoint t) = 0;
};

// Real steady time. Stateless, so one shared instance is enough.
class SteadyClock final : public Clock {
 public:
  static SteadyClock* Instance() {
    static SteadyClock clock;
    return &clock;
  }
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  void SleepUntil(TimePoint t) override { std::this_thread::sleep_until(t); }
};

// Time that moves only when a test says so. Starts at an arbitrary non-zero
// point so that code which treats the epoch as "never" is exercised honestly.
class FakeClock final : public Clock {
 public:
  FakeClock()
      : ticks_(std::chrono::duration_cast<Duration>(std::chrono::hours(1))
                   .count()) {}
  TimePoint Now() const override {
    return TimePoint(Duration(ticks_.load(std::memory_order_acquire)));
  }
  // Simulated time: a sleeper moves time forward to its wake-up point at once
  // (meant for tests in which the sleeper is the thread that drives time).
  void SleepUntil(TimePoint t) override {
    Duration::rep want = t.time_since_epoch().count();
    Duration::rep now = ticks_.load(std::memory_order_acquire);
    while (now < want && !ticks_.compare_exchange_weak(
                             now, want, std::memory_order_acq_rel)) {
    }
  }
  void Advance(Duration d) {
    ticks_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  template <typename Rep, typename Period>
  void Advance(std::chrono::duration<Rep, Period> d) {
    Advance(std::chrono::duration_cast<Duration>(d));
  }

 private:
  // Atomic rather than a mutex: a single integer read/written from test and
  // worker threads.
  std::atomic<Duration::rep> ticks_;
};

// Seconds as a double, the unit rates and slopes are computed in.
inline double ToSeconds(Clock::Duration d) {
  return std::chrono::duration<double>(d).count();
}
inline Clock::Duration FromSeconds(double s) {
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(s));
}

}  // namespace bg
