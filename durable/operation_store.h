// OperationStore: every SQL statement of the durable queue, over one PgSession.
//
// Schema (versioned migrations, applied by Migrate() in one transaction that
// holds pg_advisory_xact_lock(kMigrationLockKey), so replicas starting together
// apply each migration exactly once; schema_migrations records what was
// applied):
//
//   operations   one row per accepted asynchronous operation, unique on
//   (kind, external_key).
//                state PENDING -> RUNNING (claimed: lease_owner + lease_until,
//                attempts+1)
//                -> SUCCEEDED (account_id, [subscription_id,] created) |
//                FAILED (error_*) |
//                PENDING again (retryable failure, not_before = now + backoff).
//                A RUNNING row whose lease_until has passed is claimable again:
//                its replica died or lost the database. Finished rows are
//                deleted after the retention period.
//   replicas     heartbeat table: replica id, started_at, last_seen.
//
// Claiming uses FOR UPDATE SKIP LOCKED, so concurrent claimers never get the
// same row. Completions are fenced: they apply only while (lease_owner,
// attempts) still match the claim, so a replica whose lease expired and was
// taken over cannot overwrite the new owner's result. All times are the
// database's now(): replicas' clocks never meet.
//
// Thread-safety: thread-compatible, like the PgSession it wraps (one per
// thread).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "durable/pg_session.h"

namespace bg::durable {

inline constexpr int64_t kMigrationLockKey = 0x62675f6475726162;  // "bg_durab"

enum class OperationState { kPending, kRunning, kSucceeded, kFailed };
const char* OperationStateName(OperationState state);

// What an operation does; stored as text in operations.kind. The idempotency
// key (external_key) is unique per kind: an account's external key, a
// subscription's instance id.
enum class OperationKind { kCreateAccount, kCreateSubscription };
const char* OperationKindName(OperationKind kind);

struct OperationRecord {
  int64_t id = 0;
  OperationKind kind = OperationKind::kCreateAccount;
  // The idempotency key: the account's external key, or the instance id.
  std::string external_key;
  // kCreateSubscription: the account's external key when the request named it
  // so ("" otherwise).
  std::string account_key;
  OperationState state = OperationState::kPending;
  int attempts = 0;
  std::string account_id;       // SUCCEEDED only.
  std::string subscription_id;  // SUCCEEDED kCreateSubscription only.
  bool created = false;  // SUCCEEDED only: this operation created the account.
  // FAILED: the final error; PENDING after a retryable failure: the last one.
  int error_code = 0;  // canonical (gRPC) code, 0 = none
  std::string killbill_code;
  std::string error_message;
  // Unix milliseconds (database time); 0 = not set.
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t finished_at_ms = 0;
  int64_t not_before_ms = 0;

  bool finished() const {
    return state == OperationState::kSucceeded ||
           state == OperationState::kFailed;
  }
};

struct Submission {
  Submission() = default;
  Submission(std::string key, std::string serialized,
             OperationKind operation_kind = OperationKind::kCreateAccount,
             std::string account_external_key = "")
      : external_key(std::move(key)),
        request(std::move(serialized)),
        kind(operation_kind),
        account_key(std::move(account_external_key)) {}

  std::string external_key;
  // Serialized billing.v1.CreateAccountRequest or CreateSubscriptionRequest.
  std::string request;
  OperationKind kind = OperationKind::kCreateAccount;
  std::string account_key;
};

struct ClaimedOperation {
  int64_t id = 0;
  OperationKind kind = OperationKind::kCreateAccount;
  std::string external_key;
  std::string request;
  int attempts = 0;            // after this claim: the completion fence
  bool lease_expired = false;  // taken over from a replica whose lease ran out
};

// The result of one claimed attempt.
struct Outcome {
  enum class Kind {
    kSucceeded,  // account_id, created
    kFailed,     // permanent: error_*
    kRetry,  // retryable: back to PENDING after `backoff`, error_* kept as last
             // error
    kRelease,  // never attempted (dispatcher refused it): PENDING, attempt not
               // counted
  };
  int64_t id = 0;
  int attempts = 0;  // fence from the claim
  Kind kind = Kind::kSucceeded;
  std::string account_id;
  std::string subscription_id;
  bool created = false;
  int error_code = 0;
  std::string killbill_code;
  std::string error_message;
  Clock::Duration backoff{0};
};

struct QueueStats {
  int64_t pending = 0;
  int64_t running = 0;
  double oldest_pending_age_s = 0;  // 0 when nothing is pending
};

class OperationStore {
 public:
  explicit OperationStore(PgSession* session) : session_(session) {}

  // Applies every migration not yet recorded in schema_migrations. Idempotent,
  // safe to run concurrently from several processes.
  absl::Status Migrate();
  // Latest schema version this binary knows.
  static int LatestVersion();

  // Inserts each submission unless its external key exists, and returns the
  // operation of every submission (new or existing) in input order. Durable
  // when it returns: the insert is committed (synchronous_commit as configured
  // on the server).
  absl::StatusOr<std::vector<OperationRecord>> SubmitBatch(
      const std::vector<Submission>& submissions);

  absl::StatusOr<std::vector<OperationRecord>> GetMany(
      const std::vector<int64_t>& ids);
  absl::StatusOr<std::optional<OperationRecord>> Get(int64_t id);
  absl::StatusOr<std::optional<OperationRecord>> GetByKey(
      OperationKind kind, const std::string& external_key);

  // Claims up to `limit` claimable operations (PENDING and due, or RUNNING with
  // an expired lease) for `owner`, oldest first. A RUNNING operation whose
  // lease expired after `max_attempts` attempts (every claimer stopped while
  // running it: a request that crashes the gateway, say) ends FAILED instead
  // of being claimed again.
  absl::StatusOr<std::vector<ClaimedOperation>> Claim(
      const std::string& owner, int limit, Clock::Duration lease,
      int max_attempts = std::numeric_limits<int>::max());
  // Applies outcomes in one transaction; returns how many still held their
  // lease (the others were taken over and are left to their new owner).
  absl::StatusOr<int> Finish(const std::string& owner,
                             const std::vector<Outcome>& outcomes);
  // Pushes lease_until of every operation `owner` runs to now + lease; returns
  // the count.
  absl::StatusOr<int64_t> RenewLeases(const std::string& owner,
                                      Clock::Duration lease);

  // Records `replica` as alive now; returns the replicas seen within `timeout`
  // (itself included) and forgets replicas silent for more than `forget_after`.
  absl::StatusOr<int> Heartbeat(const std::string& replica,
                                Clock::Duration timeout,
                                Clock::Duration forget_after);
  absl::Status RemoveReplica(const std::string& replica);

  // Deletes up to `batch` operations finished more than `retention` ago;
  // returns how many.
  absl::StatusOr<int64_t> PurgeFinished(Clock::Duration retention, int batch);

  absl::StatusOr<QueueStats> Stats();

 private:
  PgSession* const session_;
};

}  // namespace bg::durable
