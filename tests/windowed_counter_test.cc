#include "flow/windowed_counter.h"

#include <chrono>
#include <cstdint>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

struct Counts {
  int64_t calls = 0;
  int64_t failures = 0;
  Clock::Duration busy{0};
  Counts& operator+=(const Counts& o) {
    calls += o.calls;
    failures += o.failures;
    busy += o.busy;
    return *this;
  }
};

Counts Calls(int64_t calls, int64_t failures = 0) {
  return {calls, failures, Clock::Duration(0)};
}

// A 10 s window of 10 buckets of 1 s. FakeClock starts at 1 h, a bucket start.
class WindowedCounterTest : public ::testing::Test {
 protected:
  Clock::TimePoint Now() const { return clock_.Now(); }
  int64_t CallsNow() const { return window_.Sum(Now()).calls; }
  Clock::Duration BusyNow() const { return window_.Sum(Now()).busy; }

  FakeClock clock_;
  WindowedCounter<Counts> window_{seconds(10)};
};

TEST_F(WindowedCounterTest, StartsEmpty) {
  EXPECT_EQ(window_.bucket_width(), seconds(1));
  EXPECT_EQ(window_.window(), seconds(10));
  const Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 0);
  EXPECT_EQ(sum.failures, 0);
  EXPECT_EQ(sum.busy, Clock::Duration(0));
}

TEST_F(WindowedCounterTest, AddsInOneBucketAccumulateEveryField) {
  window_.Add(Now(), Calls(1));
  clock_.Advance(milliseconds(300));
  window_.Add(Now(), Calls(2, 1));
  clock_.Advance(milliseconds(699));  // still the first bucket
  window_.Add(Now(), Calls(1, 1));
  const Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 4);
  EXPECT_EQ(sum.failures, 2);
  EXPECT_EQ(sum.busy, Clock::Duration(0));
}

TEST_F(WindowedCounterTest, BucketExpiresExactlyAtTheWindowEdge) {
  window_.Add(Now(), Calls(3));  // at the start of its bucket
  clock_.Advance(seconds(10) - nanoseconds(1));
  EXPECT_EQ(CallsNow(), 3);
  clock_.Advance(nanoseconds(1));
  EXPECT_EQ(CallsNow(), 0);
}

TEST_F(WindowedCounterTest, ExpiryIsPerBucketNotPerAdd) {
  clock_.Advance(milliseconds(900));
  window_.Add(Now(), Calls(1));        // late in the bucket [0 s, 1 s)
  clock_.Advance(milliseconds(9099));  // 9.999 s: bucket 9, still live
  EXPECT_EQ(CallsNow(), 1);
  clock_.Advance(milliseconds(1));  // 10 s: only 9.1 s after the add
  EXPECT_EQ(CallsNow(), 0);
}

TEST_F(WindowedCounterTest, BucketSlotIsReusedAfterWrapAround) {
  window_.Add(Now(), Calls(5, 5));  // bucket 0, slot 0
  clock_.Advance(seconds(4));
  window_.Add(Now(), Calls(2));  // bucket 4
  clock_.Advance(seconds(6));
  // Bucket 10 shares slot 0 with bucket 0: the stale counts are replaced, not
  // added to.
  window_.Add(Now(), Calls(1));
  Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 3);
  EXPECT_EQ(sum.failures, 0);
  clock_.Advance(seconds(5));  // bucket 15: bucket 4 has expired
  sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 1);
  EXPECT_EQ(sum.failures, 0);
}

TEST_F(WindowedCounterTest, LongIdleGapClearsEverything) {
  for (int i = 0; i < 10; ++i) {
    if (i > 0) clock_.Advance(seconds(1));
    window_.Add(Now(), Calls(1, 1));  // buckets 0..9, every slot
  }
  EXPECT_EQ(CallsNow(), 10);
  // Idle for much longer than the window, by a multiple of it: "now" falls in
  // the same ring slot as the last add, whose counts must not come back.
  clock_.Advance(hours(1));
  Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 0);
  EXPECT_EQ(sum.failures, 0);
  window_.Add(Now(), Calls(2));
  sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 2);
  EXPECT_EQ(sum.failures, 0);
}

