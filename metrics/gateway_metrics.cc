#include "metrics/gateway_metrics.h"

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace bg::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Latency buckets from 1 ms to 60 s: rejections live at the bottom, Kill Bill
// under saturation (seconds) at the top.
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,   1,      2.5,   5,    10,    30,   60};
}

// RateController::Source order.
constexpr const char* kSignalNames[3] = {"static", "healthcheck", "metrics"};
constexpr const char* kEndpointNames[kEndpointCount] = {
    "create_account",      "get_account",       "add_tags",
    "healthcheck",         "metrics",           "create_subscription",
    "get_subscription",    "get_bundles",       "cancel_subscription",
    "add_custom_fields",   "get_custom_fields", "get_invoices",
    "get_payment_methods", "get_catalog"};
constexpr const char* kDropNames[kDropReasonCount] = {"deadline", "cancelled",
                                                      "shutdown"};
constexpr const char* kBreakerStates[3] = {"closed", "open", "half_open"};
constexpr int kOutcomeCount = 3;
constexpr const char* kOutcomeNames[kOutcomeCount] = {"ok", "rejected",
                                                      "error"};

}  // namespace

const char* ReloadResultName(ReloadResult result) {
  switch (result) {
    case ReloadResult::kApplied:
      return "applied";
    case ReloadResult::kRefused:
      return "refused";
    case ReloadResult::kInvalid:
      return "invalid";
  }
  return "unknown";
}

