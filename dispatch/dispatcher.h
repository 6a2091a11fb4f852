// Dispatcher: the scheduler thread and the worker pool that drive a
// FlowControl. It owns threads and nothing else: what a job costs, when it may
// start and what its calls feed back are FlowControl's (tested alone under a
// FakeClock); what Kill Bill's health means is the HealthMonitor's.
//
// clang-format off
//   Submit ──► FlowControl::Submit (admitted, or answered with a rejection)
//   scheduler thread: while a worker is free, FlowControl::TryStartNext();
//                     hands the started job to a worker, or waits until the
//                     head job may start, a job arrives or the next tick;
//                     FlowControl::Tick() every adjust_interval
//   workers (max_in_flight threads): FlowControl::Run(job)
// clang-format on
//
// Waiting uses a condition variable with timeouts computed from the injected
// clock, so Submit and Shutdown wake the scheduler at once.
//
// Thread-safety: Submit() may be called from any thread (gRPC's, the durable
// worker's); it never blocks on Kill Bill. Shutdown() from one thread.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "dispatch/flow_control.h"
#include "dispatch/job.h"

namespace bg::dispatch {

struct DispatcherOptions {
  // Worker threads, hence the most jobs running Kill Bill calls at once.
  int max_in_flight = 8;
  // At shutdown, how long past the grace a job already running may take to
  // finish before what it is doing is cut: short, so SIGTERM ends within the
  // grace plus a small constant, and long enough that a call Kill Bill is
  // answering normally is not cut into an outcome nobody knows.
  Clock::Duration finish_after_grace = std::chrono::seconds(1);
};

class Dispatcher {
 public:
  // Starts the threads; `flow` must outlive the Dispatcher.
  Dispatcher(Clock* clock, FlowControl* flow, DispatcherOptions options);
  ~Dispatcher();  // Shutdown(0) if Shutdown() was not called.

  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Admits `job` or answers it at once with a rejection.
  void Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops admission (shutting_down), lets the queue drain for up to `grace`,
  // answers what is still queued with UNAVAILABLE/shutting_down, lets started
  // jobs run until finish_after_grace past the grace, then cuts them short
  // (FlowControl::
  // CutInFlight, and `cut_calls` for the Kill Bill calls they are making),
  // lets every started job finish, joins the threads.
  void Shutdown(Clock::Duration grace,
                const std::function<void()>& cut_calls = {})
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void SchedulerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void WorkerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits on cv_ for at most `d` (timed from the clock) or until woken.
  void WaitFor(Clock::Duration d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  FlowControl* const flow_;
  const DispatcherOptions options_;

  absl::Mutex mu_;
  absl::CondVar cv_;  // Signalled on submit, job completion, shutdown.
  // Started jobs handed from the scheduler to the workers.
  std::deque<FlowControl::Started> ready_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // Started and not yet finished.
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;  // Wake-up check.
  // The scheduler stops first, then the workers: a worker leaves only once
  // the scheduler can hand it nothing more, so no started job is left unrun.
  bool stop_scheduler_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_workers_ ABSL_GUARDED_BY(mu_) = false;

  std::thread scheduler_;
  std::vector<std::thread> workers_;
  bool shut_down_ = false;
};

}  // namespace bg::dispatch
