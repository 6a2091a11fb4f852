// SubmitBatcher: group commit of asynchronous submissions.
//
// gRPC handlers call Submit() and return; `writers` threads, each with its own
// PostgreSQL connection, take whatever has queued up (at most `batch`) and
// write it with one INSERT statement (one commit, one WAL flush), then answer
// every submission of the batch with its operation. Under load the batches grow
// by themselves (whatever arrived during the previous commit), so throughput
// scales with batch size while an isolated submission waits for one commit
// only: no timer, no added latency.
//
// A submission is answered with its operation only after its row is
// committed. Otherwise (the reason, when there is one, as the status payload
// kSubmitReasonPayload):
//   * database unreachable before the batch was sent: UNAVAILABLE
//     database_unavailable, not accepted;
//   * connection lost or no answer after the batch was sent: UNAVAILABLE
//     outcome_unknown: it may have been committed (and will then run);
//     resubmitting with the same external key is safe and tells which;
//   * the caller's deadline passed before the batch was taken: not written,
//     DEADLINE_EXCEEDED;
//   * a full waiting list: RESOURCE_EXHAUSTED database_overloaded at once;
//   * shutting down: UNAVAILABLE shutting_down.
//
// Thread-safety: Submit() from any thread; Shutdown() once.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "durable/durable_metrics.h"
#include "durable/operation_store.h"
#include "durable/pg_session.h"

namespace bg::durable {

// Status payload: the reject reason (its value) of a submission not answered
// with an operation.
inline constexpr char kSubmitReasonPayload[] = "bg.durable/reason";
inline constexpr char kReasonOutcomeUnknown[] = "outcome_unknown";
inline constexpr char kReasonDatabaseOverloaded[] = "database_overloaded";
inline constexpr char kReasonShuttingDown[] = "shutting_down";
inline constexpr const char* kSubmitReasons[] = {
    kReasonOutcomeUnknown, kReasonDatabaseOverloaded, kReasonShuttingDown};

class SubmitBatcher {
 public:
  using Done = std::function<void(absl::StatusOr<OperationRecord>)>;
  struct Options {
    int batch = 256;
    int writers = 2;
    int queue_capacity = 20000;
  };

  // `ready` says whether the schema is migrated (submissions wait for nothing:
  // before that they are answered UNAVAILABLE).
  SubmitBatcher(Clock* clock, PgSessionOptions session, Options options,
                DurableMetrics* metrics, std::function<bool()> ready);
  ~SubmitBatcher();

  // `deadline`: the caller's; a submission still waiting then is not written.
  void Submit(Submission submission, Clock::TimePoint deadline, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Answers what waits with UNAVAILABLE and joins the writers.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    Submission submission;
    Clock::TimePoint deadline;
    Done done;
  };
  void WriterLoop(int index);

  Clock* const clock_;
  const PgSessionOptions session_options_;
  const Options options_;
  DurableMetrics* const metrics_;
  const std::function<bool()> ready_;

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

}  // namespace bg::durable
