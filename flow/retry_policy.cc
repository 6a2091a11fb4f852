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
      usage_(options.budget_window) {}

double RetryBudget::AvailableLocked(Clock::TimePoint now) {
  const Usage sum = usage_.Sum(now);
  return ratio_ * static_cast<double>(sum.calls) + min_per_window_ -
         static_cast<double>(sum.retries);
}

void RetryBudget::RecordCall() {
  absl::MutexLock lock(&mu_);
  usage_.Add(clock_->Now(), {1, 0});
}

bool RetryBudget::TryAcquireRetry() {
  absl::MutexLock lock(&mu_);
  const Clock::TimePoint now = clock_->Now();
  if (AvailableLocked(now) < 1.0 - 1e-9) return false;
  usage_.Add(now, {0, 1});
  return true;
}

double RetryBudget::Available() {
  absl::MutexLock lock(&mu_);
  return std::max(0.0, AvailableLocked(clock_->Now()));
}

}  // namespace bg::flow
