#include "flow/retry_pushback.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

RetryPushback::Options NoJitter() {
  RetryPushback::Options o;
  o.min = milliseconds(100);
  o.max = seconds(30);
  o.jitter = 0;
  o.seed = 1;
  return o;
}

TEST(RetryPushbackTest, AnEmptyBookGivesTheEarliest) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  EXPECT_EQ(book.booked(), Clock::Duration::zero());
  EXPECT_EQ(book.Next(milliseconds(300), 10), milliseconds(300));
  // The next turn is one 1/10 s after this one.
  EXPECT_EQ(book.booked(), milliseconds(400));
}

TEST(RetryPushbackTest, TurnedAwayCallersGetTurnsTheRateServes) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  // Five callers turned away at once, the rate serving 10/s: one turn each,
  // 100 ms apart, instead of all five at the next free slot.
  std::vector<Clock::Duration> got;
  for (int i = 0; i < 5; ++i) got.push_back(book.Next(milliseconds(100), 10));
  EXPECT_EQ(got, (std::vector<Clock::Duration>{
                     milliseconds(100), milliseconds(200), milliseconds(300),
                     milliseconds(400), milliseconds(500)}));
  // A reason whose own earliest time is later than the book starts there.
  EXPECT_EQ(book.Next(seconds(2), 10), seconds(2));
  EXPECT_EQ(book.Next(milliseconds(100), 10), milliseconds(2100));
}

TEST(RetryPushbackTest, TimeEatsTheBook) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  for (int i = 0; i < 20; ++i) book.Next(milliseconds(100), 10);
  EXPECT_EQ(book.booked(), milliseconds(2100));
  clock.Advance(seconds(1));
  EXPECT_EQ(book.booked(), milliseconds(1100));
  EXPECT_EQ(book.Next(milliseconds(100), 10), milliseconds(1100));
  clock.Advance(seconds(5));
  EXPECT_EQ(book.booked(), Clock::Duration::zero());
  EXPECT_EQ(book.Next(milliseconds(100), 10), milliseconds(100));
}

TEST(RetryPushbackTest, NeverBeyondTheMaximumNorBelowTheMinimum) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  EXPECT_EQ(book.Next(milliseconds(1), 10), milliseconds(100));
  EXPECT_EQ(book.Next(seconds(100), 10), seconds(30));
  // A rate near zero (or none) books one turn per maximum: every later caller
  // is told the maximum, and the book never reaches beyond it.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(book.Next(milliseconds(100), 0), seconds(30));
    EXPECT_LE(book.booked(), seconds(30));
  }
  EXPECT_EQ(book.Next(milliseconds(100), -5), seconds(30));
}

TEST(RetryPushbackTest, JitterSpreadsTheHerdAtTheMaximumWithinItsBounds) {
  FakeClock clock;
  RetryPushback::Options o = NoJitter();
  o.jitter = 0.2;
  RetryPushback book(&clock, o);
  // 1,000 callers at 10/s: 100 s of turns, far beyond the 30 s maximum. The
  // ones past it must not all be told exactly 30 s.
  std::set<int64_t> distinct_ms;
  for (int i = 0; i < 1000; ++i) {
    const Clock::Duration p = book.Next(milliseconds(100), 10);
    EXPECT_GE(p, milliseconds(100));
    EXPECT_LE(p, seconds(30));
    if (i >= 400) {
      EXPECT_GE(p, seconds(24)) << i;  // 30 s shortened by at most 20 %
      distinct_ms.insert(std::chrono::duration_cast<milliseconds>(p).count());
    }
  }
  EXPECT_GT(distinct_ms.size(), 500u);
  EXPECT_LT(*distinct_ms.begin(), 25000);
  EXPECT_GT(*distinct_ms.rbegin(), 29000);
}

TEST(RetryPushbackTest, JitterNeverShortensBelowTheEarliest) {
  FakeClock clock;
  RetryPushback::Options o = NoJitter();
  o.jitter = 0.5;
  RetryPushback book(&clock, o);
  // A breaker's next probe in 3 s: nobody is sent back before it.
  for (int i = 0; i < 200; ++i) {
    const Clock::Duration p = book.Next(seconds(3), 10);
    EXPECT_GE(p, seconds(3)) << i;
    EXPECT_LE(p, seconds(3) + milliseconds(100) * i) << i;
  }
}

