// OperationWaiter: answers GetOperation, waiting (bounded) for an operation to
// finish.
//
// Two threads serve every waiting call, whatever their number: the reader,
// with its own connection, reads all watched operations with one query per
// round (chunks of 1000 ids); the waiting loop hands it the rounds and
// answers. A round runs at once when a call arrives or when this replica
// finishes an operation (Notify), and otherwise every `poll_interval`, which
// bounds how late a completion by another replica is seen; a waiter whose
// `wait_until` passes gets one more round for its final answer.
//
// The loop never blocks on the database: while a read is in flight (a
// blackholed database holds it up to statement_timeout + the session's answer
// margin, PgSession), it still answers cancelled calls at once and answers
// UNAVAILABLE every waiter that has had no read started after it arrived (or
// after its `wait_until`) come back by its `answer_by`. gRPC threads never
// block on the database.
//
// Thread-safety: Wait()/Notify() from any thread; Shutdown() once (it waits
// for a read in flight).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
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

  // How long past `wait_until` a waiter waits for a read in flight when the
  // caller gives no `answer_by`.
  static constexpr Clock::Duration kReadGrace = std::chrono::seconds(1);

  OperationWaiter(Clock* clock, PgSessionOptions session,
                  Clock::Duration poll_interval, int max_waiters,
                  std::function<bool()> ready);
  ~OperationWaiter();

  // Answers with the operation once it is finished or `wait_until` passes (a
  // past `wait_until` = read once), NOT_FOUND for an unknown id, CANCELLED when
  // `cancelled()`, UNAVAILABLE when the database could not be read by
  // `wait_until`, or no read came back by `answer_by` (default: wait_until +
  // kReadGrace; never before wait_until).
  void Wait(int64_t id, Clock::TimePoint wait_until,
            std::function<bool()> cancelled, Done done,
            std::optional<Clock::TimePoint> answer_by = std::nullopt)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    int64_t id;
    Clock::TimePoint wait_until;
    Clock::TimePoint answer_by;
    std::function<bool()> cancelled;
    Done done;
    // The first read whose result may answer it (reads are numbered from 1):
    // one started after it arrived, and after its wait_until once that passed.
    uint64_t first_read = 0;
    bool final_read_asked = false;
  };
  struct Read {
    uint64_t number = 0;
    absl::Status status;
    std::unordered_map<int64_t, OperationRecord> found;
  };
  void Loop();
  void ReaderLoop();
  // Answers what `read` (when set) and the time allow; keeps the rest.
  void Answer(std::vector<Waiter>& waiters, const std::optional<Read>& read,
              Clock::TimePoint now);

  Clock* const clock_;
  const PgSessionOptions session_options_;
  const Clock::Duration poll_interval_;
  const int max_waiters_;
  const std::function<bool()> ready_;

  absl::Mutex mu_;
  absl::CondVar cv_;         // the loop's: a call, a poke, a read came back
  absl::CondVar reader_cv_;  // the reader's: a read is asked for
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The read asked of the reader (ids, its number), the one in flight, and
  // the last one that came back, not yet applied by the loop.
  std::optional<std::vector<int64_t>> asked_ ABSL_GUARDED_BY(mu_);
  uint64_t reads_started_ ABSL_GUARDED_BY(mu_) = 0;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Read> done_read_ ABSL_GUARDED_BY(mu_);
  std::thread reader_;
  std::thread thread_;
};

}  // namespace bg::durable
