// FlowControl: the flow-control parts of flow/ wired together for one gateway
// process, with no thread of its own. The Dispatcher's threads drive it in
// production; a fake-clock simulation drives the very same object in tests.
//
// clang-format off
//   Submit(job) ──► MemoryGuard ── over queue.max_resident_mb: memory, at once
//                        │
//                        ▼
//                   AdmissionQueue of its lane ── rejected: answered at once
//                        │  (writes: jobs posting     with a reason and a
//                        │  bus events; reads)        retry pushback
//   TryStartNext() ──► CallGate::TryTake: the head write's Cost from the bus
//                        │  bucket (events/s, set by the RateController) and
//                        │  the API bucket (calls/s, fixed), plus a breaker
//                        │  permit; else, unless that write waits for API
//                        │  tokens, the head read's (API only); expired or
//                        ▼  cancelled jobs are answered
//   Run(started) ──► CallGate::Run: the job's Kill Bill calls; outcomes feed
//                        the breaker, the controller, the queue's latency
//   Tick() (every adjust_interval): controller → bucket rate x rate share,
//                        breaker tick, breaker state → queues, queue sweeps
// clang-format on
//
// Two budgets, two lanes: writes spend bus events and API calls, reads API
// calls only. Reads never wait behind writes held by the bus budget; writes
// go first on the API budget (a read takes API tokens only when the head
// write is not waiting for them), so a storm of reads cannot starve writes,
// and fills only the read lane's queue (each lane holds queue.capacity).
//
// The health monitor feeds breaker() and controller() from its own thread.
// Every Job is answered exactly once: by its run, or here (rejected at
// admission, dropped while queued, refused at shutdown).
//
// Thread-safety: every method may be called from any thread; Tick and
// TryStartNext are meant for one scheduler thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "dispatch/call_gate.h"
#include "dispatch/job.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/memory_guard.h"
#include "flow/rate_controller.h"
#include "flow/retry_policy.h"
#include "flow/token_bucket.h"
#include "metrics/gateway_metrics.h"

namespace bg::dispatch {

struct FlowOptions {
  flow::AdmissionOptions queue;
  flow::CircuitBreaker::Options breaker;
  flow::RateController::Options rate;
  flow::RetryOptions retry;
  // The memory budget at admission (queue.max_resident_mb; off by default).
  flow::MemoryGuard::Options memory;
  // Kill Bill's API budget, calls per second (reads included): a fixed
  // ceiling, since Kill Bill publishes no signal of its API capacity. The bus
  // budget (rate.*) binds writes long before it; this one keeps a storm of
  // reads, which post no bus event, from flooding Kill Bill's API.
  double api_calls_per_s = 200;
  // How often Tick() runs: the controller and breaker tick, the queue sweep.
  Clock::Duration adjust_interval = std::chrono::seconds(1);
};

class FlowControl {
 public:
  // `process`: how the memory guard reads resident memory (tests: a fake).
  FlowControl(
      Clock* clock, metrics::GatewayMetrics* metrics, FlowOptions options,
      flow::MemoryGuard::Process process = flow::MemoryGuard::Process::Own());
  FlowControl(const FlowControl&) = delete;
  FlowControl& operator=(const FlowControl&) = delete;

  // Admits `job` or answers it at once with a rejection. True if admitted.
  bool Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  struct Started {
    Job job;
    CallGate::Ticket ticket;
  };
  struct Next {
    std::optional<Started> started;
    // When nothing started although jobs wait: how long until the head job
    // might (its tokens, or the breaker's next probe). Zero otherwise.
    Clock::Duration retry_in{0};
  };
  // Takes the head job if its cost and a breaker permit are available; answers
  // the expired and cancelled jobs met on the way.
  Next TryStartNext();
  // Runs a started job on the calling thread.
  void Run(Started& started);

  // The periodic moves (see the file comment). Call every adjust_interval.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // This replica's share of the rate, in (0, 1]: with N live replicas on one
  // database each paces Kill Bill at rate / N. Takes effect at the next tick.
  void SetRateShare(double fraction);

