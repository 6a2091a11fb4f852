#include "bench/loadgen/latency_stats.h"

#include <algorithm>
#include <cmath>

namespace bg::loadgen {

void LatencyStats::Add(std::chrono::microseconds latency) {
  const int64_t us = std::max<int64_t>(0, latency.count());
  if (!samples_.empty() && us < samples_.back()) sorted_ = false;
  samples_.push_back(us);
  sum_us_ += us;
}

void LatencyStats::SortIfNeeded() const {
  if (sorted_) return;
  std::sort(samples_.begin(), samples_.end());
  sorted_ = true;
}

double LatencyStats::MeanMs() const {
  if (samples_.empty()) return 0;
  return static_cast<double>(sum_us_) / static_cast<double>(samples_.size()) /
         1000.0;
}

double LatencyStats::PercentileMs(double p) const {
  if (samples_.empty()) return 0;
  SortIfNeeded();
  p = std::clamp(p, 0.0, 100.0);
  const double n = static_cast<double>(samples_.size());
  // Nearest rank: ceil(p/100 * n), at least 1.
  int64_t rank = static_cast<int64_t>(std::ceil(p / 100.0 * n - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(samples_.size()));
  return static_cast<double>(samples_[rank - 1]) / 1000.0;
}

LatencySummary Summarize(const LatencyStats& stats) {
  LatencySummary s;
  s.count = stats.count();
  s.avg_ms = stats.MeanMs();
  s.p50_ms = stats.PercentileMs(50);
  s.p95_ms = stats.PercentileMs(95);
  s.p99_ms = stats.PercentileMs(99);
  s.max_ms = stats.MaxMs();
  return s;
}

}  // namespace bg::loadgen
