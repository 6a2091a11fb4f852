// LoadRunner: drives a Target in closed or open loop and records every outcome.
//
// Closed loop (`concurrency` virtual users, `count` calls in total, bounded by
// `max_duration`): each virtual user makes one call at a time. A rejection
// means the request was not done: the user retries the same request (same
// sequence number, so the same idempotency key) until it succeeds or the run
// ends. Before the retry it waits exactly the pushback the answer carried
// (gRPC `grpc-retry-pushback-ms`, HTTP `Retry-After`), as the gateway's
// contract asks (`honor_pushback`; the server already jitters it), or
// `failure_wait` when the answer carried none. After a success or an error the
// user makes its next call (after an error, `failure_wait` later). Each user's
// first success is recorded (time to first success).
//
// Open loop (an ArrivalSchedule): each arrival is sent when due, whatever
// earlier calls are doing. At most `max_outstanding` calls are in flight; an
// arrival due while that many are outstanding is recorded as `not_sent`.
// Latency is measured from the due time, so a client that falls behind shows
// it. Arrivals are independent users: pushback does not delay the schedule (a
// registration that is rejected is simply counted as rejected).
//
// Each call's operation is drawn from `mix` (operation_mix.h) by its sequence
// number. Registrations that succeed join the run's account pool; a subscribe
// or overview picks its account from it, and while the pool is still empty
// makes the mix's fallback registration instead (counted in the summary).
// The default mix, one registration kind, makes the runner behave as it did
// before mixes existed.
//
// Side threads: a timer (pushback waits), a progress printer (stderr) and, with
// a sim-stats URL, a poller that records killbill-sim's bus backlog once a
// second.
//
// Thread-safety: Run() is called once, from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/loadgen/arrival_schedule.h"
#include "bench/loadgen/operation_mix.h"
#include "bench/loadgen/run_recorder.h"
#include "bench/loadgen/target.h"

namespace bg::loadgen {

enum class ProgressMode { kNone, kPlain, kTty };

struct RunnerOptions {
  bool open_loop = false;
  // Closed loop.
  int64_t concurrency = 1;
  int64_t count = 1;
  std::chrono::nanoseconds max_duration = std::chrono::minutes(10);
  // Open loop.
  ArrivalSchedule schedule;
  int64_t max_outstanding = 1000;
  // Both.
  bool honor_pushback = true;
  // Closed loop: after a rejection without a pushback (e.g. nginx's bare 429)
  // or an error, the virtual user waits this long (the client's own backoff).
  // A rejection with a pushback is retried after exactly the pushback (or at
  // once with honor_pushback off).
  std::chrono::nanoseconds failure_wait{0};
  std::chrono::nanoseconds deadline = std::chrono::seconds(30);
  ProgressMode progress = ProgressMode::kPlain;
  std::string sim_stats_url;  // empty: no polling
  std::string backlog_field = "bus_backlog";
  OperationMix mix = OperationMix::Single(Operation::kRegisterTagged);
  uint64_t mix_seed = 1;
};

class LoadRunner {
 public:
  LoadRunner(Target* target, RunnerOptions options, RunRecorder* recorder);
  // Must not run while calls are outstanding (after an incomplete Run(), exit
  // instead).
  ~LoadRunner();

  // Runs to completion (all calls answered, or the drain bound passed) and
  // returns the run's elapsed time. `complete` is false when calls were still
  // outstanding at the bound.
  std::chrono::nanoseconds Run(bool* complete);

 private:
  using Clock = std::chrono::steady_clock;
  class DelayQueue;

  // The call for arrival `seq`: its drawn operation and, for one that needs an
  // account, the account (or the fallback registration when there is none).
  CallSpec Plan(int64_t seq);
  // Records the answer of `call`, due at `due`, and adds a successful
  // registration to the account pool.
  void Finish(const CallSpec& call, Clock::time_point due, Clock::time_point at,
              const CallResult& r);
  void RunClosed();
  void RunOpen();
  // Virtual user `vu`'s next call: `retry` again if given, else a new one.
  void VuNext(int64_t vu, std::optional<CallSpec> retry = std::nullopt);
  void VuFinished();
  void ProgressLoop();
  void PollLoop();
  void PrintProgress(bool final_line);
  RunRecorder::Offset Since(Clock::time_point t) const { return t - start_; }

  Target* const target_;
  const RunnerOptions options_;
  RunRecorder* const recorder_;
  Clock::time_point start_;
  Clock::time_point issue_end_;  // closed loop: no new call starts after this
  std::unique_ptr<DelayQueue> timer_;  // pushback waits
  AccountPool accounts_;

  // Lock-free: taken once per call by whichever thread starts it.
  std::atomic<int64_t> next_seq_{0};
  absl::Mutex mu_;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t active_vus_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // side threads stop
  // Closed loop: whether each virtual user has had a success yet.
  std::vector<bool> vu_succeeded_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::loadgen
