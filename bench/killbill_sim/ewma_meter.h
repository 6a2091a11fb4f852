// EwmaMeter: Dropwizard's Meter (metrics-core 4.x: Meter, EWMA,
// ExponentialMovingAverages) over a count, on an injected bg::Clock, for the
// timers killbill-sim serves at GET /1.0/metrics.
//
// Dropwizard's meter:
// clang-format off
//   * count: events since the meter was made; mean_rate = count / seconds
//     since then (0 while count is 0).
//   * m1/m5/m15_rate: exponentially weighted moving averages ticked every
//     5 s. At each tick, instant = uncounted / 5 s, where "uncounted" is the
//     events of the interval that tick closes; the first tick sets
//     rate = instant, later ones rate += alpha * (instant - rate), with
//     alpha = 1 - exp(-5/60), 1 - exp(-5/300), 1 - exp(-5/900).
//     A constant rate r reads r from the first tick on; after a step from a
//     to b, m1 = b + (a - b) * exp(-t/60) at whole ticks t seconds later.
// clang-format on
//
// Ticks are lazy, as in Dropwizard (no thread): the ticks whose boundary time
// has passed are applied when the meter is next read or reported to.
// Boundaries are start + k * 5 s; an interval is (boundary - 5 s, boundary],
// and its tick is applied once the clock is strictly past the boundary.
// (Dropwizard agrees except for a read landing exactly on the second or a later
// boundary of a multi-tick catch-up, a zero-measure difference.)
//
// The count comes from reports of its running total, which need not be an
// integer: Report(at, total) says the total reached `total` at `at`, having
// grown linearly since the previous report (a continuous drain: a bus
// dispatching at a steady rate between two observations). Mark(n) is a step
// now (Dropwizard's mark(n)); two reports at one instant make a step too. The
// count at any instant is the total rounded down, a total within 1e-6 below an
// integer counting as that integer (CapacityModel's tolerance for the bus), so
// each tick's uncounted is the count at its boundary minus the count at the
// previous boundary: events are attributed to the interval in which they
// happened. State is O(1) whatever the time between reads.
//
// Thread-safety: thread-compatible. KillBillSim holds its mutex around calls.
#pragma once

#include <chrono>
#include <cstdint>

#include "common/clock.h"

namespace bg::sim {

class EwmaMeter {
 public:
  static constexpr Clock::Duration kTickInterval = std::chrono::seconds(5);

  struct Rates {
    uint64_t count = 0;
    // Events per second.
    double mean_rate = 0;
    double m1_rate = 0;
    double m5_rate = 0;
    double m15_rate = 0;
  };

  // Starts at clock->Now() with a count of 0.
  explicit EwmaMeter(const Clock* clock);

  // `n` events now.
  void Mark(uint64_t n = 1);
  // The running total reached `total` at `at`, having grown linearly since the
  // previous report (from 0 at the start). `at` earlier than the previous
  // report counts as at it; a total below the previous one is taken as the
  // previous one (counts never fall).
  void Report(Clock::TimePoint at, double total);
  // Applies the ticks that have passed by now, the total having stayed at its
  // last report since it was made, and returns the count and rates.
  Rates Read();

  // The count as of the last report.
  uint64_t count() const { return CountOf(total_); }

 private:
  // One EWMA (Dropwizard's EWMA.tick()).
  struct Ewma {
    double alpha;
    double rate = 0;  // events/s
    bool initialized = false;
    void Tick(double instant_rate);
  };

  static uint64_t CountOf(double total);
  // Applies every tick whose boundary is strictly before `until`, reading the
  // total at each boundary on the line from the last report to (at, total).
  void TickBefore(Clock::TimePoint until, Clock::TimePoint at, double total);

  const Clock* const clock_;
  const Clock::TimePoint start_;
  // End of the interval the next tick closes.
  Clock::TimePoint next_tick_;
  // The last report.
  Clock::TimePoint reported_at_;
  double total_ = 0;
  // The count at the last applied tick.
  uint64_t counted_ = 0;
  Ewma m1_;
  Ewma m5_;
  Ewma m15_;
};

}  // namespace bg::sim
