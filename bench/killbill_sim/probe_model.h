// ProbeModel: the kubelet's liveness and readiness probes on Kill Bill, as the
// seed platform's Deployment sets them (docs/killbill.md, "The seed platform's
// probes"): both probes GET /1.0/healthcheck every `period` with the same
// failure threshold. This class is the state machine only: it is told the
// time and the probes' answers, and says what happens to the pod. KillBillSim
// runs it on its own thread (killbill_sim.h) and makes the probes' calls,
// which are samples in the healthcheck's shared growth window.
//
// clang-format off
//   phase     Kill Bill            in the Service   probes
//   --------  -------------------  ---------------  ---------------------------
//   ready     up                   yes              every period
//   unready   up                   no (refused)     every period; ready again
//                                                   at the first readiness OK
//   down      restarting: no       no (refused)     a probe due meanwhile fails
//             process, bus stops                    without calling anything
//   starting  up again             no (refused)     from initial_delay after
//                                                   the restart; ready at the
//                                                   first readiness OK
// clang-format on
//
// Transitions: `failure_threshold` consecutive readiness failures make a ready
// pod unready; as many consecutive liveness failures restart it (the kubelet
// kills the container and starts it again at once): down for `restart_time`,
// then starting until a readiness probe succeeds. Probes resume
// `initial_delay` after the restart (initialDelaySeconds counts from the
// container's start). Enabling the probes on a running pod starts them one
// period later with the pod ready (a pod that has been up a while), not with
// an initial delay. Disabling them makes the pod ready at once.
// A probe that gets no answer within `timeout` fails (KillBillSim: the
// healthcheck, like any call, waits for one of Kill Bill's request threads).
// Simplification: the kubelet's restart back-off (CrashLoopBackOff) is not
// modelled.
//
// Thread-safety: thread-compatible; KillBillSim holds its mutex around every
// call.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>

#include "common/clock.h"

namespace bg::sim {

struct ProbeOptions {
  // Off by default: the sim then never goes unready on its own.
  bool enabled = false;
  // periodSeconds, failureThreshold and initialDelaySeconds of the platform's
  // Deployment (both probes alike).
  Clock::Duration period = std::chrono::seconds(30);
  int failure_threshold = 10;
  Clock::Duration initial_delay = std::chrono::seconds(120);
  // timeoutSeconds: a probe not answered within it fails.
  Clock::Duration timeout = std::chrono::seconds(10);
  // How long Kill Bill is down after the kubelet kills it (termination and the
  // JVM's start until the API answers): an assumption, not from the manifest.
  Clock::Duration restart_time = std::chrono::seconds(60);
};

class ProbeModel {
 public:
  enum class Phase { kReady, kUnready, kDown, kStarting };
  static const char* PhaseName(Phase phase);

  // What one call changed.
  struct Transition {
    // The pod left the Service (ready -> unready, or ready -> down).
    bool left_service = false;
    // The kubelet restarted Kill Bill: the process died now.
    bool restarted = false;
    // The process is up again after a restart (down -> starting).
    bool process_up = false;
    // The pod is back in the Service.
    bool ready = false;
  };

  // Unready intervals and restarts kept for /sim/stats: the most recent ones.
  static constexpr size_t kHistory = 64;

  ProbeModel(const ProbeOptions& options, Clock::TimePoint now);

  const ProbeOptions& options() const { return options_; }
  // New settings from `now`. Turning the probes on schedules the first probe
  // one period later; turning them off makes the pod ready (a restart in
  // progress completes at once). Other changes apply from the next probe.
  Transition Configure(const ProbeOptions& options, Clock::TimePoint now);

  // Time-driven transitions up to `now`: the end of a restart.
  Transition Advance(Clock::TimePoint now);
  // A probe is due at `now` (the caller then makes the calls, unless
  // ProcessUp() is false, and reports them with RecordProbe).
  bool ProbeDue(Clock::TimePoint now) const;
  // The next moment Advance() or a probe has something to do;
  // TimePoint::max() when the probes are off.
  Clock::TimePoint NextEvent() const;
  // One probe round at `now`: the readiness and the liveness answer (false
  // when the healthcheck answered unhealthy or, down, nothing answered).
  // Advances first.
  Transition RecordProbe(Clock::TimePoint now, bool readiness_ok,
                         bool liveness_ok);

  Phase phase() const { return phase_; }
  // In the Service: connections reach Kill Bill.
  bool InService() const { return phase_ == Phase::kReady; }
  // Kill Bill's process runs (its bus drains, a probe reaches it).
  bool ProcessUp() const { return phase_ != Phase::kDown; }

  // Counters since construction.
  uint64_t probe_calls() const { return probe_calls_; }
  uint64_t probe_failures() const { return probe_failures_; }
  uint64_t restarts() const { return restarts_; }
  uint64_t unready_periods() const { return unready_periods_; }
  // Time out of the Service up to `now` (the current period included).
  Clock::Duration UnreadyTime(Clock::TimePoint now) const;
  // Restart moments and unready intervals (start, end; end ==
  // TimePoint::max() while it lasts), oldest first, at most kHistory each.
  const std::deque<Clock::TimePoint>& restart_times() const {
    return restart_times_;
  }
  const std::deque<std::pair<Clock::TimePoint, Clock::TimePoint>>&
  unready_intervals() const {
    return unready_intervals_;
  }

 private:
  void LeaveService(Clock::TimePoint now, Transition* t);
  void EnterService(Clock::TimePoint now, Transition* t);

  ProbeOptions options_;
  Phase phase_ = Phase::kReady;
  Clock::TimePoint next_probe_;
  Clock::TimePoint down_until_;
  int readiness_failures_ = 0;
  int liveness_failures_ = 0;
  uint64_t probe_calls_ = 0;
  uint64_t probe_failures_ = 0;
  uint64_t restarts_ = 0;
  uint64_t unready_periods_ = 0;
  Clock::Duration unready_closed_{0};  // finished unready periods
  Clock::TimePoint unready_since_;
  std::deque<Clock::TimePoint> restart_times_;
  std::deque<std::pair<Clock::TimePoint, Clock::TimePoint>> unready_intervals_;
};

}  // namespace bg::sim
