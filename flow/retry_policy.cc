#include "flow/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace bg::flow {

RetryPolicy::RetryPolicy(const RetryOptions& options, uint64_t seed)
    : opt_(options), rng_(seed), previous_(options.initial_backoff) {}

std::optional<Clock::Duration> RetryPolicy::NextDelay() {
  if (attempt_ >= opt_.max_attempts) return std::nullopt;
  const double initial = ToSeconds(opt_.initial_backoff);
  const double cap = ToSeconds(opt_.max_backoff);
  double delay = 0;
  if (opt_.jitter == RetryOptions::Jitter::kFull) {
    // 2^(retry-1), bounded before the multiplication can overflow.
    const double ceiling =
        std::min(cap, initial * std::ldexp(1.0, std::min(attempt_ - 1, 60)));
    delay = std::uniform_real_distribution<double>(0, ceiling)(rng_);
  } else {
    const double hi = std::max(initial, 3 * ToSeconds(previous_));
    delay = std::min(cap,
                     std::uniform_real_distribution<double>(initial, hi)(rng_));
  }
  ++attempt_;
  previous_ = FromSeconds(delay);
  return previous_;
}

RetryBudget::RetryBudget(Clock* clock, const RetryOptions& options)
    : clock_(clock),
      ratio_(options.budget_ratio),
      min_per_window_(options.budget_min_per_s *
                      ToSeconds(options.budget_window)),
      bucket_width_(std::max<Clock::Duration>(options.budget_window / kBuckets,
                                              Clock::Duration(1))) {}

RetryBudget::Bucket& RetryBudget::CurrentLocked(Clock::TimePoint now) {
  const int64_t index = now.time_since_epoch() / bucket_width_;
  Bucket& b = buckets_[static_cast<size_t>(index % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  return b;
}

double RetryBudget::AvailableLocked(Clock::TimePoint now) {
  const int64_t current = now.time_since_epoch() / bucket_width_;
  int64_t calls = 0, retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.index < 0 || current - b.index >= kBuckets) continue;
    calls += b.calls;
    retries += b.retries;
  }
  return ratio_ * static_cast<double>(calls) + min_per_window_ -
         static_cast<double>(retries);
}

void RetryBudget::RecordCall() {
  absl::MutexLock lock(&mu_);
  ++CurrentLocked(clock_->Now()).calls;
}

bool RetryBudget::TryAcquireRetry() {
  absl::MutexLock lock(&mu_);
  const Clock::TimePoint now = clock_->Now();
  if (AvailableLocked(now) < 1.0 - 1e-9) return false;
  ++CurrentLocked(now).retries;
  return true;
}

double RetryBudget::Available() {
  absl::MutexLock lock(&mu_);
  return std::max(0.0, AvailableLocked(clock_->Now()));
}

}  // namespace bg::flow
