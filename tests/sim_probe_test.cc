// killbill-sim's model of the kubelet's liveness and readiness probes:
// ProbeModel's state machine on bg::FakeClock (unit), and KillBillSim acting
// on it on port 0 with a probe schedule in milliseconds (integration: it waits
// on the sim's own conditions with deadlines, it never sleeps).
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "bench/killbill_sim/killbill_sim.h"
#include "bench/killbill_sim/probe_model.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace bg::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Phase = ProbeModel::Phase;

// The seed platform's schedule with a shorter threshold: a probe round every
// 30 s, 3 failures in a row, probes resume 120 s after a restart, Kill Bill
// down for 60 s.
ProbeOptions Platform() {
  ProbeOptions o;
  o.enabled = true;
  o.period = seconds(30);
  o.failure_threshold = 3;
  o.initial_delay = seconds(120);
  o.restart_time = seconds(60);
  return o;
}

// Runs probe rounds with the given answers at each due time; returns the last
// round's transition.
ProbeModel::Transition Rounds(ProbeModel& model, FakeClock& clock, int n,
                              bool readiness_ok, bool liveness_ok) {
  ProbeModel::Transition t;
  for (int i = 0; i < n; ++i) {
    clock.Advance(model.NextEvent() - clock.Now());
    EXPECT_TRUE(model.ProbeDue(clock.Now()));
    t = model.RecordProbe(clock.Now(), readiness_ok, liveness_ok);
  }
  return t;
}

TEST(SimProbeModelTest, OffByDefaultNothingIsEverDue) {
  FakeClock clock;
  ProbeModel model(ProbeOptions{}, clock.Now());
  EXPECT_EQ(model.NextEvent(), Clock::TimePoint::max());
  clock.Advance(std::chrono::hours(10));
  EXPECT_FALSE(model.ProbeDue(clock.Now()));
  EXPECT_TRUE(model.InService());
  EXPECT_EQ(model.probe_calls(), 0u);
}

TEST(SimProbeModelTest, FirstRoundOnePeriodAfterEnablingThenEveryPeriod) {
  FakeClock clock;
  const Clock::TimePoint t0 = clock.Now();
  ProbeModel model(Platform(), t0);
  EXPECT_EQ(model.NextEvent(), t0 + seconds(30));
  clock.Advance(seconds(29));
  EXPECT_FALSE(model.ProbeDue(clock.Now()));
  // A late round (the thread woke 5 s late) does not shift the schedule.
  clock.Advance(seconds(6));
  model.RecordProbe(clock.Now(), true, true);
  EXPECT_EQ(model.NextEvent(), t0 + seconds(60));
  EXPECT_EQ(model.probe_calls(), 2u);  // readiness + liveness
  EXPECT_EQ(model.probe_failures(), 0u);
}

TEST(SimProbeModelTest, ThresholdFailuresRestartThenReadyAfterInitialDelay) {
  FakeClock clock;
  ProbeModel model(Platform(), clock.Now());
  ProbeModel::Transition t = Rounds(model, clock, 2, false, false);
  EXPECT_TRUE(model.InService()) << "2 failures < threshold 3";
  EXPECT_FALSE(t.left_service);
  t = Rounds(model, clock, 1, false, false);
  const Clock::TimePoint killed = clock.Now();
  EXPECT_TRUE(t.restarted);
  EXPECT_TRUE(t.left_service);
  EXPECT_FALSE(t.process_up);
  EXPECT_EQ(model.phase(), Phase::kDown);
  EXPECT_FALSE(model.ProcessUp());
  EXPECT_EQ(model.restarts(), 1u);
  EXPECT_EQ(model.unready_periods(), 1u);
  EXPECT_EQ(model.probe_failures(), 6u);
  ASSERT_EQ(model.restart_times().size(), 1u);
  EXPECT_EQ(model.restart_times().front(), killed);

  // Down for restart_time: the next event is the process coming back.
  EXPECT_EQ(model.NextEvent(), killed + seconds(60));
  clock.Advance(seconds(59));
  EXPECT_FALSE(model.Advance(clock.Now()).process_up);
  clock.Advance(seconds(1));
  EXPECT_TRUE(model.Advance(clock.Now()).process_up);
  EXPECT_EQ(model.phase(), Phase::kStarting);
  EXPECT_FALSE(model.InService());
  // Probes resume initial_delay after the restart, not before.
  EXPECT_EQ(model.NextEvent(), killed + seconds(120));
  EXPECT_FALSE(model.ProbeDue(clock.Now()));
  t = Rounds(model, clock, 1, true, true);
  EXPECT_TRUE(t.ready);
  EXPECT_TRUE(model.InService());
  EXPECT_EQ(model.UnreadyTime(clock.Now()), seconds(120));
  ASSERT_EQ(model.unready_intervals().size(), 1u);
  EXPECT_EQ(model.unready_intervals().front(),
            std::make_pair(killed, killed + seconds(120)));
}

