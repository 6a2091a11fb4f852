// QueueGrowthDetector: the number Kill Bill's queue healthcheck
// (KillbillQueuesHealthcheck, Kill Bill 0.24) reports for a queue, and whether
// it calls the queue "growing". It is Kill Bill's contract, so it lives beside
// the client: killbill-sim serves it, and a model of Kill Bill can replay it.
//
// Kill Bill takes one sample per queue on every GET /1.0/healthcheck, whoever
// makes the call (there is no timer):
//   1. y = the queue's ready entries now;
//   2. exponential smoothing: s = y on the first sample, then
//      s = alpha * y + (1 - alpha) * s;
//   3. an ordinary least squares line with intercept through the last `window`
//      points (t_ms, s); the oldest point leaves before the newest enters;
//   4. until `window` points exist the slope is reported as 0; then
//      slope = slope_per_ms * 100 rounded half up to 2 decimals;
//   5. the queue is growing when slope > growing_threshold.
// So the printed number is a rate, not a ratio: 0.51 is 0.0051 entries/ms,
// about 5.1 entries/s of backlog growth; the threshold 0.1 is about 1 entry/s.
// The window covers `window` healthcheck calls, so its length in seconds is
// set by how often all callers together poll.
//
// Cost: Sample() is O(1) amortised. The detector keeps a ring of the last
// `window` points and running sums of x, x^2, y and xy, so adding a point and
// dropping the oldest are a few additions. To stop rounding error from
// accumulating in those sums, every `window` samples they are recomputed from
// the ring around a new origin (the oldest point): x and y are then offsets
// within the window, small numbers whatever the timestamps' epoch or the
// backlog's size. Copying a detector copies the ring (window points, one
// allocation). The raw slope stays within 1e-9 entries/s of a two-pass
// regression over the same points (tests/sim_model_test.cc checks it).
//
// The window is a parameter so that Kill Bill's own unit test vector (window
// 3) can be replayed exactly; the healthcheck uses 60.
//
// Thread-safety: thread-compatible (no internal locking); the owner serialises
// calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bg::killbill {

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
    // slope > growing_threshold.
    bool growing = false;
    // The number Kill Bill prints: slope_per_ms * 100 rounded half up to 2
    // decimals. 0 until the window is full.
    double slope = 0.0;
    // The same OLS slope unrounded, in entries per second (slope_per_ms *
    // 1000). 0 until the window is full, and when every point in the window
    // has the same timestamp.
    double raw_slope_per_s = 0.0;
    // The smoothed value after this sample.
    double smoothed = 0.0;
  };

  explicit QueueGrowthDetector(const QueueGrowthOptions& options = {});

  // Adds one sample: `ready_entries` observed at `timestamp_ms` (any monotonic
  // origin, epoch milliseconds included).
  Result Sample(int64_t timestamp_ms, double ready_entries);

  // The result of the last Sample() (all zero before the first).
  const Result& last() const { return last_; }
  // Points in the window (at most options().window).
  int points() const { return count_; }
  const QueueGrowthOptions& options() const { return options_; }

 private:
  struct Point {
    int64_t t_ms;
    double smoothed;
  };

  // Recomputes the sums from the ring around the oldest point.
  void Rebase();

  QueueGrowthOptions options_;
  // max(window, 1) slots. Until full, points fill it in order; then
  // ring_[oldest_] is the oldest point and the next to be overwritten.
  std::vector<Point> ring_;
  int oldest_ = 0;
  int count_ = 0;
  // Samples since the sums were last recomputed from the ring.
  int since_rebase_ = 0;
  bool has_smoothed_ = false;
  double smoothed_ = 0.0;
  // Sums over the window of x = t_ms - origin_ms_ and y = smoothed - origin_y_
  // (an OLS slope does not change when either axis is shifted).
  int64_t origin_ms_ = 0;
  double origin_y_ = 0.0;
  double sum_x_ = 0.0;
  double sum_xx_ = 0.0;
  double sum_y_ = 0.0;
  double sum_xy_ = 0.0;
  Result last_;
};

// BigDecimal.setScale(decimals, HALF_UP) on a double (ties away from zero).
double RoundHalfUp(double value, int decimals);

// Java's Double.toString: shortest digits that round-trip, at least one digit
// after the point ("0.5", "3.0", "0.51"), scientific "1.0E7" form outside
// [1e-3, 1e7).
std::string JavaDoubleToString(double value);

}  // namespace bg::killbill
