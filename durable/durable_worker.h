// DurableWorker: runs claimed durable operations through the Dispatcher, and
// records their outcomes.
//
// One thread with its own PostgreSQL connection loops over three duties:
//  1. Claim (OperationStore::Claim, FOR UPDATE SKIP LOCKED, lease = `lease`)
//     while fewer than `max_outstanding` claimed operations are unfinished,
//     and hand each one to the Dispatcher as a Job (same admission queue,
//     token buckets, breaker and retry budget as a synchronous call) with
//     deadline now + attempt_deadline.
//  2. Record outcomes in batches (one transaction): success, permanent
//     failure, retryable failure (PENDING again after exponential backoff,
//     FAILED after max_attempts), or release (the dispatcher refused or
//     dropped the job without running it: PENDING again after its retry
//     pushback, the attempt not counted). Each update is fenced on (owner,
//     attempts), so an outcome whose lease was taken over is discarded. An
//     outcome that cannot be written (database down) is kept and written on
//     reconnect; if the lease expires meanwhile another replica repeats the
//     operation, which Kill Bill's external key makes harmless (409 -> lookup
//     -> same account, created = false).
//  3. Renew the leases of everything this replica runs, every lease/3.
// Claiming is woken by completions and otherwise polls every `poll_interval`.
//
// Exactly-once effect: the worker never creates an account without the external
// key, and an operation is marked SUCCEEDED only with the account id Kill Bill
// returned or looked up, so whatever crashes when, the operation ends with
// exactly one account for its key.
//
// Thread-safety: Start/StopClaiming/Shutdown from one thread; job callbacks
// from any.
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "billing/v1/billing_gateway.pb.h"
#include "common/clock.h"
#include "dispatch/job.h"
#include "durable/durable_metrics.h"
#include "durable/operation_store.h"
#include "durable/pg_session.h"

namespace bg::durable {

// How durable work reaches Kill Bill: supplied by the gateway (dispatcher +
// account operations), so this library does not depend on the gateway's
// implementation.
struct Executor {
  // Dispatcher::Submit.
  std::function<void(dispatch::Job)> submit;
  // AccountOperations::CreateAccount.
  std::function<absl::StatusOr<billing::v1::CreateAccountResponse>(
      const billing::v1::CreateAccountRequest&, dispatch::KillBillCalls&)>
      create_account;
  // AccountOperations::CostOf: what the job will spend of Kill Bill.
  std::function<dispatch::Cost(const billing::v1::CreateAccountRequest&)>
      cost_of;
  // SubscriptionOperations::CreateSubscription and its CostOf.
  std::function<absl::StatusOr<billing::v1::CreateSubscriptionResponse>(
      const billing::v1::CreateSubscriptionRequest&, dispatch::KillBillCalls&)>
      create_subscription;
  std::function<dispatch::Cost(const billing::v1::CreateSubscriptionRequest&)>
      subscription_cost_of;
  // Kill Bill's error code carried by a failed status ("" when none).
  std::function<std::string(const absl::Status&)> killbill_code;
};

struct WorkerOptions {
  std::string owner;  // this replica's id
  Clock::Duration lease = std::chrono::seconds(30);
  int claim_batch = 32;
  int max_outstanding = 64;
  Clock::Duration poll_interval = std::chrono::milliseconds(200);
  Clock::Duration attempt_deadline = std::chrono::minutes(2);
  int max_attempts = 20;
  Clock::Duration retry_initial_backoff = std::chrono::seconds(1);
  Clock::Duration retry_max_backoff = std::chrono::minutes(1);
};

// Whether a failed attempt may be tried again (the idempotency key, an external
// key or an instance id, makes every retry safe).
bool IsRetryable(const absl::Status& status);

class DurableWorker {
 public:
  DurableWorker(Clock* clock, PgSessionOptions session, WorkerOptions options,
                Executor executor, DurableMetrics* metrics,
                std::function<bool()> ready, std::function<void()> on_finished);
  ~DurableWorker();

  void Start();
  // No more claims; outstanding jobs still finish and are recorded.
  void StopClaiming() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `grace` for outstanding jobs to be recorded, then stops.
  // Unrecorded operations keep their lease and are taken over when it expires.
  void Shutdown(Clock::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

  int outstanding() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  void Dispatch(ClaimedOperation op);
  // Submits one attempt of a parsed request as a job: `work` runs it, `fill`
  // copies a success into the outcome.
  template <typename Request, typename Work, typename Fill>
  void Submit(const ClaimedOperation& op, dispatch::Method method,
              std::shared_ptr<const Request> request, dispatch::Cost cost,
              Work work, Fill fill);
  void Complete(Outcome outcome) ABSL_LOCKS_EXCLUDED(mu_);
  Clock::Duration RetryBackoff(int attempts);

  Clock* const clock_;
  const PgSessionOptions session_options_;
  const WorkerOptions options_;
  const Executor executor_;
  DurableMetrics* const metrics_;
  const std::function<bool()> ready_;
  const std::function<void()> on_finished_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<Outcome> done_
      ABSL_GUARDED_BY(mu_);                   // Outcomes waiting to be written.
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // Claimed, not yet written.
  bool claiming_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t jitter_ ABSL_GUARDED_BY(mu_) = 0x9E3779B97F4A7C15ull;
  std::thread thread_;
};

}  // namespace bg::durable