TEST(SimProbeModelTest, OneSuccessResetsTheCount) {
  FakeClock clock;
  ProbeModel model(Platform(), clock.Now());
  Rounds(model, clock, 2, false, false);
  Rounds(model, clock, 1, true, true);
  Rounds(model, clock, 2, false, false);
  EXPECT_TRUE(model.InService());
  EXPECT_EQ(model.restarts(), 0u);
  EXPECT_EQ(model.probe_failures(), 8u);
  Rounds(model, clock, 1, false, false);
  EXPECT_EQ(model.restarts(), 1u);
}

TEST(SimProbeModelTest, ReadinessAloneMakesUnreadyWithoutRestart) {
  FakeClock clock;
  ProbeModel model(Platform(), clock.Now());
  ProbeModel::Transition t = Rounds(model, clock, 3, false, true);
  EXPECT_TRUE(t.left_service);
  EXPECT_FALSE(t.restarted);
  EXPECT_EQ(model.phase(), Phase::kUnready);
  EXPECT_TRUE(model.ProcessUp());
  const Clock::TimePoint left = clock.Now();
  // Unready keeps probing every period; the first readiness OK ends it.
  EXPECT_EQ(model.NextEvent(), left + seconds(30));
  Rounds(model, clock, 1, false, true);
  EXPECT_FALSE(model.InService());
  t = Rounds(model, clock, 1, true, true);
  EXPECT_TRUE(t.ready);
  EXPECT_EQ(model.restarts(), 0u);
  EXPECT_EQ(model.unready_periods(), 1u);
  EXPECT_EQ(model.UnreadyTime(clock.Now()), seconds(60));
}

TEST(SimProbeModelTest, ProbesWhileDownFailAndCanRestartAgain) {
  ProbeOptions o = Platform();
  o.failure_threshold = 2;
  o.initial_delay = seconds(30);
  o.restart_time = seconds(300);  // longer than delay + 2 periods
  FakeClock clock;
  ProbeModel model(o, clock.Now());
  Rounds(model, clock, 2, false, false);
  ASSERT_EQ(model.restarts(), 1u);
  // Rounds at +30 s and +60 s find no process: both fail, no call made.
  const ProbeModel::Transition t = Rounds(model, clock, 2, true, true);
  EXPECT_TRUE(t.restarted);
  EXPECT_EQ(model.restarts(), 2u);
  EXPECT_EQ(model.unready_periods(), 1u) << "still the same unready period";
  EXPECT_EQ(model.probe_failures(), 8u);
}

TEST(SimProbeModelTest, ZeroRestartTimeIsUpAtOnce) {
  ProbeOptions o = Platform();
  o.restart_time = Clock::Duration::zero();
  FakeClock clock;
  ProbeModel model(o, clock.Now());
  const ProbeModel::Transition t = Rounds(model, clock, 3, false, false);
  EXPECT_TRUE(t.restarted);
  EXPECT_TRUE(t.process_up);
  EXPECT_EQ(model.phase(), Phase::kStarting);
}

TEST(SimProbeModelTest, DisablingEndsAnUnreadyPeriodAtOnce) {
  FakeClock clock;
  ProbeModel model(Platform(), clock.Now());
  Rounds(model, clock, 3, false, false);
  ASSERT_EQ(model.phase(), Phase::kDown);
  clock.Advance(seconds(10));
  ProbeOptions off = Platform();
  off.enabled = false;
  const ProbeModel::Transition t = model.Configure(off, clock.Now());
  EXPECT_TRUE(t.ready);
  EXPECT_TRUE(t.process_up);
  EXPECT_TRUE(model.InService());
  EXPECT_EQ(model.UnreadyTime(clock.Now() + seconds(100)), seconds(10));
  EXPECT_EQ(model.NextEvent(), Clock::TimePoint::max());
  // On again: the first round one period later, the count from zero.
  const ProbeModel::Transition on = model.Configure(Platform(), clock.Now());
  EXPECT_FALSE(on.left_service);
  EXPECT_EQ(model.NextEvent(), clock.Now() + seconds(30));
  Rounds(model, clock, 2, false, false);
  EXPECT_EQ(model.restarts(), 1u);
}

// ---------------------------------------------------------------------------
// KillBillSim with the probes on, on a millisecond schedule.

class SimProbeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimOptions options;
    options.port = 0;
    options.control_port = 0;
    options.model.capacity = 1e6;
    options.model.base_latency = Clock::Duration::zero();
    options.model.bus_drain = 5;
    options.probes.enabled = true;
    options.probes.period = milliseconds(20);
    options.probes.failure_threshold = 3;
    // Long enough for the test to look at the sim while it is down, then
    // starting; short enough to keep the test quick.
    options.probes.restart_time = milliseconds(600);
    options.probes.initial_delay = milliseconds(1200);
    sim_ = std::make_unique<KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
  }

  std::unique_ptr<httplib::Client> Client(int port) {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_connection_timeout(2, 0);
    c->set_read_timeout(10, 0);
    c->set_basic_auth("admin", "password");
    return c;
  }
  static httplib::Headers Auth() {
    return {{"X-Killbill-ApiKey", "fresh-tenant"},
            {"X-Killbill-ApiSecret", "fresh-secret"},
            {"X-Killbill-CreatedBy", "test"}};
  }

  std::unique_ptr<KillBillSim> sim_;
};

TEST_F(SimProbeServerTest, FailingProbesRestartKillBillWhichKeepsItsData) {
  auto api = Client(sim_->port());
  for (int i = 0; i < 5; ++i) {
    auto res = api->Post("/1.0/kb/accounts", Auth(),
                         R"({"externalKey":"k)" + std::to_string(i) + R"("})",
                         "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 201);
  }
  ASSERT_EQ(api->Get("/1.0/healthcheck")->status, 200);
  ASSERT_GE(sim_->Stats().healthcheck_window_points, 1);
  // Out of rotation: the healthcheck answers 500, so every probe fails.
  ASSERT_EQ(api->Delete("/1.0/kb/admin/healthcheck")->status, 204);

  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kDown, absl::Seconds(20)));
  SimStats down = sim_->Stats();
  EXPECT_EQ(down.probe_phase, "down");
  EXPECT_EQ(down.probe_restarts, 1u);
  EXPECT_GE(down.probe_failures, 6u);
  EXPECT_EQ(down.probe_unready_periods, 1u);
  ASSERT_EQ(down.probe_restart_at_s.size(), 1u);
  // Kill Bill's memory is gone: the sample window is empty, the rotation
  // flag back to in rotation. The database is not: accounts, bus backlog.
  EXPECT_EQ(down.healthcheck_window_points, 0);
  EXPECT_TRUE(down.in_rotation);
  EXPECT_EQ(down.accounts_total, 5u);
  // Connections are refused; the control listener still answers.
  auto refused = Client(sim_->port())->Get("/1.0/healthcheck");
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.error(), httplib::Error::Connection);
  auto control = Client(sim_->control_port())->Get("/sim/stats");
  ASSERT_TRUE(control);
  EXPECT_EQ(control->status, 200);
  EXPECT_EQ(nlohmann::json::parse(control->body)["probe_restarts"], 1);
  // Only the control routes there.
  EXPECT_EQ(Client(sim_->control_port())->Get("/1.0/healthcheck")->status, 404);

  // Up again but not yet probed: still refused; then ready at the first
  // successful probe after the initial delay.
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kStarting, absl::Seconds(20)));
  EXPECT_FALSE(Client(sim_->port())->Get("/1.0/healthcheck"));
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kReady, absl::Seconds(20)));
  ASSERT_TRUE(sim_->WaitForListener(absl::Seconds(10)));
  auto back = Client(sim_->port())->Get("/1.0/healthcheck");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, 200);
  const SimStats ready = sim_->Stats();
  EXPECT_EQ(ready.probe_phase, "ready");
  EXPECT_EQ(ready.probe_restarts, 1u);
  EXPECT_GE(ready.probe_unready_seconds, 1.2);  // at least the initial delay
  ASSERT_EQ(ready.probe_unready_intervals_s.size(), 1u);
  EXPECT_GE(ready.probe_unready_intervals_s[0].second,
            ready.probe_unready_intervals_s[0].first + 1.2);
  EXPECT_EQ(ready.accounts_total, 5u);
  auto again =
      Client(sim_->port())->Get("/1.0/kb/accounts?externalKey=k3", Auth());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(SimProbeServerTest, NoBusDrainWhileDown) {
  auto api = Client(sim_->port());
  // 100 events on a 5 events/s drain: a backlog that outlives the test.
  ASSERT_TRUE(sim_->Configure([](SimOptions* o) {
                    o->bus_events_per_tag = 99;
                    return absl::OkStatus();
                  })
                  .ok());
  auto created = api->Post("/1.0/kb/accounts", Auth(), R"({"externalKey":"b"})",
                           "application/json");
  ASSERT_TRUE(created);
  const std::string location = created->get_header_value("Location");
  const std::string id = location.substr(location.rfind('/') + 1);
  ASSERT_EQ(api->Post(("/1.0/kb/accounts/" + id + "/tags").c_str(), Auth(),
                      R"(["00000000-0000-0000-0000-000000000001"])",
                      "application/json")
                ->status,
            201);
  ASSERT_EQ(api->Delete("/1.0/kb/admin/healthcheck")->status, 204);
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kDown, absl::Seconds(20)));
  const SimStats a = sim_->Stats();
  // A second look while still down (the test may be slow: skip if not).
  const SimStats b = sim_->Stats();
  ASSERT_EQ(a.probe_phase, "down");
  if (b.probe_phase == "down") {
    EXPECT_EQ(b.bus_drained_total, a.bus_drained_total);
  }
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kStarting, absl::Seconds(20)));
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kReady, absl::Seconds(20)));
  const SimStats c = sim_->Stats();
  EXPECT_GT(c.bus_drained_total, a.bus_drained_total) << "drains when up";
  EXPECT_GT(c.bus_backlog, 0) << "the backlog survived the restart";
}

