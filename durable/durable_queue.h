// DurableQueue: asynchronous, durable account creation on PostgreSQL, and the
// coordination of several gateway replicas on one database. The gRPC service
// talks to this class only.
//
//   SubmitCreateAccount ─► SubmitBatcher (group commit) ─► operations row
//   committed ─► answer DurableWorker: claim (SKIP LOCKED, lease) ─►
//   Dispatcher::Submit(Job) ─► outcome (fenced) GetOperation ─► OperationWaiter
//   (one query per round for every waiting call) ReplicaCoordinator:
//   migrations, heartbeat ─► rate share = 1 / live replicas, gauges,
//                       retention
//
// Each part runs its own thread(s) with its own connection; gRPC threads never
// wait on the database. See the headers of the parts for the details;
// `durable/README.md` for the design as a whole (schema, leases, replicas,
// failure modes).
//
// Thread-safety: Submit()/Get() from any thread; Start/Shutdown from one
// thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "billing/v1/billing_gateway.pb.h"
#include "common/clock.h"
#include "durable/durable_metrics.h"
#include "durable/durable_worker.h"
#include "durable/operation_store.h"
#include "durable/pg_session.h"
#include "prometheus/registry.h"

namespace bg::durable {

class OperationWaiter;
class ReplicaCoordinator;
class SubmitBatcher;

// The `database.*` YAML keys set these (config/gateway_config.h says which key
// goes where; ranges in config/gateway.yaml); max_waiters and the session's
// application_name, reconnect backoffs and statement_timeout have no key. These
// defaults are the gateway's: config/ has no other.
struct DurableOptions {
  PgSessionOptions session;
  WorkerOptions worker;  // worker.owner is filled with the replica id
  Clock::Duration retention = std::chrono::hours(24 * 7);
  Clock::Duration heartbeat_interval = std::chrono::seconds(1);
  Clock::Duration heartbeat_timeout = std::chrono::seconds(5);
  int submit_batch = 256;
  int submit_writers = 2;
  int submit_queue = 20000;
  int max_waiters = 100000;
};

// host-pid-random: unique per process start, so a restarted gateway never
// mistakes its predecessor's leases for its own.
std::string NewReplicaId();

class DurableQueue {
 public:
  using Done = std::function<void(absl::StatusOr<OperationRecord>)>;

  DurableQueue(Clock* clock, DurableOptions options,
               prometheus::Registry& registry, Executor executor,
               std::function<void(double)> set_rate_share);
  ~DurableQueue();

  // Starts every thread. A database that cannot be reached or migrated now is
  // not fatal: the coordinator keeps trying, and durable calls answer
  // UNAVAILABLE meanwhile. The returned status says whether the database was
  // ready at start.
  absl::Status Start();

  // Answers after the operation is committed, or as SubmitBatcher tells.
  // `request` must be valid (the service validates); `deadline` is the
  // caller's.
  void Submit(const billing::v1::CreateAccountRequest& request,
              Clock::TimePoint deadline, Done done);
  void Submit(const billing::v1::CreateSubscriptionRequest& request,
              Clock::TimePoint deadline, Done done);
  // See OperationWaiter::Wait.
  void Get(int64_t id, Clock::TimePoint wait_until,
           std::function<bool()> cancelled, Done done,
           std::optional<Clock::TimePoint> answer_by = std::nullopt);

  // Stop claiming (before the dispatcher drains), then Shutdown (after it has).
  void StopClaiming();
  void Shutdown(Clock::Duration grace);

  bool ready() const;
  const std::string& replica_id() const { return replica_id_; }
  DurableMetrics* metrics() { return &metrics_; }

 private:
  Clock* const clock_;
  DurableOptions options_;
  const std::string replica_id_;
  DurableMetrics metrics_;
  std::unique_ptr<ReplicaCoordinator> coordinator_;
  std::unique_ptr<SubmitBatcher> batcher_;
  std::unique_ptr<OperationWaiter> waiter_;
  std::unique_ptr<DurableWorker> worker_;
  bool stopped_ = false;
};

}  // namespace bg::durable
