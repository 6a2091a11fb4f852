#include "flow/retry_policy.h"

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

RetryOptions Options(RetryOptions::Jitter jitter, int attempts) {
  RetryOptions o;
  o.max_attempts = attempts;
  o.initial_backoff = milliseconds(100);
  o.max_backoff = milliseconds(1000);
  o.jitter = jitter;
  return o;
}

std::vector<Clock::Duration> Delays(RetryPolicy p) {
  std::vector<Clock::Duration> d;
  while (auto next = p.NextDelay()) d.push_back(*next);
  return d;
}

TEST(RetryPolicyTest, MaxAttemptsCountsTheFirstCall) {
  EXPECT_EQ(
      Delays(RetryPolicy(Options(RetryOptions::Jitter::kFull, 1), 1)).size(),
      0u);
  RetryPolicy p(Options(RetryOptions::Jitter::kFull, 3), 1);
  EXPECT_TRUE(p.NextDelay().has_value());
  EXPECT_TRUE(p.NextDelay().has_value());
  EXPECT_EQ(p.attempts(), 3);
  EXPECT_FALSE(p.NextDelay().has_value());
}

TEST(RetryPolicyTest, FullJitterStaysUnderTheExponentialCeiling) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::vector<Clock::Duration> d =
        Delays(RetryPolicy(Options(RetryOptions::Jitter::kFull, 8), seed));
    ASSERT_EQ(d.size(), 7u);
    for (size_t i = 0; i < d.size(); ++i) {
      const Clock::Duration ceiling = std::min<Clock::Duration>(
          milliseconds(100) * (1 << i), milliseconds(1000));
      EXPECT_GE(d[i], Clock::Duration::zero());
      EXPECT_LE(d[i], ceiling) << "seed " << seed << " retry " << i;
    }
  }
}

TEST(RetryPolicyTest, SameSeedSameDelaysDifferentSeedDifferentDelays) {
  const RetryOptions o = Options(RetryOptions::Jitter::kFull, 5);
  EXPECT_EQ(Delays(RetryPolicy(o, 42)), Delays(RetryPolicy(o, 42)));
  EXPECT_NE(Delays(RetryPolicy(o, 42)), Delays(RetryPolicy(o, 43)));
}

TEST(RetryPolicyTest, DecorrelatedJitterBounds) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::vector<Clock::Duration> d = Delays(
        RetryPolicy(Options(RetryOptions::Jitter::kDecorrelated, 10), seed));
    Clock::Duration prev = milliseconds(100);
    for (Clock::Duration x : d) {
      EXPECT_GE(x, milliseconds(100) - std::chrono::nanoseconds(1));
      EXPECT_LE(x, std::min<Clock::Duration>(prev * 3, milliseconds(1000)));
      prev = x;
    }
  }
}

TEST(RetryBudgetTest, MinimumPerSecondWithoutTraffic) {
  FakeClock clock;
  RetryOptions o;  // ratio 0.1, 1/s, 10 s window
  RetryBudget budget(&clock, o);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.TryAcquireRetry()) << i;
  EXPECT_FALSE(budget.TryAcquireRetry());
}

TEST(RetryBudgetTest, RatioOfRecentCalls) {
  FakeClock clock;
  RetryOptions o;
  o.budget_min_per_s = 0;
  RetryBudget budget(&clock, o);
  for (int i = 0; i < 100; ++i) budget.RecordCall();
  EXPECT_NEAR(budget.Available(), 10, 1e-9);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.TryAcquireRetry()) << i;
  EXPECT_FALSE(budget.TryAcquireRetry());
  budget.RecordCall();  // 0.1 of a retry is not a retry
  EXPECT_FALSE(budget.TryAcquireRetry());
  for (int i = 0; i < 9; ++i) budget.RecordCall();
  EXPECT_TRUE(budget.TryAcquireRetry());
}

TEST(RetryBudgetTest, WindowSlides) {
  FakeClock clock;
  RetryOptions o;
  o.budget_min_per_s = 0;
  RetryBudget budget(&clock, o);
  for (int i = 0; i < 50; ++i) budget.RecordCall();
  clock.Advance(seconds(5));
  for (int i = 0; i < 50; ++i) budget.RecordCall();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(budget.TryAcquireRetry());
  EXPECT_FALSE(budget.TryAcquireRetry());
  clock.Advance(seconds(
      5));  // the first 50 calls leave the window, and so does nothing else
  EXPECT_FALSE(budget.TryAcquireRetry());
  clock.Advance(seconds(5));  // everything left: empty budget, empty spend
  for (int i = 0; i < 10; ++i) budget.RecordCall();
  EXPECT_TRUE(budget.TryAcquireRetry());
  EXPECT_FALSE(budget.TryAcquireRetry());
}

}  // namespace
}  // namespace bg::flow
