// LatencyStats: a set of latency samples and the summary numbers the reports
// quote (average, nearest-rank percentiles, maximum).
//
// Keeps every sample (8 bytes each): a bounded run of 100k calls costs under 1
// MB, and exact percentiles beat a histogram's bucket error at the 10 ms
// rejection target.
//
// Thread-safety: not thread-safe; the owner (RunRecorder) serialises access.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace bg::loadgen {

class LatencyStats {
 public:
  void Add(std::chrono::microseconds latency);

  int64_t count() const { return static_cast<int64_t>(samples_.size()); }
  bool empty() const { return samples_.empty(); }

  // Arithmetic mean in milliseconds; 0 when empty.
  double MeanMs() const;
  // Nearest-rank percentile in milliseconds, `p` in [0, 100]: the smallest
  // sample such that at least p % of the samples are <= it. 0 when empty.
  double PercentileMs(double p) const;
  double MaxMs() const { return PercentileMs(100); }

 private:
  void SortIfNeeded() const;

  // Mutable so percentile queries can sort lazily; sorting does not change the
  // set.
  mutable std::vector<int64_t> samples_;  // microseconds
  mutable bool sorted_ = true;
  int64_t sum_us_ = 0;
};

// The numbers of one LatencyStats, as printed.
struct LatencySummary {
  int64_t count = 0;
  double avg_ms = 0;
  double p50_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

LatencySummary Summarize(const LatencyStats& stats);

}  // namespace bg::loadgen
