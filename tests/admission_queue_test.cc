#include "flow/admission_queue.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

struct TestJob {
  int id = 0;
  Clock::TimePoint deadline;
  std::shared_ptr<bool> cancelled = std::make_shared<bool>(false);
  std::unique_ptr<std::string> payload =
      std::make_unique<std::string>("reactor");
  bool IsCancelled() const { return *cancelled; }
};

AdmissionOptions TestOptions() {
  AdmissionOptions o;
  o.capacity = 10;
  o.deadline_margin = Clock::Duration::zero();
  o.initial_latency = milliseconds(200);
  o.latency_ewma_alpha = 0.2;
  o.initial_drain_per_s = 10;
  o.wait_safety_factor = 1.0;  // Exact arithmetic; the factor has its own test.
  o.min_retry_pushback = milliseconds(100);
  o.max_retry_pushback = seconds(30);
  return o;
}

class AdmissionQueueTest : public ::testing::Test {
 protected:
  AdmissionQueueTest() : queue_(&clock_, TestOptions()) {}
  TestJob Job(int id, Clock::Duration budget) {
    TestJob j;
    j.id = id;
    j.deadline = clock_.Now() + budget;
    return j;
  }
  void Fill(int n) {
    for (int i = 0; i < n; ++i) {
      TestJob j = Job(100 + i, seconds(60));
      ASSERT_TRUE(queue_.Admit(std::move(j)).admitted);
    }
  }
  static std::vector<int> Ids(const std::vector<TestJob>& jobs) {
    std::vector<int> ids;
    for (const TestJob& j : jobs) ids.push_back(j.id);
    return ids;
  }

  FakeClock clock_;
  AdmissionQueue<TestJob> queue_;
};

TEST_F(AdmissionQueueTest, EmptyQueueDeadlineBoundary) {
  TestJob short_by_1ns = Job(1, milliseconds(200) - nanoseconds(1));
  Admission a = queue_.Admit(std::move(short_by_1ns));
  EXPECT_FALSE(a.admitted);
  EXPECT_EQ(a.reason, RejectReason::kDeadlineUnmeetable);
  EXPECT_EQ(*short_by_1ns.payload, "reactor");  // not moved from on rejection
  TestJob exact = Job(2, milliseconds(200));
  a = queue_.Admit(std::move(exact));
  EXPECT_TRUE(a.admitted);
  EXPECT_EQ(a.predicted_wait, milliseconds(200));
}

TEST_F(AdmissionQueueTest, QueuedJobsDeadlineBoundary) {
  Fill(5);  // 5 ahead at the 10 jobs/s prior: 500 ms + 200 ms latency
  TestJob short_by_1ns = Job(1, milliseconds(700) - nanoseconds(1));
  EXPECT_FALSE(queue_.Admit(std::move(short_by_1ns)).admitted);
  TestJob exact = Job(2, milliseconds(700));
  Admission a = queue_.Admit(std::move(exact));
  EXPECT_TRUE(a.admitted);
  EXPECT_EQ(a.predicted_wait, milliseconds(700));
  EXPECT_EQ(queue_.size(), 6u);
}

TEST_F(AdmissionQueueTest, DeadlineMarginIsReserved) {
  AdmissionOptions o = TestOptions();
  o.deadline_margin = milliseconds(20);
  AdmissionQueue<TestJob> q(&clock_, o);
  TestJob j = Job(1, milliseconds(219));
  EXPECT_FALSE(q.Admit(std::move(j)).admitted);
  j = Job(1, milliseconds(220));
  EXPECT_TRUE(q.Admit(std::move(j)).admitted);
}

TEST_F(AdmissionQueueTest, UnmeetablePushbackIsTimeUntilTheQueueFits) {
  Fill(5);
  // Budget after latency: 200 ms = 2 positions at 10/s; 3 too many = 300 ms.
  TestJob j = Job(1, milliseconds(400));
  Admission a = queue_.Admit(std::move(j));
  EXPECT_EQ(a.reason, RejectReason::kDeadlineUnmeetable);
  EXPECT_EQ(a.retry_after, milliseconds(300));
  // Shorter than the latency itself: the whole queue (500 ms).
  j = Job(2, milliseconds(100));
  EXPECT_EQ(queue_.Admit(std::move(j)).retry_after, milliseconds(500));
}

