#include "flow/circuit_breaker.h"

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = CircuitBreaker::State;
using Reason = CircuitBreaker::Reason;

constexpr auto kFast = milliseconds(50);

CircuitBreaker::Options TestOptions() {
  CircuitBreaker::Options o;
  o.failure_rate_threshold = 0.5;
  o.slow_call_threshold = seconds(1);
  o.slow_call_rate_threshold = 0.8;
  o.window = seconds(10);
  o.min_calls = 10;
  o.open_duration = seconds(5);
  o.max_open_duration = seconds(20);
  o.half_open_probes = 2;
  o.probe_timeout = seconds(3);
  o.health_failures_to_open = 2;
  o.growth_open_threshold = 5.0;
  return o;
}

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() : breaker_(&clock_, TestOptions()) {
    breaker_.SetTransitionCallback([this](State from, State to, Reason why) {
      log_.push_back(std::string(CircuitBreaker::StateName(from)) + ">" +
                     CircuitBreaker::StateName(to) + ":" +
                     CircuitBreaker::ReasonName(why));
    });
  }
  // n calls, `failures` of them failing, each with `latency`.
  void Calls(int n, int failures, Clock::Duration latency = kFast) {
    for (int i = 0; i < n; ++i) {
      CircuitBreaker::Permit p = breaker_.Allow();
      ASSERT_TRUE(p.allowed);
      if (i < failures) {
        breaker_.OnFailure(p, latency);
      } else {
        breaker_.OnSuccess(p, latency);
      }
    }
  }
  void TripByFailures() {
    for (int i = 0; i < 100 && breaker_.state() == State::kClosed; ++i) {
      breaker_.OnFailure(breaker_.Allow(), kFast);
    }
    ASSERT_EQ(breaker_.state(), State::kOpen);
  }
  void ToHalfOpen() {
    clock_.Advance(breaker_.current_open_duration());
    ASSERT_EQ(breaker_.state(), State::kHalfOpen);
  }

  FakeClock clock_;
  CircuitBreaker breaker_;
  std::vector<std::string> log_;
};

TEST_F(CircuitBreakerTest, StaysClosedBelowMinCalls) {
  Calls(9, 9);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, StaysClosedBelowFailureRate) {
  Calls(10, 4);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, OpensAtFailureRate) {
  Calls(10, 5);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_EQ(log_, std::vector<std::string>{"closed>open:failure_rate"});
  EXPECT_FALSE(breaker_.Allow().allowed);
  EXPECT_EQ(breaker_.TimeUntilNextProbe(), seconds(5));
  EXPECT_EQ(breaker_.transitions(State::kOpen), 1u);
}

TEST_F(CircuitBreakerTest, OldOutcomesLeaveTheWindow) {
  Calls(9, 9);
  clock_.Advance(seconds(11));
  Calls(9, 0);
  Calls(1, 1);  // 1 failure of 10 in the window
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, OpensOnSlowCallRate) {
  Calls(10, 0, seconds(1));  // slow but successful
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_EQ(log_.back(), "closed>open:slow_call_rate");
}

TEST_F(CircuitBreakerTest, SlowBelowThresholdDoesNotOpen) {
  Calls(10, 0, milliseconds(999));
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, OpenToHalfOpenAfterOpenDuration) {
  TripByFailures();
  clock_.Advance(seconds(5) - milliseconds(1));
  EXPECT_EQ(breaker_.state(), State::kOpen);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  EXPECT_EQ(log_.back(), "open>half_open:open_elapsed");
}

TEST_F(CircuitBreakerTest, HalfOpenAdmitsProbesThenClosesWhenAllSucceed) {
  TripByFailures();
  ToHalfOpen();
  CircuitBreaker::Permit a = breaker_.Allow(), b = breaker_.Allow();
  EXPECT_TRUE(a.allowed && a.is_probe);
  EXPECT_TRUE(b.allowed && b.is_probe);
  EXPECT_FALSE(breaker_.Allow().allowed);  // only 2 probes
  breaker_.OnSuccess(a, kFast);
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  breaker_.OnSuccess(b, kFast);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  EXPECT_EQ(log_.back(), "half_open>closed:probes_succeeded");
  EXPECT_EQ(breaker_.current_open_duration(), seconds(5));
}

TEST_F(CircuitBreakerTest, FailedProbeReopensWithDoubledDurationUpToMax) {
  TripByFailures();
  const Clock::Duration expected[] = {seconds(10), seconds(20), seconds(20)};
  for (Clock::Duration want : expected) {
    ToHalfOpen();
    CircuitBreaker::Permit p = breaker_.Allow();
    ASSERT_TRUE(p.is_probe);
    breaker_.OnFailure(p, kFast);
    EXPECT_EQ(breaker_.state(), State::kOpen);
    EXPECT_EQ(breaker_.current_open_duration(), want);
    EXPECT_EQ(breaker_.TimeUntilNextProbe(), want);
  }
  EXPECT_EQ(log_.back(), "half_open>open:probe_failed");
  // A success resets the backoff.
  ToHalfOpen();
  CircuitBreaker::Permit a = breaker_.Allow(), b = breaker_.Allow();
  breaker_.OnSuccess(a, kFast);
  breaker_.OnSuccess(b, kFast);
  ASSERT_EQ(breaker_.state(), State::kClosed);
  TripByFailures();
  EXPECT_EQ(breaker_.current_open_duration(), seconds(5));
}

