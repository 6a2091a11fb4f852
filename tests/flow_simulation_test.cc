// Closed-loop simulation: token bucket + rate controller + circuit breaker
// against a tiny discrete-time model of Kill Bill's bus and queue healthcheck,
// on a FakeClock.
//
// The model (KILLBILL.md): every account creation posts one bus event; the bus
// drains `drain` events/s; every healthcheck call samples the backlog, smooths
// it (0.3), fits an OLS line over the last 60 samples and prints slope_per_ms *
// 100 rounded half up to 2 decimals; growing when > 0.1. The healthcheck has
// been polled for a minute before the gateway starts. Demand is unbounded (a
// registration storm): the dispatcher takes a job whenever the bucket has 2
// tokens (create + tag) and the breaker allows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "bench/killbill_sim/capacity_model.h"
#include "killbill_client/queue_growth.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/token_bucket.h"
#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Kill Bill's bus and healthcheck, from killbill-sim's own model
// (bench/killbill_sim): the bus drains continuously at `drain` events/s on the
// fake clock (with the sim's overload degradation), and a poll computes the
// growth number exactly as Kill Bill does.
class KillBillBus {
 public:
  explicit KillBillBus(const Clock* clock) : model_(clock, Options(25)) {}

  void SetDrain(double drain) {
    if (drain != model_.options().bus_drain) model_.set_options(Options(drain));
  }
  void Post(double events) {
    model_.Advance();
    model_.PostBusEvents(static_cast<int64_t>(events));
  }
  void Step() { model_.Advance(); }
  double backlog() const { return model_.BusBacklogExact(); }
  // One GET /1.0/healthcheck: the printed growth number (0 until 60 samples
  // exist).
  double Poll(double t_ms) {
    model_.Advance();
    return detector_.Sample(static_cast<int64_t>(t_ms), model_.BusBacklog())
        .slope;
  }

 private:
  static sim::CapacityModelOptions Options(double drain) {
    sim::CapacityModelOptions o;
    o.bus_drain = drain;
    return o;
  }
  sim::CapacityModel model_;
  killbill::QueueGrowthDetector detector_;
};

struct Poll {
  double t_s;
  double rate;     // calls/s
  double backlog;  // bus entries
  double number;   // printed growth (0 = not growing)
  double drain_estimate;
  double backlog_estimate;  // the controller's
};

class Simulation {
 public:
  Simulation(RateController::Options options, double calls_per_job)
      : calls_per_job_(calls_per_job),
        bucket_(&clock_, options.initial, options.burst),
        controller_(&clock_, options, &bucket_),
        breaker_(&clock_, CircuitBreaker::Options{}),
        bus_(&clock_),
        start_(clock_.Now()) {
    // Kill Bill was polled for a minute (idle) before the gateway came up.
    for (int i = 0; i < 60; ++i) bus_.Poll(-1000.0 * (60 - i));
  }

  // Runs until `until_s` with the bus drain given per second of simulated time.
  void RunUntil(double until_s, const std::function<double(double)>& drain_at) {
    constexpr auto kStep = milliseconds(10);
    while (Now() < until_s - 1e-9) {
      clock_.Advance(kStep);
      ++steps_;
      const double t = Now();
      bus_.SetDrain(drain_at(t));
      while (bucket_.TryAcquire(calls_per_job_)) {
        CircuitBreaker::Permit p = breaker_.Allow();
        if (!p.allowed) {
          bucket_.Refund(calls_per_job_);
          break;
        }
        controller_.RecordCalls(static_cast<int>(calls_per_job_));
        bus_.Post(1);  // the creation's bus event
        ++creations_;
        breaker_.OnSuccess(p, milliseconds(40));
        for (int i = 0; i < calls_per_job_; ++i) {
          controller_.RecordOutcome(milliseconds(20), false);
        }
      }
      bus_.Step();
      if (steps_ % 10 == 0) controller_.Tick(/*demand_waiting=*/true);
      if (steps_ % 100 == 0) {
        const double number = bus_.Poll(t * 1000);
        CircuitBreaker::Health h;
        h.queues_growing = number > 0.1;
        h.growth = h.queues_growing ? number : 0;
        breaker_.OnHealth(h);
        controller_.OnHealth(h);
        const RateController::Snapshot c = controller_.snapshot();
        polls_.push_back(Poll{t, controller_.rate(), bus_.backlog(), h.growth,
                              c.drain_estimate, c.backlog_estimate});
        creations_at_.push_back(creations_);
      }
    }
  }