TEST_F(WindowedCounterTest, SumsAcrossAPartialWindow) {
  // Adds in buckets 0, 2, 5: the window slides over them one at a time.
  window_.Add(Now(), Calls(1));
  clock_.Advance(seconds(2));
  window_.Add(Now(), Calls(10));
  clock_.Advance(seconds(3) + milliseconds(500));
  window_.Add(Now(), Calls(100));
  EXPECT_EQ(CallsNow(), 111);  // 5.5 s: part of the window never used
  clock_.Advance(milliseconds(4500));
  EXPECT_EQ(CallsNow(), 110);  // 10 s: bucket 0 gone
  clock_.Advance(seconds(2));
  EXPECT_EQ(CallsNow(), 100);  // 12 s: bucket 2 gone
  clock_.Advance(seconds(3) - nanoseconds(1));
  EXPECT_EQ(CallsNow(), 100);
  clock_.Advance(nanoseconds(1));
  EXPECT_EQ(CallsNow(), 0);  // 15 s: bucket 5 gone
}

TEST_F(WindowedCounterTest, ClearForgetsEverything) {
  window_.Add(Now(), Calls(4, 2));
  window_.AddSpan(Now() - milliseconds(200), Now(), &Counts::busy);
  window_.Clear();
  const Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 0);
  EXPECT_EQ(sum.failures, 0);
  EXPECT_EQ(sum.busy, Clock::Duration(0));
  window_.Add(Now(), Calls(1));
  EXPECT_EQ(CallsNow(), 1);
}

TEST_F(WindowedCounterTest, SpanInsideOneBucket) {
  const Clock::TimePoint start = Now() + milliseconds(100);
  clock_.Advance(milliseconds(800));
  window_.AddSpan(start, Now(), &Counts::busy);
  EXPECT_EQ(BusyNow(), milliseconds(700));
  EXPECT_EQ(CallsNow(), 0);  // only the named field
}

TEST_F(WindowedCounterTest, SpanIsSplitAcrossBucketBoundaries) {
  const Clock::TimePoint start = Now();
  // [0.3 s, 2.7 s): 0.7 s in bucket 0, 1 s in bucket 1, 0.7 s in bucket 2.
  window_.AddSpan(start + milliseconds(300), start + milliseconds(2700),
                  &Counts::busy);
  clock_.Advance(milliseconds(2700));
  EXPECT_EQ(BusyNow(), milliseconds(2400));
  clock_.Advance(milliseconds(7300));  // 10 s: bucket 0 gone
  EXPECT_EQ(BusyNow(), milliseconds(1700));
  clock_.Advance(seconds(1));  // 11 s: bucket 1 gone
  EXPECT_EQ(BusyNow(), milliseconds(700));
  clock_.Advance(seconds(1));  // 12 s: bucket 2 gone
  EXPECT_EQ(BusyNow(), Clock::Duration(0));
}

TEST_F(WindowedCounterTest, SpanEndingOnABucketBoundaryStopsThere) {
  const Clock::TimePoint start = Now() + milliseconds(500);
  clock_.Advance(seconds(2));
  window_.AddSpan(start, Now(), &Counts::busy);  // [0.5 s, 2 s)
  EXPECT_EQ(BusyNow(), milliseconds(1500));
  clock_.Advance(seconds(8));  // 10 s: bucket 0 (0.5 s) gone
  EXPECT_EQ(BusyNow(), seconds(1));
  clock_.Advance(seconds(1));  // 11 s: bucket 1 gone; bucket 2 got nothing
  EXPECT_EQ(BusyNow(), Clock::Duration(0));
}

TEST_F(WindowedCounterTest, SpansAddUpWithOtherFieldsInTheSameBuckets) {
  const Clock::TimePoint start = Now();
  window_.Add(start, Calls(3));
  clock_.Advance(milliseconds(1500));
  window_.Add(Now(), Calls(2));
  window_.AddSpan(start, Now(), &Counts::busy);
  clock_.Advance(milliseconds(500));
  window_.AddSpan(Now() - milliseconds(500), Now(), &Counts::busy);
  Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 5);
  EXPECT_EQ(sum.busy, seconds(2));
  clock_.Advance(seconds(8));  // 10 s: bucket 0 (3 calls, 1 s busy) gone
  sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 2);
  EXPECT_EQ(sum.busy, seconds(1));
}

TEST_F(WindowedCounterTest, SpanLongerThanTheWindowKeepsOnlyTheLivePart) {
  const Clock::TimePoint start = Now();
  clock_.Advance(seconds(25) + milliseconds(500));
  window_.AddSpan(start, Now(), &Counts::busy);
  // Live at 25.5 s: buckets 16..25, i.e. [16 s, 25.5 s).
  EXPECT_EQ(BusyNow(), milliseconds(9500));
  clock_.Advance(milliseconds(500));  // 26 s: bucket 16 gone
  EXPECT_EQ(BusyNow(), milliseconds(8500));
}