TEST_F(AdmissionQueueTest, ExpiredDeadlineIsUnmeetableWithMinPushback) {
  TestJob j = Job(1, Clock::Duration::zero());
  Admission a = queue_.Admit(std::move(j));
  EXPECT_EQ(a.reason, RejectReason::kDeadlineUnmeetable);
  EXPECT_EQ(a.retry_after, milliseconds(100));
}

TEST_F(AdmissionQueueTest, QueueFullPushbackDrainsToHalf) {
  Fill(10);
  TestJob j = Job(1, seconds(60));
  Admission a = queue_.Admit(std::move(j));
  EXPECT_EQ(a.reason, RejectReason::kQueueFull);
  EXPECT_EQ(a.retry_after, milliseconds(500));  // (10 - 5) / 10 per s
  EXPECT_EQ(*j.payload, "reactor");
}

TEST_F(AdmissionQueueTest, BreakerOpenPushbackIsTimeToNextProbeClamped) {
  queue_.SetBreakerOpen(true, clock_.Now() + seconds(3));
  TestJob j = Job(1, seconds(60));
  Admission a = queue_.Admit(std::move(j));
  EXPECT_EQ(a.reason, RejectReason::kBreakerOpen);
  EXPECT_EQ(a.retry_after, seconds(3));
  queue_.SetBreakerOpen(true, clock_.Now() + milliseconds(10));
  EXPECT_EQ(queue_.Admit(std::move(j)).retry_after, milliseconds(100));
  queue_.SetBreakerOpen(true, clock_.Now() + seconds(100));
  EXPECT_EQ(queue_.Admit(std::move(j)).retry_after, seconds(30));
  queue_.SetBreakerOpen(false);
  EXPECT_TRUE(queue_.Admit(std::move(j)).admitted);
}

TEST_F(AdmissionQueueTest, ShutdownRejectsAndDrainAllReturnsFifo) {
  Fill(3);
  queue_.Shutdown();
  TestJob j = Job(1, seconds(60));
  Admission a = queue_.Admit(std::move(j));
  EXPECT_EQ(a.reason, RejectReason::kShuttingDown);
  EXPECT_EQ(a.retry_after, milliseconds(100));
  EXPECT_EQ(Ids(queue_.DrainAll()), (std::vector<int>{100, 101, 102}));
  EXPECT_EQ(queue_.size(), 0u);
  EXPECT_STREQ(RejectReasonName(RejectReason::kShuttingDown), "shutting_down");
}

TEST_F(AdmissionQueueTest, PopSkipsExpiredAndCancelled) {
  TestJob a = Job(1, milliseconds(500));
  TestJob b = Job(2, seconds(60));
  TestJob c = Job(3, seconds(60));
  *b.cancelled = true;  // cancelled after admission
  *b.cancelled = false;
  ASSERT_TRUE(queue_.Admit(std::move(a)).admitted);
  std::shared_ptr<bool> b_cancel = b.cancelled;
  ASSERT_TRUE(queue_.Admit(std::move(b)).admitted);
  ASSERT_TRUE(queue_.Admit(std::move(c)).admitted);
  *b_cancel = true;
  clock_.Advance(milliseconds(500));  // a's deadline is now: expired
  auto r = queue_.Pop();
  ASSERT_TRUE(r.job.has_value());
  EXPECT_EQ(r.job->id, 3);
  EXPECT_EQ(Ids(r.dropped.expired), std::vector<int>{1});
  EXPECT_EQ(Ids(r.dropped.cancelled), std::vector<int>{2});
  EXPECT_EQ(queue_.size(), 0u);
}