TEST_F(CircuitBreakerTest, SlowProbeCountsAsFailed) {
  TripByFailures();
  ToHalfOpen();
  CircuitBreaker::Permit p = breaker_.Allow();
  breaker_.OnSuccess(p, seconds(2));
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, HangingProbeTimesOutOnAllowOrTick) {
  TripByFailures();
  ToHalfOpen();
  CircuitBreaker::Permit a = breaker_.Allow(), b = breaker_.Allow();
  ASSERT_TRUE(a.is_probe && b.is_probe);
  breaker_.OnSuccess(a, kFast);
  clock_.Advance(seconds(1));
  EXPECT_EQ(breaker_.TimeUntilNextProbe(), seconds(2));  // b times out in 2 s
  clock_.Advance(seconds(2) - milliseconds(1));
  breaker_.Tick();
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  clock_.Advance(milliseconds(1));
  breaker_.Tick();
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_EQ(log_.back(), "half_open>open:probe_timeout");
  EXPECT_EQ(breaker_.current_open_duration(), seconds(10));
  // The late answer of the timed-out probe changes nothing.
  breaker_.OnSuccess(b, kFast);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  // Detected through Allow() as well.
  ToHalfOpen();
  ASSERT_TRUE(breaker_.Allow().is_probe);
  clock_.Advance(seconds(3));
  EXPECT_FALSE(breaker_.Allow().allowed);
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, OutcomesFromAnEarlierEpochAreIgnored) {
  CircuitBreaker::Permit old = breaker_.Allow();
  TripByFailures();
  ToHalfOpen();
  breaker_.OnFailure(old, kFast);  // admitted while closed: not a probe
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
}

TEST_F(CircuitBreakerTest, UnreachableHealthOpensAfterConsecutivePolls) {
  CircuitBreaker::Health down;
  down.reachable = false;
  breaker_.OnHealth(down);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  breaker_.OnHealth(CircuitBreaker::Health{});  // green resets the count
  breaker_.OnHealth(down);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  breaker_.OnHealth(down);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_EQ(log_.back(), "closed>open:health");
}

TEST_F(CircuitBreakerTest, HealthTurningGreenProbesBeforeTheOpenPeriodEnds) {
  CircuitBreaker::Health down;
  down.reachable = false;
  breaker_.OnHealth(down);
  breaker_.OnHealth(down);
  ASSERT_EQ(breaker_.state(), State::kOpen);
  breaker_.OnHealth(down);  // Still red: stays open.
  EXPECT_EQ(breaker_.state(), State::kOpen);
  breaker_.OnHealth(CircuitBreaker::Health{});
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  EXPECT_EQ(log_.back(), "open>half_open:health_recovered");
}

TEST_F(CircuitBreakerTest, GreenHealthDoesNotShortenAnOpenCausedByFailures) {
  breaker_.OnHealth(CircuitBreaker::Health{});
  TripByFailures();
  breaker_.OnHealth(
      CircuitBreaker::Health{});  // Green all along: no edge, no probe.
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, OutOfRotationOpens) {
  CircuitBreaker::Health h;
  h.healthy_except_queues = false;
  breaker_.OnHealth(h);
  breaker_.OnHealth(h);
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, ModerateGrowthLeftToRateControllerRunawayOpens) {
  CircuitBreaker::Health h;
  h.queues_growing = true;
  h.growth = 4.99;
  breaker_.OnHealth(h);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  h.growth = 5.0;
  breaker_.OnHealth(h);
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

TEST_F(CircuitBreakerTest, HalfOpenClosesOnlyWithGreenHealth) {
  TripByFailures();
  CircuitBreaker::Health red;
  red.reachable = false;
  breaker_.OnHealth(red);
  ToHalfOpen();
  CircuitBreaker::Permit a = breaker_.Allow(), b = breaker_.Allow();
  breaker_.OnSuccess(a, kFast);
  breaker_.OnSuccess(b, kFast);
  // Probes fine, health red: reopen, same duration (the probes did not fail).
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_EQ(log_.back(), "half_open>open:health");
  EXPECT_EQ(breaker_.current_open_duration(), seconds(5));
  breaker_.OnHealth(CircuitBreaker::Health{});
  ToHalfOpen();
  a = breaker_.Allow();
  b = breaker_.Allow();
  breaker_.OnSuccess(a, kFast);
  breaker_.OnSuccess(b, kFast);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, ClosingResetsTheWindow) {
  Calls(5, 0);
  TripByFailures();
  ToHalfOpen();
  CircuitBreaker::Permit a = breaker_.Allow(), b = breaker_.Allow();
  breaker_.OnSuccess(a, kFast);
  breaker_.OnSuccess(b, kFast);
  ASSERT_EQ(breaker_.state(), State::kClosed);
  Calls(9, 9);  // would trip if the old window were still counted
  EXPECT_EQ(breaker_.state(), State::kClosed);
  EXPECT_EQ(breaker_.transitions(State::kClosed), 1u);
  EXPECT_EQ(breaker_.transitions(State::kHalfOpen), 1u);
}

}  // namespace
}  // namespace bg::flow
