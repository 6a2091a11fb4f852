// CallGate: what every Kill Bill call of a running job passes through.
//
// At dispatch, TryTake() takes the job's declared Cost from both budgets (the
// bus-event bucket the rate controller paces, and the API-call bucket) and a
// circuit-breaker permit, all or nothing. Run() then runs the job's work with a
// KillBillCalls that, around each Kill Bill call:
//   * spends what was prepaid, and waits (through the Clock, never past the
//     job's deadline) for tokens of calls nobody foresaw: a lookup after 409,
//     a retry;
//   * deposits into the retry budget once per job (its first attempt), and
//     asks policy + budget before any retry;
//   * feeds each outcome to the metrics and the rate controller (latency,
//     failure, and the bus events a successful call posted);
// and when the work is done feeds the breaker once with the job's outcome, or,
// if the job made no Kill Bill call at all, hands its permit back (a half-open
// probe included) together with every token it did not spend.
//
// Thread-safety: TryTake/Run may be called from any thread; the parts it
// drives are internally synchronized. No thread of its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "common/clock.h"
#include "dispatch/job.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/retry_policy.h"
#include "flow/token_bucket.h"
#include "metrics/gateway_metrics.h"

namespace bg::dispatch {

class CallGate {
 public:
  // The parts a call passes through; owned by the caller (FlowControl).
  struct Parts {
    flow::TokenBucket* bus = nullptr;  // main-bus events per second
    flow::TokenBucket* api = nullptr;  // Kill Bill calls per second
    flow::CircuitBreaker* breaker = nullptr;
    flow::RateController* controller = nullptr;
    flow::RetryBudget* retry_budget = nullptr;
    metrics::GatewayMetrics* metrics = nullptr;
  };

  // What a job took at dispatch.
  struct Ticket {
    flow::CircuitBreaker::Permit permit;
    Cost prepaid;
  };
  enum class Refusal { kNone, kNoBusTokens, kNoApiTokens, kBreaker };

  // What the job's Kill Bill calls came to.
  struct Outcome {
    int calls = 0;
    bool failed = false;  // at least one call said Kill Bill is struggling
    Clock::Duration slowest{0};
    Clock::Duration total{0};
  };

  CallGate(Clock* clock, Parts parts, flow::RetryOptions retry);
  CallGate(const CallGate&) = delete;
  CallGate& operator=(const CallGate&) = delete;

  // Takes `cost` (each part capped at its bucket's burst, so no job waits
  // forever) and a breaker permit, or nothing; `why` says what was missing.
  // `api_reserve` calls must stay in the API bucket afterwards (what a write
  // waiting for bus tokens will need), as far as the burst allows.
  std::optional<Ticket> TryTake(const Cost& cost, Refusal* why,
                                int api_reserve = 0);
  // Time until both buckets could give `cost` (capped as in TryTake), with
  // `api_reserve` left over.
  Clock::Duration TimeUntilAffordable(const Cost& cost, int api_reserve = 0);

  // Runs `job.run` on the calling thread (see the file comment).
  Outcome Run(Job& job, Ticket ticket);

  // Shutdown, once its grace is over: every later Kill Bill call of a running
  // job is refused UNAVAILABLE before it is sent, and no call is retried, so
  // each job ends with the call it is making now.
  void Cut() { cut_.store(true, std::memory_order_release); }

  // Kill Bill answers that say it is struggling, as opposed to "your request
  // was wrong": what the breaker and the rate controller count as failures.
  static bool IsKillBillFailure(const absl::Status& status);

 private:
  class JobCalls;
  Cost Capped(const Cost& cost) const;
  // A seed for one job's retry jitter: distinct per job and per process.
  uint64_t NextSeed();

  Clock* const clock_;
  const Parts parts_;
  const flow::RetryOptions retry_;
  // Seeded from the OS once, so replicas do not back off in lockstep; then a
  // lone counter (atomic: read-modify-write from any worker).
  const uint64_t seed_base_;
  std::atomic<uint64_t> seeds_{0};
  // Set once by Cut(), read before each call by every worker: a lone flag.
  std::atomic<bool> cut_{false};
};

}  // namespace bg::dispatch
