// Retry of idempotent Kill Bill calls: RetryPolicy (how long to wait before the
// next attempt, how many attempts) and RetryBudget (how many retries the whole
// gateway may make).
//
// Only idempotent calls are retried (a create with an external key: 409/3000
// after a retry means the first attempt landed). A retry must never become load
// amplification when Kill Bill is struggling: every retry needs both a backoff
// delay and a budget token.
//
// Thread-safety: RetryPolicy is a small value type owned by one call sequence
// (not synchronized; copy one per call). RetryBudget is shared and internally
// synchronized.
#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "flow/windowed_counter.h"

namespace bg::flow {

// The `retry.*` YAML keys set max_attempts, initial_backoff, max_backoff and
// budget_ratio (ranges in config/gateway.yaml); jitter, budget_min_per_s and
// budget_window have no key. These defaults are the gateway's: config/ has no
// other.
struct RetryOptions {
  enum class Jitter {
    // delay = uniform(0, min(max_backoff, initial_backoff * 2^(retry-1))).
    // Spreads
    // synchronized clients best (AWS "full jitter"); may retry almost at once.
    kFull,
    // delay = min(max_backoff, uniform(initial_backoff, 3 * previous delay)).
    // Never shorter
    // than initial_backoff; grows more smoothly.
    kDecorrelated,
  };
  // Total attempts including the first; 1 disables retries. More attempts raise
  // success under short blips but add latency and load.
  int max_attempts = 3;
  // Scale of the first retry delay.
  Clock::Duration initial_backoff = std::chrono::milliseconds(100);
  // Upper bound of any delay; keep well below the gRPC deadline (30 s for
  // registrations).
  Clock::Duration max_backoff = std::chrono::seconds(2);
  Jitter jitter = Jitter::kFull;
  // Retries allowed as a share of recent first attempts (0.1 = at most +10 %
  // load).
  double budget_ratio = 0.1;
  // Retries always allowed per second on top of the ratio, so a quiet gateway
  // can still retry a lone failure. Bounds the amplification at low volume.
  double budget_min_per_s = 1.0;
  // Sliding window the budget counts calls and retries over.
  Clock::Duration budget_window = std::chrono::seconds(10);
};

class RetryPolicy {
 public:
  // `seed` makes the jitter reproducible in tests; production passes a random
  // seed.
  RetryPolicy(const RetryOptions& options, uint64_t seed);

  // Delay before the next attempt, or nullopt when `max_attempts` are used up.
  // Call once per failed attempt.
  std::optional<Clock::Duration> NextDelay();
  // Attempts made so far as counted by NextDelay (1 before any retry).
  int attempts() const { return attempt_; }

 private:
  RetryOptions opt_;
  std::mt19937_64 rng_;
  int attempt_ = 1;
  Clock::Duration previous_;
};

class RetryBudget {
 public:
  RetryBudget(Clock* clock, const RetryOptions& options);
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // A first attempt was made (deposits `budget_ratio` of a retry).
  void RecordCall();
  // Takes one retry from the budget; false means: do not retry, fail the call
  // now.
  bool TryAcquireRetry();
  // Retries still available now (for metrics/tests).
  double Available();

 private:
  // First attempts and retries counted over `budget_window`.
  struct Usage {
    int64_t calls = 0;
    int64_t retries = 0;
    Usage& operator+=(const Usage& o) {
      calls += o.calls;
      retries += o.retries;
      return *this;
    }
  };
  double AvailableLocked(Clock::TimePoint now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const double ratio_;
  const double min_per_window_;
  absl::Mutex mu_;
  WindowedCounter<Usage> usage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::flow
