// Dispatcher: the one component of billing-gateway that owns threads, and the
// place where the flow-control parts are wired together.
//
//   Submit ──► AdmissionQueue (bounded FIFO, deadline-aware; rejects fast with
//   a pushback)
//                   │
//   scheduler thread: pops the head job when a worker is free (concurrency
//   cap), the
//                   │ TokenBucket has its expected Kill Bill calls, and the
//                   CircuitBreaker │ gives a permit; expired/cancelled jobs are
//                   answered unrun ▼
//   worker threads (max_in_flight): run the job's Kill Bill calls; outcomes
//   feed the
//                   breaker, the rate controller, the queue's latency estimate,
//                   metrics
//
//   health thread: polls GET /1.0/healthcheck every poll_interval → breaker +
//   controller the scheduler also ticks the rate controller and the breaker
//   every adjust_interval.
//
// Every Job is answered exactly once: by its own run, or here (rejected at
// admission, dropped because its deadline passed or its caller cancelled while
// queued, or refused at shutdown).
//
// Waiting is real time (condition variables with timeouts computed from the
// injected clock), so the dispatcher itself runs on SteadyClock; its parts are
// tested alone under FakeClock.
//
// Thread-safety: Submit() may be called from any thread (gRPC's); it never
// blocks on Kill Bill. Shutdown() from one thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "dispatch/job.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/retry_policy.h"
#include "flow/token_bucket.h"
#include "killbill_client/types.h"
#include "metrics/gateway_metrics.h"

namespace bg::dispatch {

using flow::Admission;
using flow::AdmissionOptions;
using flow::AdmissionQueue;
using flow::CircuitBreaker;
using flow::RateController;
using flow::RejectReason;
using flow::RejectReasonName;
using flow::RetryBudget;
using flow::RetryOptions;
using flow::RetryPolicy;
using flow::TokenBucket;
using metrics::DropReason;
using metrics::GatewayMetrics;

struct DispatcherOptions {
  AdmissionOptions queue;
  CircuitBreaker::Options breaker;
  RateController::Options rate;
  RetryOptions retry;
  // Worker threads, hence the most jobs (and Kill Bill calls) in flight at
  // once.
  int max_in_flight = 8;
  // How often the rate controller and breaker are ticked and the queue swept.
  Clock::Duration adjust_interval = std::chrono::seconds(1);
  // Healthcheck polling; a growth number above the threshold means "growing".
  Clock::Duration health_poll_interval = std::chrono::seconds(1);
  double queue_growth_threshold = 0.1;
};

class Dispatcher {
 public:
  // Polls Kill Bill's healthcheck; returns the parsed report or why it failed.
  using HealthProbe = std::function<absl::StatusOr<killbill::HealthReport>()>;

  Dispatcher(Clock* clock, GatewayMetrics* metrics, DispatcherOptions options,
             HealthProbe health_probe);
  ~Dispatcher();  // Shutdown(0) if Shutdown() was not called.

  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Admits `job` or answers it at once with a rejection.
  void Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  // This replica's share of the Kill Bill rate, in (0, 1]: with N live replicas
  // on one database each paces Kill Bill at rate / N. Takes effect at the next
  // tick.
  void SetRateShare(double fraction);

  // Stops admission (shutting_down), lets the queue drain for up to `grace`,
  // answers what is still queued with UNAVAILABLE/shutting_down, waits for
  // running jobs, joins threads.
  void Shutdown(Clock::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Calls;
  struct Running {
    Job job;
    CircuitBreaker::Permit permit;
    int prepaid = 0;
  };

  void SchedulerLoop();
  void WorkerLoop();
  void HealthLoop();
  void Tick();
  void RunJob(Running& running);
  void AnswerDropped(AdmissionQueue<Job>::Dropped& dropped);
  void Reject(Job& job, const Admission& admission);
  // Tells the queue the breaker's state after a transition (see the callback).
  void SyncBreakerToQueue();
  uint64_t NextRetrySeed() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits on cv_ for at most `d` (real time) or until woken.
  void WaitFor(Clock::Duration d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  GatewayMetrics* const metrics_;
  const DispatcherOptions options_;
  const HealthProbe health_probe_;

  AdmissionQueue<Job> queue_;
  TokenBucket bucket_;
  CircuitBreaker breaker_;
  RateController controller_;
  RetryBudget retry_budget_;

  absl::Mutex mu_;
  absl::CondVar cv_;  // Signalled on submit, job completion, shutdown.
  std::deque<Running> ready_
      ABSL_GUARDED_BY(mu_);                 // Handed from scheduler to workers.
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // Popped and not yet finished.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool bucket_ran_dry_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t retry_seed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) =
      0;  // Jobs admitted so far (wake-up check).
  uint64_t submitted_calls_ ABSL_GUARDED_BY(mu_) =
      0;  // Their expected Kill Bill calls.
  // Scheduler thread only: Kill Bill calls per admitted job, measured between
  // ticks (2 = create + tag until jobs say otherwise), and the counts at the
  // last tick.
  double calls_per_job_ = 2.0;
  uint64_t jobs_at_tick_ = 0;
  uint64_t calls_at_tick_ = 0;
  // Set by the breaker's transition callback, which may run under the queue's
  // lock; the scheduler applies it to the queue. Atomic: written from any
  // thread without mu_.
  std::atomic<bool> breaker_changed_{true};
  // Written by the replica heartbeat, read by the scheduler's tick; a lone
  // double.
  std::atomic<double> rate_share_{1.0};

  std::thread scheduler_;
  std::thread health_;
  std::vector<std::thread> workers_;
  bool shut_down_ = false;
};

}  // namespace bg::dispatch
