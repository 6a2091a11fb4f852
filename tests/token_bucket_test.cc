#include "flow/token_bucket.h"

#include <chrono>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(TokenBucketTest, StartsFullAndEmptiesByBurst) {
  FakeClock clock;
  TokenBucket bucket(&clock, 10, 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.TryAcquire()) << i;
  EXPECT_FALSE(bucket.TryAcquire());
  EXPECT_DOUBLE_EQ(bucket.Available(), 0);
}

TEST(TokenBucketTest, RefillsAtRateExactly) {
  FakeClock clock;
  TokenBucket bucket(&clock, 10, 5);
  ASSERT_TRUE(bucket.TryAcquire(5));
  clock.Advance(milliseconds(99));
  EXPECT_FALSE(bucket.TryAcquire());
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_FALSE(bucket.TryAcquire());
  // 1000 steps of 1 ms: exactly 10 tokens, capped at 5.
  for (int i = 0; i < 1000; ++i) clock.Advance(milliseconds(1));
  EXPECT_DOUBLE_EQ(bucket.Available(), 5);
}

TEST(TokenBucketTest, AcquireIsAllOrNothing) {
  FakeClock clock;
  TokenBucket bucket(&clock, 1, 3);
  ASSERT_TRUE(bucket.TryAcquire(2));
  EXPECT_FALSE(bucket.TryAcquire(2));  // one left: nothing taken
  EXPECT_DOUBLE_EQ(bucket.Available(), 1);
  EXPECT_TRUE(bucket.TryAcquire(1));
}

TEST(TokenBucketTest, TimeUntilAvailableIsExactToTheNanosecond) {
  FakeClock clock;
  TokenBucket bucket(&clock, 3, 2);  // 1 token every 333,333,333.3 ns
  ASSERT_TRUE(bucket.TryAcquire(2));
  EXPECT_EQ(bucket.TimeUntilAvailable(1), nanoseconds(333333334));
  EXPECT_EQ(bucket.TimeUntilAvailable(2), nanoseconds(666666667));
  clock.Advance(nanoseconds(333333333));
  EXPECT_FALSE(bucket.TryAcquire(1));
  EXPECT_EQ(bucket.TimeUntilAvailable(1), nanoseconds(1));
  clock.Advance(nanoseconds(1));
  EXPECT_TRUE(bucket.TryAcquire(1));
  EXPECT_EQ(bucket.TimeUntilAvailable(0), Clock::Duration::zero());
}

TEST(TokenBucketTest, NeverAvailableBeyondBurstOrAtRateZero) {
  FakeClock clock;
  TokenBucket bucket(&clock, 10, 2);
  EXPECT_EQ(bucket.TimeUntilAvailable(3), Clock::Duration::max());
  TokenBucket stopped(&clock, 0, 2);
  ASSERT_TRUE(stopped.TryAcquire(2));
  EXPECT_EQ(stopped.TimeUntilAvailable(1), Clock::Duration::max());
  clock.Advance(seconds(100));
  EXPECT_FALSE(stopped.TryAcquire());
}

TEST(TokenBucketTest, SetRateKeepsTokensEarnedAtTheOldRate) {
  FakeClock clock;
  TokenBucket bucket(&clock, 10, 100);
  ASSERT_TRUE(bucket.TryAcquire(100));
  clock.Advance(milliseconds(500));  // 5 tokens at 10/s
  bucket.SetRate(100);
  EXPECT_DOUBLE_EQ(bucket.rate(), 100);
  EXPECT_DOUBLE_EQ(bucket.Available(), 5);
  clock.Advance(milliseconds(100));  // +10 at 100/s
  EXPECT_DOUBLE_EQ(bucket.Available(), 15);
  bucket.SetRate(1);
  clock.Advance(seconds(1));  // +1
  EXPECT_DOUBLE_EQ(bucket.Available(), 16);
  bucket.SetRate(-5);  // negative means stopped
  EXPECT_DOUBLE_EQ(bucket.rate(), 0);
}

TEST(TokenBucketTest, RefundIsCappedAtBurst) {
  FakeClock clock;
  TokenBucket bucket(&clock, 1, 4);
  ASSERT_TRUE(bucket.TryAcquire(2));
  bucket.Refund(1);
  EXPECT_DOUBLE_EQ(bucket.Available(), 3);
  bucket.Refund(10);
  EXPECT_DOUBLE_EQ(bucket.Available(), 4);
}

TEST(TokenBucketTest, LongRunCountMatchesRate) {
  FakeClock clock;
  TokenBucket bucket(&clock, 50, 1);
  ASSERT_TRUE(bucket.TryAcquire());
  int granted = 0;
  for (int i = 0; i < 60000; ++i) {  // 60 s in 1 ms steps
    clock.Advance(milliseconds(1));
    while (bucket.TryAcquire()) ++granted;
  }
  EXPECT_EQ(granted, 3000);
}

}  // namespace
}  // namespace bg::flow