  double Now() const { return ToSeconds(clock_.Now() - start_); }
  const std::vector<Poll>& polls() const { return polls_; }
  const CircuitBreaker& breaker() const { return breaker_; }

  // First poll time >= from_s at which pred holds, or -1.
  double FirstTime(double from_s,
                   const std::function<bool(const Poll&)>& pred) const {
    for (const Poll& p : polls_) {
      if (p.t_s >= from_s && pred(p)) return p.t_s;
    }
    return -1;
  }
  double HealthyShare(double from_s, double to_s) const {
    int n = 0, healthy = 0;
    for (const Poll& p : polls_) {
      if (p.t_s < from_s || p.t_s >= to_s) continue;
      ++n;
      if (p.number <= 0.1) ++healthy;
    }
    return n == 0 ? 0 : static_cast<double>(healthy) / n;
  }
  double MaxBacklog(double from_s, double to_s) const {
    double m = 0;
    for (const Poll& p : polls_) {
      if (p.t_s >= from_s && p.t_s < to_s) m = std::max(m, p.backlog);
    }
    return m;
  }
  double MaxRate(double from_s, double to_s) const {
    double m = 0;
    for (const Poll& p : polls_) {
      if (p.t_s >= from_s && p.t_s < to_s) m = std::max(m, p.rate);
    }
    return m;
  }
  double MinRate(double from_s, double to_s) const {
    double m = 1e9;
    for (const Poll& p : polls_) {
      if (p.t_s >= from_s && p.t_s < to_s) m = std::min(m, p.rate);
    }
    return m;
  }
  // Creations per second between two whole seconds (polls are once a second).
  double Goodput(int from_s, int to_s) const {
    return static_cast<double>(creations_at_[to_s - 1] -
                               creations_at_[from_s - 1]) /
           (to_s - from_s);
  }
  void Dump(int every) const {
    for (size_t i = 0; i < polls_.size(); i += every) {
      const Poll& p = polls_[i];
      std::printf(
          "t=%5.0f rate=%6.2f backlog=%7.1f number=%5.2f drain_est=%6.2f\n",
          p.t_s, p.rate, p.backlog, p.number, p.drain_estimate);
    }
  }

 private:
  const double calls_per_job_;
  FakeClock clock_;
  TokenBucket bucket_;
  RateController controller_;
  CircuitBreaker breaker_;
  KillBillBus bus_;
  const Clock::TimePoint start_;
  int64_t steps_ = 0;
  int64_t creations_ = 0;
  std::vector<Poll> polls_;
  std::vector<int64_t> creations_at_;
};

RateController::Options Adaptive() {
  RateController::Options o;
  o.mode = RateController::Mode::kAdaptive;
  o.initial = 5;
  return o;
}

TEST(FlowSimulationTest, AdaptiveRampsUpThenHoldsTheBusHealthy) {
  Simulation sim(Adaptive(), 2);
  sim.RunUntil(1200, [](double) { return 25.0; });
  if (::testing::Test::HasFailure() || std::getenv("BG_SIM_DUMP")) sim.Dump(10);
  const double reach =
      sim.FirstTime(0, [](const Poll& p) { return p.rate >= 45; });
  std::printf(
      "reach 90%% at %.0f s; healthy [180,1200) %.3f; max backlog %.0f; "
      "goodput "
      "%.2f/s\n",
      reach, sim.HealthyShare(180, 1200), sim.MaxBacklog(180, 1200),
      sim.Goodput(180, 1200));
  EXPECT_GE(reach, 0);
  EXPECT_LE(reach, 60);
  EXPECT_GE(sim.HealthyShare(180, 1200),
            0.975);  // 0.982: ~6 polls per failed probe
  EXPECT_LE(sim.MaxBacklog(180, 1200), 150);
  EXPECT_LE(sim.polls().back().backlog, 100);
  EXPECT_GE(sim.Goodput(180, 1200), 0.9 * 25);
  EXPECT_EQ(sim.breaker().transitions(CircuitBreaker::State::kOpen), 0u);
}

