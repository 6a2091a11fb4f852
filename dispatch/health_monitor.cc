#include "dispatch/health_monitor.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace bg::dispatch {

HealthMonitor::HealthMonitor(Clock* clock, metrics::GatewayMetrics* metrics,
                             Options options, Probe probe,
                             MetricsProbe metrics_probe,
                             flow::CircuitBreaker* breaker,
                             flow::RateController* controller)
    : clock_(clock),
      metrics_(metrics),
      options_(options),
      probe_(std::move(probe)),
      metrics_probe_(controller->options().mode ==
                                 flow::RateController::Mode::kAdaptive &&
                             controller->options().signal ==
                                 flow::RateController::Signal::kAuto
                         ? std::move(metrics_probe)
                         : MetricsProbe()),
      breaker_(breaker),
      controller_(controller) {}

HealthMonitor::~HealthMonitor() { Stop(); }

flow::CircuitBreaker::Health HealthMonitor::Interpret(
    const absl::StatusOr<killbill::HealthReport>& report,
    double growth_threshold) {
  flow::CircuitBreaker::Health h;
  h.reachable = report.ok();
  if (!report.ok()) return h;
  for (const auto& check : report->checks) {
    if (!check.healthy &&
        !absl::EndsWith(check.name, "KillbillQueuesHealthcheck")) {
      h.healthy_except_queues = false;
    }
  }
  for (const auto& [queue, growth] : report->queue_growth) {
    h.growth = std::max(h.growth, growth);
  }
  h.queues_growing = h.growth > growth_threshold;
  // Kill Bill lists its checks in every answer, and answers 500 only for an
  // unhealthy one: an answer with no checks (a proxy's, a broken servlet's)
  // or a 500 that neither a check nor a growth number explains is not green.
  const bool explained =
      !h.healthy_except_queues || !report->queue_growth.empty();
  if (report->checks.empty() || (report->http_status == 500 && !explained)) {
    h.healthy_except_queues = false;
  }
  return h;
}

void HealthMonitor::LogClimbProbes(const flow::RateController::Snapshot& c) {
  if (c.climb_probes > climb_probes_) {
    spdlog::info(
        "climb probe {}: a burst toward the drain before the drop ({:.1f} "
        "events/s), then a hold at the drain known now ({:.1f} events/s)",
        c.climb_probes, c.climb_to, c.drain_estimate);
  }
  if (c.climb_failures > climb_failures_) {
    spdlog::info(
        "climb probe {}: Kill Bill printed growth, the drain is still low; "
        "the bump is paid back",
        c.climb_probes);
  }
  if (climb_to_ > 0 && c.climb_to == 0 && c.drain_estimate >= climb_to_ - 1) {
    spdlog::info("climb probe {}: capacity is back, drain {:.1f} events/s",
                 c.climb_probes, c.drain_estimate);
  }
  climb_probes_ = c.climb_probes;
  climb_failures_ = c.climb_failures;
  climb_to_ = c.climb_to;
}

flow::CircuitBreaker::Health HealthMonitor::PollOnce() {
  if (metrics_probe_) {
    const Clock::TimePoint t0 = clock_->Now();
    const absl::StatusOr<killbill::BusCounters> counters = metrics_probe_();
    metrics_->RecordKillBillCall(KillBillEndpoint::kMetrics,
                                 counters.status().code(),
                                 ToSeconds(clock_->Now() - t0));
    if (!counters.ok()) {
      spdlog::debug("Kill Bill metrics read failed: {}",
                    std::string(counters.status().message()));
    }
    controller_->OnBusCounters(counters.ok() ? std::optional(*counters)
                                             : std::nullopt);
  }
  const Clock::TimePoint start = clock_->Now();
  const absl::StatusOr<killbill::HealthReport> report = probe_();
  // A 500 "growing queues" answer is a successful poll: the endpoint series
  // counts the poll, not Kill Bill's verdict.
  metrics_->RecordKillBillCall(KillBillEndpoint::kHealthcheck,
                               report.status().code(),
                               ToSeconds(clock_->Now() - start));
  const flow::CircuitBreaker::Health health =
      Interpret(report, options_.queue_growth_threshold);
  breaker_->OnHealth(health);
  controller_->OnHealth(health);
  const flow::RateController::Snapshot c = controller_->snapshot();
  if (c.source != source_) {
    if (source_ || c.source == flow::RateController::Source::kMetrics) {
      spdlog::info("rate signal: {} ({})",
                   flow::RateController::SourceName(c.source), c.source_why);
    }
    source_ = c.source;
    metrics_->SetRateSignal(static_cast<int>(c.source));
  }
  LogClimbProbes(c);
  if (c.healthcheck_window_s != window_s_) {
    spdlog::info(
        "healthcheck window: Kill Bill's growth number read as a {:.0f} s "
        "window (60 samples; shorter when others call its healthcheck too)",
        c.healthcheck_window_s);
    window_s_ = c.healthcheck_window_s;
  }
  metrics_->bus_backlog().Set(c.bus_backlog);
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug(
        "health poll: growth {:.2f}, bus events since last poll {:.1f}; "
        "signal {}; rate {:.2f} events/s, drain estimate {:.2f} events/s{}, "
        "backlog {:.1f}{}, foreign {:.2f} events/s",
        health.queues_growing ? health.growth : 0.0, c.last_poll_events,
        flow::RateController::SourceName(c.source), c.rate, c.drain_estimate,
        c.drain_known ? "" : " (lower bound)", c.backlog_estimate,
        c.probing ? ", probing" : "", c.foreign_events_per_s);
  }
  metrics_->killbill_healthy().Set(report.ok() && report->healthy ? 1 : 0);
  if (report.ok()) {
    std::map<std::string, double> queues;
    for (const auto& [queue, growing] : report->queue_growing) {
      auto it = report->queue_growth.find(queue);
      queues[queue] = it == report->queue_growth.end() ? 0 : it->second;
    }
    metrics_->SetQueueGrowth(queues);
  } else {
    spdlog::warn("Kill Bill healthcheck failed: {}",
                 std::string(report.status().message()));
  }
  return health;
}

void HealthMonitor::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void HealthMonitor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void HealthMonitor::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    PollOnce();
    mu_.Lock();
    // An interruptible wait (Stop() must not wait out a poll interval), timed
    // from the injected clock.
    const Clock::TimePoint next = clock_->Now() + options_.poll_interval;
    while (!stopping_ && clock_->Now() < next) {
      cv_.WaitWithTimeout(
          &mu_,
          absl::FromChrono(std::chrono::nanoseconds(next - clock_->Now())));
    }
  }
}

}  // namespace bg::dispatch
