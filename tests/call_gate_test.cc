// CallGate under a FakeClock: what a job takes at dispatch, what each of its
// Kill Bill calls spends and feeds back, and what it hands back unused.
#include "dispatch/call_gate.h"

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace bg::dispatch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = flow::CircuitBreaker::State;

flow::CircuitBreaker::Options BreakerOptions() {
  flow::CircuitBreaker::Options o;
  o.min_calls = 4;
  o.window = seconds(10);
  o.open_duration = seconds(2);
  o.half_open_probes = 1;
  o.probe_timeout = seconds(10);
  return o;
}

flow::RateController::Options StaticRate(double events_per_s) {
  flow::RateController::Options o;
  o.mode = flow::RateController::Mode::kStatic;
  o.initial = events_per_s;
  return o;
}

class CallGateTest : public ::testing::Test {
 protected:
  CallGateTest()
      : bus_(&clock_, 10, 4),
        api_(&clock_, 20, 4),
        breaker_(&clock_, BreakerOptions()),
        controller_(&clock_, StaticRate(10)),
        budget_(&clock_, flow::RetryOptions{}),
        gate_(&clock_,
              CallGate::Parts{&bus_, &api_, &breaker_, &controller_, &budget_,
                              &metrics_},
              flow::RetryOptions{}) {}

  // A job whose run is `work`, due in `deadline` from now.
  Job MakeJob(std::function<void(KillBillCalls&)> work,
              Clock::Duration deadline = seconds(30)) {
    Job job;
    job.deadline = clock_.Now() + deadline;
    job.run = std::move(work);
    return job;
  }
  // One Kill Bill call of `cost` answering `status` after 20 ms.
  static void OneCall(KillBillCalls& calls, Cost cost,
                      absl::Status status = absl::OkStatus()) {
    ASSERT_TRUE(calls.Admit(KillBillEndpoint::kCreateAccount, cost).ok());
    calls.Record(KillBillEndpoint::kCreateAccount, status, milliseconds(20));
  }
  void Open() {
    for (int i = 0; i < 4; ++i) breaker_.OnFailure(breaker_.Allow(), {});
    ASSERT_EQ(breaker_.state(), State::kOpen);
  }

  FakeClock clock_;
  metrics::GatewayMetrics metrics_;
  flow::TokenBucket bus_;
  flow::TokenBucket api_;
  flow::CircuitBreaker breaker_;
  flow::RateController controller_;
  flow::RetryBudget budget_;
  CallGate gate_;
};

TEST_F(CallGateTest, TakesBothBudgetsOrNothing) {
  CallGate::Refusal why;
  ASSERT_TRUE(gate_.TryTake({2, 3}, &why).has_value());
  EXPECT_NEAR(bus_.Available(), 1, 1e-9);
  EXPECT_NEAR(api_.Available(), 2, 1e-9);
  // Two bus events are not there: the call tokens must stay untouched.
  EXPECT_FALSE(gate_.TryTake({1, 2}, &why).has_value());
  EXPECT_EQ(why, CallGate::Refusal::kNoBusTokens);
  EXPECT_NEAR(api_.Available(), 2, 1e-9);
  // A read costs no bus event: the bus budget does not hold it back.
  EXPECT_TRUE(gate_.TryTake({1, 0}, &why).has_value());
  // 1 event more arrives after 100 ms at 10/s.
  EXPECT_EQ(gate_.TimeUntilAffordable({1, 2}), milliseconds(100));
}

TEST_F(CallGateTest, ACostAboveTheBurstIsCappedSoTheJobCanStart) {
  CallGate::Refusal why;
  auto ticket = gate_.TryTake({1, 40}, &why);
  ASSERT_TRUE(ticket.has_value());
  EXPECT_EQ(ticket->prepaid, (Cost{1, 4}));
}

TEST_F(CallGateTest, BreakerRefusalGivesTheTokensBack) {
  Open();
  CallGate::Refusal why;
  EXPECT_FALSE(gate_.TryTake({1, 1}, &why).has_value());
  EXPECT_EQ(why, CallGate::Refusal::kBreaker);
  EXPECT_NEAR(bus_.Available(), 4, 1e-9);
  EXPECT_NEAR(api_.Available(), 4, 1e-9);
}

TEST_F(CallGateTest, SuccessfulCallsReportTheBusEventsTheyPosted) {
  CallGate::Refusal why;
  Job job = MakeJob([](KillBillCalls& calls) {
    OneCall(calls, {1, 1});                                   // the account
    OneCall(calls, {1, 2});                                   // two tags
    OneCall(calls, {1, 1}, absl::AlreadyExistsError("409"));  // posts none
  });
  auto ticket = gate_.TryTake({2, 3}, &why);
  ASSERT_TRUE(ticket.has_value());
  const CallGate::Outcome outcome = gate_.Run(job, *ticket);
  EXPECT_EQ(outcome.calls, 3);
  EXPECT_FALSE(outcome.failed);
  clock_.Advance(seconds(1));
  controller_.OnHealth(flow::CircuitBreaker::Health{});
  EXPECT_DOUBLE_EQ(controller_.snapshot().last_poll_events, 3);
}

