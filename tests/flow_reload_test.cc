// The setters a configuration reload applies through (SIGHUP), each under a
// FakeClock: TokenBucket::SetBurst, CircuitBreaker::SetOptions,
// RateController::SetOptions, AdmissionQueue::SetCapacity and
// FlowControl::Reconfigure. What was queued or learnt stays; the new values
// apply from the call on.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dispatch/flow_control.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/token_bucket.h"
#include "gtest/gtest.h"

namespace bg {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(TokenBucketReloadTest, SetBurstKeepsTokensUpToTheNewDepth) {
  FakeClock clock;
  flow::TokenBucket bucket(&clock, /*rate_per_s=*/1, /*burst=*/10);
  ASSERT_DOUBLE_EQ(bucket.Available(), 10);
  bucket.SetBurst(3);
  EXPECT_DOUBLE_EQ(bucket.burst(), 3);
  EXPECT_DOUBLE_EQ(bucket.Available(), 3);  // beyond the new depth: gone
  ASSERT_TRUE(bucket.TryAcquire(3));
  bucket.SetBurst(6);
  EXPECT_DOUBLE_EQ(bucket.Available(), 0);  // a deeper bucket creates nothing
  clock.Advance(seconds(10));
  EXPECT_DOUBLE_EQ(bucket.Available(), 6);  // and refills to its new depth
  EXPECT_EQ(bucket.TimeUntilAvailable(7), Clock::Duration::max());
}

flow::CircuitBreaker::Options BreakerOptions() {
  flow::CircuitBreaker::Options o;
  o.window = seconds(10);
  o.min_calls = 10;
  o.failure_rate_threshold = 0.5;
  o.open_duration = seconds(5);
  o.max_open_duration = seconds(20);
  return o;
}

void Fail(flow::CircuitBreaker& breaker, int n) {
  for (int i = 0; i < n; ++i) {
    flow::CircuitBreaker::Permit p = breaker.Allow();
    ASSERT_TRUE(p.allowed);
    breaker.OnFailure(p, milliseconds(10));
  }
}

TEST(CircuitBreakerReloadTest, NewThresholdsApplyToTheOutcomesInTheWindow) {
  FakeClock clock;
  flow::CircuitBreaker breaker(&clock, BreakerOptions());
  Fail(breaker, 4);  // below min_calls 10: no verdict
  ASSERT_EQ(breaker.state(), flow::CircuitBreaker::State::kClosed);
  flow::CircuitBreaker::Options o = BreakerOptions();
  o.min_calls = 5;
  o.open_duration = seconds(2);
  breaker.SetOptions(o);
  EXPECT_EQ(breaker.options().min_calls, 5);
  Fail(breaker, 1);  // the 5th failure, counted with the 4 before the reload
  ASSERT_EQ(breaker.state(), flow::CircuitBreaker::State::kOpen);
  EXPECT_EQ(breaker.TimeUntilNextProbe(), seconds(2));  // the new duration
}

TEST(CircuitBreakerReloadTest, ANewWindowStartsEmpty) {
  FakeClock clock;
  flow::CircuitBreaker breaker(&clock, BreakerOptions());
  Fail(breaker, 9);
  flow::CircuitBreaker::Options o = BreakerOptions();
  o.window = seconds(30);
  breaker.SetOptions(o);
  Fail(breaker, 1);  // 10 calls, but only 1 in the new window
  EXPECT_EQ(breaker.state(), flow::CircuitBreaker::State::kClosed);
}

TEST(RateControllerReloadTest, StaticRateFollowsTheNewInitial) {
  FakeClock clock;
  flow::RateController::Options o;
  o.mode = flow::RateController::Mode::kStatic;
  o.initial = 10;
  flow::RateController controller(&clock, o);
  ASSERT_DOUBLE_EQ(controller.Tick(true), 10);
  o.initial = 24;
  controller.SetOptions(o);
  EXPECT_DOUBLE_EQ(controller.rate(), 24);
  clock.Advance(seconds(1));
  EXPECT_DOUBLE_EQ(controller.Tick(true), 24);
}

TEST(RateControllerReloadTest,
     AdaptiveRateIsClampedToTheNewBoundsAndKeepsMode) {
  FakeClock clock;
  flow::RateController::Options o;
  o.mode = flow::RateController::Mode::kAdaptive;
  o.signal = flow::RateController::Signal::kHealthcheck;
  o.initial = 10;
  o.increase_step_per_s = 1;
  flow::RateController controller(&clock, o);
  for (int i = 0; i < 5; ++i) {
    clock.Advance(seconds(1));
    controller.Tick(true);
  }
  ASSERT_DOUBLE_EQ(controller.rate(), 15);  // the blind ramp
  flow::RateController::Options lower = o;
  lower.max = 12;
  lower.mode = flow::RateController::Mode::kStatic;  // not reloadable: ignored
  controller.SetOptions(lower);
  EXPECT_DOUBLE_EQ(controller.rate(), 12);
  EXPECT_EQ(controller.options().mode, flow::RateController::Mode::kAdaptive);
  clock.Advance(seconds(1));
  EXPECT_DOUBLE_EQ(controller.Tick(true), 12);  // held at the new ceiling
  flow::RateController::Options faster = o;
  faster.increase_step_per_s = 3;
  controller.SetOptions(faster);
  clock.Advance(seconds(1));
  EXPECT_DOUBLE_EQ(controller.Tick(true), 15);  // the new step
}

struct TestJob {
  int id = 0;
  Clock::TimePoint deadline;
  bool IsCancelled() const { return false; }
};

TEST(AdmissionQueueReloadTest, CapacityChangesKeepQueuedJobs) {
  FakeClock clock;
  flow::AdmissionOptions o;
  o.capacity = 2;
  flow::AdmissionQueue<TestJob> queue(&clock, o);
  const auto job = [&](int id) {
    return TestJob{id, clock.Now() + std::chrono::hours(1)};
  };
  ASSERT_TRUE(queue.Admit(job(1)).admitted);
  ASSERT_TRUE(queue.Admit(job(2)).admitted);
  flow::Admission full = queue.Admit(job(3));
  ASSERT_FALSE(full.admitted);
  EXPECT_EQ(full.reason, flow::RejectReason::kQueueFull);

  queue.SetCapacity(3);
  EXPECT_EQ(queue.capacity(), 3u);
  EXPECT_TRUE(queue.Admit(job(3)).admitted);

  queue.SetCapacity(1);  // below the queued three: they stay, new ones wait
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.Admit(job(4)).reason, flow::RejectReason::kQueueFull);
  std::vector<int> popped;
  while (auto next = queue.Pop().job) popped.push_back(next->id);
  EXPECT_EQ(popped, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(queue.Admit(job(5)).admitted);
}

class FlowControlReloadTest : public ::testing::Test {
 protected:
  static dispatch::FlowOptions Options(double bus, double api) {
    dispatch::FlowOptions o;
    o.rate.mode = flow::RateController::Mode::kStatic;
    o.rate.initial = bus;
    o.rate.burst = 1;
    o.api_calls_per_s = api;
    o.queue.capacity = 1000;
    return o;
  }
  void Submit(dispatch::FlowControl& flow, dispatch::Cost cost) {
    dispatch::Job job;
    job.cost = cost;
    job.deadline = clock_.Now() + std::chrono::hours(1);
    job.run = [this, cost](dispatch::KillBillCalls& calls) {
      const auto endpoint = cost.bus_events > 0
                                ? dispatch::KillBillEndpoint::kCreateAccount
                                : dispatch::KillBillEndpoint::kGetAccount;
      ASSERT_TRUE(calls.Admit(endpoint, cost).ok());
      calls.Record(endpoint, absl::OkStatus(), milliseconds(1));
      ++ran_;
    };
    job.answer = [this](const absl::Status& status, const char*,
                        Clock::Duration) {
      if (!status.ok()) ++failed_;
    };
    ASSERT_TRUE(flow.Submit(std::move(job)));
  }
  // `s` seconds in 10 ms steps, running what may start, ticking every second.
  void Run(dispatch::FlowControl& flow, int s) {
    for (int i = 0; i < s * 100; ++i) {
      clock_.Advance(milliseconds(10));
      for (;;) {
        dispatch::FlowControl::Next next = flow.TryStartNext();
        if (!next.started) break;
        flow.Run(*next.started);
      }
      if ((i + 1) % 100 == 0) flow.Tick();
    }
  }

