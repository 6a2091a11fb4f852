// OperationWaiter: answers GetOperation, waiting (bounded) for an operation to
// finish.
//
// One thread with its own connection serves every waiting call: each round it
// reads all watched operations with one query, answers those that are finished,
// missing, cancelled or past their wait deadline, and keeps the rest. A round
// runs at once when a call arrives or when this replica finishes an operation
// (Notify), and otherwise every `poll_interval`, which bounds how late a
// completion by another replica is seen. gRPC threads never block on the
// database.
//
// Thread-safety: Wait()/Notify() from any thread; Shutdown() once.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "durable/operation_store.h"
#include "durable/pg_session.h"

namespace bg::durable {

class OperationWaiter {
 public:
  using Done = std::function<void(absl::StatusOr<OperationRecord>)>;

  OperationWaiter(Clock* clock, PgSessionOptions session,
                  Clock::Duration poll_interval, int max_waiters,
                  std::function<bool()> ready);
  ~OperationWaiter();

  // Answers with the operation once it is finished or `wait_until` passes (a
  // past `wait_until` = read once), NOT_FOUND for an unknown id, CANCELLED when
  // `cancelled()`, UNAVAILABLE when the database cannot be read by
  // `wait_until`.
  void Wait(int64_t id, Clock::TimePoint wait_until,
            std::function<bool()> cancelled, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    int64_t id;
    Clock::TimePoint wait_until;
    std::function<bool()> cancelled;
    Done done;
    bool read_once = false;
  };
  void Loop();

  Clock* const clock_;
  const PgSessionOptions session_options_;
  const Clock::Duration poll_interval_;
  const int max_waiters_;
  const std::function<bool()> ready_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bg::durable
