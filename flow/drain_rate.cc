#include "flow/drain_rate.h"

#include <algorithm>

namespace bg::flow {
namespace {
constexpr double kMinRate = 1e-3;  // jobs/s; keeps divisions finite
}

DrainRate::DrainRate(Clock* clock, Options options, double prior_per_s)
    : clock_(clock),
      opt_(options),
      prior_(std::max(prior_per_s, kMinRate)),
      activity_(options.window) {}

void DrainRate::SetPrior(double per_s) { prior_ = std::max(per_s, kMinRate); }

// Adds the busy time since busy_since_ to the buckets it falls in (older parts
// than the window are skipped).
void DrainRate::FlushBusy(Clock::TimePoint now) {
  if (!busy_ || now <= busy_since_) return;
  activity_.AddSpan(busy_since_, now, &Activity::busy);
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
  activity_.Add(now, {n, Clock::Duration(0)});
}

double DrainRate::PerSecond() {
  const Clock::TimePoint now = clock_->Now();
  FlushBusy(now);
  const Activity sum = activity_.Sum(now);
  const double busy_s = ToSeconds(sum.busy);
  const double min_s = ToSeconds(opt_.min_busy);
  const double rate = (static_cast<double>(sum.drained) +
                       prior_ * std::max(0.0, min_s - busy_s)) /
                      std::max(busy_s, min_s);
  return std::max(rate, kMinRate);
}

}  // namespace bg::flow
