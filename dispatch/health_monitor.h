// HealthMonitor: polls Kill Bill's GET /1.0/healthcheck, and its bus counters
// (GET /1.0/metrics) when the rate controller may use them, and says what they
// mean.
//
// Each poll is interpreted once (Interpret): reachable or not, every check
// other than the queue check healthy or not ("Out of rotation" is not), and
// the largest queue-growth number Kill Bill printed, growing when above the
// threshold. The result feeds the circuit breaker (which opens on an
// unreachable or unhealthy Kill Bill, or a runaway bus) and the rate
// controller (whose model replays the growth number), and the health metrics.
// The counters, read first in the same poll, feed the controller only (it
// decides whether to trust them); the monitor publishes the backlog and the
// signal in use, and logs each switch of signal.
//
// PollOnce() is thread-free, so a fake-clock simulation runs exactly what the
// poll thread runs; Start() owns one thread calling it every `poll_interval`.
//
// Thread-safety: Start/Stop from one thread; PollOnce from one thread at a time
// (the poll thread once started).
#pragma once

#include <functional>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "killbill_client/types.h"
#include "metrics/gateway_metrics.h"

namespace bg::dispatch {

class HealthMonitor {
 public:
  // Maps 1:1 to the `health.*` YAML keys (the poll timeout is the Kill Bill
  // client's, set where the probe is built).
  struct Options {
    // Time between two polls. Every poll is also a sample in Kill Bill's own
    // 60-sample regression window, shared with every other poller.
    Clock::Duration poll_interval = std::chrono::seconds(1);
    // Growth number (as printed, 0.1 = about 1 entry/s) above which a queue
    // counts as growing; Kill Bill's own threshold is 0.1.
    double queue_growth_threshold = 0.1;
  };
  // One GET /1.0/healthcheck: the parsed report or why it failed.
  using Probe = std::function<absl::StatusOr<killbill::HealthReport>()>;
  // One GET /1.0/metrics: the bus counters or why the read failed.
  using MetricsProbe = std::function<absl::StatusOr<killbill::BusCounters>()>;

  // `metrics_probe` is called each poll unless the controller is static or
  // limited to the healthcheck (rate.signal).
  HealthMonitor(Clock* clock, metrics::GatewayMetrics* metrics, Options options,
                Probe probe, MetricsProbe metrics_probe,
                flow::CircuitBreaker* breaker,
                flow::RateController* controller);
  ~HealthMonitor();  // Stop()
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // What Kill Bill's answer means for flow control.
  static flow::CircuitBreaker::Health Interpret(
      const absl::StatusOr<killbill::HealthReport>& report,
      double growth_threshold);

  // One poll: probe, interpret, feed the breaker and the controller, metrics.
  flow::CircuitBreaker::Health PollOnce();

  // Polls every poll_interval on a thread of its own until Stop().
  void Start();
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Logs a climb probe's start, a "still low" and a "back" (info).
  void LogClimbProbes(const flow::RateController::Snapshot& c);

  Clock* const clock_;
  metrics::GatewayMetrics* const metrics_;
  const Options options_;
  const Probe probe_;
  const MetricsProbe metrics_probe_;  // empty: the counters are not read
  // The signal last published (none before the first poll).
  std::optional<flow::RateController::Source> source_;
  // Climb probes as last logged (LogClimbProbes).
  uint64_t climb_probes_ = 0;
  uint64_t climb_failures_ = 0;
  double climb_to_ = 0;
  // The healthcheck window the rate controller assumed, as last logged.
  double window_s_ = 60;
  flow::CircuitBreaker* const breaker_;
  flow::RateController* const controller_;

  absl::Mutex mu_;
  absl::CondVar cv_;  // Signalled by Stop().
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bg::dispatch