GatewayMetrics::GatewayMetrics()
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& requests =
      BuildCounter()
          .Name("billing_gateway_requests_total")
          .Help("gRPC requests answered, by method and gRPC status code")
          .Register(*registry_);
  auto& request_duration =
      BuildHistogram()
          .Name("billing_gateway_request_duration_seconds")
          .Help(
              "Time from receiving a gRPC request to answering it, by method "
              "and outcome (ok; rejected by flow control, with a reject "
              "reason; error: any other status)")
          .Register(*registry_);
  auto& cache_answers =
      BuildCounter()
          .Name("billing_gateway_cache_answers_total")
          .Help(
              "Reads answered from the gateway's cache, by method and "
              "freshness (fresh: within its freshness, no Kill Bill call; "
              "stale: Kill Bill could not answer)")
          .Register(*registry_);
  for (int m = 0; m < kMethodCount; ++m) {
    const char* method = MethodName(static_cast<Method>(m));
    cache_answers_[m][0] =
        &cache_answers.Add({{"method", method}, {"freshness", "fresh"}});
    cache_answers_[m][1] =
        &cache_answers.Add({{"method", method}, {"freshness", "stale"}});
    for (int c = 0; c < kStatusCodeCount; ++c) {
      requests_[m][c] = &requests.Add(
          {{"method", method},
           {"code",
            absl::StatusCodeToString(static_cast<absl::StatusCode>(c))}});
    }
    for (int o = 0; o < kOutcomeCount; ++o) {
      request_duration_[m][o] = &request_duration.Add(
          {{"method", method}, {"outcome", kOutcomeNames[o]}},
          LatencyBuckets());
    }
  }

  auto& kb_calls =
      BuildCounter()
          .Name("billing_gateway_killbill_calls_total")
          .Help(
              "Calls made to Kill Bill, by endpoint and outcome (status code)")
          .Register(*registry_);
  auto& kb_duration =
      BuildHistogram()
          .Name("billing_gateway_killbill_call_duration_seconds")
          .Help("Latency of Kill Bill calls, by endpoint")
          .Register(*registry_);
  for (int e = 0; e < kEndpointCount; ++e) {
    for (int c = 0; c < kStatusCodeCount; ++c) {
      kb_calls_[e][c] = &kb_calls.Add(
          {{"endpoint", kEndpointNames[e]},
           {"code",
            absl::StatusCodeToString(static_cast<absl::StatusCode>(c))}});
    }
    kb_duration_[e] =
        &kb_duration.Add({{"endpoint", kEndpointNames[e]}}, LatencyBuckets());
  }

  auto& rejections = BuildCounter()
                         .Name("billing_gateway_rejections_total")
                         .Help("Requests refused at admission, by reason")
                         .Register(*registry_);
  for (int r = 0; r < kRejectReasonCount; ++r) {
    rejections_[r] = &rejections.Add(
        {{"reason", RejectReasonName(static_cast<RejectReason>(r))}});
  }
  memory_rejections_ = &rejections.Add({{"reason", kMemoryRejectReason}});
  auto& drops = BuildCounter()
                    .Name("billing_gateway_queue_dropped_total")
                    .Help(
                        "Admitted jobs that left the queue without a Kill Bill "
                        "call, by reason")
                    .Register(*registry_);
  for (int d = 0; d < kDropReasonCount; ++d)
    drops_[d] = &drops.Add({{"reason", kDropNames[d]}});

  auto& breaker_state =
      BuildGauge()
          .Name("billing_gateway_breaker_state")
          .Help("1 for the circuit breaker's current state, 0 for the others")
          .Register(*registry_);
  auto& breaker_transitions =
      BuildCounter()
          .Name("billing_gateway_breaker_transitions_total")
          .Help("Circuit breaker transitions, by state entered")
          .Register(*registry_);
  for (int s = 0; s < 3; ++s) {
    breaker_state_[s] = &breaker_state.Add({{"state", kBreakerStates[s]}});
    breaker_transitions_[s] =
        &breaker_transitions.Add({{"to", kBreakerStates[s]}});
  }
  breaker_state_[0]->Set(1);

  admissions_ = &BuildCounter()
                     .Name("billing_gateway_admissions_total")
                     .Help("Requests admitted into the queue")
                     .Register(*registry_)
                     .Add({});
  queue_depth_ = &BuildGauge()
                      .Name("billing_gateway_queue_depth")
                      .Help("Jobs waiting in the admission queue")
                      .Register(*registry_)
                      .Add({});
  queue_capacity_ = &BuildGauge()
                         .Name("billing_gateway_queue_capacity")
                         .Help("Configured capacity of the admission queue")
                         .Register(*registry_)
                         .Add({});
  queue_wait_ = &BuildHistogram()
                     .Name("billing_gateway_queue_wait_seconds")
                     .Help(
                         "Time admitted jobs spent queued before their first "
                         "Kill Bill call")
                     .Register(*registry_)
                     .Add({}, LatencyBuckets());
  rate_limit_ = &BuildGauge()
                     .Name("billing_gateway_rate_limit_events_per_second")
                     .Help(
                         "Current rate of the bus budget: Kill Bill main-bus "
                         "events per second (this replica's share)")
                     .Register(*registry_)
                     .Add({});
  drain_estimate_ =
      &BuildGauge()
           .Name("billing_gateway_rate_drain_estimate_events_per_second")
           .Help(
               "Adaptive rate controller's estimate of Kill Bill's bus drain, "
               "events/s (0 until a growth episode or quiet polls give one)")
           .Register(*registry_)
           .Add({});
  resident_memory_ =
      &BuildGauge()
           .Name("billing_gateway_resident_memory_bytes")
           .Help("The process's resident memory (/proc/self/statm), bytes")
           .Register(*registry_)
           .Add({});
  resident_memory_limit_ =
      &BuildGauge()
           .Name("billing_gateway_resident_memory_limit_bytes")
           .Help(
               "queue.max_resident_mb in bytes: new calls are refused "
               "(reason memory) at this resident memory; 0 = no bound")
           .Register(*registry_)
           .Add({});
  auto& signal = BuildGauge()
                     .Name("billing_gateway_rate_signal")
                     .Help(
                         "1 for the signal the rate follows now: Kill Bill's "
                         "bus counters (metrics), its healthcheck, or none "
                         "(static)")
                     .Register(*registry_);
  for (int i = 0; i < 3; ++i) {
    rate_signal_[i] = &signal.Add({{"source", kSignalNames[i]}});
  }
  bus_backlog_ =
      &BuildGauge()
           .Name("billing_gateway_killbill_bus_backlog")
           .Help(
               "Kill Bill's main-bus backlog, entries (events posted minus "
               "dispatched, from GET /1.0/metrics; -1 when not read)")
           .Register(*registry_)
           .Add({});
  bus_backlog_->Set(-1);
  in_flight_ = &BuildGauge()
                    .Name("billing_gateway_killbill_in_flight")
                    .Help("Kill Bill calls in flight now")
                    .Register(*registry_)
                    .Add({});
  killbill_healthy_ =
      &BuildGauge()
           .Name("billing_gateway_killbill_healthy")
           .Help("1 when Kill Bill's last healthcheck was healthy, else 0")
           .Register(*registry_)
           .Add({});
  retries_ = &BuildCounter()
                  .Name("billing_gateway_retries_total")
                  .Help("Kill Bill calls retried")
                  .Register(*registry_)
                  .Add({});
  retries_denied_ =
      &BuildCounter()
           .Name("billing_gateway_retries_denied_total")
           .Help("Retries not made because the retry budget was spent")
           .Register(*registry_)
           .Add({});
  auto& reloads =
      BuildCounter()
          .Name("billing_gateway_config_reloads_total")
          .Help(
              "Configuration reloads (SIGHUP) by result: applied, refused "
              "(a key only a restart applies changed), invalid (unreadable "
              "or invalid file)")
          .Register(*registry_);
  for (int r = 0; r < kReloadResultCount; ++r) {
    config_reloads_[r] = &reloads.Add(
        {{"result", ReloadResultName(static_cast<ReloadResult>(r))}});
  }
  queue_growth_family_ =
      &BuildGauge()
           .Name("billing_gateway_killbill_queue_growth")
           .Help(
               "Kill Bill healthcheck growth number per queue "
               "(0.51 = backlog growing ~5.1 entries/s; 0 when not growing)")
           .Register(*registry_);
}