// A saturated Kill Bill: every request thread is busy, so the probes' calls
// wait for one and time out (timeoutSeconds), which fails them without any
// healthcheck sample and restarts Kill Bill as failed answers would.
TEST_F(SimProbeServerTest, ProbesThatGetNoRequestThreadTimeOut) {
  ASSERT_TRUE(sim_->Configure([](SimOptions* o) {
                    o->max_threads = 1;
                    o->model.capacity = 1e-3;  // a creation takes 1,000 s
                    o->probes.timeout = std::chrono::milliseconds(50);
                    return absl::OkStatus();
                  })
                  .ok());
  // One creation holds the only request thread until the restart aborts it.
  std::thread holder([this] {
    auto c = Client(sim_->port());
    c->Post("/1.0/kb/accounts", Auth(), R"({"externalKey":"slow"})",
            "application/json");
  });
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kDown, absl::Seconds(20)));
  holder.join();
  const SimStats s = sim_->Stats();
  EXPECT_GE(s.probe_timeouts, 3u);
  EXPECT_GE(s.probe_failures, 6u);
  EXPECT_EQ(s.probe_restarts, 1u);
  // Every probe that got an answer got a healthy one: the timeouts alone
  // restarted it.
  EXPECT_EQ(s.healthcheck_unhealthy_total, 0u);
  EXPECT_GE(s.aborted_calls, 1u) << "the creation died with the process";
}

// An injected outage fails the probes too (the healthcheck answers 503 to
// everyone): no sample is taken, and the kubelet restarts Kill Bill.
TEST_F(SimProbeServerTest, ProbesFailDuringA503Outage) {
  ASSERT_TRUE(sim_->InjectFaults(FaultRequest::Outage503(60)).ok());
  const uint64_t calls_before = sim_->Stats().healthcheck_calls;
  ASSERT_TRUE(sim_->WaitForProbes(1, Phase::kDown, absl::Seconds(20)));
  const SimStats s = sim_->Stats();
  EXPECT_GE(s.probe_failures, 6u);
  EXPECT_EQ(s.probe_timeouts, 0u);
  EXPECT_EQ(s.healthcheck_calls, calls_before) << "no probe took a sample";
}

TEST_F(SimProbeServerTest, ConfigTurnsTheProbesOffAndBadValuesAreRefused) {
  auto control = Client(sim_->control_port());
  auto bad = control->Post("/sim/config", R"({"probe_period_s": 0})",
                           "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("probe_period_s"), std::string::npos) << bad->body;
  auto huge = control->Post("/sim/config", R"({"probe_restart_s": 1e300})",
                            "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 400);
  EXPECT_NE(huge->body.find("probe_restart_s"), std::string::npos)
      << huge->body;
  EXPECT_EQ(
      control->Post("/sim/config", R"({"probes": false})", "application/json")
          ->status,
      200);
  // Out of rotation with the probes off: nothing happens to the pod.
  auto api = Client(sim_->port());
  ASSERT_EQ(api->Delete("/1.0/kb/admin/healthcheck")->status, 204);
  EXPECT_FALSE(sim_->WaitForProbes(1, Phase::kDown, absl::Milliseconds(300)));
  const SimStats s = sim_->Stats();
  EXPECT_EQ(s.probe_restarts, 0u);
  EXPECT_FALSE(s.settings.probes.enabled);
}

}  // namespace
}  // namespace bg::sim
