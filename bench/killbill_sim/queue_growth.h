// QueueGrowthDetector: Kill Bill's queue-growth healthcheck signal, computed
// exactly as KillbillQueuesHealthcheck does it (see /work/shared/KILLBILL.md,
// "How the queue-growth signal is computed").
//
// Every call of the healthcheck adds one sample per queue:
//   1. y = ready entries now;
//   2. exponential smoothing: s = y for the first sample, then s = alpha*y +
//   (1-alpha)*s;
//   3. ordinary least squares with intercept over the last `window` points
//   (t_ms, s), the
//      oldest point dropped before the newest is added;
//   4. slope reported as 0 until `window` points exist, then
//      slope = round_half_up(ols_slope_per_ms * 100, 2 decimals);
//   5. growing when slope > threshold (0.1).
// The slope is a growth rate: 0.51 means 0.0051 entries/ms, about 5.1
// entries/s.
//
// The window is a parameter so that Kill Bill's own unit test vector (window 3)
// can be replayed exactly; the healthcheck uses 60.
//
// Thread-safety: thread-compatible (no internal locking); the owner serialises
// calls.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

namespace bg::sim {

struct QueueGrowthOptions {
  // Points in the regression window. Kill Bill: 60. Larger = slower, steadier
  // signal.
  int window = 60;
  // Weight of the newest sample in the exponential smoothing. Kill Bill: 0.3.
  double alpha = 0.3;
  // A queue is "growing" when its rounded slope is strictly above this. Kill
  // Bill: 0.1 (about 1 entry/s of backlog growth).
  double growing_threshold = 0.1;
};

class QueueGrowthDetector {
 public:
  struct Result {
    bool growing = false;
    // Rounded slope as Kill Bill prints it (0 until the window is full).
    double slope = 0.0;
    // The smoothed value after this sample.
    double smoothed = 0.0;
  };

  explicit QueueGrowthDetector(const QueueGrowthOptions& options = {})
      : options_(options) {}

  // Adds one sample: `ready_entries` observed at `timestamp_ms` (any monotonic
  // origin).
  Result Sample(int64_t timestamp_ms, double ready_entries);

  // The result of the last Sample() (all zero before the first).
  const Result& last() const { return last_; }
  int points() const { return static_cast<int>(points_.size()); }

 private:
  QueueGrowthOptions options_;
  bool has_smoothed_ = false;
  double smoothed_ = 0.0;
  std::deque<std::pair<int64_t, double>> points_;  // (timestamp_ms, smoothed)
  Result last_;
};

// BigDecimal.setScale(decimals, HALF_UP) on a double (ties away from zero).
double RoundHalfUp(double value, int decimals);

// Java's Double.toString: shortest digits that round-trip, at least one digit
// after the point ("0.5", "3.0", "0.51"), scientific "1.0E7" form outside
// [1e-3, 1e7).
std::string JavaDoubleToString(double value);

}  // namespace bg::sim
