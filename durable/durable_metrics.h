// DurableMetrics: the Prometheus series of the durable queue, registered on the
// gateway's registry (GatewayMetrics::registry()). Families and children are
// built once here.
//
//   billing_gateway_durable_requests_total{method,code}
//   SubmitCreateAccount|GetOperation calls
//   billing_gateway_durable_queue_depth{state}             unfinished
//   operations (pending|running)
//   billing_gateway_durable_oldest_pending_age_seconds     age of the oldest
//   PENDING operation billing_gateway_durable_claims_total operations claimed
//   by this replica billing_gateway_durable_lease_expiries_total claims that
//   took over an expired lease
//   billing_gateway_durable_submissions_total{outcome}
//   accepted|existing|unavailable|overloaded|error
//   billing_gateway_durable_completions_total{outcome}
//   succeeded|failed|retry|released|lease_lost
//   billing_gateway_durable_submit_commit_seconds          one group-commit
//   batch, histogram billing_gateway_durable_database_up                    1
//   when the last statement reached PostgreSQL
//   billing_gateway_durable_live_replicas                  replicas with a
//   fresh heartbeat billing_gateway_durable_rate_share                     this
//   replica's share of the global rate
//
// Depth and age are read from the database by the replica coordinator (every
// heartbeat), so every replica reports the same global queue. Thread-safety:
// prometheus-cpp metrics are thread-safe.
#pragma once

#include <array>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace bg::durable {

enum class DurableMethod {
  kSubmitCreateAccount = 0,
  kGetOperation = 1,
  kSubmitCreateSubscription = 2
};
inline constexpr int kDurableMethodCount = 3;

class DurableMetrics {
 public:
  explicit DurableMetrics(prometheus::Registry& registry);

  // billing_gateway_durable_requests_total{method, code}: the asynchronous
  // API's calls.
  void RecordRequest(DurableMethod method, absl::StatusCode code) {
    const int c = static_cast<int>(code);
    if (c >= 0 && c < 17) requests_[static_cast<int>(method)][c]->Increment();
  }

  prometheus::Gauge& pending() { return *pending_; }
  prometheus::Gauge& running() { return *running_; }
  prometheus::Gauge& oldest_pending_age() { return *oldest_pending_age_; }
  prometheus::Counter& claims() { return *claims_; }
  prometheus::Counter& lease_expiries() { return *lease_expiries_; }
  prometheus::Counter& accepted() { return *accepted_; }
  prometheus::Counter& existing() { return *existing_; }
  prometheus::Counter& unavailable() { return *unavailable_; }
  prometheus::Counter& overloaded() { return *overloaded_; }
  prometheus::Counter& submit_errors() { return *submit_errors_; }
  prometheus::Counter& succeeded() { return *succeeded_; }
  prometheus::Counter& failed() { return *failed_; }
  prometheus::Counter& retried() { return *retried_; }
  prometheus::Counter& released() { return *released_; }
  prometheus::Counter& lease_lost() { return *lease_lost_; }
  prometheus::Histogram& submit_commit() { return *submit_commit_; }
  prometheus::Gauge& database_up() { return *database_up_; }
  prometheus::Gauge& live_replicas() { return *live_replicas_; }
  prometheus::Gauge& rate_share() { return *rate_share_; }

 private:
  std::array<std::array<prometheus::Counter*, 17>, kDurableMethodCount>
      requests_{};
  prometheus::Gauge* pending_;
  prometheus::Gauge* running_;
  prometheus::Gauge* oldest_pending_age_;
  prometheus::Counter* claims_;
  prometheus::Counter* lease_expiries_;
  prometheus::Counter* accepted_;
  prometheus::Counter* existing_;
  prometheus::Counter* unavailable_;
  prometheus::Counter* overloaded_;
  prometheus::Counter* submit_errors_;
  prometheus::Counter* succeeded_;
  prometheus::Counter* failed_;
  prometheus::Counter* retried_;
  prometheus::Counter* released_;
  prometheus::Counter* lease_lost_;
  prometheus::Histogram* submit_commit_;
  prometheus::Gauge* database_up_;
  prometheus::Gauge* live_replicas_;
  prometheus::Gauge* rate_share_;
};

}  // namespace bg::durable