  FakeClock clock_;
  metrics::GatewayMetrics metrics_;
  int ran_ = 0;
  int failed_ = 0;
};

TEST_F(FlowControlReloadTest, ANewBusRateAppliesToTheQueuedWrites) {
  dispatch::FlowControl flow(&clock_, &metrics_, Options(/*bus=*/2, 100));
  for (int i = 0; i < 200; ++i) Submit(flow, dispatch::Cost{1, 1});
  Run(flow, 10);
  EXPECT_GE(ran_, 20);
  EXPECT_LE(ran_, 22);  // 2/s and the burst

  dispatch::FlowOptions faster = Options(/*bus=*/10, 100);
  flow.Reconfigure(faster);
  EXPECT_DOUBLE_EQ(metrics_.rate_limit().Value(), 10);  // at once, no tick
  const int before = ran_;
  Run(flow, 10);
  EXPECT_GE(ran_ - before, 99);
  EXPECT_LE(ran_ - before, 101);
  Run(flow, 10);
  EXPECT_EQ(ran_, 200);  // every queued job ran; none was dropped
  EXPECT_EQ(failed_, 0);
  EXPECT_EQ(flow.queued(), 0u);
}

TEST_F(FlowControlReloadTest, ANewApiBudgetAndQueueCapacityApply) {
  dispatch::FlowControl flow(&clock_, &metrics_, Options(10, /*api=*/1));
  for (int i = 0; i < 50; ++i) Submit(flow, dispatch::Cost{1, 0});
  Run(flow, 10);
  EXPECT_LE(ran_, 11);  // 1 call/s and the burst

  dispatch::FlowOptions o = Options(10, /*api=*/5);
  o.queue.capacity = 20;
  flow.Reconfigure(o);
  EXPECT_DOUBLE_EQ(metrics_.queue_capacity().Value(), 2 * 20);
  const int before = ran_;
  Run(flow, 5);
  EXPECT_GE(ran_ - before, 24);  // the API budget, re-applied by every tick
  EXPECT_LE(ran_ - before, 26);
  EXPECT_EQ(failed_, 0);
}

// A reload runs on the main thread while the dispatcher's threads submit,
// start, run and tick (TSan checks the setters against them).
TEST_F(FlowControlReloadTest, ReconfigureWhileRunningAnswersEveryJob) {
  dispatch::FlowControl flow(&clock_, &metrics_, Options(/*bus=*/5, 100));
  std::atomic<bool> done{false};
  std::thread reloader([&] {
    for (int i = 0; !done.load() && i < 100000; ++i) {
      dispatch::FlowOptions o = Options(/*bus=*/i % 2 == 0 ? 50 : 5, 100);
      o.queue.capacity = i % 2 == 0 ? 1000 : 500;
      o.breaker.min_calls = 5 + i % 3;
      flow.Reconfigure(o);
    }
  });
  for (int i = 0; i < 200; ++i) Submit(flow, dispatch::Cost{1, 1});
  for (int s = 0; s < 60 && ran_ < 200; ++s) Run(flow, 1);
  done = true;
  reloader.join();
  EXPECT_EQ(ran_, 200);
  EXPECT_EQ(failed_, 0);
}

}  // namespace
}  // namespace bg
