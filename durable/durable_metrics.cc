#include "durable/durable_metrics.h"

namespace bg::durable {

DurableMetrics::DurableMetrics(prometheus::Registry& registry) {
  // gRPC's canonical code names, index = code.
  static constexpr const char* kCodes[17] = {"OK",
                                             "CANCELLED",
                                             "UNKNOWN",
                                             "INVALID_ARGUMENT",
                                             "DEADLINE_EXCEEDED",
                                             "NOT_FOUND",
                                             "ALREADY_EXISTS",
                                             "PERMISSION_DENIED",
                                             "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION",
                                             "ABORTED",
                                             "OUT_OF_RANGE",
                                             "UNIMPLEMENTED",
                                             "INTERNAL",
                                             "UNAVAILABLE",
                                             "DATA_LOSS",
                                             "UNAUTHENTICATED"};
  static constexpr const char* kMethods[kDurableMethodCount] = {
      "SubmitCreateAccount", "GetOperation", "SubmitCreateSubscription"};
  auto& requests = prometheus::BuildCounter()
                       .Name("billing_gateway_durable_requests_total")
                       .Help("Asynchronous API calls by method and gRPC code")
                       .Register(registry);
  for (int m = 0; m < kDurableMethodCount; ++m) {
    for (int c = 0; c < 17; ++c) {
      requests_[m][c] =
          &requests.Add({{"method", kMethods[m]}, {"code", kCodes[c]}});
    }
  }
  auto& depth =
      prometheus::BuildGauge()
          .Name("billing_gateway_durable_queue_depth")
          .Help("Unfinished durable operations in the database, by state")
          .Register(registry);
  pending_ = &depth.Add({{"state", "pending"}});
  running_ = &depth.Add({{"state", "running"}});
  oldest_pending_age_ =
      &prometheus::BuildGauge()
           .Name("billing_gateway_durable_oldest_pending_age_seconds")
           .Help("Age of the oldest PENDING durable operation (0 when none)")
           .Register(registry)
           .Add({});
  claims_ = &prometheus::BuildCounter()
                 .Name("billing_gateway_durable_claims_total")
                 .Help("Durable operations claimed by this replica")
                 .Register(registry)
                 .Add({});
  lease_expiries_ =
      &prometheus::BuildCounter()
           .Name("billing_gateway_durable_lease_expiries_total")
           .Help("Claims that took over an operation whose lease had expired")
           .Register(registry)
           .Add({});
  auto& submissions = prometheus::BuildCounter()
                          .Name("billing_gateway_durable_submissions_total")
                          .Help("SubmitCreateAccount calls by outcome")
                          .Register(registry);
  accepted_ = &submissions.Add({{"outcome", "accepted"}});
  existing_ = &submissions.Add({{"outcome", "existing"}});
  unavailable_ = &submissions.Add({{"outcome", "unavailable"}});
  overloaded_ = &submissions.Add({{"outcome", "overloaded"}});
  submit_errors_ = &submissions.Add({{"outcome", "error"}});
  auto& completions =
      prometheus::BuildCounter()
          .Name("billing_gateway_durable_completions_total")
          .Help("Attempts of durable operations finished by this replica")
          .Register(registry);
  succeeded_ = &completions.Add({{"outcome", "succeeded"}});
  failed_ = &completions.Add({{"outcome", "failed"}});
  retried_ = &completions.Add({{"outcome", "retry"}});
  released_ = &completions.Add({{"outcome", "released"}});
  lease_lost_ = &completions.Add({{"outcome", "lease_lost"}});
  submit_commit_ =
      &prometheus::BuildHistogram()
           .Name("billing_gateway_durable_submit_commit_seconds")
           .Help("Duration of one group-commit batch of submissions")
           .Register(registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                        0.25, 0.5, 1, 2.5});
  database_up_ =
      &prometheus::BuildGauge()
           .Name("billing_gateway_durable_database_up")
           .Help("1 when the last durable statement reached PostgreSQL")
           .Register(registry)
           .Add({});
  live_replicas_ =
      &prometheus::BuildGauge()
           .Name("billing_gateway_durable_live_replicas")
           .Help("Gateway replicas with a fresh heartbeat, this one included")
           .Register(registry)
           .Add({});
  rate_share_ = &prometheus::BuildGauge()
                     .Name("billing_gateway_durable_rate_share")
                     .Help("This replica's share of the global Kill Bill rate")
                     .Register(registry)
                     .Add({});
}

}  // namespace bg::durable
