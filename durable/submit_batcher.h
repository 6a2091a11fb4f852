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
// A submission is answered only after its row is committed. When the database
// is unreachable every waiting submission is answered UNAVAILABLE (never
// accepted without durability); a full waiting list answers RESOURCE_EXHAUSTED
// at once.
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

  void Submit(Submission submission, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // Answers what waits with UNAVAILABLE and joins the writers.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    Submission submission;
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
