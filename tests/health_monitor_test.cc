// HealthMonitor under a FakeClock: what Kill Bill's healthcheck answers mean,
// and what one poll feeds (breaker, rate controller, metrics).
#include "dispatch/health_monitor.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "killbill_client/parse.h"
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

TEST_F(HealthMonitorTest, StopEndsThePollThreadAtOnce) {
  monitor_.Start();
  monitor_.Stop();  // would wait out poll_interval if the wait were a sleep
  SUCCEED();
}

}  // namespace
}  // namespace bg::dispatch
