// FlowControl's two budgets under a FakeClock: writes (jobs that post bus
// events) and reads (jobs that post none) queue in lanes of their own. Reads
// never wait behind writes held by the bus budget; writes go first on the API
// budget, so a storm of reads cannot starve them; queued reads are no reason
// to raise the bus rate.
#include "dispatch/flow_control.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bg::dispatch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Cost kWrite{1, 1};  // an untagged create: 1 call, 1 bus event
constexpr Cost kRead{1, 0};   // a lookup: 1 call, no bus event

class FlowControlTest : public ::testing::Test {
 protected:
  // Static bus budget `bus` events/s, API budget `api` calls/s, bursts of 2.
  FlowOptions Options(double bus, double api) {
    FlowOptions o;
    o.rate.mode = flow::RateController::Mode::kStatic;
    o.rate.initial = bus;
    o.rate.burst = 2;
    o.api_calls_per_s = api;
    o.queue.capacity = 10000;
    return o;
  }

  void Submit(FlowControl& flow, Cost cost, char kind) {
    Job job;
    job.cost = cost;
    job.deadline = clock_.Now() + std::chrono::hours(1);
    job.run = [this, cost, kind](KillBillCalls& calls) {
      const KillBillEndpoint endpoint = cost.bus_events > 0
                                            ? KillBillEndpoint::kCreateAccount
                                            : KillBillEndpoint::kGetAccount;
      ASSERT_TRUE(calls.Admit(endpoint, cost).ok());
      calls.Record(endpoint, absl::OkStatus(), milliseconds(1));
      started_.push_back(kind);
    };
    job.answer = [this](const absl::Status& status, const char*,
                        Clock::Duration) { answered_.push_back(status); };
    ASSERT_TRUE(flow.Submit(std::move(job)));
  }

  // Runs what can start now.
  void StartAll(FlowControl& flow) {
    for (;;) {
      FlowControl::Next next = flow.TryStartNext();
      if (!next.started) return;
      flow.Run(*next.started);
    }
  }

  // `s` seconds in 10 ms steps, ticking every second.
  void Run(FlowControl& flow, double s) {
    for (int i = 0; i < static_cast<int>(s * 100); ++i) {
      clock_.Advance(milliseconds(10));
      StartAll(flow);
      if ((i + 1) % 100 == 0) flow.Tick();
    }
  }

  int Count(char kind) const {
    return static_cast<int>(std::count(started_.begin(), started_.end(), kind));
  }

  FakeClock clock_;
  metrics::GatewayMetrics metrics_;
  std::string started_;
  std::vector<absl::Status> answered_;
};

TEST_F(FlowControlTest, ReadsPassWritesHeldByTheBusBudget) {
  FlowControl flow(&clock_, &metrics_, Options(/*bus=*/1, /*api=*/50));
  for (int i = 0; i < 5; ++i) Submit(flow, kWrite, 'w');
  for (int i = 0; i < 3; ++i) Submit(flow, kRead, 'r');
  StartAll(flow);
  // Two writes had their bus tokens (the burst); the other three wait for
  // theirs, the reads do not wait with them (the API bucket refills at 50/s).
  EXPECT_EQ(Count('w'), 2);
  Run(flow, 0.2);
  EXPECT_EQ(Count('r'), 3);
  EXPECT_EQ(Count('w'), 2);
  EXPECT_EQ(flow.queued(), 3u);
}

TEST_F(FlowControlTest, AStormOfReadsDoesNotStarveWrites) {
  // API 10 calls/s; the bus allows 4 writes/s. 2,000 reads queued first.
  FlowControl flow(&clock_, &metrics_, Options(/*bus=*/4, /*api=*/10));
  for (int i = 0; i < 2000; ++i) Submit(flow, kRead, 'r');
  for (int i = 0; i < 200; ++i) Submit(flow, kWrite, 'w');
  Run(flow, 20);
  // Writes get their 4/s (and the bus burst); reads the rest of the API
  // budget (and its burst).
  EXPECT_GE(Count('w'), 4 * 20);
  EXPECT_LE(Count('w'), 4 * 20 + 2);
  EXPECT_GE(Count('r'), 6 * 20 - 2);
  EXPECT_LE(Count('w') + Count('r'), 10 * 20 + 2);
}

