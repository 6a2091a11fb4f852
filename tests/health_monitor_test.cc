// HealthMonitor under a FakeClock: what Kill Bill's healthcheck answers mean,
// and what one poll feeds (breaker, rate controller, metrics).
#include "dispatch/health_monitor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "killbill_client/parse.h"
#include "killbill_client/queue_growth.h"
#include "prometheus/text_serializer.h"

namespace bg::dispatch {
namespace {

using std::chrono::seconds;

constexpr char kQueues[] =
    "org.killbill.billing.server.healthchecks.KillbillQueuesHealthcheck";
constexpr char kMain[] =
    "org.killbill.billing.server.healthchecks.KillbillHealthcheck";

killbill::HealthReport Report(bool main_healthy, double bus_growth) {
  killbill::HealthReport r;
  const bool growing = bus_growth > 0.1;
  r.healthy = main_healthy && !growing;
  r.http_status = r.healthy ? 200 : 500;
  r.checks.push_back({kMain, main_healthy, main_healthy ? "OK" : ""});
  r.checks.push_back({kQueues, !growing, ""});
  r.queue_growing["bus"] = growing;
  if (growing) r.queue_growth["bus"] = bus_growth;
  return r;
}

killbill::HealthReport EmptyReport(int http_status) {
  killbill::HealthReport r;
  r.http_status = http_status;
  r.healthy = http_status == 200;
  return r;
}

killbill::HealthReport Unexplained500() {
  killbill::HealthReport r = Report(true, 0);
  r.http_status = 500;
  r.healthy = false;
  return r;
}

struct Case {
  std::string name;
  absl::StatusOr<killbill::HealthReport> report;
  bool reachable, healthy_except_queues, growing;
  double growth;
};

TEST(HealthMonitorInterpret, WhatEachAnswerMeans) {
  killbill::HealthReport short_names = Report(true, 0.51);
  short_names.checks[1].name = "KillbillQueuesHealthcheck";
  killbill::HealthReport two_queues = Report(true, 0.2);
  two_queues.queue_growth["externalBus"] = 0.7;
  const std::vector<Case> cases = {
      {"healthy", Report(true, 0), true, true, false, 0},
      {"unreachable", absl::UnavailableError("refused"), false, true, false, 0},
      {"out of rotation", Report(false, 0), true, false, false, 0},
      {"bus growing", Report(true, 0.51), true, true, true, 0.51},
      {"short check names", short_names, true, true, true, 0.51},
      {"largest queue counts", two_queues, true, true, true, 0.7},
      // Kill Bill prints only numbers above its own 0.1; a lower threshold
      // of ours still sees them.
      {"at the threshold", Report(true, 0.1), true, true, false, 0},
      // Answers no real Kill Bill gives, from a proxy or a broken servlet:
      // not green (every Kill Bill answer lists its checks, and a 500 has a
      // cause).
      {"500 {}", EmptyReport(500), true, false, false, 0},
      {"200 {}", EmptyReport(200), true, false, false, 0},
      {"500, every check healthy", Unexplained500(), true, false, false, 0},
      {"501", killbill::ParseHealthReport(501, "{}"), false, true, false, 0},
  };
  for (const Case& c : cases) {
    const flow::CircuitBreaker::Health h =
        HealthMonitor::Interpret(c.report, 0.1);
    EXPECT_EQ(h.reachable, c.reachable) << c.name;
    EXPECT_EQ(h.healthy_except_queues, c.healthy_except_queues) << c.name;
    EXPECT_EQ(h.queues_growing, c.growing) << c.name;
    EXPECT_DOUBLE_EQ(h.growth, c.growth) << c.name;
  }
}

class HealthMonitorTest : public ::testing::Test {
 protected:
  HealthMonitorTest()
      : breaker_(&clock_,
                 [] {
                   flow::CircuitBreaker::Options o;
                   o.health_failures_to_open = 2;
                   return o;
                 }()),
        controller_(&clock_, flow::RateController::Options{}),
        monitor_(
            &clock_, &metrics_, HealthMonitor::Options{},
            [this] {
              clock_.Advance(std::chrono::milliseconds(30));
              return answer_;
            },
            [this] {
              ++metrics_reads_;
              return counters_;
            },
            &breaker_, &controller_) {}

  std::string Scrape() {
    return prometheus::TextSerializer().Serialize(
        metrics_.registry().Collect());
  }

