// DrainRate: how many jobs per second the dispatcher takes off the admission
// queue when it has work, the denominator of every wait prediction and retry
// pushback.
//
// It counts jobs drained per second of *busy* time only: time during which the
// queue held jobs and was not stalled by an open breaker. Counting over wall
// time would make an idle gateway look slow (a quiet minute measures ~0 jobs/s)
// and reject the first burst as "deadline unmeetable". Dequeues are counted
// rather than Kill Bill completions: the queue sees them itself, without the
// call's latency as a lag, and latency is added separately.
//
// Until `min_busy` of busy time is in the window the estimate blends in a prior
// (rate = (drained + prior * (min_busy - busy)) / max(busy, min_busy)): the
// dispatcher sets the prior to the token bucket's rate divided by the calls per
// job, which is what the queue will drain at when nothing else (concurrency
// cap, breaker) binds.
//
// Thread-safety: none; the owner (AdmissionQueue) calls it under its own lock.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "flow/windowed_counter.h"

namespace bg::flow {

class DrainRate {
 public:
  struct Options {
    // Sliding window of busy time and drained jobs. Longer is steadier, slower
    // to follow.
    Clock::Duration window = std::chrono::seconds(10);
    // Busy time below which the prior still weighs in.
    Clock::Duration min_busy = std::chrono::seconds(2);
  };

  DrainRate(Clock* clock, Options options, double prior_per_s);

  void SetPrior(double per_s);
  double prior() const { return prior_; }
  // The queue has work (and may be drained) from now on, or not.
  void SetBusy(bool busy);
  // `n` jobs left the queue to run.
  void RecordDrained(int n = 1);
  // Jobs per second, > 0.
  double PerSecond();

 private:
  // Jobs drained and busy time counted over `window`.
  struct Activity {
    int64_t drained = 0;
    Clock::Duration busy{0};
    Activity& operator+=(const Activity& o) {
      drained += o.drained;
      busy += o.busy;
      return *this;
    }
  };
  void FlushBusy(Clock::TimePoint now);

  Clock* const clock_;
  const Options opt_;
  double prior_;
  bool busy_ = false;
  Clock::TimePoint busy_since_;
  WindowedCounter<Activity> activity_;
};

}  // namespace bg::flow