TEST_F(FlowControlTest, QueuedReadsDoNotRaiseTheBusRate) {
  FlowOptions o = Options(/*bus=*/5, /*api=*/1);
  o.rate.mode = flow::RateController::Mode::kAdaptive;
  o.rate.signal = flow::RateController::Signal::kHealthcheck;
  o.rate.increase_step_per_s = 1;
  FlowControl flow(&clock_, &metrics_, o);
  for (int i = 0; i < 100; ++i) Submit(flow, kRead, 'r');
  Run(flow, 10);
  EXPECT_GT(flow.queued(), 0u);            // reads wait on the API budget...
  EXPECT_EQ(flow.controller().rate(), 5);  // ...which the bus rate cannot help
  // Writes waiting on the bus budget are demand: the blind ramp climbs.
  for (int i = 0; i < 100; ++i) Submit(flow, kWrite, 'w');
  Run(flow, 10);
  EXPECT_GT(flow.controller().rate(), 5);
}

TEST_F(FlowControlTest, ABreakerOpenedBetweenTicksRefusesTheNextJobAtOnce) {
  FlowControl flow(&clock_, &metrics_, Options(/*bus=*/5, /*api=*/10));
  // The health monitor's thread opens the breaker; no tick has run since.
  for (int i = 0; i < 3; ++i) flow.breaker().OnHealth({/*reachable=*/false});
  ASSERT_EQ(flow.breaker().state(), flow::CircuitBreaker::State::kOpen);
  Job job;
  job.cost = kRead;
  job.deadline = clock_.Now() + seconds(30);
  job.run = [](KillBillCalls&) { FAIL() << "ran while the breaker is open"; };
  const char* reason = nullptr;
  job.answer = [&](const absl::Status& status, const char* why,
                   Clock::Duration) {
    answered_.push_back(status);
    reason = why;
  };
  // Refused now, not queued until its deadline.
  EXPECT_FALSE(flow.Submit(std::move(job)));
  ASSERT_EQ(answered_.size(), 1u);
  EXPECT_STREQ(reason, "breaker_open");
  EXPECT_EQ(flow.queued(), 0u);
}

// The memory guard in front of both lanes: a call arriving while the
// process's resident memory is at queue.max_resident_mb is answered at once,
// RESOURCE_EXHAUSTED with reason "memory" and a pushback, and never queued;
// admission resumes once memory is back under the bound.
class FlowControlMemoryTest : public FlowControlTest {
 protected:
  static constexpr uint64_t kMiB = 1024 * 1024;

  flow::MemoryGuard::Process FakeProcess() {
    return {[this] { return resident_; }, [this] { ++releases_; }};
  }
  // Submits one job; whether it was admitted, and its answer if it was not.
  bool Offer(FlowControl& flow, Cost cost) {
    Job job;
    job.cost = cost;
    job.deadline = clock_.Now() + std::chrono::hours(1);
    job.run = [this](KillBillCalls&) { started_.push_back('x'); };
    job.answer = [this](const absl::Status& status, const char* reason,
                        Clock::Duration pushback) {
      answered_.push_back(status);
      reasons_.push_back(reason == nullptr ? "" : reason);
      pushbacks_.push_back(pushback);
    };
    return flow.Submit(std::move(job));
  }
  double Rejections(const std::string& reason) {
    for (const auto& family : metrics_.registry().Collect()) {
      if (family.name != "billing_gateway_rejections_total") continue;
      for (const auto& m : family.metric) {
        for (const auto& label : m.label) {
          if (label.name == "reason" && label.value == reason)
            return m.counter.value;
        }
      }
    }
    return -1;
  }

  uint64_t resident_ = 50 * kMiB;
  int releases_ = 0;
  std::vector<std::string> reasons_;
  std::vector<Clock::Duration> pushbacks_;
};