TEST_F(CallGateTest, UnforeseenCallsWaitForTheirTokensThroughTheClock) {
  CallGate::Refusal why;
  auto ticket = gate_.TryTake({1, 1}, &why);  // prepaid: 1 call, 1 event
  ASSERT_TRUE(ticket.has_value());
  ASSERT_TRUE(bus_.TryAcquire(3));  // someone else empties the bus bucket
  const Clock::TimePoint start = clock_.Now();
  Job job = MakeJob([](KillBillCalls& calls) {
    OneCall(calls, {1, 1});  // prepaid
    OneCall(calls, {1, 1});  // a retry nobody foresaw: 1 event at 10/s
  });
  gate_.Run(job, *ticket);
  EXPECT_EQ(clock_.Now() - start, milliseconds(100));
}

TEST_F(CallGateTest, NoTokenBeforeTheDeadlineIsDeadlineExceeded) {
  CallGate::Refusal why;
  auto ticket = gate_.TryTake({1, 0}, &why);
  ASSERT_TRUE(ticket.has_value());
  ASSERT_TRUE(bus_.TryAcquire(4));
  absl::Status second;
  Job job = MakeJob(
      [&](KillBillCalls& calls) {
        OneCall(calls, {1, 0});
        second = calls.Admit(KillBillEndpoint::kCreateAccount, {1, 4});
      },
      milliseconds(200));  // 4 events need 400 ms
  const Clock::TimePoint start = clock_.Now();
  gate_.Run(job, *ticket);
  EXPECT_TRUE(absl::IsDeadlineExceeded(second)) << second;
  EXPECT_EQ(clock_.Now(), start);  // refused at once, no pointless wait
}

TEST_F(CallGateTest, AJobWithoutCallsHandsBackItsProbeAndItsTokens) {
  Open();
  clock_.Advance(seconds(2));
  CallGate::Refusal why;
  auto probe = gate_.TryTake({2, 2}, &why);
  ASSERT_TRUE(probe.has_value());
  ASSERT_TRUE(probe->permit.is_probe);
  // The only probe is out: nobody else may call.
  EXPECT_FALSE(gate_.TryTake({1, 1}, &why).has_value());
  Job gone = MakeJob([](KillBillCalls&) {});  // caller left before the call
  gate_.Run(gone, *probe);
  EXPECT_NEAR(bus_.Available(), 4, 1e-9);
  EXPECT_NEAR(api_.Available(), 4, 1e-9);
  // The probe is free again at once, and the breaker did not reopen (which a
  // probe held until probe_timeout would have done, with a doubled period).
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  auto next = gate_.TryTake({1, 1}, &why);
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->permit.is_probe);
  Job ok = MakeJob([](KillBillCalls& calls) { OneCall(calls, {1, 1}); });
  gate_.Run(ok, *next);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CallGateTest, KillBillFailuresFeedTheBreakerOncePerJob) {
  CallGate::Refusal why;
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(seconds(1));
    auto ticket = gate_.TryTake({1, 1}, &why);
    ASSERT_TRUE(ticket.has_value());
    Job job = MakeJob([](KillBillCalls& calls) {
      OneCall(calls, {1, 1}, absl::UnavailableError("503"));
    });
    EXPECT_TRUE(gate_.Run(job, *ticket).failed);
  }
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CallGateTest, TheRetryBudgetIsCreditedByFirstAttemptsOnly) {
  const double before = budget_.Available();
  CallGate::Refusal why;
  auto ticket = gate_.TryTake({3, 1}, &why);
  ASSERT_TRUE(ticket.has_value());
  Job job = MakeJob([](KillBillCalls& calls) {
    OneCall(calls, {1, 1});  // the create
    OneCall(calls, {1, 0});  // a lookup
    OneCall(calls, {1, 0});  // a tag call
  });
  gate_.Run(job, *ticket);
  // One deposit of budget_ratio (0.1), not three.
  EXPECT_NEAR(budget_.Available() - before, 0.1, 1e-9);
}

TEST_F(CallGateTest, RetryJitterDiffersBetweenGates) {
  // Seeded from the OS: two processes (here two gates) do not back off in
  // lockstep. Full jitter over [0, 100 ms]: equal delays for 5 first retries
  // in a row would be a fixed seed.
  CallGate other(&clock_,
                 CallGate::Parts{&bus_, &api_, &breaker_, &controller_,
                                 &budget_, &metrics_},
                 flow::RetryOptions{});
  auto first_retry = [&](CallGate& gate) {
    std::vector<Clock::Duration> delays;
    for (int i = 0; i < 5; ++i) {
      CallGate::Refusal why;
      clock_.Advance(seconds(1));
      auto ticket = gate.TryTake({0, 0}, &why);
      Job job = MakeJob([&](KillBillCalls& calls) {
        Clock::Duration d{};
        ASSERT_TRUE(calls.MayRetry(&d));
        delays.push_back(d);
      });
      gate.Run(job, *ticket);
    }
    return delays;
  };
  EXPECT_NE(first_retry(gate_), first_retry(other));
}

}  // namespace
}  // namespace bg::dispatch
