// Dispatcher: the one component of billing-gateway that owns threads.
//
// It takes admitted Jobs from the service, holds them in the bounded FIFO queue, and runs
// each on one of `max_in_flight` worker threads when the flow-control parts allow it. Every
// Job is answered exactly once: by its own run, or here (rejected at admission, dropped
// because its deadline passed or its caller cancelled while queued, or refused at shutdown).
//
// Thread-safety: Submit() and Shutdown() may be called from any thread (gRPC's threads call
// Submit()); Submit() never blocks on Kill Bill.
#pragma once

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "gateway/job.h"
#include "gateway/metrics.h"

namespace bg::gateway {

struct DispatcherOptions {
  // Jobs that may wait in the queue; beyond it new jobs are refused with queue_full.
  int queue_capacity = 10000;
  // Worker threads, hence the most Kill Bill calls in flight at once.
  int max_in_flight = 8;
};

class Dispatcher {
 public:
  Dispatcher(Clock* clock, GatewayMetrics* metrics, DispatcherOptions options);
  ~Dispatcher();  // Shuts down with no grace if Shutdown() was not called.

  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Admits `job` or answers it at once with a rejection.
  void Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops admission, lets workers drain the queue for up to `grace`, then answers what is
  // still queued with UNAVAILABLE/shutting_down and joins the workers once their running
  // jobs finish.
  void Shutdown(Clock::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Calls;
  void WorkerLoop();
  // Answers the job without running it and counts why.
  void Drop(Job& job, DropReason reason);

  Clock* const clock_;
  GatewayMetrics* const metrics_;
  const DispatcherOptions options_;

  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // Workers exit once this is set.
  std::vector<std::thread> workers_;
};

}  // namespace bg::gateway