TEST_F(FlowControlMemoryTest, RefusesAtTheBoundAndRecoversUnderIt) {
  FlowOptions o = Options(/*bus=*/100, /*api=*/100);
  o.memory.max_resident_mb = 100;
  o.memory.per_call_bytes = 1;  // the readings alone decide here
  FlowControl flow(&clock_, &metrics_, o, FakeProcess());
  EXPECT_TRUE(Offer(flow, kWrite));
  EXPECT_TRUE(Offer(flow, kRead));
  EXPECT_EQ(flow.queued(), 2u);

  resident_ = 100 * kMiB;
  clock_.Advance(o.memory.read_interval);
  EXPECT_FALSE(Offer(flow, kWrite));
  EXPECT_FALSE(Offer(flow, kRead));
  EXPECT_EQ(flow.queued(), 2u) << "a refused call is not queued";
  ASSERT_EQ(answered_.size(), 2u);
  for (size_t i = 0; i < answered_.size(); ++i) {
    EXPECT_TRUE(absl::IsResourceExhausted(answered_[i])) << answered_[i];
    EXPECT_EQ(reasons_[i], "memory");
    EXPECT_GE(pushbacks_[i], o.queue.min_retry_pushback);
    EXPECT_NE(answered_[i].message().find("memory"), absl::string_view::npos)
        << answered_[i];
  }
  EXPECT_EQ(Rejections("memory"), 2);
  EXPECT_EQ(Rejections("queue_full"), 0);
  EXPECT_EQ(releases_, 1) << "free heap pages given back once while over";
  flow.Tick();
  EXPECT_EQ(metrics_.resident_memory().Value(), 100.0 * kMiB);
  EXPECT_EQ(metrics_.resident_memory_limit().Value(), 100.0 * kMiB);

  // The queued calls were answered and their memory freed.
  resident_ = 60 * kMiB;
  clock_.Advance(o.memory.read_interval);
  EXPECT_TRUE(Offer(flow, kWrite));
  EXPECT_EQ(flow.queued(), 3u);
  EXPECT_EQ(Rejections("memory"), 2);
}

TEST_F(FlowControlMemoryTest, CallsArrivingBetweenReadsCountTowardsTheBound) {
  // 90 MiB read, 1 MiB assumed per call: 10 calls are admitted on that
  // reading; the 11th reaches the bound on the estimate, and the guard reads
  // again (the 10 calls did take their memory): refused.
  FlowOptions o = Options(/*bus=*/100, /*api=*/100);
  o.memory.max_resident_mb = 100;
  o.memory.per_call_bytes = kMiB;
  resident_ = 90 * kMiB;
  FlowControl flow(&clock_, &metrics_, o, FakeProcess());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Offer(flow, kWrite)) << i;
  resident_ = 100 * kMiB;
  EXPECT_FALSE(Offer(flow, kWrite));
  EXPECT_EQ(flow.queued(), 10u);
  EXPECT_EQ(reasons_, std::vector<std::string>{"memory"});
}

TEST_F(FlowControlMemoryTest, OffByDefaultAndSetByAReload) {
  FlowOptions o = Options(/*bus=*/100, /*api=*/100);
  resident_ = 10'000 * kMiB;
  FlowControl flow(&clock_, &metrics_, o, FakeProcess());
  EXPECT_EQ(o.memory.max_resident_mb, 0u);
  EXPECT_TRUE(Offer(flow, kWrite)) << "no bound by default";
  EXPECT_EQ(metrics_.resident_memory_limit().Value(), 0);

  o.memory.max_resident_mb = 4096;
  flow.Reconfigure(o);
  EXPECT_EQ(metrics_.resident_memory_limit().Value(), 4096.0 * kMiB);
  clock_.Advance(o.memory.read_interval);
  EXPECT_FALSE(Offer(flow, kWrite));
  EXPECT_EQ(reasons_, std::vector<std::string>{"memory"});

  o.memory.max_resident_mb = 0;
  flow.Reconfigure(o);
  EXPECT_TRUE(Offer(flow, kWrite)) << "bound removed by the reload";
}

}  // namespace
}  // namespace bg::dispatch