void GatewayMetrics::RecordRequest(Method method, absl::StatusCode code,
                                   bool rejected, double seconds) {
  const int c = static_cast<int>(code);
  if (c >= 0 && c < kStatusCodeCount)
    requests_[static_cast<int>(method)][c]->Increment();
  const int outcome = code == absl::StatusCode::kOk ? 0 : rejected ? 1 : 2;
  request_duration_[static_cast<int>(method)][outcome]->Observe(seconds);
}

void GatewayMetrics::RecordKillBillCall(KillBillEndpoint endpoint,
                                        absl::StatusCode code, double seconds) {
  const int c = static_cast<int>(code);
  if (c >= 0 && c < kStatusCodeCount)
    kb_calls_[static_cast<int>(endpoint)][c]->Increment();
  kb_duration_[static_cast<int>(endpoint)]->Observe(seconds);
}

void GatewayMetrics::SetBreakerState(int state_index) {
  for (int s = 0; s < 3; ++s) breaker_state_[s]->Set(s == state_index ? 1 : 0);
}

void GatewayMetrics::RecordBreakerTransition(int to_state_index) {
  breaker_transitions_[to_state_index]->Increment();
  SetBreakerState(to_state_index);
}

void GatewayMetrics::SetRateSignal(int source_index) {
  for (int i = 0; i < 3; ++i) rate_signal_[i]->Set(i == source_index ? 1 : 0);
}

void GatewayMetrics::SetQueueGrowth(
    const std::map<std::string, double>& queues) {
  absl::MutexLock lock(&mu_);
  double other = 0;
  bool overflow = false;
  for (const auto& [queue, growth] : queues) {
    auto it = queue_growth_.find(queue);
    if (it == queue_growth_.end() && queue != "other" &&
        queue_growth_.size() < kMaxQueueGrowthSeries) {
      it = queue_growth_
               .emplace(queue, &queue_growth_family_->Add({{"queue", queue}}))
               .first;
    }
    if (it == queue_growth_.end() || queue == "other") {
      other = overflow ? std::max(other, growth) : growth;
      overflow = true;
      continue;
    }
    it->second->Set(growth);
  }
  if (overflow && other_queue_growth_ == nullptr)
    other_queue_growth_ = &queue_growth_family_->Add({{"queue", "other"}});
  if (other_queue_growth_ != nullptr) other_queue_growth_->Set(other);
}

}  // namespace bg::metrics
