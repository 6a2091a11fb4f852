// CircuitBreaker: stops calls to Kill Bill when it is down or drowning, probes
// it back.
//
// States: kClosed (calls flow) → kOpen (no calls; rejected fast with a retry
// pushback) → kHalfOpen (a few probe calls) → kClosed, or back to kOpen with a
// doubled open duration.
//
// What opens it (from kClosed):
//   * the healthcheck (OnHealth): unreachable, or unhealthy for a reason other
//   than growing
//     queues (e.g. "Out of rotation"), for `health_failures_to_open` polls in a
//     row; or a queue growth number at or above `growth_open_threshold` (a
//     runaway backlog). Moderate growth does NOT open it: the RateController
//     subtracts the growth from the rate. Opening on every "growing" poll would
//     stop all traffic for as long as the healthcheck's 60-sample regression
//     lags (about a minute) although the backlog started shrinking at the first
//     second of silence.
//   * call outcomes over a sliding time window (`window`, at least `min_calls`
//   calls):
//     failure rate >= `failure_rate_threshold`, or rate of calls slower than
//     `slow_call_threshold` >= `slow_call_rate_threshold`.
// kOpen → kHalfOpen when the open duration has passed (checked lazily on
// Allow/Tick/state). kHalfOpen admits `half_open_probes` probe calls. It closes
// when all of them succeeded AND the latest health signal is green (no reason
// to open); if the probes succeeded but health is still red it reopens for the
// same (not doubled) duration and probes again later. A failed probe, or one
// not reported within `probe_timeout` (a hanging call must not wedge the
// breaker), reopens it with the open duration doubled, up to
// `max_open_duration`. A probe slower than `slow_call_threshold` counts as
// failed. Closing resets the open duration and the outcome window.
//
// Outcomes are reported with the Permit that Allow() returned. A permit carries
// the epoch (state generation) it was issued in: results of calls admitted
// before the last transition only feed the window if the breaker is still in
// that same closed epoch, and late probe answers after a timeout are ignored.
//
// Thread-safety: all methods are safe to call concurrently (internal
// absl::Mutex). The transition callback runs after the lock is released, on the
// thread that caused the transition; it may call back into the breaker.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "flow/windowed_counter.h"

namespace bg::flow {

class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
  // Why a transition happened (a bounded metric label).
  enum class Reason {
    kFailureRate,
    kSlowCallRate,
    kHealth,       // unreachable / unhealthy / runaway growth
    kOpenElapsed,  // open → half-open
    kProbeFailed,
    kProbeTimeout,
    kProbesSucceeded,  // half-open → closed
    kHealthRecovered   // open → half-open early: the healthcheck turned green
                       // again
  };

  // The `breaker.*` YAML keys set the fields of the same name (ranges in
  // config/gateway.yaml); health_failures_to_open and growth_open_threshold
  // have no key. These defaults are the gateway's: config/ has no other.
  struct Options {
    // Failure share within `window` at or above which the breaker opens. Lower
    // trips sooner on a partial outage, but a few 5xx at low volume can then
    // stop all traffic.
    double failure_rate_threshold = 0.5;
    // A call at least this slow counts as slow. Should sit well above Kill
    // Bill's normal latency (tens of ms) but under the gRPC deadline; the
    // RateController already reacts to milder latency rises, so this is the
    // last line.
    Clock::Duration slow_call_threshold = std::chrono::seconds(5);
    // Slow share within `window` at or above which the breaker opens.
    double slow_call_rate_threshold = 0.8;
    // Length of the sliding window over call outcomes. Longer is steadier but
    // slower.
    Clock::Duration window = std::chrono::seconds(10);
    // No rate-based trip below this many calls in the window (no verdict on 2
    // calls).
    int min_calls = 10;
    // First open duration; doubled after each failed half-open round.
    Clock::Duration open_duration = std::chrono::seconds(2);
    // Cap of the doubling: how long Kill Bill can go unprobed at worst.
    Clock::Duration max_open_duration = std::chrono::seconds(60);
    // Probe calls admitted in half-open; all must succeed to close. More probes
    // = more confidence, more load on a possibly sick Kill Bill.
    int half_open_probes = 3;
    // A probe not reported within this time counts as failed. Must exceed the
    // Kill Bill client's own timeout, or slow-but-successful probes are counted
    // as failures.
    Clock::Duration probe_timeout = std::chrono::seconds(10);
    // Consecutive unreachable/unhealthy healthcheck polls that open the
    // breaker. 1 reacts in one poll interval; 2 ignores a single lost poll.
    int health_failures_to_open = 2;
    // Queue growth number (as printed by Kill Bill: 0.51 ≈ 5.1 entries/s) at or
    // above which the breaker opens. <= 0 disables. Default 5.0 = 50 entries/s:
    // far beyond what the rate controller leaves, i.e. something else is
    // flooding Kill Bill's bus.
    double growth_open_threshold = 5.0;
  };