TEST_F(AdmissionQueueTest, JobThatCanStillFinishRunsOneThatCannotIsShed) {
  // Expected latency is 200 ms: a job runs while now + 200 ms < deadline.
  TestJob a = Job(1, milliseconds(500));
  ASSERT_TRUE(queue_.Admit(std::move(a)).admitted);
  TestJob b = Job(2, milliseconds(500));
  ASSERT_TRUE(queue_.Admit(std::move(b)).admitted);
  clock_.Advance(milliseconds(300) - nanoseconds(1));
  auto r = queue_.Pop();
  ASSERT_TRUE(r.job.has_value());
  EXPECT_EQ(r.job->id, 1);
  EXPECT_TRUE(r.dropped.expired.empty());
  clock_.Advance(nanoseconds(1));
  r = queue_.Pop();
  EXPECT_FALSE(r.job.has_value());
  EXPECT_EQ(Ids(r.dropped.expired), std::vector<int>{2});
}

TEST_F(AdmissionQueueTest,
       SweepWithHorizonShedsJobsThatWouldExpireBeforeTheNextSweep) {
  // Expected latency 200 ms: a 1 s job is doomed from t = 800 ms on.
  TestJob a = Job(1, seconds(1));
  ASSERT_TRUE(queue_.Admit(std::move(a)).admitted);
  TestJob b = Job(2, seconds(2));
  ASSERT_TRUE(queue_.Admit(std::move(b)).admitted);
  clock_.Advance(milliseconds(300));
  EXPECT_TRUE(queue_.Sweep().expired.empty());
  // Sweeping every 500 ms: the next sweep (t = 800 ms) would be too late for
  // job 1.
  EXPECT_EQ(Ids(queue_.Sweep(milliseconds(500)).expired), std::vector<int>{1});
  EXPECT_EQ(queue_.size(), 1u);
}

// A queue admitted at 10 jobs/s whose pace then drops to 2 jobs/s (the rate
// controller cut the bucket): job k of the kept ones starts at k / 2 s and
// needs 200 ms more, so with a 10.2 s deadline k <= 20 fits (equality fits)
// and the rest are shed now, not at their deadlines.
class SweepPaceTest : public AdmissionQueueTest {
 protected:
  // 50 jobs with 10.2 s deadlines, admitted at the 10 jobs/s prior.
  SweepPaceTest() : q_(&clock_, Options()) {
    for (int i = 0; i < 50; ++i) {
      TestJob j = Job(i, milliseconds(10200));
      EXPECT_TRUE(q_.Admit(std::move(j)).admitted) << i;
    }
  }
  static AdmissionOptions Options() {
    AdmissionOptions o = TestOptions();
    o.capacity = 100;
    return o;
  }
  AdmissionQueue<TestJob> q_;
};

TEST_F(SweepPaceTest, SweepShedsWhatTheCurrentPaceCannotServeInTime) {
  AdmissionQueue<TestJob>& q = q_;
  EXPECT_TRUE(q.Sweep().expired.empty());  // 49 / 10 + 0.2 s fits
  q.SetDrainPrior(2);
  std::vector<int> shed;
  for (int i = 21; i < 50; ++i) shed.push_back(i);
  EXPECT_EQ(Ids(q.Sweep().expired), shed);
  EXPECT_EQ(q.size(), 21u);
  EXPECT_EQ(q.Pop().job->id, 0);  // the head is kept: FIFO order
}

TEST_F(SweepPaceTest, SweepKeepsQueuedJobsWaitingWhileTheBreakerIsOpen) {
  AdmissionQueue<TestJob>& q = q_;
  q.SetDrainPrior(2);
  q.SetBreakerOpen(true, clock_.Now() + seconds(5));
  EXPECT_TRUE(q.Sweep().expired.empty());
  EXPECT_EQ(q.size(), 50u);
  q.SetBreakerOpen(false);
  EXPECT_EQ(q.Sweep().expired.size(), 29u);
}

