#include "flow/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace bg::flow {
namespace {
// Rounding slack: n tokens count as available when within 1e-11 of n. Far below
// the tokens one nanosecond earns at any sane rate (3e-9 at 3/s), far above
// double rounding.
constexpr double kEpsilon = 1e-11;
}  // namespace

TokenBucket::TokenBucket(Clock* clock, double rate_per_s, double burst)
    : clock_(clock),
      burst_(std::max(burst, 1.0)),
      rate_(std::max(rate_per_s, 0.0)),
      tokens_(std::max(burst, 1.0)),
      last_refill_(clock->Now()) {}

void TokenBucket::RefillLocked(Clock::TimePoint now) {
  if (now <= last_refill_) return;
  const auto elapsed_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_refill_)
          .count();
  tokens_ = std::min(burst_,
                     tokens_ + rate_ * static_cast<double>(elapsed_ns) * 1e-9);
  last_refill_ = now;
}

bool TokenBucket::TryAcquire(double n) {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  if (tokens_ + kEpsilon < n) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

void TokenBucket::Refund(double n) {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  tokens_ = std::min(burst_, tokens_ + std::max(n, 0.0));
}

Clock::Duration TokenBucket::TimeUntilAvailable(double n) {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  if (tokens_ + kEpsilon >= n) return Clock::Duration::zero();
  if (n > burst_ + kEpsilon || rate_ <= 0) return Clock::Duration::max();
  const double ns = std::ceil((n - tokens_) / rate_ * 1e9);
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::nanoseconds(static_cast<int64_t>(ns)));
}

void TokenBucket::SetRate(double rate_per_s) {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  rate_ = std::max(rate_per_s, 0.0);
}

void TokenBucket::SetBurst(double burst) {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  burst_ = std::max(burst, 1.0);
  tokens_ = std::min(tokens_, burst_);
}

double TokenBucket::burst() const {
  absl::MutexLock lock(&mu_);
  return burst_;
}

double TokenBucket::rate() const {
  absl::MutexLock lock(&mu_);
  return rate_;
}

double TokenBucket::Available() {
  absl::MutexLock lock(&mu_);
  RefillLocked(clock_->Now());
  return tokens_;
}

}  // namespace bg::flow