  // One healthcheck poll as parsed by the health monitor.
  struct Health {
    bool reachable = true;  // false: connect error, timeout, unparseable body
    // All checks except the queue check healthy (e.g. false when "Out of
    // rotation").
    bool healthy_except_queues = true;
    bool queues_growing = false;  // any queue growing (slope > 0.1)
    double growth = 0;  // largest growth number printed (0 when not growing)
  };

  // Result of Allow(). Pass it back to OnSuccess/OnFailure.
  struct Permit {
    bool allowed = false;
    bool is_probe = false;
    uint64_t epoch = 0;
    Clock::TimePoint issued_at;
  };

  using TransitionCallback =
      std::function<void(State from, State to, Reason why)>;

  CircuitBreaker(Clock* clock, Options options);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Set once before use (not synchronized with concurrent transitions).
  void SetTransitionCallback(TransitionCallback cb);

  // Replaces the options from now on (a configuration reload); the state is
  // kept. Outcomes already in the window count against the new thresholds; a
  // new `window` length starts an empty window. A current open period is not
  // cut short: the next one uses the new durations, and the doubled duration
  // is brought within [open_duration, max_open_duration]. Probes already
  // issued stay outstanding.
  void SetOptions(const Options& options);
  Options options() const;

  // May a Kill Bill call start now? Also moves open → half-open when due and
  // times out hanging probes.
  Permit Allow();
  // Outcome of a call admitted by `permit`; `latency` from request start to
  // answer.
  void OnSuccess(const Permit& permit, Clock::Duration latency);
  void OnFailure(const Permit& permit, Clock::Duration latency);
  // The permit was not used: its job ended before any Kill Bill call (deadline
  // passed, caller gone, no token in time). A half-open probe is handed back
  // so another job can probe at once; without this it would stay outstanding
  // until `probe_timeout` and reopen the breaker with a doubled duration.
  void Release(const Permit& permit);
  // One healthcheck poll.
  void OnHealth(const Health& health);
  // Time-driven transitions (open elapsed, probe timeout) without a call;
  // idempotent.
  void Tick();

  State state();
  // Zero when closed or a probe slot is free; time until the breaker lets a
  // call through otherwise (for retry pushback).
  Clock::Duration TimeUntilNextProbe();
  // Transitions into `to` since construction (for metrics).
  uint64_t transitions(State to) const;
  // Current open duration (grows with repeated failed probes).
  Clock::Duration current_open_duration() const;

  static const char* StateName(State s);
  static const char* ReasonName(Reason r);

 private:
  // Call outcomes counted over the sliding `window`.
  struct Outcomes {
    int64_t calls = 0;
    int64_t failures = 0;
    int64_t slow = 0;
    Outcomes& operator+=(const Outcomes& o) {
      calls += o.calls;
      failures += o.failures;
      slow += o.slow;
      return *this;
    }
  };
  struct Transition {
    State from, to;
    Reason why;
  };

  void OnResult(const Permit& permit, Clock::Duration latency, bool success);
  void AdvanceLocked(Clock::TimePoint now, std::vector<Transition>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TransitionLocked(State to, Reason why, Clock::TimePoint now,
                        std::vector<Transition>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HealthGreenLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(const std::vector<Transition>& ts);

  Clock* const clock_;
  TransitionCallback callback_;

  mutable absl::Mutex mu_;
  Options opt_ ABSL_GUARDED_BY(mu_);
  State state_ ABSL_GUARDED_BY(mu_) = State::kClosed;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 1;
  WindowedCounter<Outcomes> outcomes_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint open_until_ ABSL_GUARDED_BY(mu_);
  Clock::Duration open_duration_ ABSL_GUARDED_BY(mu_);
  int probes_issued_ ABSL_GUARDED_BY(mu_) = 0;
  int probes_succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Clock::TimePoint> outstanding_probes_ ABSL_GUARDED_BY(mu_);
  int health_failures_ ABSL_GUARDED_BY(mu_) = 0;
  bool health_red_ ABSL_GUARDED_BY(mu_) = false;
  std::array<uint64_t, 3> transitions_ ABSL_GUARDED_BY(mu_) = {0, 0, 0};
};

}  // namespace bg::flow