TEST_F(AdmissionQueueTest, SafetyFactorPadsTheQueueWait) {
  AdmissionOptions o = TestOptions();
  o.wait_safety_factor = 1.5;
  AdmissionQueue<TestJob> q(&clock_, o);
  for (int i = 0; i < 4; ++i) {
    TestJob j = Job(100 + i, seconds(60));
    ASSERT_TRUE(q.Admit(std::move(j)).admitted);
  }
  // 4 ahead at 10/s = 400 ms, padded to 600 ms, + 200 ms latency.
  TestJob short_by_1ns = Job(1, milliseconds(800) - nanoseconds(1));
  EXPECT_FALSE(q.Admit(std::move(short_by_1ns)).admitted);
  TestJob exact = Job(2, milliseconds(800));
  EXPECT_TRUE(q.Admit(std::move(exact)).admitted);
}

TEST_F(AdmissionQueueTest, PopRespectsReadyPredicate) {
  Fill(2);
  auto r = queue_.Pop([](const TestJob&) { return false; });
  EXPECT_FALSE(r.job.has_value());
  EXPECT_EQ(queue_.size(), 2u);
  r = queue_.Pop([](const TestJob& j) { return j.id == 100; });
  ASSERT_TRUE(r.job.has_value());
  EXPECT_EQ(r.job->id, 100);
}

TEST_F(AdmissionQueueTest, SweepRemovesDeadJobsAnywhere) {
  Fill(2);
  TestJob mid = Job(7, seconds(60));
  std::shared_ptr<bool> cancel = mid.cancelled;
  ASSERT_TRUE(queue_.Admit(std::move(mid)).admitted);
  Fill(1);
  *cancel = true;
  auto d = queue_.Sweep();
  EXPECT_EQ(Ids(d.cancelled), std::vector<int>{7});
  EXPECT_TRUE(d.expired.empty());
  EXPECT_EQ(Ids(queue_.DrainAll()), (std::vector<int>{100, 101, 100}));
}

TEST_F(AdmissionQueueTest, DrainRateIsMeasuredOverBusyTimeOnly) {
  AdmissionOptions o = TestOptions();
  o.capacity = 1000;
  AdmissionQueue<TestJob> q(&clock_, o);
  for (int i = 0; i < 200; ++i) {
    TestJob j = Job(i, seconds(600));
    ASSERT_TRUE(q.Admit(std::move(j)).admitted);
  }
  for (int i = 0; i < 100; ++i) {  // 20 jobs/s for 5 s
    clock_.Advance(milliseconds(50));
    ASSERT_TRUE(q.Pop().job.has_value());
  }
  EXPECT_NEAR(q.DrainPerSecond(), 20, 1e-9);
  q.DrainAll();
  clock_.Advance(seconds(3));  // idle time does not dilute the measurement
  EXPECT_NEAR(q.DrainPerSecond(), 20, 1e-9);
  clock_.Advance(seconds(10));  // out of the window: back to the prior
  EXPECT_NEAR(q.DrainPerSecond(), 10, 1e-9);
}

TEST_F(AdmissionQueueTest, StallWhileBreakerOpenIsNotSlowDraining) {
  Fill(5);
  queue_.SetBreakerOpen(true, clock_.Now() + seconds(5));
  clock_.Advance(seconds(5));
  queue_.SetBreakerOpen(false);
  EXPECT_NEAR(queue_.DrainPerSecond(), 10, 1e-9);  // still the prior
}

TEST_F(AdmissionQueueTest, PriorBlendsWithShortMeasurement) {
  Fill(5);
  queue_.SetDrainPrior(20);
  EXPECT_NEAR(queue_.DrainPerSecond(), 20, 1e-9);
  clock_.Advance(seconds(1));  // 1 s busy, nothing drained: (0 + 20 * 1) / 2
  EXPECT_NEAR(queue_.DrainPerSecond(), 10, 1e-9);
}

TEST_F(AdmissionQueueTest, LatencyEwma) {
  queue_.ObserveLatency(milliseconds(1200));  // 200 + 0.2 * 1000
  EXPECT_EQ(queue_.ExpectedLatency(), milliseconds(400));
  EXPECT_EQ(queue_.PredictedWait(), milliseconds(400));
}

}  // namespace
}  // namespace bg::flow
