// CapacityModel: how fast the simulated Kill Bill serves work, and how its
// internal bus backlog evolves. Pure arithmetic on an injected bg::Clock: no
// threads, no sleeps, so tests drive it with bg::FakeClock exactly and
// instantly, and the HTTP server drives it on real time (worker threads wait on
// a condition variable until the model says their job is done).
//
// Model (all rates per second of Clock time):
// clang-format off
//   * A job (one API call) first waits `base_latency` (pure delay that uses no
//     capacity: network, parsing, the fixed part of a call), then joins a
//     processor-sharing server of rate `capacity * f` work units/s: with n
//     jobs in service each progresses at capacity * f / n. An account creation
//     costs 1 unit (so capacity = creations/s at saturation), a tag call
//     `tag_cost`, a read `read_cost` (default 0: GETs are cheap in Kill Bill
//     and are not what saturates it; they still pay base_latency).
//   * Bus: the caller posts the events a call committed (PostBusEvents). The
//     bus drains continuously at `bus_drain * f` events/s while non-empty; the
//     ready entries the healthcheck sees are ceil(backlog).
//   * Overload degradation (database contention, on by default): once the
//     backlog exceeds `degrade_threshold` entries,
//       f = max(degrade_floor,
//               1 - degrade_per_entry * (backlog - degrade_threshold)),
//     applied to both the API capacity and the bus drain (they share one
//     database). As API capacity stays above the drain, sustained overload
//     keeps growing the backlog and throughput collapses toward
//     capacity * degrade_floor; it recovers only after the backlog drains.
//     Below the threshold f = 1 exactly, which is where the calibration
//     against the load-test report (100 clients, 300 creations, backlog
//     <= ~60) lives.
// clang-format on
//
// Processor sharing is computed with a virtual-time clock V (service attained
// by every job in service); a job needing w units that enters at V0 finishes
// when V reaches V0 + w, so every completion time is exact, not stepped. Only
// while degradation is active is time integrated in steps of at most
// kDegradeStep (f varies with the backlog).
//
// Thread-safety: thread-compatible. The owner (KillBillSim) holds its mutex
// around calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <unordered_map>

#include "common/clock.h"

namespace bg::sim {

struct CapacityModelOptions {
  // Work units per second shared by all jobs in service (processor sharing).
  // One account creation or tag call = 1 unit. Default 30: the report's "30.2
  // creations/s" direct row.
  double capacity = 30.0;
  // Bus events drained per second. Default 25: the report's queue grew ~5
  // entries/s at 30/s.
  double bus_drain = 25.0;
  // Fixed delay before a job joins the shared server. Small by default: at
  // saturation the closed-loop latency is clients/capacity whatever this is
  // (Little's law).
  Clock::Duration base_latency = std::chrono::milliseconds(5);
  // Work units of a read (GET); 0 = free. Account creation costs 1.
  double read_cost = 0.0;
  // Work units of a tag call (POST .../tags). Kill Bill writes an account
  // (account row, audit log, bus event) far more expensively than one tag row;
  // 0.1 is an estimate, not a measurement. With it a registration (create +
  // AUTO_PAY_OFF tag) costs 1.1 units, so 100 direct clients register ~27/s and
  // the bus (25/s) grows, as the report saw.
  double tag_cost = 0.1;
  // Overload degradation (see file comment). Off by setting degrade = false.
  bool degrade = true;
  // Backlog entries where contention starts.
  double degrade_threshold = 1000.0;
  // Fraction of capacity and drain lost per entry beyond the threshold.
  double degrade_per_entry = 0.0005;
  // Lowest fraction of capacity and drain.
  double degrade_floor = 0.25;
};

class CapacityModel {
 public:
  using JobId = uint64_t;
  static constexpr Clock::Duration kDegradeStep = std::chrono::milliseconds(20);

  CapacityModel(const Clock* clock, const CapacityModelOptions& options);

  // Brings the model to clock->Now(). Returns how many jobs completed in this
  // call.
  int Advance();

  // Starts a job needing `work` units at clock->Now() (advances first).
  JobId Submit(double work);
  // True once the job has completed (as of the last Advance). Unknown ids are
  // "done".
  bool IsDone(JobId id) const;
  // Forgets a job: a finished one, or an unfinished one whose work is abandoned
  // (the connection died with the server). Unknown ids are ignored.
  void Release(JobId id);
  // When the job would finish if nothing else arrived (completions only make it
  // earlier). Clock::TimePoint::max() when capacity is 0.
  Clock::TimePoint EstimatedCompletion(JobId id) const;

  // Adds `count` (>= 0) bus events now (call after Advance, e.g. on a
  // committed account creation or tag).
  void PostBusEvents(int64_t count = 1);
  // Ready bus entries as the healthcheck counts them: ceil(backlog).
  int64_t BusBacklog() const;
  double BusBacklogExact() const { return bus_backlog_; }

  // Current degradation factor f in [degrade_floor, 1].
  double CapacityFactor() const;
  size_t InService() const { return in_service_.size(); }
  size_t InBaseLatency() const { return in_latency_.size(); }
  uint64_t completed_total() const { return completed_total_; }
  double bus_drained_total() const { return bus_drained_total_; }
  // Events dispatched (handled) since start: whole events of
  // bus_drained_total(), with BusBacklog()'s tolerance, so that
  // bus_posted_total() - bus_dispatched_total() == BusBacklog() up to float
  // drift between the backlog and the totals.
  uint64_t bus_dispatched_total() const;
  uint64_t bus_posted_total() const { return bus_posted_total_; }
  // Model time: the clock reading of the last Advance().
  Clock::TimePoint time() const { return t_; }

  const CapacityModelOptions& options() const { return options_; }
  // Takes effect from now (advances first, so the past is computed with the old
  // values).
  void set_options(const CapacityModelOptions& options);

 private:
  enum class State { kLatency, kService, kDone };
  struct Job {
    State state = State::kLatency;
    double work = 0;
    Clock::TimePoint enter_service;  // end of base latency
    double finish_v = 0;  // virtual time at which it completes (in service)
  };

  // Moves jobs whose latency ended by t_ into service and completes those whose
  // work is done by v_. Returns completions.
  int SettleAt();
  void Enter(JobId id, Job& job);

  const Clock* clock_;
  CapacityModelOptions options_;
  Clock::TimePoint t_;  // model time
  double v_ = 0;        // virtual time of the processor-sharing server
  double bus_backlog_ = 0;
  double bus_drained_total_ = 0;
  uint64_t bus_posted_total_ = 0;
  uint64_t completed_total_ = 0;
  JobId next_id_ = 1;
  std::unordered_map<JobId, Job> jobs_;
  std::multimap<Clock::TimePoint, JobId> in_latency_;
  std::multimap<double, JobId> in_service_;  // by finish_v
};

}  // namespace bg::sim