  FakeClock clock_;
  metrics::GatewayMetrics metrics_;
  flow::CircuitBreaker breaker_;
  flow::RateController controller_;
  absl::StatusOr<killbill::HealthReport> answer_ = Report(true, 0);
  // Kill Bill without the metrics bundle, unless a test says otherwise.
  absl::StatusOr<killbill::BusCounters> counters_ = killbill::BusCounters{};
  int metrics_reads_ = 0;
  HealthMonitor monitor_;
};

TEST_F(HealthMonitorTest, UnreachablePollsOpenTheBreaker) {
  monitor_.PollOnce();
  EXPECT_EQ(breaker_.state(), flow::CircuitBreaker::State::kClosed);
  answer_ = absl::UnavailableError("connection refused");
  monitor_.PollOnce();
  clock_.Advance(seconds(1));
  monitor_.PollOnce();
  EXPECT_EQ(breaker_.state(), flow::CircuitBreaker::State::kOpen);
}

TEST_F(HealthMonitorTest, GrowthReachesTheRateControllerAndTheMetrics) {
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(seconds(1));
    monitor_.PollOnce();
  }
  answer_ = Report(true, 0.51);
  clock_.Advance(seconds(1));
  const flow::CircuitBreaker::Health h = monitor_.PollOnce();
  EXPECT_TRUE(h.queues_growing);
  EXPECT_TRUE(controller_.snapshot().drain_known);  // a growth episode fit
  const std::string page = Scrape();
  EXPECT_NE(page.find("billing_gateway_killbill_queue_growth{queue=\"bus\"} "
                      "0.51"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("billing_gateway_killbill_healthy 0"), std::string::npos);
  // Every poll is a Kill Bill call of the healthcheck endpoint (31 polls).
  EXPECT_NE(page.find("billing_gateway_killbill_call_duration_seconds_count{"
                      "endpoint=\"healthcheck\"} 31"),
            std::string::npos)
      << page;
}

// A faulty Kill Bill (or something posing as one) names new queues on every
// poll: the series stay bounded (issue 13, item 5).
TEST_F(HealthMonitorTest, QueueNamesMakeBoundedSeries) {
  for (int poll = 0; poll < 50; ++poll) {
    killbill::HealthReport r = Report(true, 0);
    for (int q = 0; q < 20; ++q) {
      const std::string name = "queue-" + std::to_string(poll * 20 + q);
      r.queue_growing[name] = true;
      r.queue_growth[name] = 0.2;
    }
    answer_ = r;
    clock_.Advance(seconds(1));
    monitor_.PollOnce();
  }
  const std::string page = Scrape();
  size_t series = 0;
  for (size_t at = 0; (at = page.find("billing_gateway_killbill_queue_growth{",
                                      at)) != std::string::npos;
       ++at) {
    ++series;
  }
  EXPECT_LE(series, metrics::kMaxQueueGrowthSeries + 1) << page;
  // bus, the queue Kill Bill always names first, keeps its own series; the
  // rest beyond the bound share queue="other", at the largest growth.
  EXPECT_NE(page.find("billing_gateway_killbill_queue_growth{queue=\"bus\"}"),
            std::string::npos);
  EXPECT_NE(page.find("billing_gateway_killbill_queue_growth{queue=\"other\"} "
                      "0.2"),
            std::string::npos)
      << page;
}

TEST_F(HealthMonitorTest, TheSignalInUseFollowsWhatKillBillServes) {
  // No metrics bundle: the healthcheck.
  clock_.Advance(seconds(1));
  monitor_.PollOnce();
  EXPECT_EQ(controller_.source(), flow::RateController::Source::kHealthcheck);
  EXPECT_NE(
      Scrape().find("billing_gateway_rate_signal{source=\"healthcheck\"} 1"),
      std::string::npos);
  // The counters appear: a baseline, then the metrics.
  for (int64_t i = 1; i <= 3; ++i) {
    counters_ = killbill::BusCounters{true, 100 * i, 100 * i - 7};
    clock_.Advance(seconds(1));
    monitor_.PollOnce();
  }
  EXPECT_EQ(controller_.source(), flow::RateController::Source::kMetrics);
  std::string page = Scrape();
  EXPECT_NE(page.find("billing_gateway_rate_signal{source=\"metrics\"} 1"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("billing_gateway_rate_signal{source=\"healthcheck\"} 0"),
            std::string::npos);
  EXPECT_NE(page.find("billing_gateway_killbill_bus_backlog 7"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("billing_gateway_killbill_call_duration_seconds_count{"
                      "endpoint=\"metrics\"} 4"),
            std::string::npos)
      << page;
  // A failed read: back to the healthcheck, the backlog unknown.
  counters_ = absl::UnavailableError("connection reset");
  clock_.Advance(seconds(1));
  monitor_.PollOnce();
  EXPECT_EQ(controller_.source(), flow::RateController::Source::kHealthcheck);
  EXPECT_NE(Scrape().find("billing_gateway_killbill_bus_backlog -1"),
            std::string::npos);
}

TEST(HealthMonitorSignal, HealthcheckOnlyAndStaticNeverReadTheCounters) {
  for (const bool adaptive : {true, false}) {
    FakeClock clock;
    metrics::GatewayMetrics metrics;
    flow::CircuitBreaker breaker(&clock, flow::CircuitBreaker::Options{});
    flow::RateController::Options o;
    o.signal = flow::RateController::Signal::kHealthcheck;
    if (!adaptive) {
      o.signal = flow::RateController::Signal::kAuto;
      o.mode = flow::RateController::Mode::kStatic;
    }
    flow::RateController controller(&clock, o);
    int reads = 0;
    HealthMonitor monitor(
        &clock, &metrics, HealthMonitor::Options{},
        [] { return Report(true, 0); },
        [&reads] {
          ++reads;
          return absl::StatusOr<killbill::BusCounters>(
              killbill::BusCounters{true, 10, 10});
        },
        &breaker, &controller);
    for (int i = 0; i < 5; ++i) {
      clock.Advance(seconds(1));
      monitor.PollOnce();
    }
    EXPECT_EQ(reads, 0) << (adaptive ? "healthcheck only" : "static");
  }
}

// Kill Bill's bus and its queue healthcheck, shared by every caller: a backlog
// that drains `drain` events/s on the fake clock, and Kill Bill's growth
// computation (killbill_client/queue_growth.h, as killbill-sim serves it),
// sampled by whoever calls GET /1.0/healthcheck.
class SharedHealthcheck {
 public:
  explicit SharedHealthcheck(const Clock* clock)
      : clock_(clock), t0_(clock->Now()), last_(t0_) {}
  void SetDrain(double drain) {
    Advance();
    drain_ = drain;
  }
  void Post(double events) {
    Advance();
    backlog_ += events;
  }
  // One call, from the gateway or anyone else: one sample in the window.
  killbill::HealthReport Call() {
    Advance();
    const int64_t t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             clock_->Now() - t0_)
                             .count();
    const auto r = detector_.Sample(t_ms, std::ceil(backlog_ - 1e-9));
    return Report(true, r.growing ? r.slope : 0);
  }
  double backlog() {
    Advance();
    return backlog_;
  }

 private:
  void Advance() {
    const double dt = ToSeconds(clock_->Now() - last_);
    last_ = clock_->Now();
    backlog_ = std::max(0.0, backlog_ - drain_ * dt);
  }

  const Clock* const clock_;
  const Clock::TimePoint t0_;
  Clock::TimePoint last_;
  double drain_ = 25;
  double backlog_ = 0;
  killbill::QueueGrowthDetector detector_;
};

// What a closed loop of the gateway's healthcheck-driven control did.
struct LoopResult {
  double max_backlog_after_drop = 0;  // from the drop on
  // Events/s over the last 100 s, in whole climb-probe cycles: from the
  // first tick from 500 s on, to the last, at which no probe is in flight.
  double mean_rate_end = 0;
  double drain_estimate_end = 0;
  double max_backlog_at = 0;
  // The bus backlog at the last tick with no climb probe in flight (a probe
  // holds a bump of its own in the bus on purpose), and the largest from
  // 400 s on.
  double backlog_end = 0;
  double max_backlog_late = 0;
  uint64_t climb_probes = 0;
  uint64_t climb_failures = 0;
  double breaker_open_s = 0;  // seconds the breaker was not closed
  uint64_t growth_cuts = 0;
  // The gateway's polls that Kill Bill answered "growing" (unhealthy): the
  // longest unbroken run (s) and how many in all.
  double longest_unhealthy_s = 0;
  int unhealthy_polls = 0;
};

// The gateway's health monitor (rate.signal healthcheck: only the queue
// growth number), its breaker and adaptive controller, with demand always
// waiting, against a Kill Bill whose drain falls from 25 to 12 events/s at
// 300 s; run for 600 s. `foreign_period` > 0: another poller calls the
// healthcheck `foreign_calls` times every `foreign_period`, phase-shifted
// from the gateway's polls; its answers go nowhere, its samples land in the
// same window.
LoopResult RunSharedWindow(Clock::Duration foreign_period, int foreign_calls) {
  FakeClock clock;
  metrics::GatewayMetrics metrics;
  flow::CircuitBreaker breaker(&clock, flow::CircuitBreaker::Options{});
  flow::RateController::Options o;
  o.signal = flow::RateController::Signal::kHealthcheck;
  flow::RateController controller(&clock, o);
  SharedHealthcheck kb(&clock);
  HealthMonitor monitor(
      &clock, &metrics, HealthMonitor::Options{},
      [&kb] { return absl::StatusOr<killbill::HealthReport>(kb.Call()); },
      [] {
        return absl::StatusOr<killbill::BusCounters>(
            absl::UnavailableError("not read"));
      },
      &breaker, &controller);
  // Kill Bill has been polled for a minute: its window is full.
  for (int i = 0; i < 60; ++i) {
    clock.Advance(seconds(1));
    kb.Call();
  }
  const auto step = std::chrono::milliseconds(100);
  const int steps_per_s = 10;
  const int foreign_every = foreign_period > Clock::Duration::zero()
                                ? static_cast<int>(foreign_period / step)
                                : 0;
  LoopResult result;
  // Rate per tick from 500 s, and whether a climb probe was in flight.
  std::vector<std::pair<double, bool>> late_rates;
  double unhealthy_since = -1;
  for (int k = 0; k < 600 * steps_per_s; ++k) {
    const double t = k / static_cast<double>(steps_per_s);
    if (k == 300 * steps_per_s) kb.SetDrain(12);
    clock.Advance(step);
    const double rate = controller.Tick(/*demand_waiting=*/true);
    // The gateway sends at its rate when the breaker lets it.
    if (breaker.state() == flow::CircuitBreaker::State::kClosed) {
      const double events = rate * ToSeconds(step);
      kb.Post(events);
      controller.RecordBusEvents(events);
    } else {
      result.breaker_open_s += ToSeconds(step);
    }
    if (k % steps_per_s == 0) {
      const flow::CircuitBreaker::Health h = monitor.PollOnce();
      // BG_TRACE=<seconds>: print every poll from then on (debugging).
      if (std::getenv("BG_TRACE") && t >= std::atof(std::getenv("BG_TRACE"))) {
        const flow::RateController::Snapshot c = controller.snapshot();
        std::printf(
            "t=%5.0f rate=%6.2f backlog=%6.1f number=%5.2f drain=%5.2f "
            "base_backlog=%6.1f climb=%d probes=%llu failed=%llu windows=%d "
            "climb_to=%.1f\n",
            t, rate, kb.backlog(), h.queues_growing ? h.growth : 0,
            c.drain_estimate, c.backlog_estimate, c.climbing,
            static_cast<unsigned long long>(c.climb_probes),
            static_cast<unsigned long long>(c.climb_failures), c.climb_windows,
            c.climb_to);
      }
      if (h.queues_growing) {
        ++result.unhealthy_polls;
        if (unhealthy_since < 0) unhealthy_since = t;
        result.longest_unhealthy_s =
            std::max(result.longest_unhealthy_s, t - unhealthy_since);
      } else {
        unhealthy_since = -1;
      }
    }
    // Foreign callers half a poll off the gateway's.
    if (foreign_every > 0 && k % foreign_every == steps_per_s / 2) {
      for (int i = 0; i < foreign_calls; ++i) kb.Call();
    }
    if (t >= 300) {
      if (kb.backlog() > result.max_backlog_after_drop) {
        result.max_backlog_after_drop = kb.backlog();
        result.max_backlog_at = t;
      }
    }
    const bool climbing = controller.snapshot().climbing;
    if (t >= 400) {
      result.max_backlog_late = std::max(result.max_backlog_late, kb.backlog());
    }
    if (!climbing) result.backlog_end = kb.backlog();
    if (t >= 500) late_rates.emplace_back(rate, climbing);
  }
  const flow::RateController::Snapshot snap = controller.snapshot();
  size_t first = 0, last = late_rates.size();
  while (first < last && late_rates[first].second) ++first;
  while (last > first && late_rates[last - 1].second) --last;
  double rate_sum = 0;
  for (size_t i = first; i < last; ++i) rate_sum += late_rates[i].first;
  result.mean_rate_end =
      last > first ? rate_sum / static_cast<double>(last - first) : 0;
  result.climb_probes = snap.climb_probes;
  result.climb_failures = snap.climb_failures;
  result.drain_estimate_end = snap.drain_estimate;
  result.growth_cuts = snap.growth_cuts;
  return result;
}

// Issue 15, item 3: Kubernetes probes (two calls every 30 s, the seed
// platform's liveness and readiness) and an operator's poller share Kill
// Bill's healthcheck window with the gateway. Their samples shorten the
// window's time span and move its points; the gateway's model replays only
// its own polls. It must still follow a drain drop, keep the bus from
// growing, and not open the breaker.
TEST(HealthMonitorForeignSamples, ControlStaysCorrectWithInterleavedSamples) {
  struct Scenario {
    const char* name;
    Clock::Duration period;
    int calls;
  };
  const Scenario scenarios[] = {
      {"alone", Clock::Duration::zero(), 0},
      {"kubelet probes: 2 calls / 30 s", seconds(30), 2},
      {"probes + a poller every 5 s", seconds(5), 1},
      {"a second poller every second", seconds(1), 1},
  };
  double alone_max_backlog = 0;  // scenarios[0]'s
  for (const Scenario& s : scenarios) {
    const LoopResult r = RunSharedWindow(s.period, s.calls);
    std::printf(
        "%-32s max backlog after drop %.1f at %.0f s, from 400 s %.1f, end "
        "(no probe in flight) %.1f, mean rate (500-600 s, whole probe "
        "cycles) %.2f, drain estimate %.2f, growth cuts %llu, climb probes "
        "%llu (found the drain still low %llu), breaker open %.1f s, "
        "unhealthy polls %d, longest %.0f s\n",
        s.name, r.max_backlog_after_drop, r.max_backlog_at, r.max_backlog_late,
        r.backlog_end, r.mean_rate_end, r.drain_estimate_end,
        static_cast<unsigned long long>(r.growth_cuts),
        static_cast<unsigned long long>(r.climb_probes),
        static_cast<unsigned long long>(r.climb_failures), r.breaker_open_s,
        r.unhealthy_polls, r.longest_unhealthy_s);
    // It found the drop (it cut on growth) and settled below the new drain
    // without starving: within [70 %, 100 %] of 12 events/s.
    EXPECT_GT(r.growth_cuts, 0u) << s.name;
    EXPECT_LE(r.mean_rate_end, 12.0) << s.name;
    EXPECT_GE(r.mean_rate_end, 0.7 * 12.0) << s.name;
    EXPECT_NEAR(r.drain_estimate_end, 12.0, 2.5) << s.name;
    // Climb probes (on by default after a drop) looked for the old drain
    // every minute or so and never read their own bump as capacity: each
    // found the drain still low, the estimate stayed near 12 (above), and
    // the bus held at most one probe's bump (~60-100 entries) on what the
    // drop left.
    EXPECT_GE(r.climb_probes, 3u) << s.name;
    EXPECT_GE(r.climb_failures + 1, r.climb_probes) << s.name;
    EXPECT_LE(r.max_backlog_late, 150) << s.name;
    // Kill Bill never stays unhealthy for long: the kubelet would need ten
    // failed rounds 30 s apart (270 s) to restart it; the gateway keeps every
    // unhealthy stretch under two minutes, and pays the backlog down (the
    // probe's bump too, once it has been judged).
    EXPECT_LT(r.longest_unhealthy_s, 120.0) << s.name;
    EXPECT_LT(r.backlog_end, 10.0) << s.name;
    // The drop costs about what it costs without foreign samples.
    if (alone_max_backlog > 0) {
      EXPECT_LE(r.max_backlog_after_drop, 2 * alone_max_backlog) << s.name;
    } else {
      alone_max_backlog = r.max_backlog_after_drop;
    }
    EXPECT_EQ(r.breaker_open_s, 0.0) << s.name;
  }
}

TEST_F(HealthMonitorTest, StopEndsThePollThreadAtOnce) {
  monitor_.Start();
  monitor_.Stop();  // would wait out poll_interval if the wait were a sleep
  SUCCEED();
}

}  // namespace
}  // namespace bg::dispatch
