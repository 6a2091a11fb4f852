// SimStats: one snapshot of what killbill-sim has done and is doing (GET
// /sim/stats, KillBillSim::Stats()), and SimCounters, the counters behind it.
// Taking a snapshot never samples the healthcheck: observing the sim must not
// disturb the signal it serves.
//
// Thread-safety: SimStats is a plain value. SimCounters is thread-compatible;
// KillBillSim holds its mutex around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/killbill_sim/sim_faults.h"
#include "bench/killbill_sim/sim_options.h"

namespace bg::sim {

struct SimStats {
  double uptime_s = 0;
  // Accounts: created since start, held now, creations refused with 409 (key
  // taken), tag calls that succeeded.
  uint64_t accounts_created = 0;
  size_t accounts_total = 0;
  uint64_t conflicts_409 = 0;
  uint64_t tag_calls_ok = 0;
  // Subscriptions held now (cancelled ones included).
  size_t subscriptions_total = 0;
  // Calls inside the sim now, those holding a request thread (max_threads),
  // and the jobs competing for capacity in the model.
  int in_flight = 0;
  int busy_threads = 0;
  size_t in_service = 0;
  // Bus: ready entries as the healthcheck counts them (ceil of the exact
  // backlog), and events posted (account creations, tags), drained and
  // dispatched (whole events drained: posted - dispatched = the backlog) since
  // start.
  int64_t bus_backlog = 0;
  double bus_backlog_exact = 0;
  uint64_t bus_posted_total = 0;
  double bus_drained_total = 0;
  uint64_t bus_dispatched_total = 0;
  // Overload degradation factor in [degrade_floor, 1], and capacity * factor.
  double capacity_factor = 1;
  double effective_capacity = 0;
  // GET /1.0/healthcheck calls, those answered unhealthy, the last "Growing
  // queues: ..." message ("" when the last call found none) and the last
  // printed bus slope.
  uint64_t healthcheck_calls = 0;
  uint64_t healthcheck_unhealthy_total = 0;
  std::string healthcheck_last_message;
  double bus_slope_last = 0;
  // Samples in the queue-growth regression window (at most
  // healthcheck_window): only GET /1.0/healthcheck adds one.
  int healthcheck_window_points = 0;
  bool in_rotation = true;
  // Connections closed at once (max_connections + accept_count exceeded), and
  // calls abandoned by a refuse outage or Stop().
  uint64_t connections_rejected = 0;
  uint64_t aborted_calls = 0;
  // The kubelet's probes (probe_model.h; "ready" and zeros while they are
  // off): the pod's phase (ready, unready, down, starting), probe calls made
  // and failed (two per round: readiness and liveness; a round while down
  // fails both without calling), periods out of the Service and their total
  // seconds (the current one included), restarts, and the uptime_s of the
  // last restarts and of the last unready intervals ([start, end], end -1
  // while it lasts).
  std::string probe_phase = "ready";
  uint64_t probe_calls = 0;
  uint64_t probe_failures = 0;
  // Probe rounds that got no request thread within probe_timeout_s (both
  // probes failed without a healthcheck sample).
  uint64_t probe_timeouts = 0;
  uint64_t probe_unready_periods = 0;
  double probe_unready_seconds = 0;
  uint64_t probe_restarts = 0;
  std::vector<double> probe_restart_at_s;
  std::vector<std::pair<double, double>> probe_unready_intervals_s;
  // Route label ("POST /1.0/kb/accounts", ..., "other") -> outcome (HTTP
  // status, "reset", "garbage" or "aborted") -> calls.
  std::map<std::string, std::map<std::string, uint64_t>> requests;
  SimOptions settings;
  FaultState faults;
};

class SimCounters {
 public:
  void AccountCreated() { ++accounts_created_; }
  void Conflict() { ++conflicts_409_; }
  void TagCallSucceeded() { ++tag_calls_ok_; }
  void CallAborted() { ++aborted_calls_; }
  // A call reached a /1.0/ route (before its fault pre-checks).
  void ApiCall() { ++api_calls_; }
  uint64_t api_calls() const { return api_calls_; }
  void Request(const std::string& label, const std::string& outcome) {
    ++requests_[label][outcome];
  }
  // One healthcheck answer; `growing_message` is "" when no queue grows.
  void Healthcheck(bool healthy, const std::string& growing_message);

  // Copies the counters into their fields of `stats`.
  void Report(SimStats* stats) const;

 private:
  uint64_t accounts_created_ = 0;
  uint64_t conflicts_409_ = 0;
  uint64_t tag_calls_ok_ = 0;
  uint64_t aborted_calls_ = 0;
  uint64_t api_calls_ = 0;
  uint64_t healthcheck_calls_ = 0;
  uint64_t healthcheck_unhealthy_ = 0;
  std::string last_health_message_;
  std::map<std::string, std::map<std::string, uint64_t>> requests_;
};

}  // namespace bg::sim
