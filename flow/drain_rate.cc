#include "flow/drain_rate.h"

#include <algorithm>

namespace bg::flow {
namespace {
constexpr double kMinRate = 1e-3;  // jobs/s; keeps divisions finite
}

DrainRate::DrainRate(Clock* clock, Options options, double prior_per_s)
    : clock_(clock),
      opt_(options),
      width_(std::max<Clock::Duration>(options.window / kBuckets,
                                       Clock::Duration(1))),
      prior_(std::max(prior_per_s, kMinRate)) {}

void DrainRate::SetPrior(double per_s) { prior_ = std::max(per_s, kMinRate); }

DrainRate::Bucket& DrainRate::At(int64_t index) {
  Bucket& b = buckets_[static_cast<size_t>(index % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, Clock::Duration(0)};
  return b;
}

// Adds the busy time since busy_since_ to the buckets it falls in (older parts
// than the window are skipped).
void DrainRate::FlushBusy(Clock::TimePoint now) {
  if (!busy_ || now <= busy_since_) return;
  Clock::TimePoint t = std::max(busy_since_, now - opt_.window);
  while (t < now) {
    const int64_t index = t.time_since_epoch() / width_;
    const Clock::TimePoint bucket_end = Clock::TimePoint((index + 1) * width_);
    const Clock::TimePoint end = std::min(bucket_end, now);
    At(index).busy += end - t;
    t = end;
  }
  busy_since_ = now;
}

void DrainRate::SetBusy(bool busy) {
  const Clock::TimePoint now = clock_->Now();
  FlushBusy(now);
  if (busy && !busy_) busy_since_ = now;
  busy_ = busy;
}

void DrainRate::RecordDrained(int n) {
  const Clock::TimePoint now = clock_->Now();
  FlushBusy(now);
  At(now.time_since_epoch() / width_).drained += n;
}

double DrainRate::PerSecond() {
  const Clock::TimePoint now = clock_->Now();
  FlushBusy(now);
  const int64_t current = now.time_since_epoch() / width_;
  int64_t drained = 0;
  Clock::Duration busy(0);
  for (const Bucket& b : buckets_) {
    if (b.index < 0 || current - b.index >= kBuckets) continue;
    drained += b.drained;
    busy += b.busy;
  }
  const double busy_s = ToSeconds(busy);
  const double min_s = ToSeconds(opt_.min_busy);
  const double rate =
      (static_cast<double>(drained) + prior_ * std::max(0.0, min_s - busy_s)) /
      std::max(busy_s, min_s);
  return std::max(rate, kMinRate);
}

}  // namespace bg::flow