TEST(FlowSimulationTest, AdaptiveFollowsADrainDropAndItsRecovery) {
  Simulation sim(Adaptive(), 2);
  auto drain = [](double t) { return t < 300 || t >= 600 ? 25.0 : 12.0; };
  sim.RunUntil(1000, drain);
  if (std::getenv("BG_SIM_DUMP")) sim.Dump(5);
  const double down = sim.FirstTime(300, [](const Poll& p) {
    return p.rate <= 1.1 * 24;
  }) - 300;
  const double up =
      sim.FirstTime(600, [](const Poll& p) { return p.rate >= 45; }) - 600;
  std::printf(
      "drop followed in %.0f s (min rate %.1f); recovery to 90%% in %.0f s; "
      "goodput "
      "during drop %.2f/s\n",
      down, sim.MinRate(300, 600), up, sim.Goodput(330, 600));
  EXPECT_GE(down, 0);
  EXPECT_LE(down, 30);
  EXPECT_GE(sim.MinRate(300, 600), 0.4 * 24);  // no collapse to the floor
  // Once the episode is over and before the next probe, no creeping overfeed:
  // a drain lower bound computed as if the drain had always been constant
  // (it must then carry the pre-drop traffic too) once put the rate at 25.5
  // calls/s for a 24 calls/s Kill Bill, too little excess for Kill Bill to
  // print but a backlog growing ~0.75 entries/s.
  EXPECT_LE(sim.MaxRate(360, 460), 24.0);
  EXPECT_GE(sim.Goodput(330, 600), 0.8 * 12);
  EXPECT_GE(up, 0);
  EXPECT_LE(up, 300);
  // The controller's backlog estimate during the drop never runs far above
  // the real one (replaying the whole history at the new, lower drain once
  // invented ~1,000 entries, and the dip it implied held the rate near its
  // floor). It may run below: growth Kill Bill has not printed yet is unseen.
  // Measured: at most 133 above (one early fit of the episode), ~1,480 before.
  double over = 0;
  for (const Poll& p : sim.polls()) {
    if (p.t_s >= 300 && p.t_s < 600)
      over = std::max(over, p.backlog_estimate - p.backlog);
  }
  EXPECT_LE(over, 200) << "backlog estimate above the real one by " << over;
}

TEST(FlowSimulationTest, WithoutTagsOneCallPerEvent) {
  RateController::Options o = Adaptive();
  o.calls_per_bus_event = 1;
  Simulation sim(o, 1);
  sim.RunUntil(600, [](double) { return 25.0; });
  const double reach =
      sim.FirstTime(0, [](const Poll& p) { return p.rate >= 22.5; });
  EXPECT_GE(reach, 0);
  EXPECT_LE(reach, 60);
  EXPECT_GE(sim.HealthyShare(180, 600), 0.97);
  EXPECT_GE(sim.Goodput(180, 600), 0.9 * 25);
}

TEST(FlowSimulationTest, StaticRateAboveTheDrainGrowsTheBacklog) {
  RateController::Options o;
  o.mode = RateController::Mode::kStatic;
  o.initial = 60;  // 30 creations/s into a 25/s bus: the report's direct row
  Simulation over(o, 2);
  over.RunUntil(300, [](double) { return 25.0; });
  EXPECT_LE(over.HealthyShare(120, 300), 0.05);
  EXPECT_GE(over.polls().back().backlog, 1000);
  o.initial = 40;
  Simulation under(o, 2);
  under.RunUntil(300, [](double) { return 25.0; });
  EXPECT_EQ(under.HealthyShare(0, 300), 1.0);
}

}  // namespace
}  // namespace bg::flow
