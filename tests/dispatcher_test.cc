// Dispatcher: every job is answered exactly once, whatever shutdown meets.
// The clock is a FakeClock that never moves, so the buckets never refill:
// exactly the jobs the buckets' bursts pay for can start.
#include "dispatch/dispatcher.h"

#include <atomic>
#include <chrono>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace bg::dispatch {
namespace {

using std::chrono::seconds;

FlowOptions Options() {
  FlowOptions o;
  o.rate.mode = flow::RateController::Mode::kStatic;
  o.rate.initial = 10;
  o.rate.burst = 5;  // 5 jobs of 1 event each can start, no more
  return o;
}

struct Answers {
  std::atomic<int> ran{0};
  absl::Notification five_ran;  // what the bursts pay for has run
  std::atomic<int> shutting_down{0};
  std::atomic<int> other{0};
};

Job MakeJob(Clock* clock, Answers* answers) {
  Job job;
  job.cost = {1, 1};
  job.deadline = clock->Now() + seconds(30);
  job.run = [answers](KillBillCalls& calls) {
    ASSERT_TRUE(calls.Admit(KillBillEndpoint::kCreateAccount, {1, 1}).ok());
    calls.Record(KillBillEndpoint::kCreateAccount, absl::OkStatus(), {});
    if (++answers->ran == 5) answers->five_ran.Notify();
  };
  job.answer = [answers](const absl::Status& status, const char* reason,
                         Clock::Duration) {
    if (absl::IsUnavailable(status) && reason != nullptr &&
        std::string(reason) == "shutting_down") {
      ++answers->shutting_down;
    } else {
      ++answers->other;
    }
  };
  return job;
}

TEST(DispatcherTest, RunsWhatTheBudgetPaysForAndRefusesTheRestAtShutdown) {
  FakeClock clock;
  metrics::GatewayMetrics metrics;
  FlowControl flow(&clock, &metrics, Options());
  Answers answers;
  {
    Dispatcher dispatcher(&clock, &flow, DispatcherOptions{2});
    for (int i = 0; i < 20; ++i) dispatcher.Submit(MakeJob(&clock, &answers));
    ASSERT_TRUE(
        answers.five_ran.WaitForNotificationWithTimeout(absl::Seconds(20)));
    dispatcher.Shutdown(std::chrono::milliseconds(0));
    // After Shutdown no job can start: what ran, ran before it returned.
    EXPECT_EQ(answers.ran.load() + answers.shutting_down.load(), 20);
    // Submitting after shutdown is refused at once, never lost.
    dispatcher.Submit(MakeJob(&clock, &answers));
  }
  EXPECT_EQ(answers.ran.load(), 5);
  EXPECT_EQ(answers.shutting_down.load(), 16);
  EXPECT_EQ(answers.other.load(), 0);
}

TEST(DispatcherTest, AJobStartedJustBeforeShutdownStillRuns) {
  // A job whose run blocks until shutdown has begun: the workers must not
  // leave while it (or anything handed to them) is unfinished.
  FakeClock clock;
  metrics::GatewayMetrics metrics;
  FlowControl flow(&clock, &metrics, Options());
  Answers answers;
  absl::Notification started, release;
  Dispatcher dispatcher(&clock, &flow, DispatcherOptions{1});
  Job slow = MakeJob(&clock, &answers);
  auto inner = slow.run;
  slow.run = [&, inner](KillBillCalls& calls) {
    started.Notify();
    release.WaitForNotification();
    inner(calls);
  };
  dispatcher.Submit(std::move(slow));
  for (int i = 0; i < 3; ++i) dispatcher.Submit(MakeJob(&clock, &answers));
  started.WaitForNotification();
  std::thread stopper([&] { dispatcher.Shutdown(seconds(0)); });
  release.Notify();
  stopper.join();
  EXPECT_EQ(answers.ran.load() + answers.shutting_down.load(), 4);
  EXPECT_GE(answers.ran.load(), 1);
  EXPECT_EQ(answers.other.load(), 0);
}

}  // namespace
}  // namespace bg::dispatch