TEST_F(WindowedCounterTest, SpanEndingOnABucketStartExcludesTheExpiredBucket) {
  const Clock::TimePoint start = Now();
  clock_.Advance(seconds(25));
  window_.AddSpan(start, Now(), &Counts::busy);
  // Live at 25 s: buckets 16..25; bucket 25 has not begun, bucket 15 expired.
  EXPECT_EQ(BusyNow(), seconds(9));
}

TEST_F(WindowedCounterTest, SpanReachingBackPastTheWindowKeepsLiveCounts) {
  clock_.Advance(seconds(12));
  window_.Add(Now(), Calls(7));  // bucket 12, ring slot 2
  clock_.Advance(milliseconds(500));
  // [2.5 s, 12.5 s): its oldest part falls in bucket 2, expired at 12.5 s,
  // whose ring slot now holds bucket 12.
  window_.AddSpan(Now() - seconds(10), Now(), &Counts::busy);
  const Counts sum = window_.Sum(Now());
  EXPECT_EQ(sum.calls, 7);
  EXPECT_EQ(sum.busy, milliseconds(9500));  // [3 s, 12.5 s), all live
}

TEST_F(WindowedCounterTest, EmptyOrBackwardSpanAddsNothing) {
  window_.AddSpan(Now(), Now(), &Counts::busy);
  window_.AddSpan(Now(), Now() - seconds(1), &Counts::busy);
  EXPECT_EQ(BusyNow(), Clock::Duration(0));
}

TEST(WindowedCounterShapeTest, UnevenWindowUsesFlooredBucketWidth) {
  // 1.05 s over 10 buckets: 105 ms each; the live window is 1.05 s.
  WindowedCounter<Counts> w(milliseconds(1050));
  EXPECT_EQ(w.bucket_width(), milliseconds(105));
  const Clock::TimePoint start(milliseconds(105 * 1000));  // bucket 1000
  w.Add(start, Calls(1));
  EXPECT_EQ(w.Sum(start + milliseconds(1049)).calls, 1);
  EXPECT_EQ(w.Sum(start + milliseconds(1050)).calls, 0);
}

TEST(WindowedCounterShapeTest, BucketCountIsATemplateParameter) {
  FakeClock clock;
  WindowedCounter<Counts, 4> w(seconds(2));  // 4 buckets of 500 ms
  EXPECT_EQ(w.bucket_width(), milliseconds(500));
  const Clock::TimePoint start = clock.Now();
  w.Add(start, Calls(1));
  w.Add(start + milliseconds(1500), Calls(10));
  EXPECT_EQ(w.Sum(start + milliseconds(1999)).calls, 11);
  EXPECT_EQ(w.Sum(start + seconds(2)).calls, 10);
  w.Add(start + seconds(2), Calls(100));  // reuses bucket 0's slot
  EXPECT_EQ(w.Sum(start + seconds(2)).calls, 110);
}

TEST(WindowedCounterShapeTest, TinyWindowGetsOneTickBuckets) {
  WindowedCounter<Counts> w(nanoseconds(5));
  EXPECT_EQ(w.bucket_width(), nanoseconds(1));
  const Clock::TimePoint t(hours(1));
  w.Add(t, Calls(1));
  EXPECT_EQ(w.Sum(t + nanoseconds(9)).calls, 1);
  EXPECT_EQ(w.Sum(t + nanoseconds(10)).calls, 0);
  // A span counts at most `window` back from its end.
  w.AddSpan(t, t + nanoseconds(8), &Counts::busy);
  EXPECT_EQ(w.Sum(t + nanoseconds(8)).busy, nanoseconds(5));
}

TEST(WindowedCounterShapeTest, TimesBeforeTheEpochMapToWholeBuckets) {
  WindowedCounter<Counts> w(seconds(10));
  const Clock::TimePoint t(-milliseconds(1500));  // bucket -2: [-2 s, -1 s)
  w.Add(t, Calls(1));
  w.AddSpan(t, Clock::TimePoint(milliseconds(500)), &Counts::busy);
  const Counts sum = w.Sum(Clock::TimePoint(milliseconds(500)));
  EXPECT_EQ(sum.calls, 1);
  EXPECT_EQ(sum.busy, seconds(2));
  // Bucket -2 expires at 8 s, ten widths after its start.
  EXPECT_EQ(w.Sum(Clock::TimePoint(seconds(8) - nanoseconds(1))).calls, 1);
  EXPECT_EQ(w.Sum(Clock::TimePoint(seconds(8))).calls, 0);
}

}  // namespace
}  // namespace bg::flow
