// TokenBucket: paces one of Kill Bill's budgets. The gateway runs two: one
// token = one main-bus event (rate set by the RateController) and one token =
// one Kill Bill HTTP call (a fixed rate). Tokens refill continuously at `rate`
// per second up to `burst`.
//
// The bucket starts full. Time comes from the injected Clock only; the
// arithmetic is exact to the nanosecond under a FakeClock: after
// `TimeUntilAvailable(n)` has elapsed, `TryAcquire(n)` succeeds (a 1e-11 token
// tolerance absorbs floating-point rounding).
//
// The rate is changed at run time through SetRate() (the owner applies the
// RateController's rate); tokens earned so far at the old rate are kept, so a
// rate change never creates or loses tokens. SetBurst() changes the depth the
// same way (a configuration reload): tokens above the new depth are dropped.
//
// Thread-safety: every method is safe to call concurrently (internal
// absl::Mutex).
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace bg::flow {

class TokenBucket {
 public:
  // `rate_per_s` >= 0 tokens per second (0 = no refill), `burst` >= 1 tokens.
  TokenBucket(Clock* clock, double rate_per_s, double burst);

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes `n` tokens if all of them are available now; otherwise takes none.
  bool TryAcquire(double n = 1);

  // Gives back tokens taken by TryAcquire but not used (e.g. the job was
  // cancelled between acquiring and calling). Never fills past `burst`.
  void Refund(double n);

  // Time until `n` tokens are available (zero if they are now).
  // Clock::Duration::max() when they never will be: `n` > burst, or rate 0 with
  // too few tokens.
  Clock::Duration TimeUntilAvailable(double n = 1);

  // Changes the refill rate from now on; tokens accrued until now at the old
  // rate are kept.
  void SetRate(double rate_per_s);

  // Changes the bucket depth (>= 1) from now on; tokens accrued until now are
  // kept up to the new depth.
  void SetBurst(double burst);

  double rate() const;
  double burst() const;
  // Tokens available now (for metrics and the rate controller's "bucket empty"
  // demand cue).
  double Available();

 private:
  void RefillLocked(Clock::TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  mutable absl::Mutex mu_;
  double burst_ ABSL_GUARDED_BY(mu_);
  double rate_ ABSL_GUARDED_BY(mu_);
  double tokens_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint last_refill_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::flow
