// GatewayMetrics: every Prometheus series billing-gateway exports, declared in
// one place.
//
// Families are built once in the constructor and every child whose labels are
// known up front (methods x gRPC codes, rejection reasons, Kill Bill endpoints
// x outcomes, breaker states) is Add()ed there too, so hot paths only touch
// pre-built counters. The only label that is not fixed by the code is the Kill
// Bill queue name of `killbill_queue_growth`; those names come from Kill Bill's
// own configuration (bus, externalBus, service:queue), a small fixed set.
//
// Naming: prefix billing_gateway_, base units, _total on counters.
// Thread-safety: prometheus-cpp metrics are thread-safe; QueueGrowth() takes a
// mutex.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "dispatch/job.h"
#include "flow/admission_queue.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace bg::metrics {

using dispatch::kEndpointCount;
using dispatch::KillBillEndpoint;
using dispatch::kMethodCount;
using dispatch::Method;
using dispatch::MethodName;
using flow::RejectReason;
using flow::RejectReasonName;

// Why a request was refused before reaching Kill Bill: bg::RejectReason
// (admission_queue.h).
inline constexpr int kRejectReasonCount = 4;
// The memory guard's refusal (flow::MemoryGuard, before the queue): one more
// reason of billing_gateway_rejections_total, and of the answer's
// reject-reason metadata.
inline constexpr char kMemoryRejectReason[] = "memory";

// Why a queued job left the queue without running.
enum class DropReason { kDeadline = 0, kCancelled, kShutdown };
inline constexpr int kDropReasonCount = 3;

// The outcome of a configuration reload (SIGHUP): applied (the tuning keys
// took effect; also when nothing changed), refused (the file changes a key
// only a restart applies; nothing applied), invalid (the file could not be
// read or parsed; nothing applied).
enum class ReloadResult { kApplied = 0, kRefused, kInvalid };
inline constexpr int kReloadResultCount = 3;
const char* ReloadResultName(ReloadResult result);

inline constexpr int kStatusCodeCount = 17;  // absl/gRPC canonical codes 0..16.

// billing_gateway_killbill_queue_growth series, "other" aside.
inline constexpr size_t kMaxQueueGrowthSeries = 8;

class GatewayMetrics {
 public:
  GatewayMetrics();

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() const {
    return registry_;
  }

  // `rejected`: answered by flow control (the answer carries a reject reason).
  void RecordRequest(Method method, absl::StatusCode code, bool rejected,
                     double seconds);
  void RecordKillBillCall(KillBillEndpoint endpoint, absl::StatusCode code,
                          double seconds);
  // A read answered from the cache: fresh (within its freshness, no Kill Bill
  // call) or stale (Kill Bill could not answer).
  void RecordCacheAnswer(Method method, bool stale) {
    cache_answers_[static_cast<int>(method)][stale ? 1 : 0]->Increment();
  }
  void RecordRejection(RejectReason reason) {
    rejections_[static_cast<int>(reason)]->Increment();
  }
  void RecordMemoryRejection() { memory_rejections_->Increment(); }
  void RecordDrop(DropReason reason) {
    drops_[static_cast<int>(reason)]->Increment();
  }
  void SetBreakerState(int state_index);  // 0 closed, 1 open, 2 half-open
  void RecordBreakerTransition(int to_state_index);
  // One healthcheck's queues (name -> growth number, 0 when not growing).
  // The first kMaxQueueGrowthSeries names seen get a series each; any other
  // shares queue="other", set to the largest of them (a faulty Kill Bill
  // naming new queues on every poll must not grow the page without end).
  void SetQueueGrowth(const std::map<std::string, double>& queues)
      ABSL_LOCKS_EXCLUDED(mu_);
  // 0 static, 1 healthcheck, 2 metrics (RateController::Source).
  void SetRateSignal(int source_index);
  // billing_gateway_config_reloads_total{result}.
  void RecordConfigReload(ReloadResult result) {
    config_reloads_[static_cast<int>(result)]->Increment();
  }

  prometheus::Counter& admissions() { return *admissions_; }
  prometheus::Gauge& queue_depth() { return *queue_depth_; }
  prometheus::Gauge& queue_capacity() { return *queue_capacity_; }
  prometheus::Histogram& queue_wait() { return *queue_wait_; }
  prometheus::Gauge& rate_limit() { return *rate_limit_; }
  prometheus::Gauge& drain_estimate() { return *drain_estimate_; }
  // The process's resident memory and the memory guard's bound (0: off).
  prometheus::Gauge& resident_memory() { return *resident_memory_; }
  prometheus::Gauge& resident_memory_limit() { return *resident_memory_limit_; }
  prometheus::Gauge& in_flight() { return *in_flight_; }
  prometheus::Gauge& killbill_healthy() { return *killbill_healthy_; }
  prometheus::Gauge& bus_backlog() { return *bus_backlog_; }
  prometheus::Counter& retries() { return *retries_; }
  prometheus::Counter& retries_denied() { return *retries_denied_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<std::array<prometheus::Counter*, kStatusCodeCount>, kMethodCount>
      requests_{};
  // [method][outcome: ok, rejected, error]
  std::array<std::array<prometheus::Histogram*, 3>, kMethodCount>
      request_duration_{};
  std::array<std::array<prometheus::Counter*, kStatusCodeCount>, kEndpointCount>
      kb_calls_{};
  std::array<prometheus::Histogram*, kEndpointCount> kb_duration_{};
  // [method][fresh, stale]
  std::array<std::array<prometheus::Counter*, 2>, kMethodCount>
      cache_answers_{};
  std::array<prometheus::Counter*, kRejectReasonCount> rejections_{};
  prometheus::Counter* memory_rejections_;
  std::array<prometheus::Counter*, kDropReasonCount> drops_{};
  std::array<prometheus::Gauge*, 3> breaker_state_{};
  std::array<prometheus::Counter*, 3> breaker_transitions_{};
  prometheus::Counter* admissions_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* queue_capacity_;
  prometheus::Histogram* queue_wait_;
  prometheus::Gauge* rate_limit_;
  prometheus::Gauge* drain_estimate_;
  prometheus::Gauge* resident_memory_;
  prometheus::Gauge* resident_memory_limit_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* killbill_healthy_;
  std::array<prometheus::Gauge*, 3> rate_signal_{};
  prometheus::Gauge* bus_backlog_;
  prometheus::Counter* retries_;
  prometheus::Counter* retries_denied_;
  std::array<prometheus::Counter*, kReloadResultCount> config_reloads_{};
  prometheus::Family<prometheus::Gauge>* queue_growth_family_;

  absl::Mutex mu_;
  std::map<std::string, prometheus::Gauge*> queue_growth_ ABSL_GUARDED_BY(mu_);
  prometheus::Gauge* other_queue_growth_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace bg::metrics