  // A configuration reload, applied at once: the memory bound, the queues'
  // capacity, the
  // breaker's options, the rate controller's (RateController::SetOptions:
  // not its mode or signal), both buckets' depth (rate.burst) and the API
  // budget. Queued jobs and calls under way are kept. adjust_interval and the
  // queue fields without a key are not changed. options() stays as
  // constructed.
  void Reconfigure(const FlowOptions& options);

  // Refuses new jobs (shutting_down) from now on.
  void StopAdmitting();
  // Answers every queued job with UNAVAILABLE / shutting_down.
  void AnswerAllQueued();
  // Jobs still running make no further Kill Bill call (CallGate::Cut).
  void CutInFlight() { gate_.Cut(); }
  size_t queued() const {
    return lanes_[kWrites].queue.size() + lanes_[kReads].queue.size();
  }

  flow::CircuitBreaker& breaker() { return breaker_; }
  flow::RateController& controller() { return controller_; }
  const FlowOptions& options() const { return options_; }

 private:
  // Writes (jobs that post bus events) and reads (jobs that post none) queue
  // apart: a read never waits behind writes held by the bus budget, and a
  // storm of reads fills only its own queue.
  enum LaneIndex { kWrites = 0, kReads = 1 };
  struct Lane {
    Lane(Clock* clock, const flow::AdmissionOptions& options)
        : queue(clock, options) {}
    flow::AdmissionQueue<Job> queue;
    // The declared cost of the jobs admitted so far (under FlowControl::mu_),
    // for the pace the queue is predicted against (jobs/s = budget / cost).
    uint64_t admitted = 0;
    Cost admitted_cost;
    // Tick's own view (one scheduler thread): counts at the last tick and the
    // cost per job measured between ticks.
    uint64_t admitted_at_tick = 0;
    Cost cost_at_tick;
    double calls_per_job = 1;
    double events_per_job = 0;
    // Whether a tick has measured the cost per job yet: until then each
    // admission sets the queue's pace from its own job's cost and the
    // buckets' rates (a spike that arrives before any measurement is admitted
    // at the pace its own jobs allow, not at an assumed request shape).
    // Atomic: written by Tick, read by Submit on gRPC threads.
    std::atomic<bool> cost_measured{false};
  };
  static LaneIndex LaneOf(const Cost& cost) {
    return cost.bus_events > 0 ? kWrites : kReads;
  }
  // Jobs/s the budgets allow at `bus` events/s and `api` calls/s for jobs
  // costing `events` and `calls` on average.
  static double Pace(double bus, double api, double events, double calls);
  void Reject(Job& job, const flow::Admission& admission);
  // Refused by the memory guard: RESOURCE_EXHAUSTED, reason "memory", with a
  // turn in the lane's pushback book (the queue draining frees the memory).
  void RejectForMemory(Job& job, Lane& lane);
  void AnswerDropped(Lane& lane, flow::AdmissionQueue<Job>::Dropped& dropped);
  // Tells the queues the breaker's state after a transition (see the
  // callback).
  void SyncBreakerToQueues();
  void PublishDepth();

  Clock* const clock_;
  metrics::GatewayMetrics* const metrics_;
  const FlowOptions options_;

  Lane lanes_[2];
  flow::TokenBucket bus_bucket_;
  flow::TokenBucket api_bucket_;
  flow::CircuitBreaker breaker_;
  flow::RateController controller_;
  flow::RetryBudget retry_budget_;
  flow::MemoryGuard memory_;
  CallGate gate_;

  absl::Mutex mu_;  // guards each lane's admitted / admitted_cost
  // Set when the head write found no bus tokens; read and cleared by Tick
  // (demand is waiting on the bus budget). Atomic: written by TryStartNext,
  // read by Tick.
  std::atomic<bool> bucket_ran_dry_{false};
  // Set by the breaker's transition callback, which may run under a queue's
  // lock; applied to the queues outside it. Atomic: written from any thread.
  std::atomic<bool> breaker_changed_{true};
  // Written by the replica heartbeat, read by Tick; a lone double.
  std::atomic<double> rate_share_{1.0};
  // Kill Bill's API budget, calls/s: options_'s until a Reconfigure.
  std::atomic<double> api_calls_per_s_{options_.api_calls_per_s};
};

}  // namespace bg::dispatch