TEST(RetryPushbackTest, TheSeedFixesTheJitter) {
  auto draw = [](uint64_t seed) {
    FakeClock clock;
    RetryPushback::Options o = NoJitter();
    o.jitter = 0.2;
    o.seed = seed;
    RetryPushback book(&clock, o);
    std::vector<Clock::Duration> got;
    // 1/s for 50 callers: the turns pile up at the 30 s maximum.
    for (int i = 0; i < 50; ++i) got.push_back(book.Next(seconds(1), 1));
    return got;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(RetryPushbackTest, TheBookKnowsWhoHoldsWhichTurn) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());  // early 10 ms, late 5 s
  const uint64_t a = RetryPushback::Identity("CreateAccount/a");
  const uint64_t b = RetryPushback::Identity("CreateAccount/b");
  EXPECT_EQ(RetryPushback::Identity(""), 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kNewcomer);
  EXPECT_EQ(book.Next(milliseconds(300), 10, a), milliseconds(300));
  EXPECT_EQ(book.Next(milliseconds(100), 10, b), milliseconds(400));
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kEarly);
  EXPECT_EQ(book.StandingOf(0), RetryPushback::Standing::kNewcomer);
  clock.Advance(milliseconds(290) - std::chrono::nanoseconds(1));
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kEarly);
  clock.Advance(std::chrono::nanoseconds(1));  // 10 ms before its turn
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kDue);
  // Used: forgotten.
  book.Forget(a);
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kNewcomer);
  // b's turn is at 400 ms; it still holds it 5 s later, not after.
  clock.Advance(milliseconds(110) + seconds(5));
  EXPECT_EQ(book.StandingOf(b), RetryPushback::Standing::kDue);
  clock.Advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(book.StandingOf(b), RetryPushback::Standing::kNewcomer);
  EXPECT_EQ(book.holders(), 0u);
}

TEST(RetryPushbackTest, ACallerEarlyForItsTurnKeepsIt) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  const uint64_t a = RetryPushback::Identity("a");
  for (int i = 0; i < 10; ++i) book.Next(milliseconds(100), 10);
  EXPECT_EQ(book.Next(milliseconds(100), 10, a), milliseconds(1100));
  clock.Advance(milliseconds(500));
  // Back 600 ms early: told its turn again, not the end of the book (1.2 s).
  EXPECT_EQ(book.Next(milliseconds(100), 10, a), milliseconds(600));
  EXPECT_EQ(book.booked(), milliseconds(700));
  // Unless its reason says it cannot come back that soon.
  EXPECT_EQ(book.Next(seconds(1), 10, a), seconds(1));
  clock.Advance(seconds(1));
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kDue);
  // Turned away at its turn: the next turn at the end of the book.
  EXPECT_EQ(book.Next(milliseconds(100), 10, a), milliseconds(100));
}

TEST(RetryPushbackTest, TheOldestBookingIsForgottenWhenTheBookIsFull) {
  FakeClock clock;
  RetryPushback::Options o = NoJitter();
  o.max_holders = 2;
  RetryPushback book(&clock, o);
  const uint64_t a = RetryPushback::Identity("a");
  const uint64_t b = RetryPushback::Identity("b");
  const uint64_t c = RetryPushback::Identity("c");
  book.Next(milliseconds(100), 10, a);
  book.Next(milliseconds(100), 10, b);
  book.Next(milliseconds(100), 10, c);
  EXPECT_EQ(book.holders(), 2u);
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kNewcomer);
  EXPECT_EQ(book.StandingOf(b), RetryPushback::Standing::kEarly);
  EXPECT_EQ(book.StandingOf(c), RetryPushback::Standing::kEarly);
  // The book remembers the turns of the last two bookings, used ones
  // included: a's new booking forgets b's, not c's (used).
  book.Forget(c);
  book.Next(milliseconds(100), 10, a);
  EXPECT_EQ(book.StandingOf(b), RetryPushback::Standing::kNewcomer);
  EXPECT_EQ(book.StandingOf(a), RetryPushback::Standing::kEarly);
  EXPECT_EQ(book.holders(), 1u);
}

TEST(RetryPushbackTest, PromisedCountsTheTurnsWithinTheWait) {
  FakeClock clock;
  RetryPushback book(&clock, NoJitter());
  EXPECT_EQ(book.Promised(50, 10), 0u);  // empty book
  // Turns at 100, 200, ..., 500 ms; the book is taken up to 600 ms.
  for (int i = 0; i < 5; ++i) book.Next(milliseconds(100), 10);
  EXPECT_EQ(book.Promised(50, 10), 5u);
  EXPECT_EQ(book.Promised(3, 10), 3u);  // at most the jobs ahead
  EXPECT_EQ(book.Promised(0, 10), 0u);
  EXPECT_EQ(book.Promised(50, 0), 0u);
  clock.Advance(milliseconds(250));  // two turns passed
  EXPECT_EQ(book.Promised(50, 10), 3u);
}

}  // namespace
}  // namespace bg::flow
